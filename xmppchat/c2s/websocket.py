"""
XMPP over WebSocket (RFC 7395), on autobahn.

The upgrade must offer the C{xmpp} sub-protocol, which is echoed (§3.1;
the ConnectyCube SDK aborts without it); the path and, when configured,
the C{Origin} are checked.  Each text frame holds one element (§3.3),
parsed by one L{FrameParser} call under the stream limits.  The framing
elements of §3.3.2 replace the stream header: the client's C{<open/>} is
answered with ours and the features (§3.4), a stream restart is a new
C{<open/>} (§3.5), C{<close/>} ends the stream from either side (§3.6),
and stream errors are followed by C{<close/>} (§3.6.2).

Any C{to} is accepted and served as the configured domain (clients send
the URL's host).  There is no STARTTLS (§3.7): the stream counts as
secure on C{wss://} and, unless configured otherwise, from a loopback
peer (a local client or a TLS-terminating proxy on the same machine).

A client that stops reading is not read either, and is dropped past
C{limits.max_unsent_bytes} (L{SlowReaderGuard}).
The per-address connection limits of TCP (the host's
L{xmppchat.ratelimit.ConnectionLimiter}, shared by every transport: issue
15 finding 6) apply to the client's address: a connection from anyone
but a trusted proxy is counted (or dropped) when it is accepted, before
any HTTP is parsed; one from a C{[limits] trusted_proxies} address is
counted at the upgrade request under the client its C{X-Forwarded-For}
names (L{xmppchat.clientaddress}), and refused with HTTP 429 over the
limit.  That address is also the one the failed-login throttle and the
logs see.
"""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat.c2s.backpressure import SlowReaderGuard
from xmppchat.c2s.negotiation import BOUND, C2SStream
from xmppchat.c2s.traffic import redact
from xmppchat.ratelimit import isLoopback
from xmppchat.stanzas import NS_STREAMS
from xmppchat.xmlstream import NS_FRAMING, NS_XML, FrameParser, StreamError

SUBPROTOCOL = "xmpp"
STREAM_PREFIXES = {NS_STREAMS: "stream"}

# Frames up to this multiple of max_stanza_bytes are read and refused with
# a stream error; larger ones make autobahn fail the connection (1009).
FRAME_SLACK = 2
CLOSE_GRACE_SECONDS = 5
TOO_MANY_REQUESTS = 429


def openElement(streamId: str, domain: str) -> domish.Element:
    """
    Our C{<open/>} (RFC 7395 §3.4).
    """
    element = domish.Element((NS_FRAMING, "open"))
    element["from"] = domain
    element["id"] = streamId
    element["version"] = "1.0"
    element[(NS_XML, "lang")] = "en"
    return element


CLOSE = domish.Element((NS_FRAMING, "close")).toXml().encode("utf-8")


class XMPPWebSocketProtocol(SlowReaderGuard, WebSocketServerProtocol):
    """
    One client WebSocket connection, carrying one L{C2SStream}.
    """

    log = Logger()
    canStartTLS = False
    anyTo = True
    kind = "websocket"

    def __init__(self):
        WebSocketServerProtocol.__init__(self)
        self.stream: C2SStream | None = None
        self.parser: FrameParser | None = None
        self.secure = False
        self.peer = ""
        self.lastReceived = 0.0
        self.awaitingOpen = True
        self._timeout = None
        self._closing = False
        self._abortCall = None
        # the address counted by the host's connection limiter, if any
        self.counted: str | None = None

    # -- autobahn callbacks -------------------------------------------

    def onConnect(self, request):
        """
        Check the upgrade request; echo the C{xmpp} sub-protocol (§3.1).
        """
        factory = self.factory
        if request.path != factory.path:
            raise ConnectionDeny(404, f"No XMPP WebSocket endpoint at {request.path}")
        if SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(400, "The 'xmpp' WebSocket sub-protocol is required (RFC 7395 §3.1)")
        if factory.allowedOrigins and request.origin not in factory.allowedOrigins:
            raise ConnectionDeny(403, "Origin not allowed")
        peer = getattr(self.transport.getPeer(), "host", "")
        self.peer = factory.host.trustedProxies.client(peer, request.headers.get("x-forwarded-for"))
        if self.counted is None:
            reason = factory.host.connectionLimiter.admit(self.peer)
            if reason is not None:
                raise ConnectionDeny(TOO_MANY_REQUESTS, reason)
            self.counted = self.peer
        return SUBPROTOCOL

    def onOpen(self):
        factory = self.factory
        host = factory.host
        peer = getattr(self.transport.getPeer(), "host", "")
        self.secure = factory.tls or (factory.loopbackSecure and isLoopback(peer))
        limits = host.config.limits
        self.parser = FrameParser(limits.max_stanza_bytes, limits.max_depth)
        self.stream = C2SStream(host, self)
        clock = host.clock
        self.lastReceived = clock.seconds()
        if limits.negotiation_seconds:
            self._timeout = clock.callLater(limits.negotiation_seconds, self._negotiationTimeout)
        self.guardWrites()
        factory.connections.add(self)

    def onMessage(self, payload, isBinary):
        stream = self.stream
        if stream is None or stream.closed:
            return
        self.lastReceived = self.factory.host.clock.seconds()
        if self.factory.logTraffic:
            self.log.debug("RECV {peer}: {data!r}", peer=self.peer, data=redact(payload))
        if isBinary:
            return stream.close("bad-format", "XMPP is sent in text frames (RFC 7395 §3.2)")
        try:
            element = self.parser.parse(payload)
        except StreamError as e:
            return stream.close(e.condition, e.text)
        if element.uri == NS_FRAMING:
            return self._framing(element)
        if self.awaitingOpen:
            return stream.close("bad-format", "Expected <open/> (RFC 7395 §3.4)")
        stream.elementReceived(element)

    def onClose(self, wasClean, code, reason):
        self._cancel()
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
        self.factory.connections.discard(self)
        if self.stream is not None:
            self.stream.connectionLost()

    def connectionLost(self, reason=connectionDone):
        if self.counted is not None:
            self.factory.host.connectionLimiter.release(self.counted)
            self.counted = None
        WebSocketServerProtocol.connectionLost(self, reason)

    # -- framing ------------------------------------------------------

    def _framing(self, element):
        stream = self.stream
        if element.name == "open":
            if not self.awaitingOpen:
                return stream.close("bad-format", "Unexpected <open/> (RFC 7395 §3.5)")
            self.awaitingOpen = False
            stream.streamStarted(element.attributes)
        elif element.name == "close":
            stream.streamEnded()
        else:
            stream.close("unsupported-stanza-type", f"Unexpected element {element.name!r}")

    def _negotiationTimeout(self):
        self._timeout = None
        if self.stream.phase != BOUND:
            self.stream.close("connection-timeout", "Stream negotiation took too long")

    def _cancel(self):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    # -- ITransport ---------------------------------------------------

    def sendHeader(self, streamId, domain, features):
        self._write(openElement(streamId, domain).toXml().encode("utf-8"))
        self._write(features.toXml(prefixes=STREAM_PREFIXES).encode("utf-8"))

    def send(self, element):
        self._write(element.toXml().encode("utf-8"))

    def startTLS(self):
        raise NotImplementedError("No STARTTLS on WebSocket (RFC 7395 §3.7)")

    def restart(self):
        self.awaitingOpen = True

    def close(self, error=None):
        """
        A stream error if any, then C{<close/>} (RFC 7395 §3.6), then the
        WebSocket closing handshake; a peer that does not finish it is
        dropped after a grace period.
        """
        if self._closing:
            return
        self._closing = True
        self._cancel()
        if error is not None:
            self.log.info("Stream error to {peer}: {error}", peer=self.peer, error=error.toXml())
            self._write(error.toXml(prefixes=STREAM_PREFIXES).encode("utf-8"))
        self._write(CLOSE)
        self.sendClose(1000)
        self._abortCall = self.factory.host.clock.callLater(CLOSE_GRACE_SECONDS, self._abort)

    def bound(self):
        self._cancel()

    # -- internals ----------------------------------------------------

    def _write(self, data: bytes):
        if self.factory.logTraffic:
            self.log.debug("SEND {peer}: {data!r}", peer=self.peer, data=redact(data))
        if self.mayWrite(len(data), self.factory.host.config.limits.max_unsent_bytes):
            self.sendMessage(data, isBinary=False)

    def _abort(self):
        self._abortCall = None
        if self.transport is not None and getattr(self.transport, "connected", True):
            self.transport.abortConnection()


class XMPPWebSocketFactory(WebSocketServerFactory):
    """
    Listens for RFC 7395 clients of one host.

    @ivar connections: the open connections (for shutdown).
    """

    protocol = XMPPWebSocketProtocol
    log = Logger()
    noisy = False  # no "Starting factory <...>" lines (issue 18 item 2)

    def __init__(self, host, tls=False, path="/", allowedOrigins=(), loopbackSecure=True,
                 logTraffic=False):
        WebSocketServerFactory.__init__(self, protocols=[SUBPROTOCOL])
        self.host = host
        self.tls = tls
        self.path = path
        self.allowedOrigins = frozenset(allowedOrigins)
        self.loopbackSecure = loopbackSecure
        self.logTraffic = logTraffic
        self.connections: set = set()
        limit = host.config.limits.max_stanza_bytes * FRAME_SLACK
        self.setProtocolOptions(
            webStatus=False,
            maxFramePayloadSize=limit,
            maxMessagePayloadSize=limit,
            # Compression is declined (the default): no inflation bombs.
            perMessageCompressionAccept=lambda offers: None,
        )


    def buildProtocol(self, addr):
        """
        A connection from anyone but a trusted proxy is counted against its
        address now, before any HTTP is read, and dropped over the limit
        (as the direct-TLS port does); a trusted proxy's is counted at the
        upgrade request, under the client it names.
        """
        address = getattr(addr, "host", "")
        counted = None
        if not self.host.trustedProxies.trusts(address):
            reason = self.host.connectionLimiter.admit(address)
            if reason is not None:
                self.log.debug("Refused a WebSocket connection: {reason}", reason=reason)
                return None
            counted = address
        proto = WebSocketServerFactory.buildProtocol(self, addr)
        proto.counted = counted
        return proto


def webSocketFactory(host, config) -> XMPPWebSocketFactory:
    """
    The factory for the C{[websocket]} section of C{config}.
    """
    ws = config.websocket
    return XMPPWebSocketFactory(
        host, tls=ws.tls, path=ws.path, allowedOrigins=ws.allowed_origins,
        loopbackSecure=ws.loopback_secure, logTraffic=config.c2s.log_traffic,
    )
