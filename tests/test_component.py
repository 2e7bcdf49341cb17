"""
Tests for XEP-0114 external components (xmppchat.component): the
handshake and the routing, driven with XML literals over a string transport.
"""

import re

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from tests.helpers import HostHarness
from xmppchat.component import ComponentFactory, ComponentProtocol, handshakeDigest
from xmppchat.config import ConfigError, buildConfig

SECRET = "bot-secret-0123456789"
HEADER = ("<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>")


def _harness(**limits):
    return HostHarness(limits={"ping_interval": 0, **limits}, components={
        "enabled": True, "port": 0, "external": [{"domain": "bot.localhost", "secret": SECRET}]})


def _connect(h, factory=None):
    factory = factory or ComponentFactory(h.host)
    addr = IPv4Address("TCP", "127.0.0.1", 40000)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return factory, proto, transport


def _open(proto, transport, to="bot.localhost"):
    proto.dataReceived(HEADER.format(to=to).encode())
    data = transport.value().decode()
    transport.clear()
    match = re.search(r"id='([0-9a-f]+)'", data)
    return match.group(1) if match else None, data


def _login(h, factory=None):
    factory, proto, transport = _connect(h, factory)
    streamId, _ = _open(proto, transport)
    proto.dataReceived(f"<handshake>{handshakeDigest(streamId, SECRET)}</handshake>".encode())
    assert transport.value() == b"<handshake xmlns='jabber:component:accept'/>"
    transport.clear()
    return factory, proto, transport


def test_handshakeAccepted():
    """The hex SHA-1 of stream id + secret gets an empty <handshake/>; the header is jabber:component:accept from the domain."""
    h = _harness()
    factory, proto, transport = _connect(h)
    streamId, header = _open(proto, transport)
    assert "xmlns='jabber:component:accept'" in header and "from='bot.localhost'" in header
    proto.dataReceived(f"<handshake>{handshakeDigest(streamId, SECRET)}</handshake>".encode())
    assert transport.value() == b"<handshake xmlns='jabber:component:accept'/>"
    assert h.host.components["bot.localhost"].stream is proto.stream


def test_attackWrongSecretRefused():
    """An attacker guessing the secret gets not-authorized and the domain stays unconnected."""
    h = _harness()
    factory, proto, transport = _connect(h)
    streamId, _ = _open(proto, transport)
    proto.dataReceived(f"<handshake>{handshakeDigest(streamId, 'guess-guess-guess')}</handshake>".encode())
    data = transport.value().decode()
    assert "<not-authorized" in data and data.endswith("</stream:stream>") and transport.disconnecting
    assert h.host.components["bot.localhost"].stream is None


def test_attackStanzaBeforeHandshake():
    """A stanza before the handshake is not routed: not-authorized."""
    h = _harness()
    h.addUser("alice")
    factory, proto, transport = _connect(h)
    _open(proto, transport)
    proto.dataReceived(b"<message from='bot.localhost' to='alice@localhost'><body>x</body></message>")
    assert "<not-authorized" in transport.value().decode()


def test_unknownDomain():
    """A stream to a domain that is not a configured component gets host-unknown."""
    h = _harness()
    factory, proto, transport = _connect(h)
    streamId, data = _open(proto, transport, to="evil.localhost")
    assert "<host-unknown" in data and transport.disconnecting


def test_secondConnectionRefused():
    """A second connection for a connected domain is refused with conflict (Prosody's kick_new); the first stays."""
    h = _harness()
    factory, first, _ = _login(h)
    _, proto, transport = _connect(h, factory)
    streamId, _ = _open(proto, transport)
    proto.dataReceived(f"<handshake>{handshakeDigest(streamId, SECRET)}</handshake>".encode())
    assert "<conflict" in transport.value().decode()
    assert h.host.components["bot.localhost"].stream is first.stream
    first.connectionLost(None)
    assert h.host.components["bot.localhost"].stream is None


def test_handshakeTimeout():
    """A connection that never completes the handshake is dropped after negotiation_seconds."""
    h = _harness(negotiation_seconds=5)
    factory, proto, transport = _connect(h)
    _open(proto, transport)
    h.clock.advance(6)
    assert "<connection-timeout" in transport.value().decode() and transport.disconnecting


def test_stanzaSizeLimit():
    """The c2s stanza size limit holds before the handshake: policy-violation."""
    h = _harness(max_stanza_bytes=10000)
    factory, proto, transport = _connect(h)
    _open(proto, transport)
    proto.dataReceived(b"<handshake>" + b"a" * 20000 + b"</handshake>")
    assert "<policy-violation" in transport.value().decode()


def test_attackSpoofedFrom():
    """A component sending as a local user (a from outside its domain) gets invalid-from; nothing is delivered."""
    h = _harness()
    alice, aliceT = h.connect("alice")
    factory, proto, transport = _login(h)
    proto.dataReceived(b"<message from='bob@localhost' to='alice@localhost' type='chat'><body>hi</body></message>")
    assert "<invalid-from" in transport.value().decode()
    assert [e for e in aliceT.pop() if e.name == "message"] == []


def test_messageBothWays():
    """A user's message reaches the component (in its namespace); the reply reaches the user in jabber:client."""
    h = _harness()
    alice, aliceT = h.connect("alice", resource="r")
    factory, proto, transport = _login(h)
    h.send(alice, "<message to='bot.localhost' type='chat' id='m1'><body>ping</body></message>")
    out = transport.value().decode()
    assert out.startswith("<message") and "xmlns" not in out.split(">")[0] and "from='alice@localhost/r'" in out
    proto.dataReceived(b"<message from='echo@bot.localhost/x' to='alice@localhost/r' type='chat'>"
                       b"<body>pong</body></message>")
    [reply] = [e for e in aliceT.pop() if e.name == "message"]
    assert reply.uri == "jabber:client" and reply.body.uri == "jabber:client" and str(reply.body) == "pong"
    assert reply["from"] == "echo@bot.localhost/x"


def test_replyStoredOffline():
    """The component's message to an offline user is stored offline, as from any sender."""
    h = _harness()
    h.addUser("carol")
    factory, proto, transport = _login(h)
    proto.dataReceived(b"<message from='bot.localhost' to='carol@localhost' type='chat'><body>later</body></message>")
    carol, carolT = h.connect("carol", available=False)
    h.send(carol, "<presence/>")
    bodies = [str(e.body) for e in carolT.pop() if e.name == "message"]
    assert bodies == ["later"]


def _askUnconnected(to, xmlns):
    """A user's IQ get to C{to} while bot.localhost is configured but not connected: the reply."""
    h = _harness()
    alice, aliceT = h.connect("alice")
    ComponentFactory(h.host)
    h.send(alice, f"<iq to='{to}' type='get' id='q1'><query xmlns='{xmlns}'/></iq>")
    [reply] = aliceT.pop()
    return reply


def test_disconnectedServiceUnavailable():
    """An IQ to a configured component that is not connected gets service-unavailable."""
    reply = _askUnconnected("bot.localhost", "jabber:iq:version")
    assert reply["type"] == "error" and reply.error.firstChildElement().name == "service-unavailable"


def test_privacyAppliesToComponent():
    """A user who blocks the component's domain gets none of its messages."""
    h = _harness()
    alice, aliceT = h.connect("alice", resource="r")
    h.send(alice, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>"
                  "<item jid='bot.localhost'/></block></iq>")
    aliceT.pop()
    factory, proto, transport = _login(h)
    proto.dataReceived(b"<message from='bot.localhost' to='alice@localhost' type='chat'><body>spam</body></message>")
    assert [e for e in aliceT.pop() if e.name == "message"] == []


def test_listedInDiscoItems():
    """A configured component is listed in the server's disco#items, connected or not (as Prosody lists subdomain components)."""
    reply = _askUnconnected("localhost", "http://jabber.org/protocol/disco#items")
    assert "bot.localhost" in [item["jid"] for item in reply.query.elements()]


def test_attackMissingTo():
    """A component stanza without a to is refused with bad-request, as Prosody does."""
    h = _harness()
    factory, proto, transport = _login(h)
    proto.dataReceived(b"<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert "<bad-request" in transport.value().decode()


def _config(**components):
    return buildConfig({"components": components})


@pytest.mark.parametrize(("components", "message"), [
    ({"enabled": True}, "no component is configured"),
    ({"external": [{"domain": "bot.localhost", "secret": "short"}]}, "at least 16"),
    ({"external": [{"domain": "muc.localhost", "secret": SECRET}]}, "already served"),
    ({"external": [{"domain": "Bot@localhost", "secret": SECRET}]}, "bare lower-case domain"),
    ({"external": [{"domain": "bot.localhost", "secret": SECRET, "x": 1}]}, "unknown key"),
    ({"port": 70000}, "port out of range"),
])
def test_configRefused(components, message):
    """Bad [components] settings are refused with a readable message that never shows a secret."""
    with pytest.raises(ConfigError) as e:
        _config(**components)
    assert message in str(e.value) and SECRET not in str(e.value)


def test_configRefusedWithCluster():
    """Components connect to one process: [components] with cluster mode is refused."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"components": {"enabled": True, "external": [{"domain": "bot.localhost", "secret": SECRET}]},
                     "cluster": {"redis_uri": "redis://127.0.0.1:6379/0"}})
    assert "single process" in str(e.value)


def test_defaultsOff():
    """The listener is off by default and listens on loopback."""
    config = _config()
    assert not config.components.enabled and config.components.interface == "127.0.0.1"
    assert ComponentProtocol.namespace == "jabber:component:accept"
