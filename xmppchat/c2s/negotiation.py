"""
Client stream negotiation, transport-agnostic (RFC 6120 §4-§7).

A L{C2SStream} is the state of one client stream: it walks the phases
CONNECTED -> SECURED -> AUTHENTICATED -> BOUND, asks modules for stream
features at each (re)start (event C{stream-features}), and hands each
top-level element to the module that registered for it (event
C{stream-element/<namespace>:<name>}: C{starttls}, SASL C{auth}, stream
management...).  Before binding, IQs are offered as
C{negotiate-iq/<namespace>:<name>} (resource binding, RFC 6120 §7); once
bound, stanzas go to the router.  When the transport goes away, the
session ends unless a C{stream-lost} handler keeps it (stream management,
XEP-0198 §5, waiting for the client to resume).

The transport (TCP, WebSocket, BOSH) implements L{ITransport}: it frames
headers and errors its own way and feeds parsed elements back here.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat import observe
from xmppchat.stanzas import NS_CLIENT, NS_STREAMS, STANZA_NAMES, firstChild
from xmppchat.xmlstream import StreamError

CONNECTED, SECURED, AUTHENTICATED, BOUND = range(4)
PHASE_NAMES = ("connected", "secured", "authenticated", "bound")


class ITransport(Protocol):
    """
    What a C{C2SStream} needs from its transport.

    @ivar secure: the connection is encrypted (TLS, or C{wss://}).
    @ivar canStartTLS: STARTTLS can be offered on this transport.
    @ivar peer: the client's IP address, for limits and logs.
    @ivar anyTo: accept any C{to} on the stream header (RFC 7395
        WebSocket clients send the URL's host).
    @ivar kind: its name in the log and the metrics: C{c2s} (STARTTLS),
        C{c2s-tls} (direct TLS), C{websocket}, C{bosh}.
    """

    secure: bool
    canStartTLS: bool
    peer: str
    anyTo: bool

    def sendHeader(self, streamId: str, domain: str, features: domish.Element) -> None: ...

    def send(self, element: domish.Element) -> None: ...

    def startTLS(self) -> None: ...

    def restart(self) -> None: ...

    def close(self, error: domish.Element | None = None) -> None: ...

    def bound(self) -> None: ...


class StreamEvent:
    """
    The event of C{stream-features}, C{stream-element/...} and
    C{negotiate-iq/...}: the stream, and the element or features.
    """

    __slots__ = ("stream", "stanza", "features", "origin")

    def __init__(self, stream, stanza=None, features=None):
        self.stream = stream
        self.stanza = stanza
        self.features = features
        self.origin = stream.session


class C2SStream:
    """
    One client-to-server stream above any transport.

    @ivar state: per-module negotiation state (e.g. the SASL exchange).
    """

    log = Logger()

    def __init__(self, host, transport: ITransport):
        self.host = host
        self.transport = transport
        self.phase = SECURED if transport.secure else CONNECTED
        self.session = None
        self.account = None
        # the session token (TokenRecord) SASL accepted, None for the password
        self.credential = None
        # the SASL mechanism that authenticated it (for the log)
        self.mechanism: str | None = None
        self.localpart: str | None = None
        self.streamId: str | None = None
        self.state: dict = {}
        self.closed = False
        self.lang = "en"
        # how the stream ended: the client closed it (RFC 6120 §4.4), or the
        # server did with this stream error condition (XEP-0198 §7 needs both)
        self.clientClosed = False
        self.closeCondition: str | None = None

    @property
    def secure(self) -> bool:
        return self.transport.secure

    @property
    def peer(self) -> str:
        return self.transport.peer

    @property
    def kind(self) -> str:
        return getattr(self.transport, "kind", "c2s")

    # -- from the transport -------------------------------------------

    def streamStarted(self, attributes: dict) -> None:
        """
        A stream header arrived (initial or after a restart): check it and
        answer with our header and the features of the current phase.
        """
        to = attributes.get("to")
        if to is not None and to.lower() != self.host.domain and not self.transport.anyTo:
            return self.close("host-unknown", f"This server serves {self.host.domain}")
        version = attributes.get("version", "0.9")
        major = version.split(".", 1)[0]
        if not major.isdigit() or int(major) < 1:
            return self.close("unsupported-version", "XMPP 1.0 streams only")
        self.lang = attributes.get((("http://www.w3.org/XML/1998/namespace"), "lang"), "en")
        self.streamId = secrets.token_urlsafe(16)
        features = domish.Element((NS_STREAMS, "features"))
        if self.phase != BOUND:
            self.host.hooks.fire("stream-features", StreamEvent(self, features=features))
        self.transport.sendHeader(self.streamId, self.host.domain, features)

    def elementReceived(self, element: domish.Element) -> None:
        """
        A complete top-level element arrived.
        """
        if self.closed:
            return
        if self.phase == BOUND and element.uri == NS_CLIENT and element.name in STANZA_NAMES:
            session = self.session
            try:
                self.host.router.route(session, element)
            except Exception:
                self.log.failure("Routing failed for a stanza from {jid}", jid=session.full)
            if session.sm is not None:
                session.sm.stanzaHandled()
            return
        event = StreamEvent(self, element)
        hooks = self.host.hooks
        if hooks.fire(f"stream-element/{element.uri}:{element.name}", event):
            return
        if element.uri == NS_CLIENT and element.name in STANZA_NAMES:
            if self.phase == AUTHENTICATED and element.name == "iq":
                child = firstChild(element)
                if child is not None and hooks.fire(f"negotiate-iq/{child.uri}:{child.name}", event):
                    return
                return self.close("not-authorized", "Bind a resource first (RFC 6120 §7)")
            return self.close("not-authorized", "Authenticate first (RFC 6120 §6)")
        return self.close("unsupported-stanza-type", f"Unexpected element {element.name!r}")

    def streamEnded(self) -> None:
        """
        The client closed its stream (RFC 6120 §4.4): close ours.
        """
        self.clientClosed = True
        self.close()

    def connectionLost(self) -> None:
        """
        The transport is gone.  The session ends unless a C{stream-lost}
        handler keeps it (XEP-0198 §5: waiting for resumption).
        """
        self.closed = True
        session = self.session
        if session is not None and not self.host.hooks.fire("stream-lost", StreamEvent(self)):
            self.host.endSession(session)
        self.host.hooks.fire("stream-closed", StreamEvent(self))

    # -- for modules --------------------------------------------------

    def send(self, element: domish.Element) -> None:
        if not self.closed:
            self.transport.send(element)

    def close(self, condition: str | None = None, text: str | None = None,
              appCondition: domish.Element | None = None) -> None:
        """
        Close the stream, with a stream error (RFC 6120 §4.9) if
        C{condition} is given, and an application-specific condition
        element (§4.9.4) if C{appCondition} is.
        """
        if self.closed:
            return
        self.closed = True
        self.closeCondition = condition
        error = StreamError(condition, text).toElement() if condition else None
        if error is not None and appCondition is not None:
            error.addChild(appCondition)
        self.transport.close(error)

    def secured(self) -> None:
        """
        TLS was negotiated (RFC 6120 §5.4.3.3): a new stream follows.
        """
        self.phase = SECURED
        self.transport.startTLS()
        self.transport.restart()

    def authenticated(self, localpart: str, account, credential=None, mechanism=None) -> None:
        """
        SASL succeeded (RFC 6120 §6.4.6): remember who, with which
        credential (the session token's L{TokenRecord}, C{None} for the
        password: its revocation ends the stream, L{xmppchat.auth.revocation})
        and C{mechanism}, and restart.
        """
        self.phase = AUTHENTICATED
        self.localpart = localpart
        self.account = account
        self.credential = credential
        self.mechanism = mechanism
        self.transport.restart()

    def bound(self, session, resumed: bool = False) -> None:
        """
        A resource was bound (RFC 6120 §7), or a session C{resumed} on this
        stream (XEP-0198 §5): stanzas now go to the router.  The log and
        the metrics see a C{login} (L{xmppchat.observe}).
        """
        self.phase = BOUND
        self.session = session
        self.transport.bound()
        observe.emit("login", jid=session.full, transport=self.kind, mechanism=self.mechanism,
                     address=self.peer, resumed=resumed)
        self.host.hooks.fire("stream-bound", StreamEvent(self))
