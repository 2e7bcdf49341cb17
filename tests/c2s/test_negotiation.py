"""
Tests for L{xmppchat.c2s.negotiation}: the phases of a client stream
(RFC 6120 §4-§7) driven over a stub transport.
"""

import base64

from xmppchat.c2s.negotiation import AUTHENTICATED, BOUND, C2SStream, CONNECTED, SECURED
from tests.helpers import HostHarness, StubTransport, xml

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HEADER = {"to": "localhost", "version": "1.0"}


def features(transport):
    return {(c.uri, c.name): c for c in transport.headers[-1][2].elements()}


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def newStream(h, secure=False, **kw):
    transport = StubTransport(secure=secure, **kw)
    stream = C2SStream(h.host, transport)
    stream.streamStarted(dict(HEADER))
    return stream, transport


def test_tlsRequiredFirst():
    """Before TLS only STARTTLS (required) is offered, not SASL (RFC 6120 §5.3.1)."""
    h = HostHarness()
    stream, t = newStream(h)
    f = features(t)
    assert ("urn:ietf:params:xml:ns:xmpp-tls", "starttls") in f
    assert f[("urn:ietf:params:xml:ns:xmpp-tls", "starttls")].required is not None
    assert (NS_SASL, "mechanisms") not in f
    assert ("urn:xmpp:stream-limits:0", "limits") in f


def test_startTLS():
    """<starttls/> gets <proceed/>, TLS starts and the stream restarts in the SECURED phase."""
    h = HostHarness()
    stream, t = newStream(h)
    stream.elementReceived(xml("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
    assert [e.name for e in t.pop()] == ["proceed"]
    assert t.tlsStarted and t.restarts == 1 and stream.phase == SECURED
    stream.streamStarted(dict(HEADER))
    mechanisms = [str(m) for m in features(t)[(NS_SASL, "mechanisms")].elements()]
    assert mechanisms == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    assert ("urn:ietf:params:xml:ns:xmpp-tls", "starttls") not in features(t)


def test_plainLoginAndBind():
    """PLAIN on a secured stream authenticates, restarts, and bind assigns a long random resource."""
    h = HostHarness()
    h.addUser("alice", "pw")
    stream, t = newStream(h, secure=True)
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'pw')}</auth>"))
    assert [e.name for e in t.pop()] == ["success"]
    assert stream.phase == AUTHENTICATED and t.restarts == 1
    stream.streamStarted(dict(HEADER))
    assert ("urn:ietf:params:xml:ns:xmpp-bind", "bind") in features(t)
    stream.elementReceived(xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"))
    [reply] = t.pop()
    full = str(reply.bind.jid)
    assert full.startswith("alice@localhost/") and len(full.split("/")[1]) >= 16
    assert stream.phase == BOUND
    assert h.host.sessions.get("alice@localhost", full.split("/")[1]) is stream.session


def test_wrongPassword():
    """A wrong password gets <failure><not-authorized/></failure> and the stream stays unauthenticated."""
    h = HostHarness()
    h.addUser("alice", "pw")
    stream, t = newStream(h, secure=True)
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'nope')}</auth>"))
    [failure] = t.pop()
    assert failure.name == "failure" and failure.firstChildElement().name == "not-authorized"
    assert stream.phase == SECURED


def test_tooManyAttempts():
    """After five failed attempts on one stream it is closed with policy-violation."""
    h = HostHarness()
    stream, t = newStream(h, secure=True, peer="10.1.1.1")
    for _ in range(5):
        stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('x', 'y')}</auth>"))
        h.clock.advance(60)
    assert t.closed is not None and t.closed.firstChildElement().name == "policy-violation"


def test_failuresAreDelayedThenLocked():
    """Repeated failures from one address are answered later and later, then refused."""
    h = HostHarness()
    h.addUser("alice", "pw")
    delays = []
    for _ in range(12):
        stream, t = newStream(h, secure=True, peer="10.9.9.9")
        stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'bad')}</auth>"))
        waited = 0
        while not t.sent and waited < 100:
            h.clock.advance(0.5)
            waited += 0.5
        delays.append(waited)
        condition = t.sent[0].firstChildElement().name
    assert delays[0] == 0 and max(delays) > 0
    assert condition == "temporary-auth-failure"


def test_unknownMechanism():
    """An unknown or unoffered mechanism gets invalid-mechanism; PLAIN is not offered before TLS."""
    h = HostHarness(c2s={"starttls_required": False})
    stream, t = newStream(h)
    assert [str(m) for m in features(t)[(NS_SASL, "mechanisms")].elements()] == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('a', 'b')}</auth>"))
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='X-MAGIC'>=</auth>"))
    assert [e.firstChildElement().name for e in t.pop()] == ["invalid-mechanism", "invalid-mechanism"]


def test_badBase64():
    """Invalid base64 in <auth/> gets incorrect-encoding."""
    h = HostHarness()
    stream, t = newStream(h, secure=True)
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!notbase64</auth>"))
    assert t.pop()[0].firstChildElement().name == "incorrect-encoding"


def test_stanzaBeforeAuth():
    """A stanza before authentication closes the stream with not-authorized (RFC 6120 §6.4.1)."""
    h = HostHarness()
    stream, t = newStream(h, secure=True)
    stream.elementReceived(xml("<message to='bob@localhost'><body>x</body></message>"))
    assert t.closed.firstChildElement().name == "not-authorized"


def test_unknownElement():
    """An unknown top-level element closes the stream with unsupported-stanza-type."""
    h = HostHarness()
    stream, t = newStream(h, secure=True)
    stream.elementReceived(xml("<foo xmlns='urn:example'/>"))
    assert t.closed.firstChildElement().name == "unsupported-stanza-type"


def test_wrongHostAndVersion():
    """A header for another domain gets host-unknown; a pre-1.0 stream unsupported-version."""
    h = HostHarness()
    t = StubTransport()
    C2SStream(h.host, t).streamStarted({"to": "example.org", "version": "1.0"})
    assert t.closed.firstChildElement().name == "host-unknown"
    t = StubTransport()
    C2SStream(h.host, t).streamStarted({"to": "localhost"})
    assert t.closed.firstChildElement().name == "unsupported-version"
    t = StubTransport(anyTo=True)
    C2SStream(h.host, t).streamStarted({"to": "127.0.0.1", "version": "1.0"})
    assert t.closed is None and t.headers


def test_conflictReplacesOldSession():
    """Binding a resource that is in use replaces the old session, which gets a conflict stream error."""
    h = HostHarness()
    old, told = h.connect("alice", "phone")
    new, tnew = h.connect("alice", "phone")
    assert told.closed.firstChildElement().name == "conflict"
    assert h.host.sessions.get("alice@localhost", "phone") is new
    old.stream.connectionLost()
    assert h.host.sessions.get("alice@localhost", "phone") is new


def test_sessionLimit():
    """More resources than sessions_per_account get resource-constraint."""
    h = HostHarness(limits={"sessions_per_account": 2, "ping_interval": 0})
    h.connect("alice", "a")
    h.connect("alice", "b")
    t = StubTransport(secure=True)
    stream = C2SStream(h.host, t)
    stream.phase, stream.localpart = AUTHENTICATED, "alice"
    stream.elementReceived(xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>c</resource></bind></iq>"))
    [err] = t.pop()
    assert err.error.firstChildElement().name == "resource-constraint"


def test_negotiationStateIsPerPhase():
    """Features: CONNECTED offers STARTTLS, AUTHENTICATED offers bind and session, BOUND offers none."""
    h = HostHarness()
    stream, t = newStream(h)
    assert stream.phase == CONNECTED
    session, ts = h.connect("alice")
    session.stream.streamStarted(dict(HEADER))
    assert ts.headers and list(ts.headers[-1][2].elements()) == []


def test_disconnectSendsUnavailable():
    """When a stream ends its session is removed and subscribers get unavailable presence."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    tb.pop()
    alice.stream.connectionLost()
    assert not h.host.sessions.isConnected("alice@localhost")
    sent = [(e.name, e.getAttribute("type"), e["from"]) for e in tb.pop() if e.name == "presence"]
    assert ("presence", "unavailable", "alice@localhost/a") in sent
