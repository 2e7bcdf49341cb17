"""
XEP-0160: Best Practices for Handling Offline Messages.
https://xmpp.org/extensions/xep-0160.html

A C{chat} or C{normal} message for an existing account with no available
resource is stored (bounded per user: C{limits.offline_messages_per_user},
beyond which the sender gets C{service-unavailable}, §3, as RFC 6121
§8.5.2.2.1 lets a server that does not store a message answer).  Messages
that carry only chat states (XEP-0085) are not stored.

Shares of the queue (issue 15 finding 8): nobody can fill another user's
queue so that everyone else's messages bounce.  One sender may fill at
most C{offline_share_per_sender} percent of it (beyond: the same
C{service-unavailable}); a group dialog's fan-out at most
C{offline_share_per_dialog} percent, and all group dialogs together
C{offline_share_dialogs} percent.  A dialog copy beyond its share is
not stored for that recipient only (no error to the sender, whose message
reached the others): the recipient finds it in the dialog's history (REST
C{GET /chat/Message.json}, MAM) and its unread count in the dialog list,
when it was sent with C{save_to_history=1}.  On the session's first
presence with a non-negative priority (C{presence-initial}) the stored
messages are delivered in order with a XEP-0203 C{<delay/>}, and deleted
only once written to the session.

The offline/online transition is atomic: storing a message and delivering
the stored ones run one at a time per account (the account's I{lane}).  A
message on its way to storage checks, in the lane, whether the user has a
session that already received its stored messages (I{ready}); if so it is
delivered there at once instead.  A session that is available but not
ready yet has its delivery queued in the lane behind the store, so the
message reaches it exactly once, after the messages stored before it.
Likewise a message that would reach a session whose stored messages are
still on their way (between its initial presence and the end of their
delivery) takes the lane, so it never overtakes them.

Whoever stores a message fires C{offline-stored}: in a cluster, the user
may have just bound a session on another node that this node did not know
of yet (the directory is eventually consistent), and that node delivers
the message at once instead of at the user's next login.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer

from xmppchat.modules.base import KeyedLocks, Module, hook
from xmppchat.router import DELIVERY_PRIORITY, recipients
from xmppchat.stanzas import StanzaError, delayElement
from xmppchat.storage.interfaces import OfflineShares, QuotaExceeded
from xmppchat.xmlstream import parseElement

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MSGOFFLINE = "msgoffline"


def worthStoring(stanza) -> bool:
    """
    A message with a body or any payload other than chat states (XEP-0160
    §3, XEP-0085 §5.6).
    """
    for child in stanza.elements():
        if child.uri != NS_CHATSTATES and child.name not in ("thread", "error"):
            return True
    return False


class OfflineModule(Module):
    """
    XEP-0160 storage and delivery of messages for offline users.
    """

    name = "offline"
    features = (NS_MSGOFFLINE,)

    def setUp(self):
        self.locks = KeyedLocks()
        # localpart -> sessions of it whose stored messages are on their way
        self.flushing: dict[str, int] = {}

    @hook("message/offline")
    def onOffline(self, event):
        stanza = event.stanza
        if event.stanzaType not in ("chat", "normal"):
            return None
        if not worthStoring(stanza):
            return True
        return self.store(event.to.user, stanza)

    def store(self, localpart: str, stanza) -> defer.Deferred:
        """
        Store C{stanza} for C{localpart} (C{service-unavailable} when there
        is no such account), or deliver it to a ready session; fires with
        C{True}.
        """
        return self.locks.run(localpart, self._store, localpart, stanza, None, None, True, None,
                              self.shares(stanza))

    def storeFor(self, localpart: str, stanza, stamp: float | None = None, exclude=None,
                 xml: str | None = None, sender: str | None = None,
                 dialogId: str | None = None) -> defer.Deferred:
        """
        L{store} for an account known to exist: dialog fan-out (C{xml} is
        the serialised stanza when the caller has it already; C{sender}
        the sender's bare JID, C{dialogId} the dialog), and stream
        management, which passes the time a message was first delivered
        to the session (C{exclude}) that never acknowledged it (XEP-0198
        §4): it is then handled as sent to the bare JID (RFC 6121
        §8.5.3.2.1), so another ready session gets it with a XEP-0203
        delay, else it is stored with that time.
        """
        return self.locks.run(localpart, self._store, localpart, stanza, xml, stamp, False, exclude,
                              self.shares(stanza, sender, dialogId))

    def shares(self, stanza, sender: str | None = None, dialogId: str | None = None) -> OfflineShares:
        """
        The parts of a recipient's queue that C{stanza}'s source may fill
        (issue 15 finding 8): its sender (the bare C{from} of a 1-1
        message) and, for a dialog copy, the dialog.
        """
        if sender is None and dialogId is None:
            sender = stanza.getAttribute("from", "").partition("/")[0] or None
        limits = self.host.config.limits
        total = limits.offline_messages_per_user

        def part(percent: int) -> int:
            return max(1, total * percent // 100)

        return OfflineShares(sender, dialogId, part(limits.offline_share_per_sender),
                             part(limits.offline_share_per_dialog), part(limits.offline_share_dialogs))

    def ready(self, localpart: str) -> list:
        """
        The sessions of C{localpart} on this node that a message to the bare
        JID reaches and that already had their stored messages.
        """
        return [s for s in self.host.sessions.localSessionsOf(f"{localpart}@{self.host.domain}")
                if s.available and s.priority >= 0 and not s.closed and s.state.get(self.name)]

    @defer.inlineCallbacks
    def _store(self, localpart, stanza, xml, stamp, lookup, exclude, shares):
        if lookup:
            account = yield self.storage.accounts.getAccountByLocalpart(localpart)
            if account is None:
                raise StanzaError("service-unavailable", text="No such user")
        sessions = [s for s in self.ready(localpart) if s is not exclude]
        if sessions:
            if stamp is not None:
                stanza.addChild(delayElement(stamp, self.host.domain, "Offline storage"))
            for session in sessions:
                session.send(stanza)
            return True
        limit = self.host.config.limits.offline_messages_per_user
        if stamp is None:
            stamp = self.host.clock.seconds()
        try:
            yield self.storage.offline.storeOffline(localpart, xml or stanza.toXml(), stamp, limit, shares)
        except QuotaExceeded as e:
            raise StanzaError("service-unavailable", text=str(e)) from None
        self.host.hooks.fire("offline-stored", SimpleNamespace(host=self.host, localpart=localpart))
        return True

    @hook("message/bare", priority=DELIVERY_PRIORITY + 1)
    def onDelivery(self, event):
        """
        Just before delivery: a message to the bare JID for a session whose
        stored messages are still being delivered waits in the lane.
        """
        if event.to.user not in self.flushing or event.stanzaType not in ("chat", "normal"):
            return None
        targets = recipients(self.host.sessions, event.to.userhost(), event.stanzaType)
        if not any(s.state.get(self.name) is False for s in targets) or not worthStoring(event.stanza):
            return None
        return self.host.hooks.run("message/offline", event)

    @hook("presence-initial")
    def onInitialPresence(self, event):
        session = event.session
        localpart = session.localpart
        session.state[self.name] = False  # ready once its stored messages are out
        self.flushing[localpart] = self.flushing.get(localpart, 0) + 1

        def done(_):
            left = self.flushing.pop(localpart) - 1
            if left:
                self.flushing[localpart] = left

        self.deliver(session).addErrback(
            lambda f: self.log.failure("Offline delivery to {jid} failed", f, jid=session.full)).addBoth(done)

    def deliver(self, session) -> defer.Deferred:
        """
        Send the stored messages of C{session}'s account to it, oldest first,
        in the account's lane; the session is ready from then on.
        """
        return self.locks.run(session.localpart, self._deliver, session)

    @defer.inlineCallbacks
    def _deliver(self, session):
        try:
            messages = yield self.storage.offline.fetchOffline(session.localpart)
        finally:
            # even when storage failed: new messages must not wait for a
            # delivery that will not come (the stored ones wait for the next)
            session.state[self.name] = True
        delivered = []
        for message in messages:
            if session.closed:
                break
            try:
                stanza = parseElement(message.stanza)
            except Exception:
                self.log.error("Dropping an unreadable offline message {id}", id=message.id)
                delivered.append(message.id)
                continue
            if stanza.getAttribute("to") is None:  # a room copy, addressed like the live ones
                stanza["to"] = session.full
            stanza.addChild(delayElement(message.stamp, self.host.domain, "Offline storage"))
            session.send(stanza)
            delivered.append(message.id)
        if delivered:
            yield self.storage.offline.deleteOffline(session.localpart, delivered)
