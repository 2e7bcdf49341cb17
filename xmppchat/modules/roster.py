"""
RFC 6121 §2: roster management. https://www.rfc-editor.org/rfc/rfc6121#section-2

Rosters of accounts with a connected session are cached in memory (the
presence module reads them on every broadcast) and written through to
storage.  An item whose C{hidden} flag is set only records a pending inbound
subscription request from someone the user has not added (RFC 6121 §3.1.3)
and is not shown in the roster.

A roster holds at most C{limits.roster_items_per_user} items (hidden ones
included): adding one more, by a roster set or a subscription request from
either side, gets C{not-allowed}, so that a client cannot grow storage and
this cache without bound.

Roster versioning (RFC 6121 §2.6, XEP-0237 as folded into it; issue 16
item 6): the stream feature C{<ver xmlns="urn:xmpp:features:rosterver"/>}
after authentication; every roster write advances the user's version in
the storage write itself (so workers of a cluster share one sequence) and
every push carries the version it produced.  A roster get whose C{ver} is
the current version is answered with an empty result (the pushes that
follow bring later changes); any other C{ver} (older, unknown, empty) gets
the full roster with the current version: no change log is kept, as
§2.6.3 allows.  Versions are read from storage before the items, so a
result never carries a version newer than its items.  A write nobody sees
(a hidden item: a pending request from someone not in the roster) advances
the version too, without a push: a client then gets the full roster once.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from types import SimpleNamespace

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.c2s.negotiation import AUTHENTICATED
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import NS_CLIENT, StanzaError
from xmppchat.storage.interfaces import RosterItem

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
MAX_NAME = 1024
MAX_GROUPS = 64


def itemElement(item: RosterItem, remove: bool = False) -> domish.Element:
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = item.jid
    if remove:
        element["subscription"] = "remove"
        return element
    element["subscription"] = item.subscription
    if item.name:
        element["name"] = item.name
    if item.ask:
        element["ask"] = item.ask
    for group in item.groups:
        element.addElement("group", content=group)
    return element


def isVisible(item: RosterItem) -> bool:
    return not getattr(item, "hidden", False)


class RosterModule(Module):
    """
    RFC 6121 §2.1-§2.5: roster get, set, remove, and pushes to interested
    resources.
    """

    name = "roster"
    features = ()

    def setUp(self):
        self.cache: dict[str, dict[str, RosterItem]] = {}
        # session -> the pushes held while its roster get is being answered
        self.held: dict = {}

    # -- the cache ------------------------------------------------------

    def getRoster(self, localpart: str) -> defer.Deferred:
        """
        The roster of C{localpart} as C{{bareJID: RosterItem}}; cached while
        the user has a connected session, so that every reader and writer
        shares one dictionary.
        """
        cached = self.cache.get(localpart)
        if cached is not None:
            return defer.succeed(cached)

        def loaded(items):
            cached = self.cache.get(localpart)
            if cached is not None:
                return cached
            roster = {item.jid: item for item in items}
            if self.host.sessions.isConnected(f"{localpart}@{self.host.domain}"):
                self.cache[localpart] = roster
            return roster

        return self.storage.roster.getRoster(localpart).addCallback(loaded)

    @defer.inlineCallbacks
    def saveItem(self, localpart: str, item: RosterItem, push: bool = True):
        """
        Store C{item} in C{localpart}'s roster and push it (RFC 6121 §2.1.6).
        """
        roster = yield self.getRoster(localpart)
        limit = self.host.config.limits.roster_items_per_user
        if item.jid not in roster and len(roster) >= limit:
            raise StanzaError("not-allowed", text=f"The roster is full ({limit} items)")
        version = yield self.storage.roster.setRosterItem(localpart, item)
        roster[item.jid] = item
        self.changed(localpart)
        if push and isVisible(item):
            self.push(localpart, item, version=version)

    @defer.inlineCallbacks
    def removeItem(self, localpart: str, jid: str):
        roster = yield self.getRoster(localpart)
        item = roster.pop(jid, None)
        version = yield self.storage.roster.removeRosterItem(localpart, jid)
        self.changed(localpart)
        # no version: storage had no such item any more (another cluster
        # node removed it, and pushed the removal)
        if item is not None and version is not None and isVisible(item):
            self.push(localpart, item, remove=True, version=version)
        return item

    def changed(self, localpart: str) -> None:
        """
        Fire C{roster-changed}: other holders of a cached copy (cluster
        nodes) drop it.
        """
        self.host.hooks.fire("roster-changed", SimpleNamespace(host=self.host, localpart=localpart))

    def push(self, localpart: str, item: RosterItem, remove: bool = False,
             version: str | None = None) -> None:
        """
        Roster push to every resource that requested the roster, with the
        roster version the change produced (RFC 6121 §2.1.6, §2.6.1).
        """
        for session in self.host.sessions.sessionsOf(f"{localpart}@{self.host.domain}"):
            if not session.rosterRequested:
                continue
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "set"
            iq["id"] = "push-" + secrets.token_hex(6)
            iq["to"] = session.full
            query = iq.addElement((NS_ROSTER, "query"))
            if version is not None:
                query["ver"] = version
            query.addChild(itemElement(item, remove))
            held = self.held.get(session)
            if held is not None:
                held.append(iq)
            else:
                session.send(iq)

    @hook("stream-features")
    def onFeatures(self, event):
        """
        RFC 6121 §2.6.1: roster versioning is advertised once authenticated.
        """
        if event.stream.phase == AUTHENTICATED:
            event.features.addElement((NS_ROSTERVER, "ver"))

    @hook("session-ended", priority=-100)
    def onSessionEnded(self, event):
        session = event.session
        if not self.host.sessions.isConnected(session.bare):
            self.cache.pop(session.localpart, None)

    # -- IQ handlers ------------------------------------------------------

    @hook(f"iq-get/self/{NS_ROSTER}:query")
    @defer.inlineCallbacks
    def onGet(self, event):
        """
        RFC 6121 §2.1.3 and §2.6.3: the roster, or an empty result when the
        client's cached version is current.  The session gets pushes from
        before the reads (review finding 4a: a change written meanwhile is
        not lost), held until the result is sent: each then carries the
        version of its change, no older than the result's items (§2.6.1).
        """
        session = event.origin
        if session is None:
            raise StanzaError("forbidden")
        cached = event.stanza.query.getAttribute("ver")
        session.rosterRequested = True
        held = self.held.setdefault(session, [])
        try:
            version = yield self.storage.roster.getRosterVersion(session.localpart)
            if cached == version:
                return self.reply(event)
            # the items after the version (storage, not the cache, which
            # another node's change may not have reached yet)
            items = yield self.storage.roster.getRoster(session.localpart)
            query = domish.Element((NS_ROSTER, "query"))
            query["ver"] = version
            for item in items:
                if isVisible(item):
                    query.addChild(itemElement(item))
            return self.reply(event, query)
        finally:
            if self.held.get(session) is held:
                del self.held[session]
                for push in held:
                    session.send(push)

    @hook(f"iq-set/self/{NS_ROSTER}:query")
    def onSet(self, event):
        session = event.origin
        if session is None or event.stanza.getAttribute("from", session.full) != session.full:
            raise StanzaError("forbidden")
        items = [c for c in event.stanza.query.elements() if c.name == "item"]
        if len(items) != 1:
            raise StanzaError("bad-request", text="A roster set carries exactly one item")
        element = items[0]
        try:
            contact = parseJID(element.getAttribute("jid", ""))
        except InvalidJID:
            raise StanzaError("jid-malformed", text="Invalid item jid") from None
        if contact.resource is not None:
            raise StanzaError("bad-request", text="Roster items are bare JIDs")
        jid = contact.userhost()
        if jid == session.bare:
            raise StanzaError("not-allowed", text="You cannot add yourself")
        if element.getAttribute("subscription") == "remove":
            presence = self.host.modules.get("presence")
            if presence is not None:
                d = presence.removeContact(session, jid)
            else:
                d = self.removeItem(session.localpart, jid)
            return d.addCallback(lambda _: self.reply(event))
        name = element.getAttribute("name")
        if name is not None and len(name) > MAX_NAME:
            raise StanzaError("not-acceptable", text="Name too long")
        groups = [str(g) for g in element.elements() if g.name == "group"]
        if len(groups) != len(set(groups)) or any(not g for g in groups):
            raise StanzaError("bad-request", text="Duplicate or empty group")
        if len(groups) > MAX_GROUPS or any(len(g) > MAX_NAME for g in groups):
            raise StanzaError("not-acceptable", text="Too many or too long groups")

        @defer.inlineCallbacks
        def update():
            roster = yield self.getRoster(session.localpart)
            old = roster.get(jid)
            if old is None:
                item = RosterItem(jid=jid, name=name, groups=groups)
            else:
                item = replace(old, name=name, groups=groups)
                if hasattr(item, "hidden"):
                    item.hidden = False
            yield self.saveItem(session.localpart, item)
            self.reply(event)

        return update()
