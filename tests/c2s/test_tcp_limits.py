"""
Tests for the per-address connection limits applied by the c2s TCP listener
at accept time (xmppchat.c2s.tcp.C2SFactory).
"""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.helpers import HostHarness
from xmppchat.c2s.tcp import C2SFactory, C2STCPProtocol, RefusedProtocol


def _factory(directTLS=False, **limits):
    h = HostHarness(limits={"ping_interval": 0, **limits})
    return h, C2SFactory(h.host, tlsContext=None, directTLS=directTLS)


def _accept(factory, ip="192.0.2.1"):
    addr = IPv4Address("TCP", ip, 40000)
    proto = factory.buildProtocol(addr)
    if proto is not None:
        transport = StringTransport(peerAddress=addr)
        proto.makeConnection(transport)
        return proto, transport
    return None, None


def test_refusedWithPolicyViolation():
    """Past connections_per_ip, a new connection gets a policy-violation stream error and is closed."""
    h, factory = _factory(connections_per_ip=2)
    first, _ = _accept(factory)
    _accept(factory)
    proto, transport = _accept(factory)
    assert isinstance(proto, RefusedProtocol)
    data = transport.value().decode()
    assert data.startswith("<?xml") and "<policy-violation" in data and "Too many connections" in data
    assert data.endswith("</stream:stream>") and transport.disconnecting
    first.connectionLost(None)
    again, _ = _accept(factory)
    assert isinstance(again, C2STCPProtocol)


def test_directTLSRefusedBeforeHandshake():
    """On the direct-TLS port a refused connection is dropped without a protocol (no TLS handshake)."""
    h, factory = _factory(directTLS=True, connection_rate_per_ip=1, connection_burst_per_ip=1)
    assert isinstance(_accept(factory)[0], C2STCPProtocol)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 40001)) is None


def test_limitsShareAcrossListeners():
    """Both c2s listeners of a host count against the same per-address limit."""
    h, plain = _factory(connections_per_ip=1)
    direct = C2SFactory(h.host, tlsContext=None, directTLS=True)
    _accept(plain)
    assert direct.buildProtocol(IPv4Address("TCP", "192.0.2.1", 40002)) is None


def test_loopbackExemptInDevConfig():
    """With exempt_loopback (as in the dev config) loopback connections bypass the limits."""
    h, factory = _factory(connections_per_ip=1, exempt_loopback=True)
    protos = [_accept(factory, "127.0.0.1")[0] for _ in range(5)]
    assert all(isinstance(p, C2STCPProtocol) for p in protos)


def test_noDelayOnAcceptedConnections():
    """Accepted c2s connections get TCP_NODELAY (stanzas are latency-bound)."""

    class NoDelayTransport(StringTransport):
        noDelay = False

        def setTcpNoDelay(self, enabled):
            self.noDelay = enabled

    h, factory = _factory()
    addr = IPv4Address("TCP", "192.0.2.7", 40000)
    proto = factory.buildProtocol(addr)
    transport = NoDelayTransport(peerAddress=addr)
    proto.makeConnection(transport)
    assert transport.noDelay is True
