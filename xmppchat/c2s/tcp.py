"""
XMPP over TCP (RFC 6120 §4): the classic C{<stream:stream>} framing, with
STARTTLS (RFC 6120 §5) on the c2s port and TLS from the first byte on the
direct-TLS port (XEP-0368).

One hardened L{StreamParser} per connection turns bytes into elements for a
L{C2SStream}; stream errors are written before the connection is closed
(RFC 6120 §4.9.1.1, with an opening header first when none was sent yet).

A client that stops reading is not read either, and is dropped past
C{limits.max_unsent_bytes} (L{SlowReaderGuard}).
Per-address connection limits (L{xmppchat.ratelimit.ConnectionLimiter}) are
applied when a connection is accepted: a refused one gets a
C{policy-violation} stream error on the STARTTLS port and is closed before
the TLS handshake on the direct-TLS port.
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.logger import Logger

from xmppchat.c2s.backpressure import SlowReaderGuard
from xmppchat.c2s.negotiation import BOUND, C2SStream
from xmppchat.c2s.traffic import redact
from xmppchat.stanzas import NS_CLIENT, NS_STREAMS
from xmppchat.xmlstream import StreamError, StreamParser

STREAM_PREFIXES = {NS_STREAMS: "stream"}
STREAM_SCOPE = ["stream"]


def streamHeader(streamId: str, domain: str, namespace: str = NS_CLIENT) -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{namespace}' "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        f"id='{streamId}' from='{domain}' version='1.0' xml:lang='en'>"
    ).encode("utf-8")


class C2STCPProtocol(SlowReaderGuard, protocol.Protocol):
    """
    One client TCP connection.

    Subclasses speak other stream namespaces over the same hardened
    parser, limits and timeouts (L{xmppchat.component}, XEP-0114):
    C{namespace} is the stream's default namespace, C{streamClass} what
    parsed elements go to.
    """

    log = Logger()
    canStartTLS = True
    anyTo = False
    namespace = NS_CLIENT
    streamClass = C2SStream

    def __init__(self, factory):
        self.factory = factory
        self.host = factory.host
        self.secure = factory.directTLS
        self.headerSent = False
        self.stream: C2SStream | None = None
        self.parser: StreamParser | None = None
        self.peer = ""
        self.lastReceived = 0.0
        self._timeout = None
        self._closing = False
        self.counted: str | None = None

    # -- twisted protocol ---------------------------------------------

    @property
    def kind(self) -> str:
        return "c2s-tls" if self.factory.directTLS else "c2s"

    def connectionMade(self):
        self.peer = getattr(self.transport.getPeer(), "host", "")
        # Stanzas are small and latency-bound: no Nagle delay (ejabberd does
        # the same).  Writes are still coalesced per reactor iteration.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            try:
                setNoDelay(True)
            except OSError:
                pass
        limits = self.host.config.limits
        self.parser = StreamParser(
            self._streamStarted, self._elementReceived, self._streamEnded,
            maxStanzaBytes=limits.max_stanza_bytes, maxDepth=limits.max_depth,
        )
        self.stream = self.streamClass(self.host, self)
        clock = self.host.clock
        self.lastReceived = clock.seconds()
        if limits.negotiation_seconds:
            self._timeout = clock.callLater(limits.negotiation_seconds, self._negotiationTimeout)
        self.guardWrites()
        self.factory.connectionMade(self)

    def dataReceived(self, data: bytes):
        self.lastReceived = self.host.clock.seconds()
        if self.factory.logTraffic:
            self.log.debug("RECV {peer}: {data!r}", peer=self.peer, data=redact(data))
        try:
            self.parser.feed(data)
        except StreamError as e:
            self.stream.closed = True
            self.close(e.toElement())

    def connectionLost(self, reason):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None
        self.factory.connectionLost(self)
        if self.stream is not None:
            self.stream.connectionLost()

    # -- parser callbacks ---------------------------------------------

    def _streamStarted(self, root):
        if root.uri != NS_STREAMS or root.name != "stream":
            self.stream.close("invalid-namespace", "Expected a stream:stream header")
            return
        if root.defaultUri not in (None, "", self.namespace):
            self.stream.close("invalid-namespace", f"This port speaks {self.namespace}")
            return
        self.stream.streamStarted(root.attributes)

    def _elementReceived(self, element):
        self.stream.elementReceived(element)

    def _streamEnded(self):
        self.stream.streamEnded()

    def _negotiationTimeout(self):
        self._timeout = None
        if self.stream.phase != BOUND:
            self.stream.close("connection-timeout", "Stream negotiation took too long")

    # -- ITransport ---------------------------------------------------

    def sendHeader(self, streamId, domain, features):
        out = []
        if not self.headerSent:
            self.headerSent = True
            out.append(streamHeader(streamId, domain, self.namespace))
        if features is not None:
            out.append(features.toXml(prefixes=STREAM_PREFIXES, prefixesInScope=STREAM_SCOPE).encode("utf-8"))
        self._write(b"".join(out))

    def send(self, element):
        self._write(element.toXml().encode("utf-8"))

    def startTLS(self):
        self.transport.startTLS(self.factory.tlsContext)
        self.secure = True

    def restart(self):
        # RFC 6120 §4.3.3: a fresh parser for the new stream.  Called from
        # a parser callback, reset() also discards the rest of the current
        # chunk, so nothing sent before the restart (e.g. plaintext after
        # <starttls/>) is read as part of the new stream.
        self.headerSent = False
        self.parser.reset()

    def close(self, error=None):
        if self._closing:
            return
        self._closing = True
        out = []
        if not self.headerSent:
            self.headerSent = True
            out.append(streamHeader("error", self.host.domain, self.namespace))
        if error is not None:
            out.append(error.toXml(prefixes=STREAM_PREFIXES, prefixesInScope=STREAM_SCOPE).encode("utf-8"))
            self.log.info("Stream error to {peer}: {error}", peer=self.peer, error=error.toXml())
        out.append(b"</stream:stream>")
        self._write(b"".join(out))
        self.transport.loseConnection()
        clock = self.host.clock
        # A peer that never reads must not keep the socket forever.
        clock.callLater(5, self._abort)

    def bound(self):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    # -- internals ----------------------------------------------------

    def _write(self, data: bytes):
        if self.factory.logTraffic:
            self.log.debug("SEND {peer}: {data!r}", peer=self.peer, data=redact(data))
        if self.mayWrite(len(data), self.host.config.limits.max_unsent_bytes):
            self.transport.write(data)

    def _abort(self):
        if self.transport.connected:
            self.transport.abortConnection()


class RefusedProtocol(protocol.Protocol):
    """
    A connection refused at accept time: a stream header and a
    C{policy-violation} stream error (RFC 6120 §4.9.3.14), then close.
    """

    def __init__(self, domain: str, reason: str):
        self.domain = domain
        self.reason = reason

    def connectionMade(self):
        error = StreamError("policy-violation", self.reason).toElement()
        self.transport.write(
            streamHeader("refused", self.domain)
            + error.toXml(prefixes=STREAM_PREFIXES, prefixesInScope=STREAM_SCOPE).encode("utf-8")
            + b"</stream:stream>")
        self.transport.loseConnection()


class C2SFactory(protocol.ServerFactory):
    """
    Listens for clients of one host, with STARTTLS (C{directTLS=False}) or
    behind a TLS listener (C{directTLS=True}, XEP-0368).
    """

    log = Logger()
    protocol = C2STCPProtocol
    noisy = False  # no "Starting factory <...>" lines (issue 18 item 2)

    def __init__(self, host, tlsContext, directTLS=False, logTraffic=False):
        self.host = host
        self.tlsContext = tlsContext
        self.directTLS = directTLS
        self.logTraffic = logTraffic
        self.connections: set = set()

    def buildProtocol(self, addr):
        address = getattr(addr, "host", "")
        reason = self.host.connectionLimiter.admit(address)
        if reason is not None:
            self.log.debug("Refused a connection: {reason}", reason=reason)
            if self.directTLS:
                return None
            return RefusedProtocol(self.host.domain, reason)
        proto = self.protocol(self)
        proto.counted = address
        return proto

    def connectionMade(self, proto):
        self.connections.add(proto)

    def connectionLost(self, proto):
        self.connections.discard(proto)
        if proto.counted is not None:
            self.host.connectionLimiter.release(proto.counted)
            proto.counted = None
