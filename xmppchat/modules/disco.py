"""
XEP-0030: Service Discovery. https://xmpp.org/extensions/xep-0030.html

The server answers disco#info with its identity, the features of every
loaded module and their XEP-0128 forms (C{serverInfoForms()}), disco#items
with its components (e.g. C{muc.<domain>}); an
account's bare JID answers disco#info for its owner (XEP-0030 §3.1,
identity C{account/registered}).
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import StanzaError

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"


def infoQuery(identities, features, node=None) -> domish.Element:
    query = domish.Element((NS_DISCO_INFO, "query"))
    if node:
        query["node"] = node
    for category, kind, name in identities:
        identity = query.addElement("identity")
        identity["category"] = category
        identity["type"] = kind
        if name:
            identity["name"] = name
    for feature in sorted(set(features)):
        query.addElement("feature")["var"] = feature
    return query


class DiscoModule(Module):
    """
    XEP-0030 §3 (info) and §4 (items) for the server and accounts.
    """

    name = "disco"
    features = (NS_DISCO_INFO, NS_DISCO_ITEMS)

    @hook(f"iq-get/host/{NS_DISCO_INFO}:query")
    def onServerInfo(self, event):
        node = event.stanza.query.getAttribute("node")
        if node:
            raise StanzaError("item-not-found", text="No such node")
        name = self.host.config.server.name
        query = infoQuery([("server", "im", name)], self.host.features())
        for module in self.host.modules.values():
            # XEP-0128 extensions (XEP-0157 contact addresses)
            for form in getattr(module, "serverInfoForms", list)():
                query.addChild(form)
        return self.reply(event, query)

    @hook(f"iq-get/host/{NS_DISCO_ITEMS}:query")
    def onServerItems(self, event):
        query = domish.Element((NS_DISCO_ITEMS, "query"))
        for domain in sorted(self.host.components):
            query.addElement("item")["jid"] = domain
        return self.reply(event, query)

    @hook(f"iq-get/self/{NS_DISCO_INFO}:query")
    def onAccountInfo(self, event):
        features = [NS_DISCO_INFO]
        for module in self.host.modules.values():
            features.extend(getattr(module, "accountFeatures", ()))
        return self.reply(event, infoQuery([("account", "registered", None)], features))

    @hook(f"iq-get/self/{NS_DISCO_ITEMS}:query")
    def onAccountItems(self, event):
        return self.reply(event, domish.Element((NS_DISCO_ITEMS, "query")))
