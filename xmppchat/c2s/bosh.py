"""
XMPP over BOSH: XEP-0124 (Bidirectional-streams Over Synchronous HTTP)
with the XMPP binding of XEP-0206, as a C{twisted.web} resource.

  - session creation (XEP-0124 §7-§8) with an unguessable C{sid}, C{wait},
    C{hold}, C{requests} and C{inactivity} negotiated down to the
    configured maxima; the stream features come in the creation response
    (XEP-0206 §6);
  - C{rid} ordering (§14): requests are processed in C{rid} order inside a
    window of C{requests}, early ones wait for the missing ones, the last
    C{requests} responses are kept and sent again for a retransmitted
    C{rid}, anything else is C{item-not-found};
  - held requests (§11): at most C{hold} are kept, the oldest is answered
    when more arrive or when there is data, each after C{wait} seconds at
    the latest; with none held for C{inactivity} seconds the session ends
    (§12);
  - stream restarts with C{xmpp:restart="true"} after SASL (XEP-0206 §5);
  - C{type="terminate"} from the client (§13) or from us, with the
    conditions of §17 (C{remote-stream-error} carrying the stream error,
    XEP-0206 §7); bodies larger than the configured limit or not a
    C{<body/>} are C{bad-request} / C{policy-violation};
  - per client address, sessions count as connections of the host's
    L{xmppchat.ratelimit.ConnectionLimiter} (the TCP and WebSocket limits:
    C{connections_per_ip} open, C{connection_rate_per_ip} new per second),
    so one address cannot fill the C{max_sessions} table (issue 15
    finding 6); a creation over them is C{policy-violation}.  Behind a
    C{[limits] trusted_proxies} proxy the client is the one its
    C{X-Forwarded-For} names (L{xmppchat.clientaddress}).

L{boshResource} builds the resource, to mount on any site
(C{root.putChild(b"http-bind", boshResource(host, config.bosh))}); the
optional C{[bosh]} listener serves it alone.  Each BOSH session drives one
L{C2SStream}, as a TCP connection does.
"""

from __future__ import annotations

import secrets
from collections import deque

from twisted.logger import Logger
from twisted.web import resource, server

from xmppchat.c2s.negotiation import BOUND, C2SStream
from xmppchat.httpsite import QuietSite
from xmppchat.ratelimit import isLoopback
from xmppchat.stanzas import NS_STREAMS
from xmppchat.xmlstream import NS_CLIENT, FrameParser, StreamError

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
BOSH_VERSION = "1.11"
MAX_RID = 2**53 - 1
CONTENT_TYPE = b"text/xml; charset=utf-8"
BODY_OPEN = f"<body xmlns='{NS_HTTPBIND}'".encode()
STREAM_PREFIXES = {NS_STREAMS: "stream"}


class BOSHTerminate(Exception):
    """
    End the request (and the session, if any) with a terminal binding
    condition of XEP-0124 §17.
    """

    def __init__(self, condition: str, status: int = 200):
        Exception.__init__(self, condition)
        self.condition = condition
        self.status = status


def terminateBody(condition: str | None = None, content: bytes = b"") -> bytes:
    """
    A C{<body type="terminate"/>}, with C{condition} (XEP-0124 §17).
    """
    attributes = b" type='terminate'"
    if condition:
        attributes += f" condition='{condition}'".encode()
    if condition == "remote-stream-error":
        attributes += f" xmlns:stream='{NS_STREAMS}'".encode()
    if content:
        return BODY_OPEN + attributes + b">" + content + b"</body>"
    return BODY_OPEN + attributes + b"/>"


def _intAttribute(body, name: str, default: int | None = None, maximum: int = MAX_RID) -> int:
    value = body.getAttribute(name)
    if value is None:
        if default is None:
            raise BOSHTerminate("bad-request", 400)
        return default
    if not value.isdigit() or len(value) > 16 or int(value) > maximum:
        raise BOSHTerminate("bad-request", 400)
    return int(value)


class HeldRequest:
    """
    A request waiting for data (XEP-0124 §11).
    """

    __slots__ = ("rid", "request", "timer")

    def __init__(self, rid, request, timer):
        self.rid = rid
        self.request = request
        self.timer = timer


class BOSHSession:
    """
    One BOSH session: the L{ITransport} of its L{C2SStream}.
    """

    log = Logger()
    canStartTLS = False
    anyTo = False
    transportName = "bosh"  # the transport label of logs and metrics (xmppchat.observe)

    def __init__(self, manager, sid: str, rid: int, wait: int, hold: int, peer: str, secure: bool):
        self.manager = manager
        self.host = manager.host
        self.clock = manager.host.clock
        self.sid = sid
        self.lastRid = rid
        self.wait = wait
        self.hold = hold
        self.requests = hold + 1
        self.inactivity = manager.config.max_inactivity
        self.peer = peer
        self.secure = secure
        self.lastReceived = self.clock.seconds()
        self.awaitingRestart = False
        self.pending: list[bytes] = []
        self.pendingBytes = 0
        self.held: deque[HeldRequest] = deque()
        self.early: dict[int, tuple] = {}
        self.responses: dict[int, bytes] = {}
        self.terminal: bytes | None = None
        self.ended = False
        # the address counted by the host's connection limiter, if any
        self.counted: str | None = None
        self._flushCall = None
        self._inactivityCall = None
        self._negotiationCall = None
        self.stream = C2SStream(self.host, self)
        limits = self.host.config.limits
        if limits.negotiation_seconds:
            self._negotiationCall = self.clock.callLater(limits.negotiation_seconds, self._negotiationTimeout)

    # -- requests -----------------------------------------------------

    def receive(self, rid: int, body, request) -> None:
        """
        A request for this session arrived, with C{rid} and C{<body/>}.
        """
        self.lastReceived = self.clock.seconds()
        self._stopInactivity()
        if self.terminal is not None:
            return self._answer(request, rid, self._takeTerminal())
        if rid <= self.lastRid:
            cached = self.responses.get(rid)
            if cached is not None:
                return self.manager.write(request, cached)
            for held in self.held:
                if held.rid == rid:
                    # The client lost the connection of a held request and
                    # sent it again: the new connection takes its place.
                    held.request = request
                    self.manager.watch(self, held)
                    return
            raise BOSHTerminate("item-not-found")
        if rid > self.lastRid + self.requests:
            raise BOSHTerminate("item-not-found")
        if rid != self.lastRid + 1:
            if rid in self.early:
                raise BOSHTerminate("item-not-found")
            self.early[rid] = (body, request)
            return
        self._process(rid, body, request)
        while not self.ended and self.lastRid + 1 in self.early:
            rid = self.lastRid + 1
            body, request = self.early.pop(rid)
            try:
                self._process(rid, body, request)
            except BOSHTerminate as e:
                self.manager.write(request, terminateBody(e.condition))
                self.end()
        self._flush()

    def _process(self, rid, body, request) -> None:
        self.lastRid = rid
        for old in [r for r in self.responses if r <= rid - self.requests]:
            del self.responses[old]
        if body.getAttribute((NS_XBOSH, "restart")) == "true":
            if not self.awaitingRestart:
                raise BOSHTerminate("bad-request")
            self.awaitingRestart = False
            self._hold(rid, request)
            self.stream.streamStarted({"to": self.host.domain, "version": "1.0"})
            return
        stream = self.stream
        for child in body.elements():
            if stream.closed or self.awaitingRestart:
                break
            child.parent = None
            stream.elementReceived(child)
        if body.getAttribute("type") == "terminate":
            # the client ends its session (XEP-0124 §13): no waiting for
            # a resumption, and the log says it closed
            stream.clientClosed = True
            self._answer(request, rid, terminateBody())
            self.end()
            return
        self._hold(rid, request)

    def _hold(self, rid, request) -> None:
        if self.terminal is not None:
            return self._answer(request, rid, self._takeTerminal())
        if self.ended:
            return self._answer(request, rid, terminateBody())
        held = HeldRequest(rid, request, None)
        held.timer = self.clock.callLater(self.wait, self._waited, held)
        self.held.append(held)
        self.manager.watch(self, held)
        while len(self.held) > self.hold:
            self._respond(self.held.popleft())

    def _waited(self, held) -> None:
        held.timer = None
        if held in self.held:
            self.held.remove(held)
            self._respond(held)
            self._startInactivity()

    def requestLost(self, held) -> None:
        """
        The client dropped the connection of a held request.
        """
        if held in self.held:
            self.held.remove(held)
            if held.timer is not None and held.timer.active():
                held.timer.cancel()
            self._startInactivity()

    # -- responses ----------------------------------------------------

    def _respond(self, held, payload: bytes | None = None) -> None:
        if held.timer is not None and held.timer.active():
            held.timer.cancel()
        held.timer = None
        if payload is None:
            payload = self._takePending()
        self._answer(held.request, held.rid, payload)

    def _answer(self, request, rid, payload: bytes) -> None:
        self.responses[rid] = payload
        self.manager.write(request, payload)

    def _takePending(self) -> bytes:
        pending, self.pending, self.pendingBytes = self.pending, [], 0
        return BODY_OPEN + b">" + b"".join(pending) + b"</body>"

    def _flush(self) -> None:
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self.pending and self.held:
            self._respond(self.held.popleft())
        if not self.held and not self.ended:
            self._startInactivity()

    def _scheduleFlush(self) -> None:
        if self._flushCall is None:
            self._flushCall = self.clock.callLater(0, self._flush)

    def _takeTerminal(self) -> bytes:
        terminal, self.terminal = self.terminal, None
        self.end()
        return terminal

    # -- ITransport ---------------------------------------------------

    def sendHeader(self, streamId, domain, features):
        self._queue(features.toXml(prefixes=STREAM_PREFIXES).encode("utf-8"))

    def send(self, element):
        self._queue(element.toXml().encode("utf-8"))

    def _queue(self, data: bytes) -> None:
        if self.ended or self.terminal is not None:
            return
        self.pending.append(data)
        self.pendingBytes += len(data)
        if self.pendingBytes > self.manager.config.max_pending_bytes:
            # A client that stopped polling must not grow our memory.
            self.pending, self.pendingBytes = [], 0
            self.stream.close("policy-violation", "Too much undelivered data")
            return
        self._scheduleFlush()

    def startTLS(self):
        raise NotImplementedError("No STARTTLS on BOSH (XEP-0206 §4)")

    def restart(self):
        self.awaitingRestart = True

    def close(self, error=None):
        """
        End the session: pending stanzas and the stream error go in the
        terminal body (XEP-0206 §7), to a held request or the next one.
        """
        if self.ended or self.terminal is not None:
            return
        content = b"".join(self.pending)
        self.pending, self.pendingBytes = [], 0
        if error is not None:
            self.log.info("Stream error to {peer}: {error}", peer=self.peer, error=error.toXml())
            content += error.toXml(prefixes=STREAM_PREFIXES, prefixesInScope=["stream"]).encode("utf-8")
            self.terminal = terminateBody("remote-stream-error", content)
        else:
            self.terminal = terminateBody(None, content)
        if self.held:
            held = self.held.popleft()
            self._respond(held, self._takeTerminal())
        else:
            # Kept for the client's next request, a while at most.
            self._startInactivity()

    def bound(self):
        if self._negotiationCall is not None and self._negotiationCall.active():
            self._negotiationCall.cancel()
        self._negotiationCall = None

    # -- life cycle -----------------------------------------------------

    def end(self) -> None:
        """
        Forget the session: answer what is still held, end the stream.
        """
        if self.ended:
            return
        self.ended = True
        self.bound()
        self._stopInactivity()
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        while self.held:
            self._respond(self.held.popleft(), terminateBody())
        for _rid, (_body, request) in sorted(self.early.items()):
            self.manager.write(request, terminateBody("item-not-found"))
        self.early.clear()
        self.manager.forget(self)
        # Not from within the stream's own close(): the session ends next.
        self.clock.callLater(0, self.stream.connectionLost)

    def _startInactivity(self) -> None:
        if self._inactivityCall is None and not self.ended and not self.held:
            self._inactivityCall = self.clock.callLater(self.inactivity, self._inactive)

    def _stopInactivity(self) -> None:
        if self._inactivityCall is not None and self._inactivityCall.active():
            self._inactivityCall.cancel()
        self._inactivityCall = None

    def _inactive(self) -> None:
        self._inactivityCall = None
        if not self.held:
            self.log.info("BOSH session {sid} of {peer} inactive", sid=self.sid[:8], peer=self.peer)
            self.end()

    def _negotiationTimeout(self) -> None:
        self._negotiationCall = None
        if self.stream.phase != BOUND:
            self.stream.close("connection-timeout", "Stream negotiation took too long")


class BOSHResource(resource.Resource):
    """
    The XEP-0124 connection manager of one host, as a leaf resource.

    @ivar sessions: sid -> L{BOSHSession}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, host, config, tls=False):
        resource.Resource.__init__(self)
        self.host = host
        self.config = config
        self.tls = tls
        self.sessions: dict[str, BOSHSession] = {}
        limits = host.config.limits
        self.parser = FrameParser(config.max_body_bytes, limits.max_depth + 1, defaultNamespace=NS_CLIENT)
        self.allowedOrigins = frozenset(config.allowed_origins)

    @property
    def connections(self):
        """
        The sessions (for shutdown, like the TCP factories' connections).
        """
        return list(self.sessions.values())

    # -- HTTP -----------------------------------------------------------

    def _cors(self, request) -> bool:
        origin = request.getHeader("origin")
        if origin is None:
            return True
        if self.allowedOrigins and origin not in self.allowedOrigins:
            return False
        request.setHeader(b"access-control-allow-origin", origin.encode() if self.allowedOrigins else b"*")
        request.setHeader(b"access-control-allow-methods", b"POST, OPTIONS")
        request.setHeader(b"access-control-allow-headers", b"content-type")
        request.setHeader(b"access-control-max-age", b"86400")
        return True

    def render_OPTIONS(self, request):
        if not self._cors(request):
            request.setResponseCode(403)
            return b"Origin not allowed\n"
        return b""

    def render_GET(self, request):
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST, OPTIONS")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"XMPP over BOSH (XEP-0124/XEP-0206): POST <body/> elements here.\n"

    def render_POST(self, request):
        if not self._cors(request):
            request.setResponseCode(403)
            return b"Origin not allowed\n"
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        limit = self.config.max_body_bytes
        data = request.content.read(limit + 1)
        if len(data) > limit:
            request.setResponseCode(413)
            return terminateBody("policy-violation")
        session = None
        try:
            try:
                body = self.parser.parse(data)
            except StreamError:
                raise BOSHTerminate("bad-request", 400) from None
            if body.uri != NS_HTTPBIND or body.name != "body":
                raise BOSHTerminate("bad-request", 400)
            rid = _intAttribute(body, "rid")
            sid = body.getAttribute("sid")
            if sid is None:
                self.create(rid, body, request)
                return server.NOT_DONE_YET
            session = self.sessions.get(sid)
            if session is None:
                raise BOSHTerminate("item-not-found")
            session.receive(rid, body, request)
        except BOSHTerminate as e:
            if session is not None and not session.ended:
                session.end()
            if request.finished:
                return server.NOT_DONE_YET
            request.setResponseCode(e.status)
            return terminateBody(e.condition)
        return server.NOT_DONE_YET

    def write(self, request, payload: bytes) -> None:
        """
        Answer C{request} with C{payload}, unless its client went away.
        """
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.write(payload)
        request.finish()

    def watch(self, session, held) -> None:
        """
        Tell C{session} when the client drops C{held}'s connection.
        """
        request = held.request

        def lost(failure):
            if held.request is request:
                session.requestLost(held)

        request.notifyFinish().addErrback(lost)

    # -- sessions -------------------------------------------------------

    def create(self, rid, body, request) -> BOSHSession:
        """
        Session creation (XEP-0124 §7, XEP-0206 §5).
        """
        to = body.getAttribute("to")
        if to is not None and to.lower() != self.host.domain:
            raise BOSHTerminate("host-unknown")
        if rid == MAX_RID:
            raise BOSHTerminate("bad-request", 400)
        config = self.config
        wait = max(1, min(_intAttribute(body, "wait", config.max_wait), config.max_wait))
        hold = min(_intAttribute(body, "hold", 1), config.max_hold)
        peer = self.host.trustedProxies.ofRequest(request)
        if len(self.sessions) >= config.max_sessions:
            raise BOSHTerminate("policy-violation")
        reason = self.host.connectionLimiter.admit(peer)
        if reason is not None:
            self.log.debug("Refused a BOSH session: {reason}", reason=reason)
            raise BOSHTerminate("policy-violation")
        direct = getattr(request.getClientAddress(), "host", "") or ""
        secure = self.tls or request.isSecure() or (config.loopback_secure and isLoopback(direct))
        sid = secrets.token_urlsafe(24)
        session = BOSHSession(self, sid, rid, wait, hold, peer, secure)
        session.counted = peer
        self.sessions[sid] = session
        # The creation response carries the session attributes and the
        # stream features.
        session.stream.streamStarted({"to": self.host.domain, "version": "1.0"})
        attributes = (
            f" xmlns:xmpp='{NS_XBOSH}' xmlns:stream='{NS_STREAMS}' sid='{sid}' wait='{wait}'"
            f" hold='{hold}' requests='{session.requests}' inactivity='{session.inactivity}'"
            f" polling='1' ver='{BOSH_VERSION}' from='{self.host.domain}'"
            f" authid='{session.stream.streamId}' secure='{'true' if secure else 'false'}'"
            f" xmpp:version='1.0' xmpp:restartlogic='true'"
        ).encode()
        content = b"".join(session.pending)
        session.pending, session.pendingBytes = [], 0
        payload = BODY_OPEN + attributes + b">" + content + b"</body>"
        session._answer(request, rid, payload)
        session._startInactivity()
        return session

    def forget(self, session) -> None:
        if self.sessions.pop(session.sid, None) is session and session.counted is not None:
            self.host.connectionLimiter.release(session.counted)
            session.counted = None


def boshResource(host, config=None, tls=False) -> BOSHResource:
    """
    The BOSH connection manager of C{host}, to mount on any site:
    C{root.putChild(b"http-bind", boshResource(host, host.config.bosh))}.
    """
    return BOSHResource(host, config if config is not None else host.config.bosh, tls=tls)


def boshSite(host, config, tls=False) -> server.Site:
    """
    A site serving only the BOSH resource, at C{config.path}.
    """
    bosh = boshResource(host, config, tls)
    segments = [s for s in config.path.strip("/").split("/") if s]
    if not segments:
        top = bosh
    else:
        root = resource.Resource()
        node = root
        for segment in segments[:-1]:
            child = resource.Resource()
            node.putChild(segment.encode(), child)
            node = child
        node.putChild(segments[-1].encode(), bosh)
        top = root
    site = QuietSite(top, config.max_body_bytes, config.max_wait + 30)
    site.bosh = bosh
    return site
