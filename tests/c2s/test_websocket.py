"""
Tests for L{xmppchat.c2s.websocket}: XMPP over WebSocket (RFC 7395) driven
through autobahn over a StringTransport, with client frames built by hand
and a fake clock.
"""

from __future__ import annotations

import base64
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python import failure

from xmppchat.c2s.websocket import XMPPWebSocketFactory, webSocketFactory
from tests.helpers import HostHarness, xml

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "http://etherx.jabber.org/streams"
OPEN = f"<open xmlns='{NS_FRAMING}' to='127.0.0.1' version='1.0'/>"
TEXT, BINARY, CLOSE = 1, 2, 8


def clientFrame(payload: bytes, opcode: int = TEXT) -> bytes:
    """
    One masked client frame (RFC 6455 §5.2).
    """
    header = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        header += bytes([0x80 | size])
    elif size < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def serverFrames(data: bytes) -> list[tuple[int, bytes]]:
    """
    The unmasked server frames in C{data}.
    """
    frames = []
    while data:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if size == 126:
            size, offset = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, offset = struct.unpack("!Q", data[2:10])[0], 10
        frames.append((opcode, data[offset:offset + size]))
        data = data[offset + size:]
    return frames


class WSClient:
    """
    One WebSocket connection to a protocol built by C{factory}.
    """

    def __init__(self, factory, peer="127.0.0.1", protocol="xmpp", origin=None, path="/", extra=()):
        self.proto = factory.buildProtocol(IPv4Address("TCP", peer, 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto.makeConnection(self.transport)
        headers = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1:5291", "Upgrade: websocket",
                   "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                   "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]
        if protocol:
            headers.append(f"Sec-WebSocket-Protocol: {protocol}")
        if origin:
            headers.append(f"Origin: {origin}")
        headers.extend(extra)
        self.proto.dataReceived(("\r\n".join(headers) + "\r\n\r\n").encode())
        response = self.transport.value()
        self.status, _, self.rest = response.partition(b"\r\n\r\n")
        self.transport.clear()
        self.buffered = self.rest

    def send(self, text: str | bytes, opcode: int = TEXT):
        self.proto.dataReceived(clientFrame(text.encode() if isinstance(text, str) else text, opcode))

    def frames(self) -> list[tuple[int, bytes]]:
        data, self.buffered = self.buffered + self.transport.value(), b""
        self.transport.clear()
        return serverFrames(data)

    def elements(self):
        """
        The XML elements of the text frames received since the last call.
        """
        return [xml(payload.decode()) for opcode, payload in self.frames() if opcode == TEXT]

    def open(self):
        self.send(OPEN)
        return self.elements()


def harness(limits=None, **websocket):
    h = HostHarness(websocket=websocket, **({"limits": limits} if limits else {}))
    factory = webSocketFactory(h.host, h.config)
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    return h, factory


def mechanisms(features):
    return [str(m) for m in features.mechanisms.elements()] if features.mechanisms else []


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_subprotocolEchoed():
    """The upgrade offering 'xmpp' is accepted with Sec-WebSocket-Protocol: xmpp (RFC 7395 §3.1)."""
    h, factory = harness()
    client = WSClient(factory, protocol="chat, xmpp")
    assert client.status.startswith(b"HTTP/1.1 101")
    assert b"\r\nSec-WebSocket-Protocol: xmpp" in client.status


@pytest.mark.parametrize("protocol", [None, "chat"])
def test_subprotocolRequired(protocol):
    """An upgrade without the 'xmpp' sub-protocol is refused with 400."""
    h, factory = harness()
    client = WSClient(factory, protocol=protocol)
    assert client.status.startswith(b"HTTP/1.1 400")
    assert factory.connections == set()


def test_pathChecked():
    """Only the configured path upgrades; others get 404."""
    h, factory = harness(path="/xmpp-websocket")
    assert WSClient(factory, path="/").status.startswith(b"HTTP/1.1 404")
    assert WSClient(factory, path="/xmpp-websocket").status.startswith(b"HTTP/1.1 101")


def test_allowedOrigins():
    """With allowed_origins set, other Origins get 403 and listed ones are accepted."""
    h, factory = harness(allowed_origins=["https://app.example.com"])
    assert WSClient(factory, origin="https://evil.example.net").status.startswith(b"HTTP/1.1 403")
    assert WSClient(factory, origin="https://app.example.com").status.startswith(b"HTTP/1.1 101")


def test_openAnsweredWithOpenAndFeatures():
    """<open/> with the URL host as 'to' gets our <open/> for the configured domain, then stream:features."""
    h, factory = harness()
    client = WSClient(factory)
    opened, features = client.open()
    assert (opened.uri, opened.name) == (NS_FRAMING, "open")
    assert opened["from"] == "localhost" and opened["version"] == "1.0" and opened["id"]
    assert (features.uri, features.name) == (NS_STREAMS, "features")
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert features.starttls is None


def test_featuresUseStreamPrefix():
    """The features frame is <stream:features xmlns:stream=...> as clients expect."""
    h, factory = harness()
    client = WSClient(factory)
    client.send(OPEN)
    payloads = [p for _, p in client.frames()]
    assert payloads[1].startswith(b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>")


def test_remotePlainWsNoPlain():
    """Plain ws:// from a non-loopback peer offers SCRAM but not PLAIN."""
    h, factory = harness()
    _, features = WSClient(factory, peer="192.0.2.7").open()
    assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]


def test_loopbackSecureCanBeDisabled():
    """With loopback_secure = false a loopback ws:// peer is not offered PLAIN."""
    h, factory = harness(loopback_secure=False)
    _, features = WSClient(factory).open()
    assert "PLAIN" not in mechanisms(features)


def test_forwardedForFromLoopbackProxy():
    """Behind a trusted (loopback) proxy the right-most X-Forwarded-For entry is the client's address."""
    h, factory = harness()
    client = WSClient(factory, extra=["X-Forwarded-For: 203.0.113.9, 198.51.100.4"])
    client.open()
    assert client.proto.peer == "198.51.100.4" and client.proto.secure
    assert WSClient(factory).proto.peer == "127.0.0.1"


def test_forwardedForIgnoredFromOthers():
    """X-Forwarded-For from a peer not in limits.trusted_proxies (default: loopback) is not trusted."""
    h, factory = harness()
    assert WSClient(factory, peer="192.0.2.7", extra=["X-Forwarded-For: 198.51.100.4"]).proto.peer == "192.0.2.7"
    h, factory = harness(limits={"trusted_proxies": ["10.0.0.0/8"]})
    assert WSClient(factory, extra=["X-Forwarded-For: 198.51.100.4"]).proto.peer == "127.0.0.1"


def test_proxiedClientsThrottledSeparately():
    """Wrong passwords from one client behind the proxy do not lock out another client behind it."""
    h, factory = harness(limits={"failed_logins_free": 0, "failed_logins_per_source": 3})
    h.addUser("alice", "pw")

    def login(forwarded, user, password):
        client = WSClient(factory, extra=[f"X-Forwarded-For: {forwarded}"])
        client.open()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain(user, password)}</auth>")
        h.clock.advance(5)
        return client.elements()[0]

    for user in ("mallory", "trent", "oscar"):
        assert login("198.51.100.4", user, "guess").name == "failure"
    locked = login("198.51.100.4", "alice", "pw")
    assert locked.name == "failure" and locked.firstChildElement().name == "temporary-auth-failure"
    assert login("203.0.113.9", "alice", "pw").name == "success"


def test_wssOffersPlain():
    """On wss:// (tls = true) PLAIN is offered to any peer."""
    h, factory = harness(tls=True)
    _, features = WSClient(factory, peer="192.0.2.7").open()
    assert "PLAIN" in mechanisms(features)


def test_loginRestartBindAndChat():
    """PLAIN, a restart with a new <open/>, bind, then messages both ways with a TCP-like session."""
    h, factory = harness()
    h.addUser("alice", "pw")
    bob, bobTransport = h.connect("bob")
    client = WSClient(factory)
    client.open()
    client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'pw')}</auth>")
    [success] = client.elements()
    assert success.name == "success"
    opened, features = client.open()
    assert opened.name == "open" and features.bind is not None
    client.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    [bound] = client.elements()
    full = str(bound.bind.jid)
    assert full.startswith("alice@localhost/")
    client.send("<presence xmlns='jabber:client'/>")
    client.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi bob</body></message>")
    [message] = [e for e in bobTransport.pop() if e.name == "message"]
    assert message["from"] == full and str(message.body) == "hi bob"
    h.send(bob, f"<message to='{full}' type='chat'><body>hi alice</body></message>")
    [payload] = [p for _, p in client.frames() if p.startswith(b"<message")]
    assert payload.startswith(b"<message xmlns='jabber:client'")
    assert str(xml(payload.decode()).body) == "hi alice"


def test_clientCloseAnswered():
    """<close/> from the client is answered with <close/> and a WebSocket close; the session ends."""
    h, factory = harness()
    h.addUser("alice", "pw")
    client = WSClient(factory)
    client.open()
    client.send(f"<close xmlns='{NS_FRAMING}'/>")
    frames = client.frames()
    assert frames[0] == (TEXT, f"<close xmlns='{NS_FRAMING}'/>".encode())
    assert frames[1][0] == CLOSE
    client.proto.connectionLost(failure.Failure(error.ConnectionDone()))
    assert factory.connections == set()
    assert client.proto.stream.closed


@pytest.mark.parametrize("payload, condition", [
    ("<message xmlns='jabber:client'><body>unclosed</message>", "not-well-formed"),
    ("<!DOCTYPE x><x/>", "restricted-xml"),
    ("<a/><b/>", "not-well-formed"),
])
def test_badFrameStreamError(payload, condition):
    """A frame that is not one acceptable element gets an RFC 7395 stream error followed by <close/>."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    client.send(payload)
    error, close = client.elements()
    assert (error.uri, error.name) == (NS_STREAMS, "error")
    assert error.firstChildElement().name == condition
    assert (close.uri, close.name) == (NS_FRAMING, "close")


def test_oversizedFramePolicyViolation():
    """A frame above max_stanza_bytes gets the policy-violation stream error."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    client.send("<message xmlns='jabber:client'><body>" + "x" * 300000 + "</body></message>")
    error, close = client.elements()
    assert error.firstChildElement().name == "policy-violation" and close.name == "close"


def test_binaryFrameRefused():
    """Binary frames are refused with bad-format (RFC 7395 §3.2: text frames only)."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    client.send(b"<presence/>", BINARY)
    error, close = client.elements()
    assert error.firstChildElement().name == "bad-format"


def test_stanzaBeforeOpen():
    """A stanza before <open/> is a bad-format stream error."""
    h, factory = harness()
    client = WSClient(factory)
    client.send("<presence xmlns='jabber:client'/>")
    error, close = client.elements()
    assert error.firstChildElement().name == "bad-format" and close.name == "close"


def test_negotiationTimeout():
    """A stream not bound within negotiation_seconds gets connection-timeout."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    h.clock.advance(h.config.limits.negotiation_seconds - 1)
    assert client.elements() == []
    h.clock.advance(1)
    error, close = client.elements()
    assert error.firstChildElement().name == "connection-timeout"


def test_unansweredCloseDropped():
    """A client that ignores our closing handshake is dropped after the grace period."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    client.proto.stream.close("system-shutdown")
    assert not client.transport.disconnecting
    h.clock.advance(5)
    assert client.transport.disconnecting


def test_lastReceivedForPings():
    """Every frame refreshes lastReceived, which the ping module reads."""
    h, factory = harness()
    client = WSClient(factory)
    h.clock.advance(30)
    client.open()
    assert client.proto.lastReceived == 30


def test_frameLimitAboveStanzaLimit():
    """autobahn's own frame limit leaves room for the stream error on oversized stanzas."""
    h = HostHarness()
    factory = XMPPWebSocketFactory(h.host)
    assert factory.maxMessagePayloadSize > h.config.limits.max_stanza_bytes


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitraryFramesNeverCrash(payload):
    """Any text or binary frame after <open/> is handled or answered with a stream error and <close/>."""
    h, factory = harness()
    client = WSClient(factory)
    client.open()
    opcode = BINARY if isinstance(payload, bytes) else TEXT
    client.send(payload, opcode)
    elements = client.elements()
    if client.proto.stream.closed:
        assert [(e.uri, e.name) for e in elements][-2:] == [(NS_STREAMS, "error"), (NS_FRAMING, "close")]
