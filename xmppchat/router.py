"""
The stanza router: addressing, named events, the message pipeline and the
RFC 6120/6121 defaults.

For each stanza from a bound client the router stamps C{from} (RFC 6120
§8.1.2.1), validates C{to}, classifies the target and fires named events on
the host's L{HookBus}, Prosody style::

    pre-message/bare            checks that may stop a stanza (privacy, limits)
    message/bare                store stage, carbons, push; delivery last
    iq-get/host/urn:xmpp:ping:ping   IQ requests, by type, target and payload
    iq/full                     any IQ not handled by a more specific event

Targets: C{host} (the server's own JID), C{self} (an IQ with no C{to}, or to
the sender's own bare JID), C{bare}, C{full}.  Stanzas for a component's
domain (C{muc.<domain>}) are handed to that component.  When nobody handles
an event, the defaults of RFC 6120 §10 and RFC 6121 §8 apply.

The message pipeline (Prosody's C{mod_message} and per-session runner):
C{pre-*} and C{message/*} are run with L{HookBus.run}, so a handler may
return a Deferred (a storage round trip: privacy lists to load, a dialog
message to store) and the event goes on with the next handler once it
fires.  Delivery is the last C{message/*} handler (L{StanzaRouter.deliverMessage}):
the sessions L{recipients} names, else the C{message/offline} event (the
offline module), else C{service-unavailable}.  While a stanza of a client
waits, that client's next stanzas wait behind it (its I{backlog}), so each
sender's stanzas take effect in the order sent; a component's Deferred
(a room message being stored) holds the sender the same way.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from xmppchat.c2s.backpressure import readerOf
from xmppchat.hooks import waiting
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.stanzas import errorReply, firstChild

#: the priority of the delivery handler: after every other C{message/*} handler
DELIVERY_PRIORITY = -(10 ** 6)
#: a client with this many stanzas waiting behind a pending one is not read
#: from until they are handled (RFC 6120 §13.12, resource exhaustion)
BACKLOG_HOLD = 64


def recipients(sessions, bare: str, stanzaType: str, resource: str | None = None) -> list:
    """
    The sessions a message of C{stanzaType} to C{bare} (or to
    C{bare/resource}) reaches now (RFC 6121 §8.5):

    - to a full JID: that session when it is bound; when it is not, a
      C{chat} or C{normal} message is treated as sent to the bare JID
      (§8.5.3.2.1) and anything else reaches nobody;
    - to a bare JID: every available resource with a non-negative priority
      (§8.5.2.1.1), so a session that is bound but has sent no presence
      yet gets it from offline storage at its initial presence;
    - C{headline} (ConnectyCube system messages and call signalling, SDK
      reference §5.10): every bound session, available or not, since the SDK
      counts itself online from binding (§8.5.2.1.1 lets a server deliver a
      headline to all resources).

    A client in the background (XEP-0352 C{inactive}) is still a recipient;
    push (XEP-0357) looks at C{inactive} on what this returns.
    """
    if resource is not None:
        session = sessions.get(bare, resource)
        if session is not None:
            return [session]
        if stanzaType != "chat" and stanzaType != "normal":
            return []
    if stanzaType == "headline":
        return list(sessions.sessionsOf(bare))
    return [s for s in sessions.sessionsOf(bare) if s.available and s.priority >= 0]


IQ_TYPES = frozenset(("get", "set", "result", "error"))
MESSAGE_TYPES = frozenset(("chat", "error", "groupchat", "headline", "normal"))
PRESENCE_TYPES = frozenset(
    ("unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error")
)


class Event:
    """
    What a hook handler receives.

    @ivar origin: the L{Session} that sent the stanza, or C{None} when the
        server or a component generated it.
    @ivar to: the parsed C{to} address, or C{None}.
    @ivar kind: C{host}, C{self}, C{bare} or C{full}.
    """

    __slots__ = ("host", "stanza", "origin", "to", "kind", "stanzaType")

    def __init__(self, host, stanza, origin, to, kind, stanzaType):
        self.host = host
        self.stanza = stanza
        self.origin = origin
        self.to = to
        self.kind = kind
        self.stanzaType = stanzaType


class StanzaRouter:
    """
    Routes the stanzas of one host.
    """

    log = Logger()

    def __init__(self, host):
        self.host = host
        self.hooks = host.hooks
        self.domain = host.domain
        self.sessions = host.sessions
        self.stanzasIn = host.metrics.stanzasIn
        self.delivered = host.metrics.messagesDelivered
        for kind in ("bare", "full", "host"):
            self.hooks.add(f"message/{kind}", self.deliverMessage, DELIVERY_PRIORITY)

    # -- entry points -------------------------------------------------

    def route(self, origin, stanza) -> None:
        """
        Route a stanza received from the bound client C{origin}, after the
        ones it sent before.
        """
        stanza["from"] = origin.full
        self.stanzasIn[stanza.name].inc()
        if origin.backlog is not None:
            self._hold(origin, stanza)
            return
        self._routeNow(origin, stanza)

    def deliver(self, stanza):
        """
        Route a stanza generated by the server or a component; its C{from}
        is already set and trusted.  Returns a Deferred when its handling
        waits on something (a message on its way to offline storage),
        else C{None}.
        """
        return waiting(self._dispatch(None, stanza))

    # -- per-sender order ------------------------------------------------

    def _routeNow(self, origin, stanza) -> None:
        pending = self._routeOne(origin, stanza)
        if pending is not None:
            self._wait(origin, pending)

    def _routeOne(self, origin, stanza):
        """
        Dispatch one stanza of C{origin}: a Deferred while it waits, else
        C{None}.  Presence and IQs (roster get, carbons) change what other
        cluster nodes route on (messages never do): C{origin} is announced
        again once the stanza is handled, a paused one included.
        """
        pending = waiting(self._dispatch(origin, stanza))
        if stanza.name != "message":
            if pending is not None:
                pending.addBoth(self._changed, origin)
            else:
                self.sessions.changed(origin)
        return pending

    def _changed(self, _, origin) -> None:
        self.sessions.changed(origin)

    def _wait(self, origin, pending: Deferred) -> None:
        """
        C{origin}'s stanza waits for C{pending}: its next stanzas wait too,
        and XEP-0198 acknowledgements covering it wait for all of it.
        """
        if origin.backlog is None:
            origin.backlog = deque()
        if origin.sm is not None:
            origin.sm.track(pending)
        pending.addBoth(self._next, origin)

    def _hold(self, origin, stanza) -> None:
        backlog = origin.backlog
        done = None
        if origin.sm is not None:
            done = Deferred()
            origin.sm.track(done)
        backlog.append((stanza, done))
        if len(backlog) == BACKLOG_HOLD:
            _readHold(origin, True)

    def _next(self, _, origin) -> None:
        """
        Route what C{origin} sent while its earlier stanza waited, until
        one waits again.
        """
        backlog = origin.backlog
        while backlog:
            stanza, done = backlog.popleft()
            pending = self._routeOne(origin, stanza)
            if pending is not None:
                if done is not None:
                    pending.addBoth(lambda _, d=done: d.callback(None))
                pending.addBoth(self._next, origin)
                return
            if done is not None:
                done.callback(None)
        origin.backlog = None
        _readHold(origin, False)

    # -- dispatch -----------------------------------------------------

    def _dispatch(self, origin, stanza):
        """
        Classify and fire; returns what the pipeline returned (a Deferred
        when the stanza waits) or C{None}.
        """
        name = stanza.name
        stanzaType = stanza.getAttribute("type")
        if name == "iq":
            if stanzaType not in IQ_TYPES or stanza.getAttribute("id") is None:
                return self._badRequest(origin, stanza, "iq needs an id and a valid type")
        elif name == "message":
            if stanzaType not in MESSAGE_TYPES:
                stanzaType = "normal"  # RFC 6121 §5.2.2: no type, or one not understood
        elif name == "presence":
            if stanzaType is not None and stanzaType not in PRESENCE_TYPES:
                return self._badRequest(origin, stanza, f"unknown presence type {stanzaType!r}")
        else:
            return self._badRequest(origin, stanza, f"unknown stanza {name!r}")

        to = stanza.getAttribute("to")
        if to is None:
            toJID = None
            if name == "message" and origin is not None:
                toJID = origin.jid.userhostJID()
                kind = "bare"
            else:
                kind = "self"
        else:
            try:
                toJID = parseJID(to)
            except InvalidJID:
                return self.sendError(origin, stanza, "jid-malformed", "Invalid 'to' address")
            host = toJID.host
            if host != self.domain:
                component = self.host.components.get(host)
                if component is not None:
                    return component.receive(origin, stanza, toJID)
                if stanzaType == "error":
                    return None
                return self.sendError(origin, stanza, "remote-server-not-found",
                                      f"No route to {host}: server-to-server is not enabled")
            if toJID.user is None:
                kind = "host" if toJID.resource is None else "full"
            elif toJID.resource is None:
                if name == "iq" and origin is not None and origin.localpart == toJID.user:
                    kind = "self"
                else:
                    kind = "bare"
            else:
                kind = "full"

        event = Event(self.host, stanza, origin, toJID, kind, stanzaType)
        checked = self.hooks.run(f"pre-{name}/{kind}", event)
        if not checked:
            return self._handle(event)
        if isinstance(checked, Deferred):
            return checked.addCallback(self._checked, event)
        return None

    def _checked(self, stopped, event):
        return None if stopped else self._handle(event)

    def _handle(self, event):
        """
        The events after the checks: C{message/*} (its handlers may pause
        it; delivery is the last one), IQ requests by payload, presence.
        """
        name = event.stanza.name
        kind = event.kind
        if name == "message":
            return self.hooks.run(f"message/{kind}", event)
        fire = self.hooks.fire
        if name == "iq":
            stanzaType = event.stanzaType
            if stanzaType == "get" or stanzaType == "set":
                child = firstChild(event.stanza)
                if child is None:
                    return self._badRequest(event.origin, event.stanza, "iq get/set needs a payload")
                if fire(f"iq-{stanzaType}/{kind}/{child.uri}:{child.name}", event):
                    return None
            if fire(f"iq/{kind}", event):
                return None
            return self._defaultIQ(event)
        if fire(f"presence/{kind}", event):
            return None
        return self._defaultPresence(event)

    # -- RFC 6120 / 6121 defaults --------------------------------------

    def _defaultIQ(self, event) -> None:
        """
        RFC 6120 §8.2.3, §10.5.3: IQs to a full JID are forwarded to that
        session; anything else unhandled gets C{service-unavailable}.
        Results and errors nobody claims are dropped.
        """
        stanza = event.stanza
        if event.kind == "full" and event.to.user is not None:
            session = self.sessions.get(event.to.userhost(), event.to.resource)
            if session is not None:
                session.send(stanza)
                return None
        if event.stanzaType in ("get", "set"):
            self.sendError(event.origin, stanza, "service-unavailable")
        return None

    def deliverMessage(self, event):
        """
        The last C{message/*} handler (RFC 6121 §8.5, RFC 6120 §10.3-§10.5):
        a message to the server gets C{service-unavailable}, an error to a
        bare JID is dropped (§8.5.2.1.1); C{groupchat}
        to a user is refused the same way unless it is for a bound full JID
        (§8.5.3.1); otherwise the L{recipients} get it, and with none a
        C{chat} or C{normal} message goes to the C{message/offline} event
        (the offline module stores it, or delivers it to a session that
        became available meanwhile), and C{service-unavailable} if nobody
        takes it.  Errors and headlines nobody can take are dropped.
        """
        stanza = event.stanza
        stanzaType = event.stanzaType
        to = event.to
        if event.kind == "host":
            if stanzaType != "error":
                self.sendError(event.origin, stanza, "service-unavailable")
            return True
        if stanzaType == "error" and event.kind == "bare":
            return True  # §8.5.2.1.1: an error to a bare JID is silently ignored
        bare = to.userhost()
        targets = recipients(self.sessions, bare, stanzaType,
                             to.resource if event.kind == "full" else None)
        if stanzaType == "groupchat" and not (targets and event.kind == "full"):
            self.sendError(event.origin, stanza, "service-unavailable")
            return True
        if targets:
            for session in targets:
                session.send(stanza)
            self.delivered.inc()
            return True
        if stanzaType != "chat" and stanzaType != "normal":
            return True
        stored = self.hooks.run("message/offline", event)
        if stored:
            return stored
        self.sendError(event.origin, stanza, "service-unavailable")
        return True

    def _defaultPresence(self, event) -> None:
        """
        Presence nobody handled: directed presence to a full JID is passed
        on (RFC 6121 §4.6); everything else is dropped.
        """
        if event.kind == "full" and event.to.user is not None:
            session = self.sessions.get(event.to.userhost(), event.to.resource)
            if session is not None:
                session.send(event.stanza)
        return None

    # -- helpers ------------------------------------------------------

    def sendError(self, origin, stanza, condition: str, text: str | None = None) -> None:
        """
        Answer C{stanza} with a stanza error, never answering an error with
        an error (RFC 6120 §8.3.1).
        """
        if stanza.getAttribute("type") == "error":
            return
        reply = errorReply(stanza, condition, text)
        if reply.getAttribute("from") is None:
            reply["from"] = self.domain
        if origin is not None:
            origin.send(reply)
        elif reply.getAttribute("to"):
            self.deliver(reply)

    def _badRequest(self, origin, stanza, text: str) -> None:
        self.sendError(origin, stanza, "bad-request", text)


def _readHold(session, hold: bool) -> None:
    """
    Stop (or resume) reading from C{session}'s client while its backlog is
    long; transports without flow control (BOSH: its request window bounds
    it) are left alone.
    """
    transport = readerOf(session)
    if transport is not None:
        if hold:
            transport.holdReading("pipeline")
        else:
            transport.releaseReading("pipeline")
