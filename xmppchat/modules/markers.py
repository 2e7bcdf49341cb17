"""
XEP-0333: Chat Markers, https://xmpp.org/extensions/xep-0333.html, and
XEP-0184: Message Delivery Receipts, https://xmpp.org/extensions/xep-0184.html

Markers (C{received}, C{displayed}, C{acknowledged}) and receipts
(C{<received xmlns="urn:xmpp:receipts"/>}) in 1-1 C{type="chat"} messages
are routed to the original sender like any message (the ConnectyCube SDK
addresses them to the sender's user JID, SDK reference §5.5).  For each
one the C{marker-received} event fires with a L{MarkerEvent}, so the
dialog layer can persist delivered/read state and unread counts; handlers
should return nothing so that every observer sees it.

A user whose C{account.profile["privacy_settings"]["read_receipts"]["enabled"]}
is C{False} does not reveal reads (L{xmppchat.privacysettings}, issue 17
item 3): their read markers (C{displayed}, C{acknowledged}) fire the event
(the dialog still counts the message as read, so their own unread counts
stay exact) but are not forwarded.  Delivery (C{received}) markers and
XEP-0184 receipts are always forwarded.  The setting is read from the
session's account, refreshed at once by C{account-updated}.

Offline storage (decided from XEP-0333 §4 and XEP-0160): XEP-0160 asks
only that standalone chat states are not stored; a marker is the only
way a sender learns that a message was delivered or read while they were
offline, so standalone markers and receipts ARE stored offline (in the
offline module's queue, within its quota), unless the sender attached a
XEP-0334 C{<no-store/>} or C{<no-permanent-store/>} hint.  A marker that
cannot be stored (queue full, no such account) is dropped silently rather
than bounced: the SDK sends a C{received} marker for every message, and a
bounce would surface as a message error on the reader's side.  They never trigger a
push notification (L{xmppchat.modules.push}).
"""

from __future__ import annotations

from xmppchat.messageinfo import NS_MARKERS, NS_RECEIPTS, forget, messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.privacysettings import READ_MARKERS, hidesReads

NO_STORE_HINTS = frozenset(("no-store", "no-permanent-store"))


class MarkerEvent:
    """
    The event of C{marker-received}.

    @ivar user: bare JID of the user who sent the marker (the reader).
    @ivar peer: bare JID it is addressed to (the original sender).
    @ivar kind: C{received}, C{displayed} or C{acknowledged}.
    @ivar receipt: it is a XEP-0184 receipt rather than a XEP-0333 marker.
    @ivar messageId: the id of the message it marks.
    @ivar dialogId: C{extraParams/dialog_id}, or C{None}.
    @ivar forwarded: whether the marker is passed on to C{peer}.
    """

    __slots__ = ("host", "origin", "stanza", "user", "peer", "kind", "receipt",
                 "messageId", "dialogId", "forwarded")

    def __init__(self, host, origin, stanza, user, peer, kind, receipt, messageId, dialogId, forwarded):
        self.host = host
        self.origin = origin
        self.stanza = stanza
        self.user = user
        self.peer = peer
        self.kind = kind
        self.receipt = receipt
        self.messageId = messageId
        self.dialogId = dialogId
        self.forwarded = forwarded


def readReceiptsHidden(session) -> bool:
    return hidesReads(session.account)


def hidesRead(session, kind: str) -> bool:
    """
    A marker of C{kind} from C{session} must not reach others: it tells a
    read and the user hides his reads.
    """
    return kind in READ_MARKERS and readReceiptsHidden(session)


def hideReadMarker(session, stanza) -> bool:
    """
    The read-receipts setting on a message C{session} sends (one to a
    contact, or a MUC private message, security review finding 5): a
    XEP-0333 read marker is removed when the user hides his reads; C{True}
    when it was a standalone marker, which is then not sent at all.
    """
    info = messageInfo(stanza)
    marker = info.marker
    if marker is None or marker.uri == NS_RECEIPTS or not hidesRead(session, marker.name):
        return False
    if info.standaloneMarker:
        return True
    stanza.children.remove(marker)
    forget(stanza)
    return False


class MarkersModule(Module):
    """
    XEP-0333 / XEP-0184 routing, the C{marker-received} event and the
    read-receipts privacy setting.
    """

    name = "markers"
    features = (NS_MARKERS, NS_RECEIPTS)

    @hook("pre-message/bare", priority=40)
    @hook("pre-message/full", priority=40)
    def onMessage(self, event):
        session = event.origin
        if session is None or event.stanzaType not in ("chat", "normal"):
            return None
        info = messageInfo(event.stanza)
        marker = info.marker
        if marker is None:
            return None
        receipt = marker.uri == NS_RECEIPTS
        kind = marker.name
        suppress = not receipt and hidesRead(session, kind)
        self.host.hooks.fire("marker-received", MarkerEvent(
            self.host, session, event.stanza, session.bare, event.to.userhost(), kind, receipt,
            marker.getAttribute("id"), info.extraParam("dialog_id"), not suppress))
        return True if suppress and hideReadMarker(session, event.stanza) else None

    @hook("message/offline", priority=40)
    def onOffline(self, event):
        """
        Store a standalone marker for an offline sender without ever
        bouncing it: a full offline queue or an unknown account drops it
        silently (the SDK would report a bounced automatic receipt as a
        message error).
        """
        info = messageInfo(event.stanza)
        if not info.standaloneMarker:
            return None
        offline = self.host.modules.get("offline")
        if offline is None or not NO_STORE_HINTS.isdisjoint(info.hints):
            return True
        d = offline.store(event.to.user, event.stanza)
        d.addErrback(lambda f: self.log.debug("Marker for {to} not stored: {why}",
                                              to=event.to.userhost(), why=f.getErrorMessage()))
        return True
