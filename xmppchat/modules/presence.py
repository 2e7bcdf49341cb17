"""
RFC 6121 §3 (subscriptions) and §4 (exchanging presence).
https://www.rfc-editor.org/rfc/rfc6121

All accounts are local, so both halves of a subscription handshake (the
user's server and the contact's server in the RFC) are done here in one
step: the roster items of both parties are updated, pushed, and the
presence stanzas delivered.

- initial presence: broadcast to contacts with a C{from}/C{both}
  subscription and the user's other resources, probes answered from the
  contacts' live sessions, pending subscription requests delivered, and the
  C{presence-initial} event fired (offline messages follow);
- unavailable presence (sent, or when the stream ends): broadcast likewise,
  plus to every JID that received directed presence (§4.6);
- directed presence to anyone, delivered as is.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.host import SessionEvent
from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import NS_CLIENT
from xmppchat.storage.interfaces import RosterItem

SUBSCRIBED_TO = frozenset(("to", "both"))
SUBSCRIBED_FROM = frozenset(("from", "both"))


def retarget(stanza: domish.Element, to: str, frm: str | None = None) -> domish.Element:
    """
    A copy of C{stanza} with another C{to} (and C{from}); children are
    shared, not copied, so this is cheap and the copies must not be changed.
    """
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri)
    copy.attributes = dict(stanza.attributes)
    copy.children = stanza.children
    copy["to"] = to
    if frm is not None:
        copy["from"] = frm
    return copy


def presenceStanza(frm: str, to: str, presenceType: str | None = None) -> domish.Element:
    presence = domish.Element((NS_CLIENT, "presence"))
    presence["from"] = frm
    presence["to"] = to
    if presenceType:
        presence["type"] = presenceType
    return presence


def setSubscription(item: RosterItem, to: bool | None = None, frm: bool | None = None) -> RosterItem:
    """
    A copy of C{item} with the "to" and/or "from" halves of its subscription
    switched on or off (RFC 6121 §3, Appendix A states without pending flags).
    """
    hasTo = item.subscription in SUBSCRIBED_TO if to is None else to
    hasFrom = item.subscription in SUBSCRIBED_FROM if frm is None else frm
    state = {(False, False): "none", (True, False): "to", (False, True): "from", (True, True): "both"}
    return replace(item, subscription=state[(hasTo, hasFrom)])


class PresenceModule(Module):
    """
    RFC 6121 §3-§4: subscriptions, presence broadcast, probes, directed
    presence, unavailable presence on disconnect.
    """

    name = "presence"

    def setUp(self):
        self.subscriptionLock = defer.DeferredLock()

    @property
    def roster(self):
        return self.host.modules["roster"]

    # -- outbound presence from a client ----------------------------------

    @hook("presence/self")
    def onBroadcast(self, event):
        """
        Presence with no C{to}: available or unavailable broadcast (§4.2, §4.4).
        """
        session = event.origin
        if session is None:
            return True
        stanzaType = event.stanzaType
        if stanzaType is None:
            return self.available(session, event.stanza)
        if stanzaType == "unavailable":
            return self.unavailable(session, event.stanza)
        return True  # subscription types need a 'to'; probes from clients are ignored

    @hook("presence/bare")
    @hook("presence/full")
    def onDirected(self, event):
        session = event.origin
        stanzaType = event.stanzaType
        to = event.to
        if stanzaType in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            if session is None:
                return True
            return self.subscription(session, stanzaType, to.userhost())
        if stanzaType == "probe" or stanzaType == "error":
            return True
        if session is not None and to.userhost() == session.bare and to.resource is None:
            return self.onBroadcast(event)
        # directed presence (§4.6), remembered for the unavailable
        # broadcast: a bounded number of distinct recipients per session
        if session is not None and session.available:
            full = to.full()
            if stanzaType == "unavailable":
                session.directed.discard(full)
            elif full not in session.directed:
                if len(session.directed) >= self.host.config.limits.directed_presences_per_session:
                    self.host.router.sendError(session, event.stanza, "policy-violation",
                                               "Too many directed presences from this session")
                    return True
                session.directed.add(full)
        self.deliverPresence(to.userhost(), to.resource, event.stanza)
        return True

    def deliverPresence(self, bare: str, resource: str | None, stanza) -> None:
        """
        Deliver presence to one full JID or to every available resource of a
        bare JID (RFC 6121 §4.2.2 / §4.6.2).
        """
        sessions = self.host.sessions
        if resource is not None:
            target = sessions.get(bare, resource)
            if target is not None:
                target.send(stanza)
            return
        for target in sessions.sessionsOf(bare):
            if target.available:
                target.send(stanza)

    # -- broadcast -------------------------------------------------------------

    @defer.inlineCallbacks
    def available(self, session, stanza):
        priority = 0
        for child in stanza.elements():
            if child.name == "priority":
                try:
                    priority = max(-128, min(127, int(str(child).strip())))
                except ValueError:
                    priority = 0
        initial = not session.available
        session.available = True
        session.priority = priority
        session.presence = stanza
        if priority >= 0 and not session.state.get(self.name):
            # the first presence that makes it a recipient of messages to the
            # bare JID (RFC 6121 §8.5.2.1.1): offline messages follow (XEP-0160),
            # in the same turn, so no message can reach it before them
            session.state[self.name] = True
            self.host.hooks.fire("presence-initial", SessionEvent(self.host, session))
        try:
            roster = yield self.roster.getRoster(session.localpart)
        except Exception:
            if initial:  # nothing was broadcast: the client's retry is the initial presence
                session.available = False
                session.presence = None
                session.state.pop(self.name, None)
            raise
        for jid, item in roster.items():
            if item.subscription in SUBSCRIBED_FROM:
                self.deliverPresence(jid, None, retarget(stanza, jid))
        self._toOwnResources(session, stanza)
        if initial:
            self._probe(session, roster)
            for jid, item in roster.items():
                if item.pendingIn:
                    session.send(presenceStanza(jid, session.bare, "subscribe"))
        return True

    @defer.inlineCallbacks
    def unavailable(self, session, stanza):
        wasAvailable = session.available
        session.available = False
        session.presence = None
        if wasAvailable:
            yield self._broadcastUnavailable(session, stanza)
        return True

    @defer.inlineCallbacks
    def _broadcastUnavailable(self, session, stanza):
        roster = yield self.roster.getRoster(session.localpart)
        for jid, item in roster.items():
            if item.subscription in SUBSCRIBED_FROM:
                self.deliverPresence(jid, None, retarget(stanza, jid))
        for full in session.directed:
            bare, _, resource = full.partition("/")
            if bare not in roster or roster[bare].subscription not in SUBSCRIBED_FROM:
                self.deliverPresence(bare, resource or None, retarget(stanza, full))
        session.directed.clear()
        self._toOwnResources(session, stanza)

    def _toOwnResources(self, session, stanza) -> None:
        for other in self.host.sessions.sessionsOf(session.bare):
            if other is not session and other.available:
                other.send(retarget(stanza, other.full))

    def _probe(self, session, roster) -> None:
        """
        Answer the probes of a new available resource from the live sessions
        of its contacts (§4.3), and from its own other resources.
        """
        sessions = self.host.sessions
        for jid, item in roster.items():
            if item.subscription in SUBSCRIBED_TO:
                for contact in sessions.sessionsOf(jid):
                    if contact.available and contact.presence is not None:
                        session.send(retarget(contact.presence, session.full, contact.full))
        for other in sessions.sessionsOf(session.bare):
            if other is not session and other.available and other.presence is not None:
                session.send(retarget(other.presence, session.full, other.full))

    @hook("session-ended")
    def onSessionEnded(self, event):
        session = event.session
        if session.available:
            session.available = False
            stanza = domish.Element((NS_CLIENT, "presence"))
            stanza["type"] = "unavailable"
            stanza["from"] = session.full
            self._broadcastUnavailable(session, stanza).addErrback(
                lambda f: self.log.failure("Unavailable broadcast failed", f))

    # -- subscriptions (§3) ------------------------------------------------------

    @defer.inlineCallbacks
    def _item(self, localpart: str, jid: str, create: bool = True):
        roster = yield self.roster.getRoster(localpart)
        item = roster.get(jid)
        if item is None and create:
            item = RosterItem(jid=jid)
            item.hidden = True
        return item

    def _localpart(self, bare: str) -> str | None:
        user, _, domain = bare.partition("@")
        return user if domain == self.host.domain and user else None

    @defer.inlineCallbacks
    def subscription(self, session, stanzaType: str, contact: str):
        user = session.localpart
        contactUser = self._localpart(contact)
        if contact == session.bare:
            return True
        if contactUser is not None:
            exists = yield self.storage.accounts.getAccountByLocalpart(contactUser)
            if exists is None:
                contactUser = None
        handler = getattr(self, "_" + stanzaType)
        # one handshake step at a time: each step reads and rewrites both
        # parties' items, and interleaved steps (a "subscribed" and the
        # contact's own "subscribe" sent right after it) would lose updates
        yield self.subscriptionLock.run(handler, session, user, contact, contactUser)
        return True

    @defer.inlineCallbacks
    def _subscribe(self, session, user, contact, contactUser):
        """
        §3.1: the user asks for the contact's presence.
        """
        mine = yield self._item(user, contact)
        if mine.subscription in SUBSCRIBED_TO:
            # already subscribed: confirm again (§3.1.3)
            self.deliverPresence(session.bare, None, presenceStanza(contact, session.bare, "subscribed"))
            return
        mine = replace(mine, ask="subscribe")
        mine.hidden = False
        yield self.roster.saveItem(user, mine)
        if contactUser is None:
            return
        theirs = yield self._item(contactUser, session.bare)
        if theirs.subscription in SUBSCRIBED_FROM:
            # pre-approved: answer on the contact's behalf (§3.1.3)
            yield self._subscribed(None, contactUser, session.bare, user, contactSession=session)
            return
        if not theirs.pendingIn:
            theirs = replace(theirs, pendingIn=True)
            yield self.roster.saveItem(contactUser, theirs, push=False)
        self.deliverPresence(contact, None, presenceStanza(session.bare, contact, "subscribe"))

    @defer.inlineCallbacks
    def _subscribed(self, session, user, contact, contactUser, contactSession=None):
        """
        §3.1.5: the user approves the contact's subscription request.
        """
        userBare = f"{user}@{self.host.domain}"
        mine = yield self._item(user, contact)
        if mine.subscription not in SUBSCRIBED_FROM:
            mine = replace(setSubscription(mine, frm=True), pendingIn=False)
            if getattr(mine, "hidden", False):
                mine.hidden = False
            yield self.roster.saveItem(user, mine)
        elif mine.pendingIn:
            yield self.roster.saveItem(user, replace(mine, pendingIn=False))
        if contactUser is None:
            return
        theirs = yield self._item(contactUser, userBare)
        if theirs.subscription not in SUBSCRIBED_TO or theirs.ask:
            theirs = replace(setSubscription(theirs, to=True), ask=None)
            theirs.hidden = False
            yield self.roster.saveItem(contactUser, theirs)
        self.deliverPresence(contact, None, presenceStanza(userBare, contact, "subscribed"))
        # the contact now receives the user's current presence
        for mySession in self.host.sessions.sessionsOf(userBare):
            if mySession.available and mySession.presence is not None:
                self.deliverPresence(contact, None, retarget(mySession.presence, contact, mySession.full))

    @defer.inlineCallbacks
    def _unsubscribe(self, session, user, contact, contactUser):
        """
        §3.3: the user no longer wants the contact's presence.
        """
        userBare = f"{user}@{self.host.domain}"
        mine = yield self._item(user, contact, create=False)
        if mine is not None and (mine.subscription in SUBSCRIBED_TO or mine.ask):
            yield self.roster.saveItem(user, replace(setSubscription(mine, to=False), ask=None))
        if contactUser is None:
            return
        theirs = yield self._item(contactUser, userBare, create=False)
        if theirs is not None and (theirs.subscription in SUBSCRIBED_FROM or theirs.pendingIn):
            yield self.roster.saveItem(contactUser, replace(setSubscription(theirs, frm=False), pendingIn=False))
        self.deliverPresence(contact, None, presenceStanza(userBare, contact, "unsubscribe"))
        for contactSession in self.host.sessions.sessionsOf(contact):
            if contactSession.available:
                self.deliverPresence(userBare, None, presenceStanza(contactSession.full, userBare, "unavailable"))

    @defer.inlineCallbacks
    def _unsubscribed(self, session, user, contact, contactUser):
        """
        §3.2: the user denies or cancels the contact's subscription.
        """
        userBare = f"{user}@{self.host.domain}"
        mine = yield self._item(user, contact, create=False)
        if mine is not None and (mine.subscription in SUBSCRIBED_FROM or mine.pendingIn):
            item = replace(setSubscription(mine, frm=False), pendingIn=False)
            if getattr(item, "hidden", False):
                yield self.roster.removeItem(user, contact)
            else:
                yield self.roster.saveItem(user, item)
        if contactUser is None:
            return
        theirs = yield self._item(contactUser, userBare, create=False)
        if theirs is not None and (theirs.subscription in SUBSCRIBED_TO or theirs.ask):
            yield self.roster.saveItem(contactUser, replace(setSubscription(theirs, to=False), ask=None))
        self.deliverPresence(contact, None, presenceStanza(userBare, contact, "unsubscribed"))
        for mySession in self.host.sessions.sessionsOf(userBare):
            if mySession.available:
                self.deliverPresence(contact, None, presenceStanza(mySession.full, contact, "unavailable"))

    @defer.inlineCallbacks
    def removeContact(self, session, contact: str):
        """
        §2.5: removing a roster item cancels both subscription halves.
        """
        item = yield self._item(session.localpart, contact, create=False)
        contactUser = self._localpart(contact)
        if item is not None and contactUser is not None:
            if item.subscription in SUBSCRIBED_TO or item.ask:
                yield self._unsubscribe(session, session.localpart, contact, contactUser)
            if item.subscription in SUBSCRIBED_FROM or item.pendingIn:
                yield self._unsubscribed(session, session.localpart, contact, contactUser)
        yield self.roster.removeItem(session.localpart, contact)

