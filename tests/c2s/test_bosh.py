"""
Tests for L{xmppchat.c2s.bosh}: XMPP over BOSH (XEP-0124, XEP-0206) driven
with twisted.web's DummyRequest and a fake clock.
"""

from __future__ import annotations

import base64
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.python import failure
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from xmppchat.c2s.bosh import boshResource, boshSite
from tests.helpers import HostHarness, xml

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "http://etherx.jabber.org/streams"
BIND = "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Post:
    """
    One POST to the BOSH resource; C{answer()} is the parsed response body
    once it was written.
    """

    def __init__(self, bosh, payload: str | bytes, peer="127.0.0.1", origin=None):
        self.request = DummyRequest([b""])
        self.request.method = b"POST"
        self.request.content = BytesIO(payload.encode() if isinstance(payload, str) else payload)
        self.request.client = IPv4Address("TCP", peer, 40000)
        self.request.isSecure = lambda: False
        if origin:
            self.request.requestHeaders.setRawHeaders(b"origin", [origin.encode()])
        result = bosh.render(self.request)
        if result is not server.NOT_DONE_YET:
            self.request.write(result)
            self.request.finish()

    @property
    def done(self) -> bool:
        return self.request.finished > 0

    @property
    def status(self) -> int:
        return self.request.responseCode or 200

    def raw(self) -> bytes:
        return b"".join(self.request.written)

    def answer(self):
        assert self.done, "request still held"
        return xml(self.raw().decode())

    def lose(self):
        """
        The client drops the connection.
        """
        self.request._disconnected = True
        self.request.processingFailed(failure.Failure(error.ConnectionLost()))


class Client:
    """
    A scripted BOSH client: C{post(children)} sends the next rid.
    """

    def __init__(self, h, bosh=None, hold=1, wait=30, **attributes):
        self.h = h
        self.bosh = bosh or boshResource(h.host, h.config.bosh)
        self.rid = 1000
        extra = "".join(f" {k}='{v}'" for k, v in attributes.items())
        created = Post(self.bosh, f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='{self.rid}'"
                                  f" to='localhost' wait='{wait}' hold='{hold}' xmpp:version='1.0'{extra}/>")
        self.created = created.answer()
        self.sid = self.created.getAttribute("sid")

    def post(self, children: str = "", rid: int | None = None, **attributes) -> Post:
        if rid is None:
            self.rid += 1
            rid = self.rid
        extra = "".join(f" {k.replace('_', ':')}='{v}'" for k, v in attributes.items())
        return Post(self.bosh, f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='{rid}'"
                               f" sid='{self.sid}'{extra}>{children}</body>")

    @property
    def session(self):
        return self.bosh.sessions.get(self.sid)

    def login(self, user="alice", password="pw"):
        """
        PLAIN, restart and bind; returns the full JID.
        """
        auth = self.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain(user, password)}</auth>")
        assert auth.answer().firstChildElement().name == "success"
        restart = self.post(xmpp_restart="true")
        assert restart.answer().firstChildElement().bind is not None
        bound = self.post(BIND)
        return str(bound.answer().firstChildElement().bind.jid)


def harness(**bosh):
    h = HostHarness(bosh=bosh)
    h.addUser("alice", "pw")
    return h


def test_sessionCreation():
    """Creation returns an unguessable sid, the negotiated limits, xmpp:version and the SASL features."""
    h = harness()
    client = Client(h, hold=3, wait=600)
    body = client.created
    assert len(client.sid) >= 32 and client.sid in client.bosh.sessions
    assert (body["wait"], body["hold"], body["requests"], body["inactivity"]) == ("60", "1", "2", "60")
    assert body["from"] == "localhost" and body["authid"] and body["secure"] == "true"
    assert body.getAttribute((NS_XBOSH, "version")) == "1.0"
    [features] = body.elements()
    assert (features.uri, features.name) == (NS_STREAMS, "features")
    assert [str(m) for m in features.mechanisms.elements()] == ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def test_sidsDiffer():
    """Every session gets its own random sid."""
    h = harness()
    assert Client(h).sid != Client(h).sid


def test_remotePlainHttpNoPlain():
    """Plain http:// from a non-loopback peer is not secure: no PLAIN."""
    h = harness()
    bosh = boshResource(h.host)
    body = Post(bosh, f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>", peer="192.0.2.7").answer()
    assert body["secure"] == "false"
    assert "PLAIN" not in [str(m) for m in body.firstChildElement().mechanisms.elements()]


def test_hostUnknown():
    """Creation for another domain is terminated with host-unknown."""
    h = harness()
    body = Post(boshResource(h.host), f"<body xmlns='{NS_HTTPBIND}' rid='1' to='example.org'/>").answer()
    assert (body["type"], body["condition"]) == ("terminate", "host-unknown")


def test_loginAndChat():
    """PLAIN, restart, bind, then a message out and one in through a held request."""
    h = harness()
    bob, bobTransport = h.connect("bob")
    client = Client(h)
    full = client.login()
    assert full.startswith("alice@localhost/")
    sent = client.post("<presence xmlns='jabber:client'/>"
                       "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi</body></message>")
    [own] = sent.answer().elements()  # the initial presence comes back (RFC 6121 §4.2.2)
    assert own.name == "presence" and own["from"] == full
    [message] = [e for e in bobTransport.pop() if e.name == "message"]
    assert message["from"] == full and str(message.body) == "hi"
    held = client.post()
    assert not held.done
    h.send(bob, f"<message to='{full}' type='chat'><body>hello</body></message>")
    h.clock.advance(0)
    [incoming] = held.answer().elements()
    assert str(incoming.body) == "hello" and incoming["from"].startswith("bob@localhost/")


def test_wrongPassword():
    """A wrong password gets the SASL failure in the response and the session stays open."""
    h = harness()
    client = Client(h)
    answer = client.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'bad')}</auth>").answer()
    assert answer.firstChildElement().name == "failure"
    assert client.session is not None


def test_holdAnswersOldest():
    """With hold=1 a second request makes the server answer the first, empty."""
    h = harness()
    client = Client(h)
    first = client.post()
    assert not first.done
    second = client.post()
    assert first.done and list(first.answer().elements()) == []
    assert not second.done


def test_waitAnswersEmpty():
    """A held request is answered empty after 'wait' seconds."""
    h = harness()
    client = Client(h, wait=10)
    held = client.post()
    h.clock.advance(9)
    assert not held.done
    h.clock.advance(1)
    assert held.done and list(held.answer().elements()) == []


def test_inactivityEndsSession():
    """With no request held for 'inactivity' seconds the session and its XMPP session end."""
    h = harness()
    client = Client(h)
    full = client.login()
    stream = client.session.stream
    h.clock.advance(59)
    assert client.session is not None
    h.clock.advance(1)
    h.clock.advance(0)
    assert client.session is None and stream.closed
    assert h.host.sessions.get("alice@localhost", full.split("/")[1]) is None


def test_requestKeepsSessionAlive():
    """A held request suspends the inactivity timer."""
    h = harness()
    client = Client(h, wait=60)
    client.login()
    h.clock.advance(50)
    client.post()
    h.clock.advance(50)
    assert client.session is not None


def test_retransmissionReplays():
    """A retransmitted rid gets exactly the response it got before."""
    h = harness()
    client = Client(h)
    first = client.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'pw')}</auth>")
    again = client.post(rid=client.rid)
    assert again.done and again.raw() == first.raw()


def test_ridOutsideWindow():
    """A rid beyond the window terminates the session with item-not-found."""
    h = harness()
    client = Client(h)
    answer = client.post(rid=client.rid + 5).answer()
    assert (answer["type"], answer["condition"]) == ("terminate", "item-not-found")
    assert client.session is None


def test_oldRidNotCached():
    """A rid older than the kept responses is item-not-found."""
    h = harness()
    client = Client(h)
    for _ in range(4):
        client.post()
    answer = client.post(rid=client.rid - 3).answer()
    assert answer["condition"] == "item-not-found"


def test_outOfOrderProcessedInOrder():
    """A request that overtakes the previous one waits for it and both are processed in rid order."""
    h = harness()
    client = Client(h)
    auth = f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'pw')}</auth>"
    late = client.post(xmpp_restart="true", rid=client.rid + 2)
    assert not late.done and client.session.lastRid == client.rid
    early = client.post(auth, rid=client.rid + 1)
    client.rid += 2
    assert early.answer().firstChildElement().name == "success"
    assert late.answer().firstChildElement().bind is not None


def test_restartBeforeAuthIsBadRequest():
    """xmpp:restart without a preceding SASL success terminates with bad-request."""
    h = harness()
    client = Client(h)
    answer = client.post(xmpp_restart="true").answer()
    assert answer["condition"] == "bad-request" and client.session is None


def test_clientTerminate():
    """type='terminate' processes its stanzas, answers terminate and ends the XMPP session."""
    h = harness()
    bob, bobTransport = h.connect("bob")
    client = Client(h)
    full = client.login()
    held = client.post()
    answer = client.post("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate").answer()
    assert answer["type"] == "terminate"
    assert held.done
    h.clock.advance(0)
    assert client.session is None
    assert h.host.sessions.get("alice@localhost", full.split("/")[1]) is None


def test_streamErrorTerminates():
    """A stream error from the server answers the held request with remote-stream-error and the error."""
    h = harness()
    client = Client(h)
    held = client.post()
    client.session.stream.close("system-shutdown", "Bye")
    answer = held.answer()
    assert (answer["type"], answer["condition"]) == ("terminate", "remote-stream-error")
    [streamError] = answer.elements()
    assert (streamError.uri, streamError.name) == (NS_STREAMS, "error")
    assert streamError.firstChildElement().name == "system-shutdown"
    assert client.session is None


def test_streamErrorKeptForNextRequest():
    """With no request held, the terminal body goes to the client's next request."""
    h = harness()
    client = Client(h)
    client.session.stream.close("connection-timeout")
    answer = client.post().answer()
    assert answer["condition"] == "remote-stream-error"
    assert client.session is None


def test_negotiationTimeout():
    """A session not bound within negotiation_seconds is closed with connection-timeout."""
    h = harness(max_inactivity=600)
    client = Client(h)
    h.clock.advance(h.config.limits.negotiation_seconds)
    answer = client.post().answer()
    assert answer.firstChildElement().firstChildElement().name == "connection-timeout"


def test_lostRequestForgotten():
    """A held request whose client disconnected is not written to, and inactivity starts."""
    h = harness()
    client = Client(h, wait=60)
    held = client.post()
    held.lose()
    assert not client.session.held
    h.clock.advance(60)
    h.clock.advance(0)
    assert client.session is None and not held.done


def test_pendingDataLimit():
    """Undelivered data beyond max_pending_bytes ends the session with policy-violation."""
    h = harness(max_body_bytes=10000, max_pending_bytes=10000)
    client = Client(h)
    jid = client.login()
    bob, _ = h.connect("bob")
    for _ in range(20):
        h.send(bob, f"<message to='{jid}' type='chat'><body>{'x' * 1000}</body></message>")
    answer = client.post().answer()
    assert answer["condition"] == "remote-stream-error"
    assert answer.firstChildElement().firstChildElement().name == "policy-violation"


@pytest.mark.parametrize("payload, status, condition", [
    ("garbage", 400, "bad-request"),
    ("<body xmlns='jabber:client' rid='1'/>", 400, "bad-request"),
    (f"<body xmlns='{NS_HTTPBIND}'/>", 400, "bad-request"),
    (f"<body xmlns='{NS_HTTPBIND}' rid='-4'/>", 400, "bad-request"),
    (f"<body xmlns='{NS_HTTPBIND}' rid='1' sid='unknown'/>", 200, "item-not-found"),
    (f"<body xmlns='{NS_HTTPBIND}' rid='1'><!-- x --></body>", 400, "bad-request"),
])
def test_badBodies(payload, status, condition):
    """Bodies that are not acceptable get the XEP-0124 terminal condition."""
    h = harness()
    post = Post(boshResource(h.host), payload)
    assert post.status == status
    assert (post.answer()["type"], post.answer()["condition"]) == ("terminate", condition)


def test_bodyTooLarge():
    """A body above max_body_bytes gets 413 with policy-violation."""
    h = harness(max_body_bytes=10000)
    post = Post(boshResource(h.host), f"<body xmlns='{NS_HTTPBIND}' rid='1'>{'x' * 10001}</body>")
    assert post.status == 413 and post.answer()["condition"] == "policy-violation"


def test_maxSessions():
    """Creation beyond max_sessions is refused with policy-violation."""
    h = harness(max_sessions=1)
    bosh = boshResource(h.host)
    Client(h, bosh)
    body = Post(bosh, f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>").answer()
    assert body["condition"] == "policy-violation" and len(bosh.sessions) == 1


def test_corsAnyOrigin():
    """Without allowed_origins every Origin gets Access-Control-Allow-Origin: *."""
    h = harness()
    post = Post(boshResource(h.host), f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>",
                origin="https://app.example.com")
    assert post.request.responseHeaders.getRawHeaders(b"access-control-allow-origin") == [b"*"]


def test_corsAllowedOrigins():
    """With allowed_origins, listed Origins are echoed and others get 403."""
    h = harness(allowed_origins=["https://app.example.com"])
    bosh = boshResource(h.host)
    ok = Post(bosh, f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>", origin="https://app.example.com")
    assert ok.request.responseHeaders.getRawHeaders(b"access-control-allow-origin") == [b"https://app.example.com"]
    refused = Post(bosh, f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost'/>", origin="https://evil.example")
    assert refused.status == 403 and len(bosh.sessions) == 1


def test_preflight():
    """OPTIONS answers the CORS preflight."""
    h = harness()
    request = DummyRequest([b""])
    request.method = b"OPTIONS"
    request.requestHeaders.setRawHeaders(b"origin", [b"https://app.example.com"])
    boshResource(h.host).render(request)
    assert request.responseHeaders.getRawHeaders(b"access-control-allow-methods") == [b"POST, OPTIONS"]


def test_getNotAllowed():
    """GET gets 405 with Allow: POST, OPTIONS."""
    h = harness()
    request = DummyRequest([b""])
    request.method = b"GET"
    boshResource(h.host).render(request)
    assert request.responseCode == 405


def test_siteMountsAtPath():
    """boshSite serves the resource at the configured path."""
    h = harness(path="/xmpp/http-bind")
    site = boshSite(h.host, h.config.bosh)
    request = DummyRequest([b"xmpp", b"http-bind"])
    request.prepath = []
    assert site.getResourceFor(request) is site.bosh


def test_configValidation():
    """Bad [websocket] and [bosh] values are all reported with their keys."""
    from xmppchat.config import ConfigError, buildConfig

    with pytest.raises(ConfigError) as caught:
        buildConfig({"websocket": {"port": 70000, "path": "ws", "allowed_origins": [1]},
                     "bosh": {"interface": "nowhere", "max_hold": 0, "max_body_bytes": 5}}, "t.toml")
    problems = "\n".join(caught.value.problems)
    for key in ("websocket.port", "websocket.path", "websocket.allowed_origins", "bosh.interface",
                "bosh.max_hold", "bosh.max_body_bytes"):
        assert f"t.toml: {key}:" in problems


def test_boundedRequestKeepsLimit():
    """The listener's requests keep at most max_body_bytes + 1 body bytes and drop floods."""
    from types import SimpleNamespace

    from twisted.web.test.requesthelper import DummyChannel

    from xmppchat.httpsite import BoundedRequest

    channel = DummyChannel()
    channel.site = SimpleNamespace(maxBodyBytes=100, refuseEarly=False, _parsePOSTFormSubmission=False)
    lost = []
    channel.transport.loseConnection = lambda: lost.append(True)
    request = BoundedRequest(channel)
    request.gotLength(None)
    request.handleContentChunk(b"x" * 150)
    request.content.seek(0)
    assert len(request.content.read()) == 101 and not lost
    request.handleContentChunk(b"x" * 100)
    assert lost


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(
    lambda t: f"<body xmlns='{NS_HTTPBIND}' rid='1001'>{t}</body>"))
def test_arbitraryBodiesNeverCrash(payload):
    """Any POST body to a live session is answered or held, never an exception."""
    h = harness()
    client = Client(h)
    post = Post(client.bosh, payload)
    h.clock.advance(0)
    if post.done:
        assert post.answer().name == "body"
