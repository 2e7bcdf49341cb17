"""
Tests for L{xmppchat.c2s.proxyprotocol}: PROXY v1/v2 headers from trusted
proxies on the c2s TCP listener (issue 15 finding 6), over a
StringTransport and a fake clock.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.e2e.test_proxy_protocol import V2_PREFIX, v1, v2
from tests.helpers import HostHarness
from xmppchat.c2s.proxyprotocol import ProxyHeaderProtocol, ProxyProtocolFactory
from xmppchat.c2s.tcp import C2SFactory, C2STCPProtocol

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def setUp(**limits):
    h = HostHarness(limits={"ping_interval": 0, "exempt_loopback": False,
                            "trusted_proxies": ["10.0.0.0/8"], **limits})
    return h, ProxyProtocolFactory(h.host, C2SFactory(h.host, tlsContext=None))


def accept(factory, peer="10.0.0.1"):
    addr = IPv4Address("TCP", peer, 40000)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def test_headerInPiecesThenStream():
    """A v1 header split byte by byte still names the client; the stream bytes after it reach the c2s protocol."""
    h, factory = setUp()
    proto, transport = accept(factory)
    assert isinstance(proto, ProxyHeaderProtocol)
    data = v1("203.0.113.5") + HEADER
    for i in range(len(data)):
        proto.dataReceived(data[i:i + 1])
    assert isinstance(proto.inner, C2STCPProtocol) and proto.inner.peer == "203.0.113.5"
    assert b"<stream:features>" in transport.value()
    assert h.host.connectionLimiter.open == {"203.0.113.5": 1}
    proto.connectionLost(None)
    assert h.host.connectionLimiter.open == {}


def test_v2LocalKeepsTheProxyAddress():
    """A v2 LOCAL header (health check) keeps the proxy's own address."""
    h, factory = setUp()
    proto, transport = accept(factory)
    proto.dataReceived(V2_PREFIX + b"\x20\x00\x00\x00" + HEADER)
    assert proto.inner.peer == "10.0.0.1"
    proto, _ = accept(factory)
    proto.dataReceived(v2("198.51.100.9") + HEADER)
    assert proto.inner.peer == "198.51.100.9"


def test_badTooLongOrLateHeaderCloses():
    """Garbage, a header without its end, or no header in negotiation_seconds close the connection."""
    h, factory = setUp(negotiation_seconds=5)
    proto, transport = accept(factory)
    proto.dataReceived(b"GET / HTTP/1.1\r\n")
    assert transport.disconnecting and proto.inner is None
    proto, transport = accept(factory)
    proto.dataReceived(b"PROXY TCP4 " + b"1" * 2000)
    assert transport.disconnecting
    proto, transport = accept(factory)
    h.clock.advance(5)
    assert transport.disconnecting


def test_untrustedPeersServedDirectly():
    """Connections from outside trusted_proxies are the listener's own protocol, counted by their address."""
    h, factory = setUp()
    proto, transport = accept(factory, "192.0.2.7")
    assert isinstance(proto, C2STCPProtocol) and proto.peer == "192.0.2.7"
