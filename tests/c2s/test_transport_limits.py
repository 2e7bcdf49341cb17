"""
Issue 15 finding 6 as the attack: one address must not take every
WebSocket connection or fill the BOSH session table.  The TCP per-address
limits (one L{xmppchat.ratelimit.ConnectionLimiter} per host) apply to
every transport, to the client a trusted proxy names, and to nobody's
made-up X-Forwarded-For.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import connectionDone
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from tests.c2s.test_bosh import NS_HTTPBIND, NS_XBOSH, Post
from tests.c2s.test_tcp_limits import _accept
from tests.c2s.test_websocket import WSClient, harness
from tests.helpers import HostHarness
from xmppchat.c2s.bosh import boshResource
from xmppchat.c2s.tcp import C2SFactory
from xmppchat.clientaddress import TrustedProxies
from xmppchat.config import ConfigError, buildConfig

LIMITS = {"connections_per_ip": 3, "exempt_loopback": False, "ping_interval": 0}


def opened(client) -> bool:
    return client is not None and client.status.startswith(b"HTTP/1.1 101")


def test_webSocketFloodFromOneAddressRefusedOthersGetIn():
    """One address gets connections_per_ip WebSocket connections, the next is dropped; another address still connects."""
    h, factory = harness(limits={**LIMITS, "trusted_proxies": []})
    clients = [WSClient(factory, peer="192.0.2.7") for _ in range(3)]
    assert all(opened(c) for c in clients)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40001)) is None
    assert opened(WSClient(factory, peer="198.51.100.8"))
    clients[0].proto.connectionLost(connectionDone)
    assert opened(WSClient(factory, peer="192.0.2.7"))


def test_webSocketBehindTrustedProxyCountsTheClient():
    """Behind a trusted proxy each forwarded client has its own share: the flooder gets 429, others get in."""
    h, factory = harness(limits={**LIMITS, "trusted_proxies": ["10.0.0.0/8"]})
    for _ in range(3):
        assert opened(WSClient(factory, peer="10.1.1.1", extra=["X-Forwarded-For: 203.0.113.5"]))
    refused = WSClient(factory, peer="10.1.1.1", extra=["X-Forwarded-For: 203.0.113.5"])
    assert refused.status.startswith(b"HTTP/1.1 429")
    assert opened(WSClient(factory, peer="10.1.1.1", extra=["X-Forwarded-For: 203.0.113.6"]))
    assert h.host.connectionLimiter.open == {"203.0.113.5": 3, "203.0.113.6": 1}


def test_webSocketForwardedForIgnoredFromUntrustedPeer():
    """A client rotating X-Forwarded-For values without being a trusted proxy is counted by its own address."""
    h, factory = harness(limits={**LIMITS, "trusted_proxies": ["10.0.0.0/8"]})
    for i in range(3):
        client = WSClient(factory, peer="192.0.2.7", extra=[f"X-Forwarded-For: 203.0.113.{i}"])
        assert opened(client) and client.proto.peer == "192.0.2.7"
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40001)) is None


def test_webSocketConnectionRate():
    """connection_rate_per_ip / connection_burst_per_ip apply to WebSocket as to TCP."""
    h, factory = harness(limits={**LIMITS, "connections_per_ip": 0, "connection_rate_per_ip": 1,
                                 "connection_burst_per_ip": 2, "trusted_proxies": []})
    assert opened(WSClient(factory, peer="192.0.2.7")) and opened(WSClient(factory, peer="192.0.2.7"))
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40001)) is None
    h.clock.advance(1)
    assert opened(WSClient(factory, peer="192.0.2.7"))


def test_oneLimitForEveryTransport():
    """TCP and WebSocket connections of one address count against the same connections_per_ip."""
    h, factory = harness(limits={**LIMITS, "trusted_proxies": []})
    tcp = C2SFactory(h.host, tlsContext=None, directTLS=True)
    _accept(tcp, "192.0.2.7")
    _accept(tcp, "192.0.2.7")
    assert opened(WSClient(factory, peer="192.0.2.7"))
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40001)) is None
    assert tcp.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40002)) is None


def create(bosh, peer="127.0.0.1", forwardedFor=None):
    """
    A session creation request; its answer.
    """
    post = Post.__new__(Post)
    post.request = request = DummyRequest([b""])
    request.method = b"POST"
    request.content = BytesIO(f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='1000'"
                              f" to='localhost' wait='30' hold='1' xmpp:version='1.0'/>".encode())
    request.client = IPv4Address("TCP", peer, 40000)
    request.isSecure = lambda: False
    if forwardedFor:
        request.requestHeaders.setRawHeaders(b"x-forwarded-for", [forwardedFor.encode()])
    result = bosh.render(request)
    if result is not server.NOT_DONE_YET:
        request.write(result)
        request.finish()
    return post.answer()


def boshHarness(**limits):
    h = HostHarness(limits={**LIMITS, **limits})
    return h, boshResource(h.host, h.config.bosh)


def test_boshTableFloodFromOneAddressRefusedOthersGetIn():
    """One address gets connections_per_ip BOSH sessions, then policy-violation; another address still gets one."""
    h, bosh = boshHarness(trusted_proxies=[])
    sids = [create(bosh, "192.0.2.7").getAttribute("sid") for _ in range(3)]
    assert all(sids)
    refused = create(bosh, "192.0.2.7")
    assert refused["type"] == "terminate" and refused["condition"] == "policy-violation"
    assert create(bosh, "198.51.100.8").getAttribute("sid")
    bosh.sessions[sids[0]].end()
    assert create(bosh, "192.0.2.7").getAttribute("sid")
    assert len(bosh.sessions) == 4


def test_boshBehindTrustedProxyAndForgedHeader():
    """BOSH counts the client a trusted proxy names; X-Forwarded-For from anyone else is ignored."""
    h, bosh = boshHarness(trusted_proxies=["127.0.0.1/32"])
    for _ in range(3):
        assert create(bosh, "127.0.0.1", "203.0.113.5").getAttribute("sid")
    assert create(bosh, "127.0.0.1", "203.0.113.5")["condition"] == "policy-violation"
    assert create(bosh, "127.0.0.1", "203.0.113.6").getAttribute("sid")
    for i in range(3):
        assert create(bosh, "192.0.2.7", f"198.51.100.{i}").getAttribute("sid")
    assert create(bosh, "192.0.2.7", "198.51.100.99")["condition"] == "policy-violation"


def test_boshCreationRate():
    """connection_rate_per_ip limits how fast one address creates BOSH sessions."""
    h, bosh = boshHarness(connections_per_ip=0, connection_rate_per_ip=1, connection_burst_per_ip=2,
                          trusted_proxies=[])
    assert create(bosh, "192.0.2.7").getAttribute("sid") and create(bosh, "192.0.2.7").getAttribute("sid")
    assert create(bosh, "192.0.2.7")["condition"] == "policy-violation"
    h.clock.advance(1)
    assert create(bosh, "192.0.2.7").getAttribute("sid")


def test_trustedProxiesClientAddress():
    """The client is the right-most X-Forwarded-For entry that is not a trusted proxy; garbage stops the walk."""
    proxies = TrustedProxies(["10.0.0.0/8", "::1"])
    assert proxies.client("10.0.0.1", "203.0.113.5, 10.2.2.2") == "203.0.113.5"
    assert proxies.client("10.0.0.1", "198.51.100.1, 203.0.113.5") == "203.0.113.5"
    assert proxies.client("10.0.0.1", "not-an-ip, 10.3.3.3") == "10.3.3.3"
    assert proxies.client("10.0.0.1", "") == "10.0.0.1"
    assert proxies.client("192.0.2.1", "203.0.113.5") == "192.0.2.1"
    assert proxies.client("::1", "2001:db8::1") == "2001:db8::1"
    assert proxies.client("::ffff:10.0.0.1", "203.0.113.5") == "203.0.113.5"
    assert not TrustedProxies([]).trusts("127.0.0.1")


def test_trustedProxiesValidated():
    """[limits] trusted_proxies must be a list of addresses or CIDRs; the default trusts loopback only."""
    assert buildConfig({}).limits.trusted_proxies == ["127.0.0.1/32", "::1/128"]
    assert buildConfig({"limits": {"trusted_proxies": ["10.0.0.0/8", "2001:db8::1"]}})
    with pytest.raises(ConfigError) as caught:
        buildConfig({"limits": {"trusted_proxies": ["10.0.0.0/33"]}})
    assert "limits.trusted_proxies" in str(caught.value) and "10.0.0.0/33" in str(caught.value)
    with pytest.raises(ConfigError):
        buildConfig({"limits": {"trusted_proxies": "10.0.0.0/8"}})
