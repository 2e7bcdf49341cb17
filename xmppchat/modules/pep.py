"""
XEP-0163: Personal Eventing Protocol. https://xmpp.org/extensions/xep-0163.html
(on XEP-0060 Publish-Subscribe, https://xmpp.org/extensions/xep-0060.html)

The protocol side of PEP (issue 16 item 1); the service is
L{xmppchat.pep.service}, the C{+notify} interest L{xmppchat.pep.interest}.

- the owner (IQs to its own bare JID): publish (§7.1) with auto-create and
  XEP-0223 publish-options (§7.1.5 preconditions), create (§8.1), items
  (§6.5), retract (§7.2), and in C{pubsub#owner}: configure get/set
  (§8.2), delete (§8.4);
- others (IQs to the owner's bare JID): items, where the access model lets
  them (C{publish}, C{retract}... are C{forbidden});
- subscriptions are implicit (XEP-0163 §4.2: contacts' resources with
  C{<node>+notify} in their caps), so C{subscribe} and the other
  subscription requests are C{feature-not-implemented};
- disco (XEP-0163 §6.1): identity C{pubsub/pep} and the XEP-0060 features
  on the account's bare JID.

The internal API other modules use (C{host.modules.get("pep")}):
L{PEPModule.publish}, L{PEPModule.getItems}, L{PEPModule.retract},
L{PEPModule.deleteNode}; the hooks C{pep-published}, C{pep-retracted},
C{pep-node-deleted} fire after every successful change.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.modules.base import Module, hook
from xmppchat.pep.interest import InterestTracker
from xmppchat.pep.nodeconfig import (NS_NODE_CONFIG, NS_PUBLISH_OPTIONS, NS_PUBSUB, configForm,
                                     formValues, parseOptions, pubsubError)
from xmppchat.pep.service import PEPService
from xmppchat.stanzas import StanzaError, errorReply, firstChild, parseCount

NS_PUBSUB_OWNER = NS_PUBSUB + "#owner"

#: XEP-0060 §10 features clients look for on the account (Conversations,
#: Gajim and Dino check publish-options before publishing bookmarks and
#: OMEMO keys)
PUBSUB_FEATURES = tuple(f"{NS_PUBSUB}#{name}" for name in (
    "access-open", "access-presence", "access-roster", "access-whitelist", "auto-create",
    "auto-subscribe", "config-node", "create-and-configure", "create-nodes", "delete-items",
    "delete-nodes", "filtered-notifications", "item-ids", "last-published", "multi-items",
    "persistent-items", "presence-notifications", "presence-subscribe", "publish",
    "publish-options", "retract-items", "retrieve-items")) + (NS_PUBSUB,)


def _element(uri: str, name: str, **attributes) -> domish.Element:
    element = domish.Element((uri, name))
    for key, value in attributes.items():
        element[key] = value
    return element


class PEPModule(Module):
    """
    XEP-0163 over XEP-0060 on every account's bare JID.
    """

    name = "pep"
    accountFeatures = PUBSUB_FEATURES
    accountIdentities = (("pubsub", "pep", None),)

    def setUp(self):
        self.service = PEPService(self.host, self.host.config.pep)
        self.interest = InterestTracker(self.host, self.host.config.pep.caps_cache_size, self._interested)

    # -- the internal API (contract: /work/briefs/pep-api.md) -----------------

    def publish(self, owner: str, node: str, item: domish.Element, itemId: str | None = None,
                options: dict | None = None) -> defer.Deferred:
        """
        Publish as the owner, as its client would with publish-options
        C{options} (form var -> value); fires with the item id.
        """
        return defer.maybeDeferred(self._publishAs, owner, node, item, itemId, options or {}, None)

    def getItems(self, owner: str, node: str, itemIds=None, maxItems=None) -> defer.Deferred:
        """
        C{[(itemId, payload)]}, newest first, no access check; [] without
        the node.
        """
        return self.service.getItems(owner, node, itemIds, maxItems)

    def retract(self, owner: str, node: str, itemId: str) -> defer.Deferred:
        """
        Retract as the owner (notified as a client retract is); fails with
        C{StanzaError("item-not-found")} for an unknown node or item.
        """
        return self.service.retract(owner, node, itemId).addCallback(lambda _: None)

    def deleteNode(self, owner: str, node: str) -> defer.Deferred:
        """
        Delete a node and its items; fails with
        C{StanzaError("item-not-found")} when there is none.
        """
        return self.service.deleteNode(owner, node).addCallback(lambda _: None)

    def _publishAs(self, owner, node, item, itemId, values, publisher):
        options = parseOptions(values, self.host.config.pep.max_items_per_node, strict=False)
        return self.service.publish(owner, node, item, itemId, options, publisher)

    # -- errors with XEP-0060 application conditions ------------------------------

    def _sendStanzaError(self, event, error: StanzaError) -> None:
        stanza = getattr(event, "stanza", None)
        if stanza is None or stanza.getAttribute("type") == "error":
            return
        reply = errorReply(stanza, error.condition, error.text)
        if reply.getAttribute("from") is None:
            reply["from"] = self.host.domain
        if getattr(error, "appCondition", None) is not None:
            reply.error.addChild(error.appCondition)
        self.sendTo(event, reply)

    # -- the protocol ------------------------------------------------------------

    @staticmethod
    def _target(event) -> tuple[str, str]:
        """
        C{(owner, requester's bare JID)} of a pubsub IQ to a bare JID.
        """
        session = Module.requireSession(event)
        owner = event.to.user if event.to is not None and event.kind == "bare" else session.localpart
        return owner, session.bare

    @hook(f"iq-set/self/{NS_PUBSUB}:pubsub")
    @hook(f"iq-get/self/{NS_PUBSUB}:pubsub")
    @hook(f"iq-set/bare/{NS_PUBSUB}:pubsub")
    @hook(f"iq-get/bare/{NS_PUBSUB}:pubsub")
    def onPubSub(self, event):
        owner, requester = self._target(event)
        pubsub = event.stanza.pubsub
        action = firstChild(pubsub)
        if action is None:
            raise StanzaError("bad-request", text="Empty pubsub request")
        isOwner = requester == self.service.bare(owner)
        if event.stanzaType == "get":
            if action.name != "items":
                raise self._unsupported(action.name)
            return self._items(event, owner, requester, action)
        if action.name not in ("publish", "retract", "create"):
            raise self._unsupported(action.name)
        if not isOwner:
            raise StanzaError("forbidden", text="Only the owner may change its PEP nodes")
        if action.name == "publish":
            return self._publish(event, owner, pubsub, action)
        if action.name == "retract":
            return self._retract(event, owner, action)
        return self._create(event, owner, pubsub, action)

    @staticmethod
    def _unsupported(feature: str) -> StanzaError:
        return pubsubError("feature-not-implemented", "unsupported", f"{feature} is not supported here",
                           feature={"subscribe": "subscribe", "unsubscribe": "subscribe",
                                    "options": "subscription-options",
                                    "subscriptions": "retrieve-subscriptions",
                                    "affiliations": "retrieve-affiliations"}.get(feature, feature))

    def _publish(self, event, owner, pubsub, action):
        node = action.getAttribute("node")
        items = [c for c in action.elements() if c.name == "item"]
        if len(items) != 1:
            raise pubsubError("bad-request", "invalid-payload", "Publish exactly one item")
        payloads = list(items[0].elements())
        if not payloads:
            raise pubsubError("bad-request", "payload-required", "The item needs a payload")
        if len(payloads) > 1:
            raise pubsubError("bad-request", "invalid-payload", "One payload per item")
        values = {}
        for child in pubsub.elements():
            if child.name == "publish-options":
                values = formValues(firstChild(child), NS_PUBLISH_OPTIONS)

        def done(itemId):
            reply = _element(NS_PUBSUB, "pubsub")
            published = reply.addElement("publish")
            published["node"] = node
            published.addElement("item")["id"] = itemId
            return self.reply(event, reply)

        return self._publishAs(owner, node, payloads[0], items[0].getAttribute("id"), values,
                               event.origin.full).addCallback(done)

    def _retract(self, event, owner, action):
        node = action.getAttribute("node")
        ids = [c.getAttribute("id") for c in action.elements() if c.name == "item"]
        if not node:
            raise pubsubError("bad-request", "nodeid-required", "Name the node")
        if len(ids) != 1 or not ids[0]:
            raise pubsubError("bad-request", "item-required", "Name one item")
        notify = action.getAttribute("notify")
        notify = None if notify is None else notify in ("1", "true")
        return self.service.retract(owner, node, ids[0], notify, event.origin.full).addCallback(
            lambda _: self.reply(event))

    def _create(self, event, owner, pubsub, action):
        node = action.getAttribute("node")
        if not node:
            raise pubsubError("not-acceptable", "nodeid-required", "Instant nodes are not supported")
        values = {}
        for child in pubsub.elements():
            if child.name == "configure":
                values = formValues(firstChild(child), NS_NODE_CONFIG)
        from xmppchat.pep.nodeconfig import defaultConfig

        config = defaultConfig()
        config.update(parseOptions(values, self.host.config.pep.max_items_per_node, strict=True))
        return self.service.createNode(owner, node, config).addCallback(lambda _: self.reply(event))

    @defer.inlineCallbacks
    def _items(self, event, owner, requester, action):
        node = action.getAttribute("node")
        if not node:
            raise pubsubError("bad-request", "nodeid-required", "Name the node")
        yield self.service.checkAccess(owner, node, requester)
        ids = [c.getAttribute("id") for c in action.elements() if c.name == "item" and c.getAttribute("id")]
        maxItems = action.getAttribute("max_items")
        if maxItems is not None:
            # more than a node keeps is all of them (security review finding 4)
            maxItems = parseCount(maxItems, self.host.config.pep.max_items_per_node)
            if maxItems is None:
                raise StanzaError("bad-request", text="max_items must be a number")
        items = yield self.service.getItems(owner, node, ids or None, None if ids else maxItems)
        reply = _element(NS_PUBSUB, "pubsub")
        container = reply.addElement("items")
        container["node"] = node
        for itemId, payload in items:
            item = container.addElement("item")
            item["id"] = itemId
            item.addChild(payload)
        return self.reply(event, reply)

    @hook(f"iq-set/self/{NS_PUBSUB_OWNER}:pubsub")
    @hook(f"iq-get/self/{NS_PUBSUB_OWNER}:pubsub")
    def onOwner(self, event):
        owner = self.requireSession(event).localpart
        action = firstChild(event.stanza.pubsub)
        if action is None:
            raise StanzaError("bad-request", text="Empty pubsub#owner request")
        node = action.getAttribute("node")
        if action.name == "configure":
            if not node:
                raise pubsubError("bad-request", "nodeid-required", "Name the node")
            if event.stanzaType == "get":
                return self._getConfig(event, owner, node)
            values = formValues(firstChild(action), NS_NODE_CONFIG)
            options = parseOptions(values, self.host.config.pep.max_items_per_node, strict=True)
            return self.service.configure(owner, node, options).addCallback(lambda _: self.reply(event))
        if action.name == "delete" and event.stanzaType == "set":
            if not node:
                raise pubsubError("bad-request", "nodeid-required", "Name the node")
            return self.service.deleteNode(owner, node).addCallback(lambda _: self.reply(event))
        raise self._unsupported(action.name)

    def _getConfig(self, event, owner, node):
        def send(config):
            if config is None:
                raise StanzaError("item-not-found", text="No such node")
            reply = _element(NS_PUBSUB_OWNER, "pubsub")
            configure = reply.addElement("configure")
            configure["node"] = node
            configure.addChild(configForm(config, self.host.config.pep.max_items_per_node))
            return self.reply(event, reply)

        return self.host.storage.pep.getNode(owner, node).addCallback(send)

    @hook("iq-get/self/http://jabber.org/protocol/disco#items:query", priority=10)
    def onNodes(self, event):
        """
        XEP-0060 §5.2: the owner's disco#items lists its nodes.
        """
        session = self.requireSession(event)
        if event.stanza.query.getAttribute("node"):
            return None

        def send(nodes):
            query = _element("http://jabber.org/protocol/disco#items", "query")
            for node, _ in nodes:
                query.addChild(_element(query.uri, "item", jid=session.bare, node=node))
            return self.reply(event, query)

        return self.host.storage.pep.listNodes(session.localpart).addCallback(send)

    # -- interest from entity caps (XEP-0115, XEP-0163 §4.2) -----------------------

    @hook("presence/self", priority=10)
    def onPresence(self, event):
        session = event.origin
        if session is None:
            return None
        if event.stanzaType is None:
            self.interest.presence(session, event.stanza)
        elif event.stanzaType == "unavailable":
            self.interest.forget(session)
        return None

    @hook("iq/host", priority=10)
    def onAnswer(self, event):
        if event.stanzaType not in ("result", "error"):
            return None
        return True if self.interest.answer(event.stanza) else None

    @hook("roster-changed")
    def onRosterChanged(self, event):
        self.service.rosterChanged(event.localpart).addErrback(
            lambda f: self.log.failure("Sending the last PEP items failed", f))

    def _interested(self, session, nodes):
        self.service.sendLastItems(session, nodes).addErrback(
            lambda f: self.log.failure("Sending the last PEP items failed", f))
