"""
Durable XEP-0198 queues (L{xmppchat.cluster.durable}): three nodes in one
process on a fake Redis and a fake clock.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from tests.helpers import result
from tests.cluster.test_resumption import ENABLE, bodies, hibernatingPair, resumablePair, resumeOn
from xmppchat.modules.smacks import NS_SM
from xmppchat.xmlstream import parseElement

P = "xmppchat:localhost"


def listOf(c, smid):
    return c.redis.data.get(f"{P}:smq:{smid}".encode(), [])


def listBodies(c, smid):
    out = []
    for entry in listOf(c, smid):
        if entry == b"-":
            out.append("-")
            continue
        stamp, _, xml = entry.partition(b"\n")
        float(stamp)
        out.append(str(parseElement(xml.decode()).body))
    return out


def offlineBodies(c, localpart):
    return [str(parseElement(x).body) for x in c.offline(localpart)]


def queueBodies(sm):
    return [str(s.body) if s.name == "message" else "-" for _, s in sm.queue]


def setOf(c, node):
    return c.redis.data.get(f"{P}:node:{node.node.nodeId}:smq:{node.node.incarnation}".encode(), set())


def kill(c, node):
    """kill -9: Redis connections drop, no heartbeat, nothing cleaned up."""
    node.node.redis.kill()
    node.node.heartbeat.stop()


def test_listMirrorsQueueThroughSendsAndAcks():
    """The Redis list equals the unacknowledged queue after sends, acks, and both in one turn."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    sm = alice.sm
    for i in range(5):
        c.chat(b, bob, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump()
    assert queueBodies(sm)[-5:] == [f"m{i}" for i in range(5)]
    assert listBodies(c, smid) == queueBodies(sm)
    a.send(alice, f"<a xmlns='{NS_SM}' h='{sm.acked + len(sm.queue) - 3}'/>")
    c.pump()
    assert listBodies(c, smid) == queueBodies(sm) == ["m2", "m3", "m4"]
    # local deliveries and an ack covering some of them, in the same turn
    carol, _ = a.connect("carol", "r")
    for i in range(5, 8):
        c.chat(a, carol, "alice@localhost/r", f"m{i}", f"m{i}")
    a.send(alice, f"<a xmlns='{NS_SM}' h='{sm.acked + 4}'/>")
    assert listBodies(c, smid) == ["m2", "m3", "m4"]  # not written yet: at the end of the turn
    c.pump()
    assert listBodies(c, smid) == queueBodies(sm) == ["m6", "m7"]
    a.send(alice, f"<a xmlns='{NS_SM}' h='{sm.acked + 2}'/>")
    c.pump()
    assert sm.queue == type(sm.queue)() and f"{P}:smq:{smid}".encode() not in c.redis.data
    c.chat(a, carol, "alice@localhost/r", "again", "m9")
    c.pump()
    assert listBodies(c, smid) == ["again"]
    assert c.redis.ttl(f"{P}:smq:{smid}") > 0


def test_oneRpushPerSessionPerTurn():
    """Ten stanzas queued in one turn cost one RPUSH, not ten round trips."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, _ = a.connect("carol", "r")
    c.pump()
    c.redis.commands.clear()
    for i in range(10):
        c.chat(a, carol, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump()
    assert c.redis.commands.count("RPUSH") == 1
    assert listBodies(c, smid)[-10:] == [f"m{i}" for i in range(10)]


def test_placeholderForPresence():
    """Presence in the queue is a placeholder entry: it keeps the list aligned, costs no serialisation."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    b.send(bob, "<presence><show>away</show></presence>")
    c.pump()
    assert [s.name for _, s in alice.sm.queue] == ["presence"]
    assert listOf(c, smid) == [b"-"]


def test_endDeletesListAfterOfflineCopies():
    """A session that ends stores its queue offline and then deletes its list and set member."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    for i in range(3):
        c.chat(b, bob, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump()
    assert len(listOf(c, smid)) == 3 and len(setOf(c, a)) == 1
    a.host.endSession(alice)
    c.pump()
    assert listOf(c, smid) == [] and not setOf(c, a)
    assert offlineBodies(c, "alice") == ["m0", "m1", "m2"]


def test_handoverMovesList():
    """On a handover the old node deletes its list before answering; the new owner writes its queue again."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    assert listBodies(c, smid)[-3:] == ["m2", "m3", "m4"]
    stream, transport = resumeOn(c, d, "alice", smid, 3)
    assert transport.pop()[0].name == "resumed"
    assert not setOf(c, a) and len(setOf(c, d)) == 1
    session = d.host.sessions.localGet("alice@localhost", "r")
    assert listBodies(c, smid) == queueBodies(session.sm) == ["m3", "m4"]
    c.chat(b, bob, "alice@localhost/r", "after", "m9")
    c.pump()
    assert listBodies(c, smid) == ["m3", "m4", "after"]
    order = c.redis.commands
    assert "DEL" in order


def test_deadNodeQueuesMovedOnceByOneSurvivor():
    """kill -9 of node0: one survivor moves its unacked queue to offline storage (delay stamped), once."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    for i in range(4):
        c.chat(b, bob, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump(0.2)  # node0 acknowledged them on the bus: bob's node forgot them
    assert not b.node.bus.pending.get("node0")
    queued = list(alice.sm.queue)
    c.clock.advance(100)
    kill(c, a)
    c.pump(6.0)
    assert offlineBodies(c, "alice") == ["m0", "m1", "m2", "m3"]
    # stamped with the time node0 first delivered them (XEP-0203 delay at delivery)
    stamps = [m.stamp for m in result(c.storage.offline.fetchOffline("alice"))]
    assert stamps == [stamp for stamp, _ in queued]
    assert listOf(c, smid) == [] and not setOf(c, a)
    assert f"{a.node.nodeId} {a.node.incarnation}".encode() not in c.redis.data.get(f"{P}:smq-nodes".encode(), ())
    assert sorted((b.node.durable.moved, d.node.durable.moved)) == [0, 4]
    c.pump(6.0)
    assert len(c.offline("alice")) == 4


def test_restartedNodeQueuesMoved():
    """A node whose alive key names another incarnation (restarted under the same id) has its old queues moved."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    c.chat(b, bob, "alice@localhost/r", "m0", "m0")
    c.pump(0.2)
    kill(c, a)
    c.redis.data[f"{P}:node:node0:alive".encode()] = b"a-new-process"
    c.pump(1.5)
    assert offlineBodies(c, "alice") == ["m0"]
    assert listOf(c, smid) == []


def test_ttlRefreshedWithHeartbeat():
    """The list, the node's set and the registry expire sm_queue_seconds after the last heartbeat, not before."""
    c = ClusterHarness(cluster={"sm_queue_seconds": 8})
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    c.chat(b, bob, "alice@localhost/r", "m0", "m0")
    c.pump()
    keys = [f"{P}:smq:{smid}", f"{P}:node:node0:smq:{a.node.incarnation}", f"{P}:smq-nodes"]
    for key in keys:
        assert 0 < c.redis.ttl(key) <= 8000
    c.pump(20.0)  # ten heartbeats later
    for key in keys:
        assert c.redis.ttl(key) > 6000, key
    for node in c.nodes:  # the whole cluster dies: nothing is left behind
        kill(c, node)
    c.pump(9.0)
    c.redis.purge()
    left = [k for k in c.redis.data if k.startswith(f"{P}:smq".encode()) or b":smq:" in k]
    assert not left, left


def test_resumeOfDeadNodeStoresQueueOffline():
    """<resume/> for a dead node's session: item-not-found, with its unacked messages already in offline storage."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    c.pump(0.2)  # bus acks: only node0's queue holds the messages
    kill(c, a)
    c.pump(5.0)
    stream, transport = resumeOn(c, d, "alice", smid, 3)
    [reply] = transport.pop()
    assert reply.name == "failed" and reply.firstChildElement().name == "item-not-found"
    assert offlineBodies(c, "alice") == ["m2", "m3", "m4"]


def test_ackWaitsForRedisWrite():
    """A local sender's <a/> leaves only after the message it covers is in the recipient's Redis list."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, tc = a.connect("carol", "r")
    c.pump()
    tc.pop()
    a.send(carol, ENABLE)
    c.chat(a, carol, "alice@localhost/r", "hi", "x1")
    a.send(carol, f"<r xmlns='{NS_SM}'/>")
    assert [e.name for e in tc.pop()] == ["enabled"]
    assert listOf(c, smid) == []
    c.pump()
    assert listBodies(c, smid) == ["hi"]
    [ack] = tc.pop()
    assert ack.name == "a" and ack["h"] == "1"


def test_redisOutageThenRejoinRewrites():
    """While Redis is away the queue lives in memory only; on rejoin the list is written again from it."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, _ = a.connect("carol", "r")
    c.pump()
    c.redis.stop()
    for i in range(3):
        c.chat(a, carol, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump()
    assert bodies(ta.pop()) == ["m0", "m1", "m2"]
    c.redis.start()
    c.pump(1.5)
    assert a.node.online
    assert listBodies(c, smid) == queueBodies(alice.sm) == ["m0", "m1", "m2"]
    assert len(setOf(c, a)) == 1


def test_driftedListRewritten():
    """A list that no longer matches the queue (removed behind the node's back) is rewritten at the next write."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, _ = a.connect("carol", "r")
    c.chat(a, carol, "alice@localhost/r", "m0", "m0")
    c.pump()
    del c.redis.data[f"{P}:smq:{smid}".encode()]
    c.chat(a, carol, "alice@localhost/r", "m1", "m1")
    c.pump()
    assert listBodies(c, smid) == ["m0", "m1"]


def test_cleanStopLeavesNothing():
    """A node stopped normally stores its queues offline and removes their lists: survivors move nothing."""
    c = ClusterHarness()
    a, b, d, alice, bob, tb, smid = hibernatingPair(c)
    c.pump(0.2)
    a.node.stop()
    c.pump(6.0)
    assert listOf(c, smid) == [] and not setOf(c, a)
    assert offlineBodies(c, "alice") == ["m2", "m3", "m4"]
    assert b.node.durable.moved == d.node.durable.moved == 0


def test_recoveredQueueReachesSessionAlreadyBack():
    """The user logged in again elsewhere before the move: the moved messages are delivered to it at once."""
    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    for i in range(3):
        c.chat(b, bob, "alice@localhost/r", f"m{i}", f"m{i}")
    c.pump(0.2)
    kill(c, a)
    c.pump(0.2)
    for node in (b, d):  # the survivors dropped node0's sessions (no subscriber): alice is offline
        node.node.bus.nodeLost("node0")
    again, transport = d.connect("alice", "laptop")
    c.pump()
    assert bodies(transport.pop()) == []
    c.pump(6.0)
    got = [e for e in transport.pop() if e.name == "message"]
    assert [str(e.body) for e in got] == ["m0", "m1", "m2"]
    assert all(any(x.name == "delay" for x in e.elements()) for e in got)
    assert c.offline("alice") == []


def test_offWithoutMirror():
    """sm_queue_seconds = 0: no mirror, no ack barrier, no Redis list (queues in memory only)."""
    c = ClusterHarness(cluster={"sm_queue_seconds": 0})
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    c.chat(b, bob, "alice@localhost/r", "m0", "m0")
    c.pump()
    assert a.node.durable is None and alice.sm.mirror is None
    assert a.host.modules["smacks"].ackBarrier is None
    assert listOf(c, smid) == [] and len(alice.sm.queue) == 1


def test_ackBarrierTimesOut():
    """A Redis that never answers holds a local sender's <a/> back for BARRIER_SECONDS at most."""
    from twisted.internet import defer

    from xmppchat.cluster.durable import BARRIER_SECONDS

    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, tc = a.connect("carol", "r")
    c.pump()
    a.send(carol, ENABLE)
    tc.pop()
    client = a.node.redis
    client.execute = lambda *args: defer.Deferred()  # hangs, never disconnects
    c.chat(a, carol, "alice@localhost/r", "hi", "x1")
    a.send(carol, f"<r xmlns='{NS_SM}'/>")
    c.pump(BARRIER_SECONDS - 0.5)
    assert tc.pop() == []
    c.pump(1.0)
    assert [e.name for e in tc.pop()] == ["a"]


def test_failedWriteRewrittenAtHeartbeat():
    """A write Redis refused (e.g. OOM) is not retried every turn: the next heartbeat rewrites the list."""
    from xmppchat.cluster.resp import RedisError

    c = ClusterHarness()
    a, b, d, alice, ta, bob, tb, smid = resumablePair(c)
    carol, _ = a.connect("carol", "r")
    c.pump()
    real = c.redis.cmd_RPUSH
    c.redis.cmd_RPUSH = lambda *args: (_ for _ in ()).throw(RedisError("OOM command not allowed"))
    c.chat(a, carol, "alice@localhost/r", "m0", "m0")
    c.pump()
    c.redis.commands.clear()
    c.pump(0.5)
    assert "RPUSH" not in c.redis.commands and listOf(c, smid) == []
    c.redis.cmd_RPUSH = real
    c.pump(1.0)
    assert listBodies(c, smid) == ["m0"]
