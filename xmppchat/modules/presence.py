"""
RFC 6121 §3 (subscriptions) and §4 (exchanging presence).
https://www.rfc-editor.org/rfc/rfc6121

All accounts are local, so both halves of a subscription handshake (the
user's server and the contact's server in the RFC) are done here in one
step: the stanza is applied to the sender's roster item as Appendix A.2
says (outbound), and, when it is routed, to the receiver's item as
Appendix A.3 says (inbound); it is delivered only when A.3 says so.  An
unsolicited C{subscribed}, C{unsubscribed} or C{unsubscribe} therefore
changes nothing and reaches nobody.  Pre-approval (§3.4) is not offered.

- initial and subsequent presence (§4.2.2, §4.4.2): broadcast to contacts
  with a C{from}/C{both} subscription and to every available resource of
  the user, the sending one included; on initial presence the probes of
  §4.3 are answered from the contacts' live sessions, pending subscription
  requests delivered, and the C{presence-initial} event fired (offline
  messages follow);
- unavailable presence (sent, or when the stream ends, §4.5.2): broadcast
  likewise, plus to every JID that received directed presence (§4.6);
- directed presence to anyone, delivered as is; probes sent by clients are
  answered for subscribed users (§4.3.2).
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
SUBSCRIPTION_TYPES = frozenset(("subscribe", "subscribed", "unsubscribe", "unsubscribed"))


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


def setSubscription(item: RosterItem, to: bool | None = None, frm: bool | None = None,
                    pendingOut: bool | None = None, pendingIn: bool | None = None) -> RosterItem:
    """
    A copy of C{item} with the "to" and/or "from" halves of its subscription
    and its pending flags switched on or off (RFC 6121 Appendix A states).
    An item that only recorded a pending request (C{hidden}) becomes visible
    once it holds anything else.
    """
    hasTo = item.subscription in SUBSCRIBED_TO if to is None else to
    hasFrom = item.subscription in SUBSCRIBED_FROM if frm is None else frm
    state = {(False, False): "none", (True, False): "to", (False, True): "from", (True, True): "both"}
    ask = item.ask if pendingOut is None else ("subscribe" if pendingOut and not hasTo else None)
    new = replace(item, subscription=state[(hasTo, hasFrom)], ask=ask,
                  pendingIn=item.pendingIn if pendingIn is None else pendingIn and not hasFrom)
    new.hidden = item.hidden and new.subscription == "none" and not new.ask
    return new


def outbound(stanzaType: str, item: RosterItem) -> tuple[RosterItem, bool]:
    """
    RFC 6121 §3.1.2, §3.2.2, §3.3.2 and Appendix A.2: a subscription stanza
    the user sends about C{item}'s contact.  Returns the user's new item and
    whether the stanza is routed to the contact (an approval nobody asked
    for, or a cancellation of nothing, is ignored).
    """
    if stanzaType == "subscribe":
        return setSubscription(item, pendingOut=True), True
    if stanzaType == "unsubscribe":
        return setSubscription(item, to=False, pendingOut=False), True
    if stanzaType == "subscribed":
        if not item.pendingIn:
            return item, False
        return setSubscription(item, frm=True, pendingIn=False), True
    if item.subscription not in SUBSCRIBED_FROM and not item.pendingIn:  # unsubscribed
        return item, False
    return setSubscription(item, frm=False, pendingIn=False), True


def inbound(stanzaType: str, item: RosterItem) -> tuple[RosterItem, bool]:
    """
    RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3 and Appendix A.3: a subscription
    stanza arrives from C{item}'s contact.  Returns the new item and whether
    the stanza is delivered to the user.  (A C{subscribe} from a contact
    already subscribed is answered before this, §3.1.3.)
    """
    if stanzaType == "subscribe":
        if item.pendingIn:
            return item, False
        return setSubscription(item, pendingIn=True), True
    if stanzaType == "subscribed":
        if not item.ask:
            return item, False
        return setSubscription(item, to=True, pendingOut=False), True
    if stanzaType == "unsubscribe":
        if item.subscription not in SUBSCRIBED_FROM and not item.pendingIn:
            return item, False
        return setSubscription(item, frm=False, pendingIn=False), True
    if item.subscription not in SUBSCRIBED_TO and not item.ask:  # unsubscribed
        return item, False
    return setSubscription(item, to=False, pendingOut=False), True


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
        return True  # subscriptions and probes need a 'to'

    @hook("presence/bare")
    @hook("presence/full")
    def onDirected(self, event):
        session = event.origin
        stanzaType = event.stanzaType
        to = event.to
        if stanzaType in SUBSCRIPTION_TYPES:
            if session is None:
                return True
            return self.subscription(session, event.stanza, stanzaType, to.userhost())
        if stanzaType == "probe":
            return self.answerProbe(session, to) if session is not None else True
        if stanzaType == "error":
            if to.resource is not None:  # §8.5.3.1: to the resource it names
                self.deliverPresence(to.userhost(), to.resource, event.stanza)
            return True
        if session is not None and to.userhost() == session.bare and to.resource is None:
            return self.onBroadcast(event)
        # directed presence (§4.6), remembered for the unavailable
        # broadcast: a bounded number of distinct recipients per session
        if session is not None:
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
        bare JID (RFC 6121 §4.2.3 / §4.6.4 / §8.5.2.1.2).
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

    def sendPresences(self, frm: str, to: str, unavailable: bool = False) -> None:
        """
        The current presence of every available resource of C{frm} (or, with
        C{unavailable}, unavailable presence from each) to C{to}: a full JID,
        or a bare JID's available resources (§3.1.5, §3.2.2, §3.3.3, §4.3.2).
        """
        bare, _, resource = to.partition("/")
        for session in self.host.sessions.sessionsOf(frm):
            if session.available and session.presence is not None:
                stanza = (presenceStanza(session.full, to, "unavailable") if unavailable
                          else retarget(session.presence, to, session.full))
                self.deliverPresence(bare, resource or None, stanza)

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
        self._toOwnResources(session, stanza)
        for jid, item in roster.items():
            if item.subscription in SUBSCRIBED_FROM:
                self.deliverPresence(jid, None, retarget(stanza, jid))
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
        if wasAvailable or session.directed:
            yield self._broadcastUnavailable(session, stanza, wasAvailable)
        return True

    @defer.inlineCallbacks
    def _broadcastUnavailable(self, session, stanza, wasAvailable=True):
        """
        §4.5.2: to the contacts and the user's resources (the sending one
        included, when it is still connected) if the session was available;
        to every recipient of its directed presence in any case (§4.6.3).
        """
        roster = yield self.roster.getRoster(session.localpart)
        if wasAvailable:
            self._toOwnResources(session, stanza)
            for jid, item in roster.items():
                if item.subscription in SUBSCRIBED_FROM:
                    self.deliverPresence(jid, None, retarget(stanza, jid))
        for full in session.directed:
            bare, _, resource = full.partition("/")
            if not wasAvailable or bare not in roster or roster[bare].subscription not in SUBSCRIBED_FROM:
                self.deliverPresence(bare, resource or None, retarget(stanza, full))
        session.directed.clear()

    def _toOwnResources(self, session, stanza) -> None:
        """
        §4.2.2, §4.4.2, §4.5.2: the user is implicitly subscribed to its own
        presence: every available resource gets it, the sending one too.
        """
        for own in self.host.sessions.sessionsOf(session.bare):
            if own.available or own is session:
                own.send(retarget(stanza, own.full))

    def _probe(self, session, roster) -> None:
        """
        Answer the probes of a new available resource from the live sessions
        of its contacts (§4.3.1, §4.3.2: a contact with no available resource
        does not answer), and from its own other resources.
        """
        for jid, item in roster.items():
            if item.subscription in SUBSCRIBED_TO:
                self.sendPresences(jid, session.full)
        for other in self.host.sessions.sessionsOf(session.bare):
            if other is not session and other.available and other.presence is not None:
                session.send(retarget(other.presence, session.full, other.full))

    def answerProbe(self, session, to) -> defer.Deferred:
        """
        §4.3.2 for a probe a client sent (§4.3: the server processes it on the
        user's behalf): a user subscribed to the contact (or the user's own
        account) gets the last presence of each available resource, or of
        the one probed, and unavailable presence when there is none.  Others
        get nothing (no presence leaks to non-subscribers).
        """
        contact = to.userhost()

        def answer(roster):
            item = roster.get(session.bare)
            if contact != session.bare and (item is None or item.subscription not in SUBSCRIBED_FROM):
                return
            targets = [s for s in self.host.sessions.sessionsOf(contact)
                       if s.available and s.presence is not None and to.resource in (None, s.resource)]
            for target in targets:
                session.send(retarget(target.presence, session.full, target.full))
            if not targets:
                session.send(presenceStanza(to.full(), session.full, "unavailable"))

        localpart = self._localpart(contact)
        if localpart is None:
            return defer.succeed(None)
        return self.roster.getRoster(localpart).addCallback(answer)

    @hook("session-ended")
    def onSessionEnded(self, event):
        session = event.session
        wasAvailable = session.available
        if wasAvailable or session.directed:
            session.available = False
            stanza = domish.Element((NS_CLIENT, "presence"))
            stanza["type"] = "unavailable"
            stanza["from"] = session.full
            self._broadcastUnavailable(session, stanza, wasAvailable).addErrback(
                lambda f: self.log.failure("Unavailable broadcast failed", f))

    # -- subscriptions (§3) ------------------------------------------------------

    @defer.inlineCallbacks
    def _item(self, localpart: str, jid: str):
        """
        C{localpart}'s item for C{jid}; a new hidden one when there is none.
        Read from storage, not from the cached roster: in a cluster the
        other party's node may have just written it (a pending request),
        and its invalidation of our copy may not have arrived yet.
        """
        item = yield self.storage.roster.getRosterItem(localpart, jid)
        if item is None:
            item = RosterItem(jid=jid, hidden=True)
        return item

    @defer.inlineCallbacks
    def _update(self, localpart: str, old: RosterItem, new: RosterItem):
        """
        Store and push C{new} if it differs from C{old}; an item that only
        recorded a request nobody made any more is removed.
        """
        if new == old:
            return
        if new.hidden and new.subscription == "none" and not new.ask and not new.pendingIn:
            yield self.roster.removeItem(localpart, new.jid)
        else:
            yield self.roster.saveItem(localpart, new)

    def _localpart(self, bare: str) -> str | None:
        user, _, domain = bare.partition("@")
        return user if domain == self.host.domain and user else None

    @defer.inlineCallbacks
    def subscription(self, session, stanza, stanzaType: str, contact: str):
        if contact == session.bare:
            return True
        contactUser = self._localpart(contact)
        if contactUser is not None:
            exists = yield self.storage.accounts.getAccountByLocalpart(contactUser)
            if exists is None:
                contactUser = None
        # one handshake step at a time: each step reads and rewrites both
        # parties' items, and interleaved steps (a "subscribed" and the
        # contact's own "subscribe" sent right after it) would lose updates
        yield self.subscriptionLock.run(self._send, stanza, stanzaType, session.localpart, contact, contactUser)
        return True

    @defer.inlineCallbacks
    def _send(self, stanza, stanzaType: str, user: str, contact: str, contactUser: str | None):
        """
        One subscription stanza from the local account C{user} to C{contact}:
        the user's side (Appendix A.2), then the contact's (A.3) when it is a
        local account.  The stanza is routed as the client sent it (extended
        content included), from the user's bare JID (§3.1.2).
        """
        userBare = f"{user}@{self.host.domain}"
        mine = yield self._item(user, contact)
        new, route = outbound(stanzaType, mine)
        if stanzaType == "subscribe":
            new.hidden = False  # the user added the contact (§3.1.2 roster push)
        yield self._update(user, mine, new)
        if not route:
            return
        if stanzaType == "unsubscribed" and mine.subscription in SUBSCRIBED_FROM:
            self.sendPresences(userBare, contact, unavailable=True)  # §3.2.2
        if contactUser is not None:
            routed = retarget(stanza, contact, userBare) if stanza is not None else None
            yield self._receive(routed, stanzaType, userBare, contactUser)
        elif stanzaType == "subscribe" and self._localpart(contact) is not None:
            # §8.5.1: no such account: refused, which ends the pending request
            yield self._receive(None, "unsubscribed", contact, user)
        if stanzaType == "subscribed":
            self.sendPresences(userBare, contact)  # §3.1.5

    @defer.inlineCallbacks
    def _receive(self, stanza, stanzaType: str, frm: str, user: str):
        """
        A subscription stanza from C{frm} arrives for the local account
        C{user} (Appendix A.3).  C{subscribe} is delivered to the available
        resources (and kept until answered, §3.1.3), the others to the
        interested ones (§3.1.6, §3.2.3, §3.3.3).
        """
        userBare = f"{user}@{self.host.domain}"
        item = yield self._item(user, frm)
        if stanzaType == "subscribe" and item.subscription in SUBSCRIBED_FROM:
            # §3.1.3: already subscribed: approve on the user's behalf
            frmUser = self._localpart(frm)
            if frmUser is not None:
                yield self._receive(None, "subscribed", userBare, frmUser)
                self.sendPresences(userBare, frm)
            return
        new, deliver = inbound(stanzaType, item)
        if stanzaType == "subscribe":
            # a request is kept first: a full roster refuses it (not-allowed)
            yield self._update(user, item, new)
        if deliver:
            if stanza is None:
                stanza = presenceStanza(frm, userBare, stanzaType)
            for session in self.host.sessions.sessionsOf(userBare):
                if session.available if stanzaType == "subscribe" else session.rosterRequested:
                    session.send(stanza)
        if stanzaType != "subscribe":
            # the stanza first, then the roster push (§3.1.6, §3.2.3, §3.3.3)
            yield self._update(user, item, new)
        if deliver and stanzaType == "unsubscribe" and item.subscription in SUBSCRIBED_FROM:
            self.sendPresences(userBare, frm, unavailable=True)  # §3.3.3

    @defer.inlineCallbacks
    def removeContact(self, session, contact: str):
        """
        §2.5.2: removing a roster item cancels both subscription halves.
        """
        roster = yield self.roster.getRoster(session.localpart)
        item = roster.get(contact)
        if item is not None and self._localpart(contact) is not None:
            if item.subscription in SUBSCRIBED_TO or item.ask:
                yield self.subscription(session, None, "unsubscribe", contact)
            if item.subscription in SUBSCRIBED_FROM or item.pendingIn:
                yield self.subscription(session, None, "unsubscribed", contact)
        yield self.roster.removeItem(session.localpart, contact)
