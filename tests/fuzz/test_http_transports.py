"""
Fuzzing the WebSocket (RFC 7395) and BOSH (XEP-0124/XEP-0206) transports
beyond what tests/c2s covers (one arbitrary frame or body): WebSocket
frames split across reads and fragmented into continuation frames must
give the same answers; hostile elements inside frames and BOSH bodies of
live sessions end the stream with the matching error, never a logged
failure, and other sessions keep working.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import error
from twisted.python import failure

from tests.c2s.test_bosh import Client as BOSHClient
from tests.c2s.test_bosh import Post
from tests.c2s.test_websocket import OPEN, WSClient, clientFrame, plain
from tests.c2s.test_websocket import harness as wsHarness
from tests.fuzz.helpers import LoggedFailures, NS_SASL, NS_STREAMS
from tests.fuzz.test_tcp_stream import DEEP, LAUGHS
from tests.helpers import HostHarness

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
BIND = "<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
CONTINUATION = 0


def fragments(payload: bytes, cuts) -> bytes:
    """One text message as a first frame and continuation frames (RFC 6455 §5.4), split at C{cuts}."""
    offsets = sorted({0, len(payload), *[c % (len(payload) + 1) for c in cuts]})
    pieces = [payload[a:b] for a, b in pairwise(offsets)] or [b""]
    frames = []
    for i, piece in enumerate(pieces):
        frame = clientFrame(piece, 1 if i == 0 else CONTINUATION)
        if i < len(pieces) - 1:
            frame = bytes([frame[0] & 0x7F]) + frame[1:]  # FIN cleared
        frames.append(frame)
    return b"".join(frames)


WS_SCRIPT = [
    OPEN,
    f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'pw')}</auth>",
    OPEN,
    BIND,
    "<presence xmlns='jabber:client'><status>\u00e9t\u00e9 \U0001F600</status></presence>",
    "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x'><body>caf\u00e9 &amp; \u2603</body></message>",
    "<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    f"<close xmlns='{NS_FRAMING}'/>",
]


def playWebSocket(frameCuts=(), readCuts=()):
    """Play the script with each message fragmented at C{frameCuts} and the bytes read in pieces at C{readCuts}."""
    h, factory = wsHarness()
    h.addUser("alice", "pw")
    bob, bobTransport = h.connect("bob")
    client = WSClient(factory)
    answers = []
    for index, text in enumerate(WS_SCRIPT):
        data = fragments(text.encode(), [c for c in frameCuts if c % len(WS_SCRIPT) == index])
        offsets = sorted({0, len(data), *[c % (len(data) + 1) for c in readCuts]})
        for start, end in pairwise(offsets):
            client.proto.dataReceived(data[start:end])
        for opcode, payload in client.frames():
            answers.append((opcode, payload[:20] if b"id=" in payload else payload))
    received = [str(e.body) for e in bobTransport.pop() if e.name == "message"]
    return [(op, p.split(b" ")[0]) for op, p in answers], received


def test_webSocketScript():
    """The reference WebSocket script logs in, chats and closes."""
    answers, received = playWebSocket()
    assert received == ["caf\u00e9 & \u2603"]
    assert answers[-1][0] == 8  # the WebSocket close


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
       st.lists(st.integers(min_value=0, max_value=5000), max_size=20))
def test_webSocketFragmentationInvariant(frameCuts, readCuts):
    """Messages in continuation frames and frames split across reads give the same answers."""
    reference = playWebSocket()
    with LoggedFailures() as failures:
        assert playWebSocket(frameCuts, readCuts) == reference
    assert not failures.events, failures.describe()


WS_HOSTILE = {
    "deep-nesting": ("<message xmlns='jabber:client'>" + DEEP + "</a>" * 69 + "</message>", "policy-violation"),
    "many-attributes": ("<message xmlns='jabber:client' " + " ".join(f"a{i}='x'" for i in range(100)) + "/>",
                        "policy-violation"),
    "many-prefixes": ("<message xmlns='jabber:client' " + " ".join(f"xmlns:p{i}='u{i}'" for i in range(100)) + "/>",
                      "policy-violation"),
    "billion-laughs": (LAUGHS + "<message xmlns='jabber:client'/>", "restricted-xml"),
    "undefined-entity": ("<message xmlns='jabber:client'><body>&lol;</body></message>", "not-well-formed"),
    "processing-instruction": ("<?php evil ?><message xmlns='jabber:client'/>", "restricted-xml"),
    "latin1-declaration": ("<?xml version='1.0' encoding='latin1'?><message xmlns='jabber:client'/>",
                           "unsupported-encoding"),
    "stanza-before-auth": ("<message xmlns='jabber:client' to='bob@localhost'><body>x</body></message>",
                           "not-authorized"),
    "unknown-framing": (f"<reopen xmlns='{NS_FRAMING}'/>", "unsupported-stanza-type"),
    "unknown-namespace": ("<hello xmlns='urn:example:evil'/>", "unsupported-stanza-type"),
    "second-open": (OPEN, "bad-format"),
}


def webSocketStreamError(client):
    elements = client.elements()
    errors = [e for e in elements if (e.uri, e.name) == (NS_STREAMS, "error")]
    assert errors and elements[-1].name == "close", [e.toXml() for e in elements]
    return errors[0].firstChildElement().name


@pytest.mark.parametrize("name", sorted(WS_HOSTILE))
def test_webSocketHostileFrames(name):
    """Each hostile frame gets its stream error and <close/>; a TCP-like session keeps chatting."""
    payload, condition = WS_HOSTILE[name]
    h, factory = wsHarness()
    alice, aliceTransport = h.connect("alice")
    bob, bobTransport = h.connect("bob")
    with LoggedFailures() as failures:
        client = WSClient(factory)
        client.open()
        client.send(payload)
        assert webSocketStreamError(client) == condition
        h.send(alice, "<message to='bob@localhost' type='chat'><body>fine</body></message>")
        assert [str(m.body) for m in bobTransport.pop() if m.name == "message"] == ["fine"]
    assert not failures.events, failures.describe()


def test_webSocketInvalidUTF8TextFrame():
    """A text frame that is not UTF-8 makes autobahn drop the connection without a traceback; the stream ends."""
    h, factory = wsHarness()
    with LoggedFailures() as failures:
        client = WSClient(factory)
        client.transport.unregisterProducer = lambda: None  # real transports allow it
        client.open()
        client.send(b"<message xmlns='jabber:client'><body>\xff\xfe</body></message>")
        assert client.frames() == [] and client.transport.disconnecting
        client.proto.connectionLost(failure.Failure(error.ConnectionLost()))
        assert client.proto.stream.closed
    assert not failures.events, failures.describe()


def test_webSocketFloodBeforeAuth():
    """Frames keep coming after the stream error; none is processed, nothing is logged."""
    h, factory = wsHarness()
    alice, aliceTransport = h.connect("alice")
    with LoggedFailures() as failures:
        client = WSClient(factory)
        client.open()
        for _ in range(500):
            client.send("<message xmlns='jabber:client' to='alice@localhost'><body>spam</body></message>")
        assert webSocketStreamError(client) == "not-authorized"
        assert not [m for m in aliceTransport.pop() if m.name == "message"]
    assert not failures.events, failures.describe()


# -- BOSH -------------------------------------------------------------------------

BOSH_HOSTILE = {
    "deep-nesting": ("<message xmlns='jabber:client'>" + DEEP + "</a>" * 69 + "</message>"),
    "many-attributes": ("<message xmlns='jabber:client' " + " ".join(f"a{i}='x'" for i in range(100)) + "/>"),
    "undefined-entity": "<message xmlns='jabber:client'><body>&lol;</body></message>",
    "comment": "<!-- x --><message xmlns='jabber:client'/>",
    "unclosed": "<message xmlns='jabber:client'><body>",
}


@pytest.mark.parametrize("name", sorted(BOSH_HOSTILE))
def test_boshHostileBodiesOfLiveSession(name):
    """A live session's body with hostile XML is a 400 bad-request; the session's stream is not fed."""
    h = HostHarness()
    h.addUser("alice", "pw")
    bob, bobTransport = h.connect("bob")
    with LoggedFailures() as failures:
        client = BOSHClient(h)
        client.login()
        post = client.post(BOSH_HOSTILE[name])
        assert post.status == 400 and post.answer()["condition"] == "bad-request"
        h.clock.advance(0)
        other = BOSHClient(h)
        other.login()
        other.post("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>ok</body></message>")
        assert [str(m.body) for m in bobTransport.pop() if m.name == "message"] == ["ok"]
    assert not failures.events, failures.describe()


def test_boshStanzasBeforeAuth():
    """Stanzas in a body before SASL end the session with remote-stream-error not-authorized."""
    h = HostHarness()
    bob, bobTransport = h.connect("bob")
    client = BOSHClient(h)
    post = client.post("<message xmlns='jabber:client' to='bob@localhost'><body>spam</body></message>" * 200)
    answer = post.answer()
    assert answer["condition"] == "remote-stream-error"
    assert answer.firstChildElement().firstChildElement().name == "not-authorized"
    assert not [m for m in bobTransport.pop() if m.name == "message"]


CHILDREN = st.lists(st.sampled_from([
    "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hi</body></message>",
    "<message xmlns='jabber:client' to='@@@' type='chat'/>",
    "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq xmlns='jabber:client' type='bogus'/>",
    "<presence xmlns='jabber:client' type='nonsense'/>",
    "<presence xmlns='jabber:client' to='bob@localhost/none'/>",
    "<unknown xmlns='urn:example:evil'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AAAA</auth>",
    "<message xmlns='jabber:server' to='bob@localhost'/>",
    "text between stanzas",
]), max_size=6)


@FUZZ
@given(CHILDREN, st.sampled_from(["", " type='terminate'", " xmpp:restart='true'", " rid='99999999'"]))
def test_boshRandomChildrenAfterBind(children, extra):
    """Any mix of stanzas and junk in a bound session's body is answered or ends the session cleanly."""
    h = HostHarness()
    h.addUser("alice", "pw")
    bob, bobTransport = h.connect("bob")
    with LoggedFailures() as failures:
        client = BOSHClient(h)
        client.login()
        client.rid += 1
        body = (f"<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' "
                f"rid='{client.rid}' sid='{client.sid}'{extra}>{''.join(children)}</body>")
        post = Post(client.bosh, body.replace(f"rid='{client.rid}' sid", "sid", 1)
                    if "rid='9" in extra else body)
        h.clock.advance(0)
        h.clock.advance(60)
        assert post.done and post.answer().name == "body"
    assert not failures.events, failures.describe()
