"""
XEP-0198 §5 resumption on another cluster node (L{xmppchat.cluster.resumption}):
three nodes in one process on a fake Redis and a fake clock.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from tests.helpers import StubTransport, result, xml
from xmppchat.c2s.negotiation import AUTHENTICATED, BOUND, C2SStream
from xmppchat.modules.smacks import NS_SM

ENABLE = f"<enable xmlns='{NS_SM}' resume='true'/>"


def enable(node, session, transport):
    """Enable resumable stream management; return the resumption id."""
    transport.pop()
    node.send(session, ENABLE)
    [enabled] = transport.pop()
    assert enabled.name == "enabled"
    return enabled["id"]


def resumeOn(c, node, localpart, previd, h):
    """A new authenticated stream on C{node} sending <resume/>; returns it and its transport."""
    transport = StubTransport(secure=True)
    stream = C2SStream(node.host, transport)
    stream.phase = AUTHENTICATED
    stream.localpart = localpart
    stream.account = result(c.storage.accounts.getAccountByLocalpart(localpart))
    stream.elementReceived(xml(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>"))
    c.pump()
    return stream, transport


def bodies(elements):
    return [str(e.body) for e in elements if e.name == "message"]


def resumablePair(c):
    """alice/r with resumable SM on node0, bob/r on node1, subscribed to each other."""
    c.befriend("alice", "bob")
    a, b, d = c.nodes
    alice, ta = a.connect("alice", "r")
    bob, tb = b.connect("bob", "r")
    c.pump()
    smid = enable(a, alice, ta)
    c.pump()
    return a, b, d, alice, ta, bob, tb, smid


def hibernatingPair(c):
    """alice/r on node0 with resumable SM, cut after 5 messages from bob (on node1), 2 acked."""
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    a.send(alice, "<message to='bob@localhost' type='chat'><body>from alice</body></message>")
    for i in range(5):
        c.chat(b, bob, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump()
    a.send(alice, f"<a xmlns='{NS_SM}' h='2'/>")
    alice.stream.connectionLost()
    c.pump()
    tb.pop()
    return a, b, d, alice, bob, tb, smid


def test_resumeOnAnotherNode():
    """<resume/> on node2 takes the session over from node0: same JID, replay, counters, no presence change."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    stream, transport = resumeOn(c, d, "alice", smid, 3)
    sent = transport.pop()
    assert sent[0].name == "resumed" and sent[0]["previd"] == smid and sent[0]["h"] == "1"
    assert bodies(sent) == ["m3", "m4"]
    assert stream.phase == BOUND
    session = d.host.sessions.localGet("alice@localhost", "r")
    assert session is stream.session and session.available
    assert a.host.sessions.localGet("alice@localhost", "r") is None
    assert alice.closed
    # the others now route to node2; bob saw no unavailable presence, no conflict
    assert b.host.sessions.get("alice@localhost", "r").node == "node2"
    assert not [e for e in tb.pop() if e.name == "presence"]
    assert transport.closed is None
    assert c.offline("alice") == []
    c.chat(b, bob, "alice@localhost/r", "after", "m9")
    c.pump()
    assert bodies(transport.pop()) == ["after"]
    # counters carried over: alice's stanza count continues from 1
    d.send(session, "<message to='bob@localhost' type='chat'><body>again</body></message>")
    d.send(session, f"<r xmlns='{NS_SM}'/>")
    assert transport.pop()[-1]["h"] == "2"
    assert d.node.resumption.takenOver == 1 and a.node.resumption.handedOver == 1


def test_resumeTwiceAcrossNodes():
    """A session taken over can be resumed again on a third node, with the token following it."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    assert transport.pop()[0].name == "resumed"
    stream.connectionLost()
    c.pump()
    c.chat(b, bob, "alice@localhost/r", "x", "m7")
    c.pump()
    stream2, transport2 = resumeOn(c, b, "alice", smid, 5)
    sent = transport2.pop()
    assert sent[0].name == "resumed" and bodies(sent) == ["x"]
    assert b.host.sessions.localGet("alice@localhost", "r") is stream2.session


def test_resumeOfDeadNodeNotFound():
    """If the session's node is dead, <resume/> elsewhere gets item-not-found."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    a.node.redis.kill()
    a.node.heartbeat.stop()
    c.pump(5.0)
    stream, transport = resumeOn(c, d, "alice", smid, 3)
    [reply] = transport.pop()
    assert reply.name == "failed" and reply.firstChildElement().name == "item-not-found"
    assert stream.phase == AUTHENTICATED


def test_resumeOtherAccountOrUnknownNotFound():
    """Another account's id, or an id nobody holds, gets item-not-found without touching the session."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    c.nodes[0].addUser("eve")
    for user, previd in (("eve", smid), ("alice", "nope")):
        _, transport = resumeOn(c, d, user, previd, 0)
        [reply] = transport.pop()
        assert reply.name == "failed" and reply.firstChildElement().name == "item-not-found"
    assert a.host.sessions.localGet("alice@localhost", "r") is alice and not alice.closed


def test_resumeTooHighAcrossNodes():
    """An h acknowledging more than node0 sent fails, and ends the session there (as locally)."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    _, transport = resumeOn(c, d, "alice", smid, 99)
    [reply] = transport.pop()
    assert reply.name == "failed" and reply.firstChildElement().name == "undefined-condition"
    assert alice.closed
    # the three unacknowledged messages went to offline storage
    assert len(c.offline("alice")) == 3


def test_endedSessionForgetsToken():
    """When a resumable session ends, its Redis token is removed."""
    c = ClusterHarness()
    a = c.nodes[0]
    alice, ta = a.connect("alice", "r")
    smid = enable(a, alice, ta)
    c.pump()
    key = f"xmppchat:localhost:sm:{smid}".encode()
    assert key in c.redis.data
    a.host.endSession(alice)
    c.pump()
    assert key not in c.redis.data


def test_stanzaRoutedToOldNodeFollowsSession():
    """A message still routed to node0 just after the handover (stale replica) follows the session to node2."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    stream, transport = resumeOn(c, d, "alice", smid, 5)
    transport.pop()
    # bob's node still believes alice is on node0
    remote = b.host.sessions.get("alice@localhost", "r")
    remote.node = "node0"
    # ... and node0 has not heard node2's announcement yet
    a.node.directory.delEntry("node2", "alice@localhost/r")
    c.chat(b, bob, "alice@localhost/r", "late", "m8")
    c.pump()
    assert bodies(transport.pop()) == ["late"]
    assert c.offline("alice") == []
