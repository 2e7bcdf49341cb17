"""
The PEP service (XEP-0163 on XEP-0060): publish with auto-create and
publish-options, item retrieval, retract, node delete and configure, the
access models, and notifications to the resources that asked for them
(C{+notify}, L{xmppchat.pep.interest}).

Every account's nodes live at its bare JID; the owner is its localpart.
Access (XEP-0060 §4.5): the owner always; C{open}: anyone; C{presence}:
contacts with a C{from}/C{both} subscription; C{roster}: contacts in one of
C{pubsub#roster_groups_allowed}; C{whitelist}: the owner only (no
affiliation management).  A user the owner blocks (XEP-0191 / XEP-0016
default list, L{PrivacyModule.blocks}) gets no notification; reading is
refused before this service (the privacy module answers the IQ
C{service-unavailable}, as Prosody's mod_blocklist does).

Notifications are C{headline} messages from the owner's bare JID (XEP-0163
§4.3), sent to each interested session (local, or on another cluster node
through L{xmppchat.cluster.directory.RemoteSession.send}), with the same
delivery filters as any stanza there.
"""

from __future__ import annotations

import secrets
from types import SimpleNamespace

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat.modules.base import KeyedLocks
from xmppchat.modules.presence import SUBSCRIBED_FROM, SUBSCRIBED_TO
from xmppchat.pep.nodeconfig import checkPreconditions, defaultConfig, pubsubError
from xmppchat.stanzas import NS_CLIENT, StanzaError
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.xmlstream import parseElement

NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
#: characters in a node name or an item id
MAX_NAME_LENGTH = 1024


def checkName(value, what: str) -> str:
    if not value or len(value) > MAX_NAME_LENGTH:
        raise pubsubError("bad-request", "nodeid-required" if what == "node" else "item-required",
                          f"A {what} name of 1 to {MAX_NAME_LENGTH} characters is required")
    return value


class PEPService:
    """
    The PEP nodes of one host's accounts.
    """

    log = Logger()

    def __init__(self, host, config):
        self.host = host
        self.config = config  # the [pep] section
        self.locks = KeyedLocks()

    @property
    def store(self):
        return self.host.storage.pep

    def bare(self, owner: str) -> str:
        return f"{owner}@{self.host.domain}"

    # -- access ---------------------------------------------------------------

    def _roster(self, owner: str) -> defer.Deferred:
        roster = self.host.modules.get("roster")
        if roster is None:
            return defer.succeed({})
        return roster.getRoster(owner)

    def _blocked(self, owner: str, viewerBare: str) -> bool:
        privacy = self.host.modules.get("privacy")
        return privacy is not None and privacy.blocks(viewerBare, self.bare(owner))

    def _loadPrivacy(self, localparts) -> defer.Deferred:
        privacy = self.host.modules.get("privacy")
        if privacy is None:
            return defer.succeed(None)
        return privacy.ensureLoaded(localparts)

    @staticmethod
    def allowed(owner: str, config: dict, viewerBare: str, ownerBare: str, roster: dict) -> str | None:
        """
        C{None} when C{viewerBare} may see the node (XEP-0060 §4.5), else
        the access model that refuses it.
        """
        if viewerBare == ownerBare:
            return None
        model = config.get("access_model", "presence")
        if model == "open":
            return None
        item = roster.get(viewerBare)
        if model == "presence" and item is not None and item.subscription in SUBSCRIBED_FROM:
            return None
        if model == "roster" and item is not None and set(item.groups) & set(config.get("roster_groups_allowed", ())):
            return None
        return model

    @defer.inlineCallbacks
    def checkAccess(self, owner: str, node: str, viewerBare: str):
        """
        The node's configuration when C{viewerBare} may retrieve its items;
        XEP-0060 §6.5.9 errors otherwise (C{item-not-found} when there is
        no node, C{service-unavailable} when there is no such account).
        """
        config = yield self.store.getNode(owner, node)
        if config is None:
            if viewerBare != self.bare(owner) and (
                    yield self.host.storage.accounts.getAccountByLocalpart(owner)) is None:
                raise StanzaError("service-unavailable")  # RFC 6121 §8.5.1: no such user
            raise StanzaError("item-not-found", text="No such node")
        roster = yield self._roster(owner) if config.get("access_model") in ("presence", "roster") else {}
        refused = self.allowed(owner, config, viewerBare, self.bare(owner), roster)
        if refused == "presence":
            raise pubsubError("not-authorized", "presence-subscription-required",
                              "Only contacts subscribed to the owner's presence may see this node")
        if refused == "roster":
            raise pubsubError("not-authorized", "not-in-roster-group", "Not in an allowed roster group")
        if refused is not None:
            raise pubsubError("not-allowed", "closed-node", "Only the owner may see this node")
        return config

    # -- publish ----------------------------------------------------------------

    def maxItemBytes(self) -> int:
        return self.config.max_item_bytes

    def publish(self, owner: str, node: str, payload: domish.Element, itemId: str | None = None,
                options: dict | None = None, publisher: str | None = None) -> defer.Deferred:
        """
        XEP-0060 §7.1 with XEP-0163 auto-create and §7.1.5 preconditions
        (C{options}: short names, L{xmppchat.pep.nodeconfig.parseOptions});
        fires with the item id.
        """
        checkName(node, "node")
        itemId = itemId or secrets.token_hex(8)
        checkName(itemId, "item")
        xml = payload.toXml()
        limit = self.config.max_item_bytes
        if limit and len(xml.encode("utf-8")) > limit:
            raise pubsubError("not-acceptable", "payload-too-big", f"An item may have at most {limit} bytes")
        return self.locks.run(owner, self._publish, owner, node, payload, xml, itemId, options or {}, publisher)

    @defer.inlineCallbacks
    def _publish(self, owner, node, payload, xml, itemId, options, publisher):
        config = yield self._ensureNode(owner, node, options)
        keep = config["max_items"] if config.get("persist_items", True) else 1
        yield self.store.publishItem(owner, node, itemId, xml, publisher, keep)
        yield self.notify(owner, node, config, self._itemsEvent(node, itemId, payload, config))
        self.host.hooks.fire("pep-published", SimpleNamespace(
            host=self.host, owner=owner, node=node, itemId=itemId, item=payload, publisher=publisher))
        return itemId

    @defer.inlineCallbacks
    def _ensureNode(self, owner, node, options):
        config = yield self.store.getNode(owner, node)
        if config is not None:
            checkPreconditions(config, options)
            return config
        config = defaultConfig()
        config.update(options)
        yield self.createNode(owner, node, config)
        return config

    @defer.inlineCallbacks
    def createNode(self, owner: str, node: str, config: dict):
        """
        Store a new node; C{conflict} when it exists, C{resource-constraint} +
        C{<max-nodes-exceeded/>} past C{pep.max_nodes_per_user}.
        """
        checkName(node, "node")
        try:
            created = yield self.store.createNode(owner, node, config, self.config.max_nodes_per_user)
        except QuotaExceeded as e:
            raise pubsubError("resource-constraint", "max-nodes-exceeded", str(e)) from None
        if not created:
            raise StanzaError("conflict", text="The node exists")

    # -- read, retract, delete, configure ----------------------------------------------

    @defer.inlineCallbacks
    def getItems(self, owner: str, node: str, itemIds=None, maxItems=None):
        """
        C{[(itemId, payload element)]}, newest first (no access check).
        """
        rows = yield self.store.getItems(owner, node, itemIds, maxItems)
        items = []
        for itemId, xml, _ in rows:
            try:
                items.append((itemId, parseElement(xml)))
            except Exception:
                self.log.failure("Unreadable PEP item {owner}/{node}/{item}", owner=owner, node=node, item=itemId)
        return items

    def retract(self, owner: str, node: str, itemId: str, notify: bool | None = None,
                publisher: str | None = None) -> defer.Deferred:
        return self.locks.run(owner, self._retract, owner, node, itemId, notify, publisher)

    @defer.inlineCallbacks
    def _retract(self, owner, node, itemId, notify, publisher):
        """
        XEP-0060 §7.2: C{item-not-found} for an unknown node or item;
        subscribers hear of it when the request or C{pubsub#notify_retract}
        says so.
        """
        config = yield self.store.getNode(owner, node)
        if config is None or not (yield self.store.retractItem(owner, node, itemId)):
            raise StanzaError("item-not-found", text="No such item")
        if notify if notify is not None else config.get("notify_retract", True):
            event = domish.Element((NS_PUBSUB_EVENT, "event"))
            items = event.addElement("items")
            items["node"] = node
            items.addElement("retract")["id"] = itemId
            yield self.notify(owner, node, config, event)
        self.host.hooks.fire("pep-retracted", SimpleNamespace(
            host=self.host, owner=owner, node=node, itemId=itemId, publisher=publisher))

    def deleteNode(self, owner: str, node: str) -> defer.Deferred:
        return self.locks.run(owner, self._deleteNode, owner, node)

    @defer.inlineCallbacks
    def _deleteNode(self, owner, node):
        """
        XEP-0060 §8.4: C{item-not-found} for an unknown node; the
        interested resources get C{<delete/>}.
        """
        config = yield self.store.getNode(owner, node)
        if config is None or not (yield self.store.deleteNode(owner, node)):
            raise StanzaError("item-not-found", text="No such node")
        if config.get("notify_delete", True):
            event = domish.Element((NS_PUBSUB_EVENT, "event"))
            event.addElement("delete")["node"] = node
            yield self.notify(owner, node, config, event)
        self.host.hooks.fire("pep-node-deleted", SimpleNamespace(host=self.host, owner=owner, node=node))

    def configure(self, owner: str, node: str, options: dict) -> defer.Deferred:
        return self.locks.run(owner, self._configure, owner, node, options)

    @defer.inlineCallbacks
    def _configure(self, owner, node, options):
        """
        XEP-0060 §8.2.4: apply a submitted form to the stored configuration
        (fewer C{max_items} drops the oldest items).
        """
        config = yield self.store.getNode(owner, node)
        if config is None:
            raise StanzaError("item-not-found", text="No such node")
        config.update(options)
        yield self.store.setNodeConfig(owner, node, config)

    # -- notifications ---------------------------------------------------------------

    @staticmethod
    def _itemsEvent(node, itemId, payload, config) -> domish.Element:
        event = domish.Element((NS_PUBSUB_EVENT, "event"))
        items = event.addElement("items")
        items["node"] = node
        item = items.addElement("item")
        item["id"] = itemId
        if config.get("deliver_payloads", True):
            item.addChild(payload)
        return event

    def message(self, owner: str, to: str, event: domish.Element) -> domish.Element:
        message = domish.Element((NS_CLIENT, "message"))
        message["from"] = self.bare(owner)
        message["to"] = to
        message["type"] = "headline"
        message["id"] = secrets.token_hex(8)
        message.addChild(event)
        return message

    @defer.inlineCallbacks
    def notify(self, owner: str, node: str, config: dict, event: domish.Element):
        """
        XEP-0163 §4.3: the owner's resources and the contacts' resources
        that may see the node and whose caps name C{<node>+notify}
        (XEP-0163 §4.2, L{xmppchat.pep.interest}).
        """
        sessions = self.host.sessions
        ownerBare = self.bare(owner)
        targets = [s for s in sessions.sessionsOf(ownerBare) if wants(s, node)]
        model = config.get("access_model", "presence")
        if model != "whitelist":
            roster = yield self._roster(owner)
            contacts = [jid for jid, item in roster.items()
                        if jid != ownerBare and self.allowed(owner, config, jid, ownerBare, roster) is None]
            interested = [(jid, s) for jid in contacts for s in sessions.sessionsOf(jid) if wants(s, node)]
            if interested:
                yield self._loadPrivacy([owner])
                targets.extend(s for jid, s in interested if not self._blocked(owner, jid))
        for session in targets:
            session.send(self.message(owner, session.full, event))

    def ownersSeenBy(self, session, roster: dict) -> set:
        """
        The accounts whose nodes C{session} hears of: its own and the
        local contacts whose presence it is subscribed to.
        """
        owners = {session.localpart}
        for jid, item in roster.items():
            user, _, domain = jid.partition("@")
            if domain == self.host.domain and user and item.subscription in SUBSCRIBED_TO:
                owners.add(user)
        return owners

    @defer.inlineCallbacks
    def sendLastItems(self, session, nodes, owners=None):
        """
        XEP-0163 §4.3.4 / XEP-0060 §6.1.7: a resource whose interest in
        C{nodes} just appeared (it became available, or its caps changed)
        gets the last item of each such node of its own account and of
        every contact whose presence it is subscribed to (or of C{owners}
        only: contacts it just subscribed to), where it may see them and
        the node sends its last item.
        """
        if owners is None:
            # claimed before the roster read (review finding 4c): a roster change in the
            # meantime (L{rosterChanged}) sends its new contacts' items, and they are not
            # sent twice
            session.state[STATE_OWNERS] = set()
            roster = yield self._roster(session.localpart)
            found = self.ownersSeenBy(session, roster)
            owners = found - session.state[STATE_OWNERS]
            session.state[STATE_OWNERS] = session.state[STATE_OWNERS] | found
        yield self._loadPrivacy(owners)
        owners = [o for o in owners if o == session.localpart or not self._blocked(o, session.bare)]
        # one read for every owner's wanted nodes (review finding 3); an owner's
        # roster only where a node's access model needs it
        stored = yield self.store.findNodes(owners, nodes)
        rosters = {}
        for owner, node, config in sorted(stored, key=lambda found: found[0] != session.localpart):
            if config.get("send_last_published_item") == "never":
                continue
            roster = {}
            if owner != session.localpart and config.get("access_model", "presence") in ("presence", "roster"):
                if owner not in rosters:
                    rosters[owner] = yield self._roster(owner)
                roster = rosters[owner]
            if self.allowed(owner, config, session.bare, self.bare(owner), roster) is not None:
                continue
            items = yield self.getItems(owner, node, maxItems=1)
            if items and not session.closed:
                itemId, payload = items[0]
                session.send(self.message(owner, session.full, self._itemsEvent(node, itemId, payload, config)))

    @defer.inlineCallbacks
    def rosterChanged(self, localpart: str):
        """
        C{localpart}'s roster changed: its interested resources here get
        the last items of the contacts they have just subscribed to (as
        when they came online).
        """
        sessions = [s for s in self.host.sessions.localSessionsOf(self.bare(localpart))
                    if s.available and s.state.get(STATE_INTEREST) and STATE_OWNERS in s.state]
        if not sessions:
            return
        roster = yield self._roster(localpart)
        for session in sessions:
            owners = self.ownersSeenBy(session, roster)
            new = owners - session.state[STATE_OWNERS]
            session.state[STATE_OWNERS] = owners
            if new:
                yield self.sendLastItems(session, session.state[STATE_INTEREST], new)


STATE_INTEREST = "pep"
#: the accounts whose last items the session got (L{PEPService.rosterChanged})
STATE_OWNERS = "pep-owners"


def wants(session, node: str) -> bool:
    """
    Whether C{session} is available and its caps say C{<node>+notify}.
    """
    return session.available and node in session.state.get(STATE_INTEREST, ())
