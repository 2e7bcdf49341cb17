"""
XEP-0030: Service Discovery. https://xmpp.org/extensions/xep-0030.html

The server answers disco#info with its identity and the features of every
loaded module, disco#items with its components (e.g. C{muc.<domain>}); an
account's bare JID answers disco#info for its owner (XEP-0030 §3.1,
identity C{account/registered}).
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppchat.caps import SERVER_NODE, capsElement, capsHash
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

    def serverInfo(self, node=None) -> domish.Element:
        return infoQuery([("server", "im", self.host.config.server.name)], self.host.features(), node)

    def serverVer(self) -> str:
        """
        XEP-0115 §5.1: the caps hash of the server's disco#info answer.
        """
        features = tuple(self.host.features())
        if getattr(self, "_ver", (None,))[0] != features:
            self._ver = (features, capsHash(self.serverInfo()))
        return self._ver[1]

    @hook("stream-features", priority=-50)
    def onFeatures(self, event):
        """
        XEP-0115 §6.3: the server's caps in its stream features.
        """
        event.features.addChild(capsElement(self.serverVer()))

    @hook(f"iq-get/host/{NS_DISCO_INFO}:query")
    def onServerInfo(self, event):
        """
        The server's identity and features; also as the caps node
        C{<node>#<ver>} (XEP-0115 §6.2).
        """
        node = event.stanza.query.getAttribute("node")
        if node and node != f"{SERVER_NODE}#{self.serverVer()}":
            raise StanzaError("item-not-found", text="No such node")
        return self.reply(event, self.serverInfo(node))

    @hook(f"iq-get/host/{NS_DISCO_ITEMS}:query")
    def onServerItems(self, event):
        query = domish.Element((NS_DISCO_ITEMS, "query"))
        for domain in sorted(self.host.components):
            query.addElement("item")["jid"] = domain
        return self.reply(event, query)

    @hook(f"iq-get/self/{NS_DISCO_INFO}:query")
    def onAccountInfo(self, event):
        features = [NS_DISCO_INFO]
        identities = [("account", "registered", None)]
        for module in self.host.modules.values():
            features.extend(getattr(module, "accountFeatures", ()))
            identities.extend(getattr(module, "accountIdentities", ()))
        return self.reply(event, infoQuery(identities, features))

    @hook(f"iq-get/self/{NS_DISCO_ITEMS}:query")
    def onAccountItems(self, event):
        return self.reply(event, domish.Element((NS_DISCO_ITEMS, "query")))
