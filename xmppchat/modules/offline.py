"""
XEP-0160: Best Practices for Handling Offline Messages.
https://xmpp.org/extensions/xep-0160.html

A C{chat} or C{normal} message for an existing account with no available
resource is stored (bounded per user: C{limits.offline_messages_per_user},
beyond which the sender gets C{service-unavailable}, §3).  Messages that
carry only chat states (XEP-0085) are not stored.  On the user's next
initial presence with a non-negative priority the stored messages are
delivered in order with a XEP-0203 C{<delay/>}, and deleted only once
written to the new session.

Whoever stores a message fires C{offline-stored}: in a cluster, the user
may have just bound a session on another node that this node did not know
of yet (the directory is eventually consistent), and that node delivers
the message at once instead of at the user's next login (L{deliver} runs
one at a time per account, so two nudges do not deliver twice).
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer

from xmppchat.modules.base import KeyedLocks, Module, hook
from xmppchat.stanzas import StanzaError, delayElement
from xmppchat.storage.interfaces import QuotaExceeded
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

    @hook("message/offline")
    def onOffline(self, event):
        stanza = event.stanza
        if event.stanzaType not in ("chat", "normal"):
            return None
        if not worthStoring(stanza):
            return True
        return self.store(event.to.user, stanza)

    @defer.inlineCallbacks
    def store(self, localpart: str, stanza):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            raise StanzaError("service-unavailable", text="No such user")
        yield self.storeFor(localpart, stanza)
        return True

    @defer.inlineCallbacks
    def storeFor(self, localpart: str, stanza, stamp: float | None = None):
        """
        Store C{stanza} for the existing account C{localpart} (one write,
        issued at once), stamped C{stamp}: default now; stream management
        passes the original delivery time (XEP-0198 §4).
        """
        limit = self.host.config.limits.offline_messages_per_user
        if stamp is None:
            stamp = self.host.clock.seconds()
        try:
            yield self.storage.offline.storeOffline(localpart, stanza.toXml(), stamp, limit)
        except QuotaExceeded:
            raise StanzaError("service-unavailable", text="The recipient's offline storage is full") from None
        self.host.hooks.fire("offline-stored", SimpleNamespace(host=self.host, localpart=localpart))

    @hook("presence-initial")
    def onInitialPresence(self, event):
        self.deliver(event.session).addErrback(
            lambda f: self.log.failure("Offline delivery to {jid} failed", f, jid=event.session.full))

    def deliver(self, session) -> defer.Deferred:
        """
        Send the stored messages of C{session}'s account to it, oldest first
        (after any delivery to the same account still in progress).
        """
        return self.locks.run(session.localpart, self._deliver, session)

    @defer.inlineCallbacks
    def _deliver(self, session):
        messages = yield self.storage.offline.fetchOffline(session.localpart)
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
            stanza["to"] = session.full
            stanza.addChild(delayElement(message.stamp, self.host.domain, "Offline storage"))
            session.send(stanza)
            delivered.append(message.id)
        if delivered:
            yield self.storage.offline.deleteOffline(session.localpart, delivered)
