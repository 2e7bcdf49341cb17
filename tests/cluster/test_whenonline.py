"""
L{ClusterNode.whenOnline} (issue 18 item 1): a node reports itself ready
only once it has joined through Redis, and fails after the given time
without it, naming the server but not its password.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness, NodeHarness


def test_firesOnceJoined():
    """A node with Redis up: whenOnline fires (at once when already online)."""
    cluster = ClusterHarness(count=1)
    node = cluster.nodes[0].node
    fired = []
    node.whenOnline(5).addCallback(fired.append)
    assert fired == [None]


def test_failsWithoutRedis():
    """Redis down at start: whenOnline fails after the timeout with the host and port only."""
    cluster = ClusterHarness(count=0, cluster={"redis_uri": "redis://:pw-secret@127.0.0.1:1/0"})
    cluster.redis.running = False
    node = NodeHarness(cluster, "lonely").node
    failures = []
    node.whenOnline(2).addErrback(failures.append)
    cluster.clock.advance(1.9)
    assert failures == []
    cluster.clock.advance(0.2)
    assert str(failures[0].value) == "cannot reach Redis at 127.0.0.1:1 within 2 s"
    cluster.redis.running = True


def test_waiterFiresWhenRedisComesInTime():
    """Redis reachable before the timeout: the waiter fires."""
    cluster = ClusterHarness(count=0)
    cluster.redis.running = False
    harness = NodeHarness(cluster, "late")
    fired = []
    harness.node.whenOnline(5).addCallback(fired.append)
    cluster.redis.running = True
    harness.node.redis._connect()
    cluster.pump()
    assert fired == [None]
