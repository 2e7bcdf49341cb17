"""
Per-sender order across a XEP-0198 §5 handover between cluster nodes
(L{xmppchat.cluster.fence}; RFC 6120 §10.1): stanzas the old node forwards
are not overtaken by later ones sent straight to the new node, nothing is
lost or doubled.  Three nodes in one process on a fake Redis, with bus
frames held back and released in the bad order.
"""

from __future__ import annotations

import contextlib
import signal

from tests.cluster.harness import ClusterHarness, HeldPublishes, stanzaFrames
from tests.cluster.test_resumption import bodies, hibernatingPair, resumeOn
from tests.helpers import StubTransport, result, xml
from xmppchat.c2s.negotiation import AUTHENTICATED, C2SStream
from xmppchat.cluster.fence import FENCE_SECONDS
from xmppchat.modules.smacks import NS_SM

ALICE = "alice@localhost/r"


def delayed(elements):
    """Bodies of the messages that came through offline storage (XEP-0203 delay)."""
    return [str(e.body) for e in elements if e.name == "message"
            and any(c.name == "delay" for c in e.elements())]


def startResume(c, node, previd, h):
    """alice's <resume/> on a new stream to C{node}, not pumped yet: (stream, transport)."""
    transport = StubTransport(secure=True)
    stream = C2SStream(node.host, transport)
    stream.phase = AUTHENTICATED
    stream.localpart = "alice"
    stream.account = result(c.storage.accounts.getAccountByLocalpart("alice"))
    stream.elementReceived(xml(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>"))
    return stream, transport


def releaseAndCollect(c, held, transport):
    """Release C{held} frames; the bodies alice's stream got since the last look."""
    c.pump()
    held.release()
    c.pump()
    return bodies(transport.pop())


def test_forwardedStanzaNotOvertaken():
    """
    bob's (node1) message still on its way to node0 when alice resumes on
    node2 arrives before bob's next one, which node1 sends straight to
    node2 (the m93/m94 swap of test_live.py::test_resumeOnAnotherNode).
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    slow = HeldPublishes(b, "node0")  # node1 -> node0: a busy hop
    c.chat(b, bob, ALICE, "early", "e1")
    c.pump()
    stream, transport = resumeOn(c, d, "alice", smid, 3)
    assert transport.pop()[0].name == "resumed"
    assert b.host.sessions.get("alice@localhost", "r").node == "node2"
    c.chat(b, bob, ALICE, "late", "l1")
    assert releaseAndCollect(c, slow, transport) == ["early", "late"]
    assert c.offline("alice") == []
    assert not d.node.bus.fences


def test_localSenderNotOvertaken():
    """
    carol on node2 itself: her message routed to node0 before the
    takeover (forwarded back) arrives before the one she sends after it.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    carol, tc = d.connect("carol", "r")
    c.pump()
    forwarding = HeldPublishes(a, "node2", stanzaFrames)  # node0 -> node2, control frames pass
    stream, transport = startResume(c, d, smid, 5)
    c.chat(d, carol, ALICE, "first", "c1")  # sm-take is on its way: this goes to node0 too
    c.pump()
    assert transport.pop()[0].name == "resumed"
    assert d.host.sessions.localGet("alice@localhost", "r") is stream.session
    c.chat(d, carol, ALICE, "second", "c2")
    assert releaseAndCollect(c, forwarding, transport) == ["first", "second"]
    assert c.offline("alice") == []


def test_noOfflineDetourDuringHandover():
    """
    A message sent while node1 has heard that node0 let the session go but
    not yet that node2 has it is delivered live, in order, not stored
    offline and redelivered.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    events = b.node.directory
    real = events.eventReceived
    late = []
    events.eventReceived = lambda data: late.append(data) if b'"n":"node2"' in data else real(data)
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    assert transport.pop()[0].name == "resumed"
    c.chat(b, bob, ALICE, "gap", "g1")
    c.pump()
    events.eventReceived = real
    for data in late:
        real(data)
    c.chat(b, bob, ALICE, "after", "a1")
    c.pump()
    sent = transport.pop()
    assert bodies(sent) == ["gap", "after"]
    assert delayed(sent) == [] and c.offline("alice") == []


def test_missingFenceReleasedAfterTimeout():
    """
    node1's fence never comes (its frames to node0 are lost): node2
    delivers what it held after FENCE_SECONDS, once, instead of stalling.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    HeldPublishes(b, "node0")  # never released
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    c.chat(b, bob, ALICE, "held", "h1")
    c.pump()
    assert bodies(transport.pop()) == []
    c.pump(FENCE_SECONDS + 0.1)
    assert bodies(transport.pop()) == ["held"]
    assert not d.node.bus.fences


def test_oldNodeLostReleasesFence():
    """node0 dies right after the handover: node2 stops waiting for fences through it."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    HeldPublishes(b, "node0")
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    c.chat(b, bob, ALICE, "held", "h1")
    c.pump()
    d.node.bus.nodeLost("node0")
    c.pump()
    assert bodies(transport.pop()) == ["held"]


def test_fenceBufferBounded():
    """Past cluster.max_pending held stanzas, the fence delivers them at once (in order)."""
    c = ClusterHarness(cluster={"max_pending": 3})
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    HeldPublishes(b, "node0")
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    for i in range(3):
        c.chat(b, bob, ALICE, f"h{i}", f"h{i}")
    c.pump()
    assert bodies(transport.pop()) == []
    c.chat(b, bob, ALICE, "h3", "h3")
    c.pump()
    assert bodies(transport.pop()) == ["h0", "h1", "h2", "h3"]
    assert not d.node.bus.fences


def test_handoverNotTakenKeepsQueue():
    """
    The resuming stream on node2 is gone when node0's answer arrives: the
    handed queue goes to offline storage and no node routes to alice/r.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    stream, transport = startResume(c, d, smid, 2)
    stream.connectionLost()
    c.pump()
    assert sorted(str(xml(m).body) for m in c.offline("alice")) == ["m2", "m3", "m4"]
    for node in c.nodes:
        assert node.host.sessions.get("alice@localhost", "r") is None
    c.pump(FENCE_SECONDS + 0.1)
    assert not d.node.bus.fences


def test_resumedBackOnFirstNode():
    """
    node0 -> node2 -> node0 within the fence window, with node1's frames to
    node0 late: every message once, no fence frames bouncing between the
    two old owners.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    slow = HeldPublishes(b, "node0")
    c.chat(b, bob, ALICE, "one", "o1")
    c.pump()
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    c.chat(b, bob, ALICE, "two", "o2")
    c.pump()
    stream.connectionLost()
    c.pump()
    back, transport2 = resumeOn(c, a, "alice", smid, 5)
    sent = transport2.pop()
    assert sent[0].name == "resumed"
    c.chat(b, bob, ALICE, "three", "o3")
    c.pump()
    slow.release()
    c.pump(FENCE_SECONDS + 0.5)
    got = bodies(sent + transport2.pop())
    assert sorted(got) == ["one", "three", "two"]
    assert got.index("one") < got.index("three")
    assert not any(n.node.bus.fences for n in c.nodes)
    published = c.redis.commands.count("PUBLISH")
    c.pump(2.0)
    assert c.redis.commands.count("PUBLISH") == published


def test_heldStanzasAcknowledgedWhenDelivered():
    """
    node1 keeps a held message in its pending window (offline storage if
    node2 dies) until node2 delivers it.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    slow = HeldPublishes(b, "node0")
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    c.chat(b, bob, ALICE, "held", "h1")
    c.pump()
    assert bodies(transport.pop()) == []
    assert len(b.node.bus.pending.get("node2", ())) == 1
    assert releaseAndCollect(c, slow, transport) == ["held"]
    assert not b.node.bus.pending.get("node2")


def test_lateAnswerKeepsQueue():
    """
    node0's answer reaches node2 after the 5 s the resumption waits: the
    client got <failed/>, no node routes to alice/r (nor to node2 for her),
    and the queue node0 handed over is in offline storage, not lost.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    answer = HeldPublishes(a, "node2", lambda payload: payload.startswith(b"c "))
    stream, transport = startResume(c, d, smid, 2)
    c.pump(FENCE_SECONDS + 0.5)
    [reply] = transport.pop()
    assert reply.name == "failed"
    for node in c.nodes:
        assert node.host.sessions.get("alice@localhost", "r") is None
    answer.release()
    c.pump()
    assert sorted(str(xml(m).body) for m in c.offline("alice")) == ["m2", "m3", "m4"]
    assert not d.node.bus.fences


@contextlib.contextmanager
def bounded(seconds):
    """Fail (rather than hang) if the block runs longer than C{seconds}."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds}s: a loop")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def controlFrames(payload: bytes) -> bool:
    return payload.startswith(b"c ")


def test_noBounceBeforeTakeover():
    """
    Review 18 #2: node0 -> node2, then back to node0 while node2's answer
    is slow; a late frame for alice/r reaches node2, which forwards it to
    node0.  node0's fence is up but the session not taken over yet: the
    stanza waits there instead of bouncing between node0 and node2
    (hops reset on every pass), and reaches alice once she is back.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    late = HeldPublishes(b, "node2", stanzaFrames)
    c.chat(b, bob, ALICE, "late", "l1")
    c.pump()
    stream.connectionLost()
    c.pump()
    answer = HeldPublishes(d, "node0", controlFrames)
    back, transport2 = startResume(c, a, smid, 5)
    c.pump()
    assert ALICE in a.node.bus.fences
    late.release()
    with bounded(10):
        c.pump()
    published = c.redis.commands.count("PUBLISH")
    c.pump(1.0)
    assert c.redis.commands.count("PUBLISH") - published < 5, "a stanza bounces between nodes"
    answer.release()
    c.pump(FENCE_SECONDS + 0.5)
    assert "late" in bodies(transport2.pop())
    assert c.offline("alice") == []


def test_notTakenOfflineOrder():
    """
    Review 18 #3: node0's answer to node2 is slow; bob's 'late' (sent
    straight to node2 after the move) is held by the fence; the resuming
    stream goes away, node2 does not take the session: the handed queue
    and then 'late' go to offline storage, in that order.
    """
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    answer = HeldPublishes(a, "node2", controlFrames)
    HeldPublishes(b, "node0")
    stream, transport = startResume(c, d, smid, 2)
    c.pump()
    assert ALICE in d.node.bus.fences
    c.chat(b, bob, ALICE, "late", "l1")
    c.pump()
    stream.connectionLost()
    answer.release()
    c.pump()
    c.pump(FENCE_SECONDS + 0.1)
    assert [str(xml(m).body) for m in c.offline("alice")] == ["m2", "m3", "m4", "late"]
