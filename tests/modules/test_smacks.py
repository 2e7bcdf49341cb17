"""
Tests for XEP-0198 stream management: counters, acks held back by pending
writes, server requests, resumption and the offline fallback.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer

from xmppchat.c2s.negotiation import AUTHENTICATED, BOUND, C2SStream
from xmppchat.config import ConfigError, buildConfig
from xmppchat.modules.smacks import MOD, NS_SM, parseCount, withoutOwnDelay
from xmppchat.stanzas import delayElement
from tests.helpers import HostHarness, StubTransport, result, xml

ENABLE = f"<enable xmlns='{NS_SM}' resume='true'/>"
R = f"<r xmlns='{NS_SM}'/>"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def ack(h):
    return f"<a xmlns='{NS_SM}' h='{h}'/>"


def enable(h, session, transport, text=ENABLE):
    """Enable stream management on a bound session; return <enabled/>."""
    transport.pop()
    h.send(session, text)
    [enabled] = transport.pop()
    assert enabled.name == "enabled", enabled.toXml()
    return enabled


def pair(h, text=ENABLE):
    """alice/r with stream management enabled, and bob/r to talk to her; returns both, their transports and <enabled/>."""
    alice, ta = h.connect("alice", "r")
    bob, tb = h.connect("bob", "r")
    return alice, ta, bob, tb, enable(h, alice, ta, text)


def authenticatedStream(h, localpart):
    """A new stream authenticated as C{localpart}, not bound yet."""
    transport = StubTransport(secure=True)
    stream = C2SStream(h.host, transport)
    stream.phase = AUTHENTICATED
    stream.localpart = localpart
    stream.account = result(h.storage.accounts.getAccountByLocalpart(localpart))
    return stream, transport


def resume(h, localpart, previd, handled):
    stream, transport = authenticatedStream(h, localpart)
    stream.elementReceived(xml(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{handled}'/>"))
    return stream, transport


def cut(session):
    """The connection under a session's stream breaks (no </stream>)."""
    session.stream.connectionLost()


def chat(h, sender, to, count, start=0):
    for i in range(start, start + count):
        h.send(sender, f"<message to='{to}' type='chat' id='m{i}'><body>m{i}</body></message>")


def bodies(elements):
    return [str(e.body) for e in elements if e.name == "message"]


def smNames(elements):
    return [e.name for e in elements if e.uri == NS_SM]


def failure(element):
    assert element.name == "failed" and element.uri == NS_SM, element.toXml()
    return element.firstChildElement().name


def offlineBodies(h, localpart):
    return [str(xml(m.stanza).body) for m in result(h.storage.offline.fetchOffline(localpart))]


@pytest.fixture
def h():
    harness = HostHarness()
    harness.addUser("alice")
    harness.addUser("bob")
    return harness


# -- negotiation ---------------------------------------------------------


def test_featureOfferedAfterAuthenticationOnly(h):
    """<sm/> is in the features of the authenticated stream (next to bind), not before SASL."""
    stream, transport = authenticatedStream(h, "alice")
    stream.streamStarted({"to": "localhost", "version": "1.0"})
    features = transport.headers[-1][2]
    assert [(e.uri, e.name) for e in features.elements() if e.uri == NS_SM] == [(NS_SM, "sm")]
    fresh = C2SStream(h.host, StubTransport(secure=True))
    fresh.streamStarted({"to": "localhost", "version": "1.0"})
    assert not [e for e in fresh.transport.headers[-1][2].elements() if e.uri == NS_SM]


def test_enableBeforeBindFails(h):
    """<enable/> before resource binding gets <failed> with unexpected-request (§3)."""
    stream, transport = authenticatedStream(h, "alice")
    stream.elementReceived(xml(ENABLE))
    [reply] = transport.pop()
    assert failure(reply) == "unexpected-request"
    assert stream.phase == AUTHENTICATED and not stream.closed


def test_enableTwiceFails(h):
    """A second <enable/> gets <failed> with unexpected-request and keeps the first state."""
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    sm = alice.sm
    h.send(alice, ENABLE)
    [reply] = ta.pop()
    assert failure(reply) == "unexpected-request"
    assert alice.sm is sm


def test_enableWithResume(h):
    """resume='true' gets an id, resume='true' and max = the configured window; ids are long and distinct."""
    alice, ta = h.connect("alice", "r")
    enabled = enable(h, alice, ta)
    assert enabled["resume"] == "true" and enabled["max"] == "300"
    bob, tb = h.connect("bob", "r")
    other = enable(h, bob, tb)
    assert len(enabled["id"]) >= 32 and enabled["id"] != other["id"]


def test_enableHonoursShorterClientMax(h):
    """A client max below the configured window shortens it; a larger one does not lengthen it."""
    alice, ta = h.connect("alice", "r")
    assert enable(h, alice, ta, f"<enable xmlns='{NS_SM}' resume='1' max='60'/>")["max"] == "60"
    bob, tb = h.connect("bob", "r")
    assert enable(h, bob, tb, f"<enable xmlns='{NS_SM}' resume='true' max='9999'/>")["max"] == "300"


def test_enableWithoutResume(h):
    """Plain <enable/> (what the ConnectyCube SDK sends) gets <enabled/> with no id."""
    alice, ta = h.connect("alice", "r")
    enabled = enable(h, alice, ta, f"<enable xmlns='{NS_SM}'/>")
    assert enabled.getAttribute("id") is None and enabled.getAttribute("resume") is None


def test_ackAndRequestBeforeEnableIgnored(h):
    """<r/> and <a/> before <enable/> are ignored, not answered and not fatal."""
    alice, ta = h.connect("alice", "r")
    h.send(alice, R)
    h.send(alice, ack(3))
    assert ta.pop() == [] and not alice.stream.closed


# -- counting -----------------------------------------------------------------


def test_inboundCount(h):
    """<a/> answers <r/> with the number of stanzas handled since <enable/>, of every kind."""
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    h.send(alice, R)
    assert ta.pop()[-1].toXml() == f"<a xmlns='{NS_SM}' h='0'/>"
    h.send(alice, "<message to='bob@localhost' type='chat'><body>x</body></message>")
    h.send(alice, "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    h.send(alice, "<presence/>")
    ta.pop()
    h.send(alice, R)
    [a] = ta.pop()
    assert a.name == "a" and a["h"] == "3"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(min_value=MOD - 20, max_value=MOD - 1), count=st.integers(min_value=0, max_value=30))
def test_inboundWrapsAround(start, count):
    """The inbound h is reduced modulo 2^32 (it goes from 4294967295 back to 0)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    alice.sm.received = start
    for _ in range(count):
        h.send(alice, "<presence type='probe' to='bob@localhost'/>")
    ta.pop()
    h.send(alice, R)
    [a] = ta.pop()
    assert int(a["h"]) == (start + count) % MOD


@settings(max_examples=40, deadline=None)
@given(start=st.integers(min_value=MOD - 20, max_value=MOD - 1),
       count=st.integers(min_value=1, max_value=25), data=st.data())
def test_outboundAcksWrapAround(start, count, data):
    """Client acks are counted modulo 2^32: acking j of count stanzas across the wrap leaves count - j queued."""
    h = HostHarness(smacks={"request_every": 0, "request_seconds": 0})
    alice, ta, bob, _, _ = pair(h)
    alice.sm.acked = start
    chat(h, bob, "alice@localhost/r", count)
    assert len(ta.pop()) == count
    acked = data.draw(st.integers(min_value=0, max_value=count))
    h.send(alice, ack((start + acked) % MOD))
    assert [str(s.body) for _, s in alice.sm.queue] == [f"m{i}" for i in range(acked, count)]
    assert not alice.stream.closed


@settings(max_examples=40, deadline=None)
@given(start=st.integers(min_value=0, max_value=MOD - 1),
       steps=st.lists(st.tuples(st.integers(min_value=0, max_value=6), st.floats(0, 1)), max_size=12))
def test_queueMatchesModel(start, steps):
    """Any mix of deliveries and (valid) acks leaves exactly the stanzas after the last ack queued, in order."""
    # up to 72 messages from bob: more than the default message burst
    h = HostHarness(smacks={"request_every": 0, "request_seconds": 0}, limits={"message_rate": 0})
    alice, ta = h.connect("alice", "r")
    bob, _ = h.connect("bob", "r")
    enable(h, alice, ta)
    alice.sm.acked = start
    sent = acked = 0
    for deliver, fraction in steps:
        chat(h, bob, "alice@localhost/r", deliver, start=sent)
        sent += deliver
        acked += int((sent - acked) * fraction)
        h.send(alice, ack((start + acked) % MOD))
        assert [str(s.body) for _, s in alice.sm.queue] == [f"m{i}" for i in range(acked, sent)]
    assert bodies(ta.pop()) == [f"m{i}" for i in range(sent)]


def test_ackTooHighEndsStream(h):
    """An h acknowledging more than was sent gets undefined-condition with <handled-count-too-high/>."""
    alice, ta, bob, _, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 2)
    h.send(alice, ack(5))
    error = ta.closed
    assert error.firstChildElement().name == "undefined-condition"
    [detail] = [e for e in error.elements() if e.uri == NS_SM]
    assert detail.name == "handled-count-too-high" and detail["h"] == "5" and detail["send-count"] == "2"
    cut(alice)
    assert alice.closed and offlineBodies(h, "alice") == ["m0", "m1"]


def test_invalidHEndsStream(h):
    """<a/> with a non-numeric or too large h ends the stream with bad-format."""
    for value in ("x", "-1", str(MOD), ""):
        alice, ta = h.connect("alice", "r")
        enable(h, alice, ta)
        h.send(alice, f"<a xmlns='{NS_SM}' h='{value}'/>")
        assert ta.closed.firstChildElement().name == "bad-format", value


def test_parseCount():
    """h and max parse as xs:unsignedInt only."""
    assert parseCount("0") == 0 and parseCount("4294967295") == MOD - 1
    for bad in (None, "", "4294967296", "+1", " 1", "1.0", "١"):
        assert parseCount(bad) is None


# -- server requests ----------------------------------------------------------------


def test_serverRequestsAfterEveryN(h):
    """The server sends <r/> after request_every unacknowledged stanzas."""
    h = HostHarness(smacks={"request_every": 3, "request_seconds": 0})
    alice, ta, bob, _, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 7)
    assert [e.name for e in ta.pop()] == ["message"] * 3 + ["r"] + ["message"] * 3 + ["r", "message"]


def test_serverRequestsAfterSeconds(h):
    """With fewer stanzas than request_every, <r/> follows request_seconds after the first unacked one."""
    h = HostHarness(smacks={"request_every": 0, "request_seconds": 10})
    alice, ta, bob, _, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 1)
    h.clock.advance(9)
    assert smNames(ta.pop()) == []
    h.clock.advance(1)
    assert smNames(ta.pop()) == ["r"]
    h.send(alice, ack(1))
    h.clock.advance(60)
    assert ta.pop() == []


# -- acks wait for durable handling ----------------------------------------------------


def holdStores(h):
    """Make offline stores wait for the returned list of Deferreds to be fired."""
    held = []
    store = h.storage.offline.storeOffline

    def storeOffline(*args):
        d = defer.Deferred()
        held.append(d)
        return d.addCallback(lambda _: store(*args))

    h.storage.offline.storeOffline = storeOffline
    return held


def heldSender(h):
    """alice/r with stream management, and offline carol whose stores wait (see holdStores)."""
    h.addUser("carol")
    held = holdStores(h)
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    return held, alice, ta


def test_ackWaitsForOfflineStore(h):
    """A message stored offline is acknowledged only once the write is done, and later stanzas wait with it."""
    held, alice, ta = heldSender(h)
    h.send(alice, "<message to='carol@localhost' type='chat' id='c1'><body>hi</body></message>")
    h.send(alice, "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    h.send(alice, R)
    assert smNames(ta.pop()) == []
    assert alice.sm.durable() == 0
    held[0].callback(None)
    [pong, a] = ta.pop()
    assert (pong.name, pong["id"]) == ("iq", "p") and (a.name, a["h"]) == ("a", "2")
    assert offlineBodies(h, "carol") == ["hi"]


def test_ackWaitsInOrder(h):
    """Two pending writes: the ack covers only stanzas before the one still pending."""
    held, alice, ta = heldSender(h)
    chat(h, alice, "carol@localhost", 2)
    h.send(alice, R)
    assert len(held) == 1  # the second message waits behind the first (the router keeps the order)
    held[0].callback(None)
    assert smNames(ta.pop()) == []
    held[1].callback(None)
    assert [a["h"] for a in ta.pop()] == ["2"]
    assert offlineBodies(h, "carol") == ["m0", "m1"]


def test_failedWriteStillCounts(h):
    """A store that fails (quota) bounces an error to the sender; the stanza counts as handled."""
    h = HostHarness(limits={"offline_messages_per_user": 1, "ping_interval": 0})
    h.addUser("carol")
    result(h.storage.offline.storeOffline("carol", "<message/>", 0, None))
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    h.send(alice, "<message to='carol@localhost' type='chat' id='q'><body>x</body></message>")
    h.send(alice, R)
    sent = ta.pop()
    assert sent[0].name == "message" and sent[0]["type"] == "error"
    assert (sent[-1].name, sent[-1]["h"]) == ("a", "1")


def test_requestsWhileWritesPendingAreBounded(h):
    """A flood of <r/> while a write is pending keeps a bounded list of waiting acks."""
    held, alice, ta = heldSender(h)
    chat(h, alice, "carol@localhost", 1)
    for _ in range(1000):
        h.send(alice, R)
    assert len(alice.sm.waiting) <= 16
    held[0].callback(None)
    acks = ta.pop()
    assert acks and all(a.name == "a" and a["h"] == "1" for a in acks)


# -- resumption ------------------------------------------------------------------------------


def test_hibernationIsSilent(h):
    """A broken resumable stream keeps its session: no unavailable presence, still registered and queuing."""
    alice, ta = h.connect("alice", "r")
    other, to = h.connect("alice", "other")
    enable(h, alice, ta)
    cut(alice)
    assert not alice.closed and h.host.sessions.get("alice@localhost", "r") is alice
    assert [e for e in to.pop() if e.name == "presence"] == []
    bob, _ = h.connect("bob", "r")
    chat(h, bob, "alice@localhost/r", 2)
    assert [str(s.body) for _, s in alice.sm.queue] == ["m0", "m1"]


def test_resumeReplaysUnackedInOrder(h):
    """<resume/> gets <resumed h/> and every unacknowledged stanza in order, on the same session and JID."""
    alice, ta, bob, _, enabled = pair(h)
    h.send(alice, "<message to='bob@localhost' type='chat'><body>from alice</body></message>")
    chat(h, bob, "alice@localhost/r", 5)
    h.send(alice, ack(2))
    cut(alice)
    chat(h, bob, "alice@localhost/r", 3, start=5)
    stream, transport = resume(h, "alice", enabled["id"], 3)
    sent = transport.pop()
    assert sent[0].name == "resumed" and sent[0]["previd"] == enabled["id"] and sent[0]["h"] == "1"
    assert bodies(sent) == ["m3", "m4", "m5", "m6", "m7"]
    assert stream.phase == BOUND and stream.session is alice and alice.stream is stream
    assert h.host.sessions.get("alice@localhost", "r") is alice
    chat(h, bob, "alice@localhost/r", 1, start=8)
    assert bodies(transport.pop()) == ["m8"]
    h.send(alice, "<message to='bob@localhost' type='chat'><body>again</body></message>")
    h.send(alice, R)
    assert transport.pop()[-1]["h"] == "2"


def test_resumeTakesOverHalfDeadStream(h):
    """Resuming while the old stream still looks open closes it (conflict) without ending the session."""
    alice, ta = h.connect("alice", "r")
    other, to = h.connect("alice", "other")
    enabled = enable(h, alice, ta)
    old = alice.stream
    stream, transport = resume(h, "alice", enabled["id"], 0)
    assert ta.closed.firstChildElement().name == "conflict"
    assert transport.pop()[0].name == "resumed"
    old.connectionLost()
    assert not alice.closed and alice.stream is stream and alice.available
    assert [e for e in to.pop() if e.name == "presence"] == []


def test_lateConnectionLostAfterResumeIsHarmless(h):
    """The old connection going away only after the resume (its stream already closed) does not end the session."""
    alice, ta = h.connect("alice", "r")
    enabled = enable(h, alice, ta)
    old = alice.stream
    alice.close("connection-timeout", "No answer to ping")
    stream, transport = resume(h, "alice", enabled["id"], 0)
    assert transport.pop()[0].name == "resumed"
    old.connectionLost()
    assert not alice.closed and alice.stream is stream and not alice.sm.hibernating


def test_noResumeAfterCleanClose(h):
    """Once the client sent </stream>, its session cannot be resumed, even before the connection is gone."""
    alice, ta = h.connect("alice", "r")
    enabled = enable(h, alice, ta)
    alice.stream.streamEnded()
    _, transport = resume(h, "alice", enabled["id"], 0)
    assert failure(transport.pop()[0]) == "item-not-found"


def test_resumeUnknownId(h):
    """An unknown previd gets <failed> with item-not-found, and the stream may still bind."""
    stream, transport = resume(h, "alice", "no-such-id", 0)
    [reply] = transport.pop()
    assert failure(reply) == "item-not-found"
    stream.elementReceived(xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"))
    assert stream.phase == BOUND


def test_resumeBoundToAccount(h):
    """Another account cannot resume a session, even with its id; the owner still can."""
    alice, ta = h.connect("alice", "r")
    enabled = enable(h, alice, ta)
    cut(alice)
    _, transport = resume(h, "bob", enabled["id"], 0)
    assert failure(transport.pop()[0]) == "item-not-found"
    assert alice.stream.closed and not alice.closed
    _, transport = resume(h, "alice", enabled["id"], 0)
    assert transport.pop()[0].name == "resumed"


def test_resumeBadRequest(h):
    """<resume/> without previd or a valid h gets bad-request; after bind it gets unexpected-request."""
    stream, transport = authenticatedStream(h, "alice")
    stream.elementReceived(xml(f"<resume xmlns='{NS_SM}' h='x' previd='abc'/>"))
    assert failure(transport.pop()[0]) == "bad-request"
    alice, ta = h.connect("alice", "r")
    h.send(alice, f"<resume xmlns='{NS_SM}' h='0' previd='abc'/>")
    assert failure(ta.pop()[0]) == "unexpected-request"


def test_resumeWithTooHighHFails(h):
    """A resume h above what was sent fails and ends the old session into offline storage."""
    alice, ta, bob, _, enabled = pair(h)
    chat(h, bob, "alice@localhost/r", 1)
    cut(alice)
    _, transport = resume(h, "alice", enabled["id"], 7)
    assert failure(transport.pop()[0]) == "undefined-condition"
    assert alice.closed and offlineBodies(h, "alice") == ["m0"]


def test_resumeWaitsForPendingWrites(h):
    """<resumed/> (and its h) waits for writes still pending from the old stream."""
    held, alice, ta = heldSender(h)
    chat(h, alice, "carol@localhost", 1)
    cut(alice)
    _, transport = resume(h, "alice", alice.sm.smid, 0)
    assert transport.pop() == []
    held[0].callback(None)
    [resumed] = transport.pop()
    assert resumed.name == "resumed" and resumed["h"] == "1"


def test_expiryReachesOtherResource(h):
    """After the window, unacked messages go to the account's other available resource (RFC 6121 §8.5.3.2.1) with their original time."""
    alice, ta = h.connect("alice", "r")
    other, to = h.connect("alice", "other")
    bob, tb = h.connect("bob", "r")
    enable(h, alice, ta)
    start = h.clock.seconds()
    chat(h, bob, "alice@localhost/r", 2)
    h.send(alice, ack(1))
    cut(alice)
    to.pop()
    h.clock.advance(300)
    delivered = [e for e in to.pop() if e.name == "message"]
    assert bodies(delivered) == ["m1"] and delivered[0].delay["stamp"] == delayElement(start, "x")["stamp"]
    assert result(h.storage.offline.fetchOffline("alice")) == []


def test_expiryEndsSessionIntoOffline(h):
    """After the window, the session ends (unavailable broadcast) and unacked messages are stored with their original time."""
    alice, ta = h.connect("alice", "r")
    other, to = h.connect("alice", "other", available=False)
    bob, tb = h.connect("bob", "r")
    enabled = enable(h, alice, ta)
    start = h.clock.seconds()
    chat(h, bob, "alice@localhost/r", 2)
    h.send(alice, ack(1))
    cut(alice)
    h.clock.advance(100)
    chat(h, bob, "alice@localhost/r", 1, start=2)
    h.clock.advance(199)
    assert not alice.closed
    h.clock.advance(1)
    assert alice.closed and h.host.sessions.get("alice@localhost", "r") is None
    stored = result(h.storage.offline.fetchOffline("alice"))
    assert [str(xml(m.stanza).body) for m in stored] == ["m1", "m2"]
    assert [m.stamp for m in stored] == [start, start + 100]
    _, transport = resume(h, "alice", enabled["id"], 1)
    assert failure(transport.pop()[0]) == "item-not-found"
    new, tn = h.connect("alice", "again", available=False)
    h.send(new, "<presence/>")
    delivered = [e for e in tn.pop() if e.name == "message"]
    assert bodies(delivered) == ["m1", "m2"] and all(m.delay is not None for m in delivered)
    assert tb.pop() == []


def test_connectionTimeoutHibernates(h):
    """A stream the server closed for connection-timeout (dead client) waits for resumption too."""
    alice, ta = h.connect("alice", "r")
    enable(h, alice, ta)
    alice.close("connection-timeout", "No answer to ping")
    cut(alice)
    assert not alice.closed and alice.sm.hibernating


def test_unackedIqAnsweredWithError(h):
    """An IQ request never acknowledged by the recipient is answered with service-unavailable when it ends."""
    alice, ta, bob, tb, _ = pair(h)
    h.send(bob, "<iq type='get' id='v' to='alice@localhost/r'><query xmlns='jabber:iq:version'/></iq>")
    tb.pop()
    cut(alice)
    h.clock.advance(300)
    [error] = [e for e in tb.pop() if e.name == "iq"]
    assert error["type"] == "error" and error["id"] == "v"
    assert error.error.firstChildElement().name == "service-unavailable"


# -- sessions that end --------------------------------------------------------------------------


def test_cleanCloseStoresUnacked(h):
    """</stream> ends the session at once; only the messages not acked go to offline storage."""
    alice, ta, bob, _, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 3)
    h.send(alice, ack(2))
    alice.stream.streamEnded()
    alice.stream.connectionLost()
    assert alice.closed and offlineBodies(h, "alice") == ["m2"]


def test_nonResumableEndsOnDisconnect(h):
    """Without resumption a broken stream ends the session; unacked messages go offline, chat states do not."""
    alice, ta, bob, _, _ = pair(h, f"<enable xmlns='{NS_SM}'/>")
    chat(h, bob, "alice@localhost/r", 1)
    h.send(bob, "<message to='alice@localhost/r' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
    h.send(bob, "<message to='alice@localhost/r' type='headline'><body>news</body></message>")
    cut(alice)
    assert alice.closed and offlineBodies(h, "alice") == ["m0"]


def test_freshBindOfSameResourceStoresUnacked(h):
    """Binding the hibernating session's resource again ends it; its unacked messages reach the new session."""
    alice, ta, bob, _, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 2)
    cut(alice)
    new, tn = h.connect("alice", "r", available=False)
    assert alice.closed and new is not alice
    h.send(new, "<presence/>")
    assert bodies(tn.pop()) == ["m0", "m1"]


def test_overflowEndsSession(h):
    """Past max_unacked the session ends (policy-violation) and the whole queue goes to offline storage."""
    h = HostHarness(smacks={"max_unacked": 5, "request_every": 0})
    h.addUser("alice")
    alice, ta, bob, tb, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 6)
    assert ta.closed.firstChildElement().name == "policy-violation"
    assert alice.closed and offlineBodies(h, "alice") == [f"m{i}" for i in range(6)]
    chat(h, bob, "alice@localhost/r", 1, start=6)
    assert offlineBodies(h, "alice")[-1] == "m6"


def test_fullOfflineStorageBouncesToSender(h):
    """An unacked message that no longer fits in offline storage goes back to its sender as an error."""
    h = HostHarness(limits={"offline_messages_per_user": 1, "ping_interval": 0})
    h.addUser("alice")
    alice, ta, bob, tb, _ = pair(h)
    chat(h, bob, "alice@localhost/r", 2)
    tb.pop()
    alice.stream.streamEnded()
    alice.stream.connectionLost()
    assert offlineBodies(h, "alice") == ["m0"]
    [error] = tb.pop()
    assert error.name == "message" and error["type"] == "error" and error["id"] == "m1"
    assert error["from"] == "alice@localhost/r" and error["to"] == "bob@localhost/r"
    assert error.error.firstChildElement().name == "service-unavailable"


def test_offlineRedeliveryKeepsOneDelay(h):
    """A message delivered from offline storage and not acked is stored again with its first time and one delay."""
    result(h.storage.offline.storeOffline(
        "alice", "<message xmlns='jabber:client' from='bob@localhost/r' type='chat'><body>old</body></message>",
        1000.0, None))
    alice, ta = h.connect("alice", "r", available=False)
    enable(h, alice, ta)
    h.send(alice, "<presence/>")
    assert bodies(ta.pop()) == ["old"]
    alice.stream.streamEnded()
    alice.stream.connectionLost()
    [stored] = result(h.storage.offline.fetchOffline("alice"))
    assert stored.stamp == 1000.0 and "urn:xmpp:delay" not in stored.stanza


def test_withoutOwnDelayKeepsOthers():
    """Only the server's own delay is removed; the original stanza is not changed."""
    stanza = xml("<message><body>x</body></message>")
    stanza.addChild(delayElement(86400.0, "muc.localhost"))
    stanza.addChild(delayElement(3600.0, "localhost"))
    copy, stamp = withoutOwnDelay(stanza, "localhost")
    assert stamp == 3600.0
    assert [c["from"] for c in copy.elements() if c.name == "delay"] == ["muc.localhost"]
    assert len([c for c in stanza.elements() if c.name == "delay"]) == 2


def test_moduleUnloadStoresUnacked(h):
    """Stopping the server stores every session's unacked messages and ends the sessions waiting for resumption."""
    alice, ta, bob, _, _ = pair(h)
    carol, tc = h.connect("carol", "r")
    enable(h, carol, tc)
    chat(h, bob, "alice@localhost/r", 1)
    chat(h, bob, "carol@localhost/r", 1, start=1)
    cut(alice)
    h.host.unloadModules()
    assert alice.closed and offlineBodies(h, "alice") == ["m0"]
    assert not carol.closed and carol.sm is None and offlineBodies(h, "carol") == ["m1"]
    assert h.clock.getDelayedCalls() == []


def test_config():
    """[smacks] keys are validated: negative values and a zero queue are refused with their key."""
    assert buildConfig({"smacks": {"resume_timeout": 5}}).smacks.resume_timeout == 5
    with pytest.raises(ConfigError) as e:
        buildConfig({"smacks": {"resume_timeout": -1, "max_unacked": 0}})
    assert any("smacks.resume_timeout" in p for p in e.value.problems)
    assert any("smacks.max_unacked" in p for p in e.value.problems)
