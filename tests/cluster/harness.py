"""
Several cluster nodes in one test: hosts on one shared in-memory storage
and one fake clock, joined through a L{FakeRedisServer}.
"""

from __future__ import annotations

from twisted.internet import defer, task

from tests.cluster.fakeredis import FakeRedisClient, FakeRedisServer
from tests.helpers import HostHarness, makeConfig, result
from xmppchat.cluster import ClusterNode, ClusterSessionRegistry
from xmppchat.host import Host
from xmppchat.storage.interfaces import RosterItem
from xmppchat.storage.sqlite import SQLiteStorage


class NodeHarness(HostHarness):
    """
    A L{HostHarness} whose host is a cluster node.
    """

    def __init__(self, cluster, name):
        self.clock = cluster.clock
        self.config = cluster.config
        self.storage = cluster.storage
        self.host = Host(self.config, self.storage, self.clock, sessions=ClusterSessionRegistry())
        self.host.loadModules()
        self.config.cluster.node_id = name
        self.node = ClusterNode(self.host, self.config.cluster, self.clock,
                                clientFactory=FakeRedisClient.factoryFor(cluster.redis))
        self.node.start()


class ClusterHarness:
    def __init__(self, count=3, **sections):
        self.clock = task.Clock()
        sections.setdefault("cluster", {})
        sections["cluster"] = {"redis_uri": "redis://127.0.0.1:1/0", "heartbeat_seconds": 1,
                               "expiry_seconds": 3, **sections["cluster"]}
        self.config = makeConfig(**sections)
        self.storage = SQLiteStorage(":memory:", synchronous=True)
        result(self.storage.start())
        self.redis = FakeRedisServer(self.clock)
        self.nodes = [NodeHarness(self, f"node{i}") for i in range(count)]
        self.pump()

    def pump(self, seconds=0.0):
        """
        Run what is due now (pub/sub deliveries), then advance C{seconds}.
        """
        for _ in range(20):
            self.clock.advance(0)
        if seconds:
            step = min(seconds, 0.05)
            elapsed = 0.0
            while elapsed < seconds:
                self.clock.advance(step)
                elapsed += step
                for _ in range(5):
                    self.clock.advance(0)

    def pair(self, bobResource=None):
        """
        alice/r bound on node0 and bob on node1, known to every node:
        C{(node0, node1, alice, aliceTransport, bob, bobTransport)}.
        """
        a, b = self.nodes[0], self.nodes[1]
        alice, ta = a.connect("alice", "r")
        bob, tb = b.connect("bob", bobResource)
        self.pump()
        return a, b, alice, ta, bob, tb

    @staticmethod
    def chat(node, session, to, body, stanzaId="m1"):
        node.send(session, f'<message to="{to}" type="chat" id="{stanzaId}"><body>{body}</body></message>')

    def befriend(self, a, b):
        """
        Mutual presence subscription between localparts C{a} and C{b}.
        """
        for user, contact in ((a, b), (b, a)):
            if result(self.storage.accounts.getAccountByLocalpart(user)) is None:
                self.nodes[0].addUser(user)
            result(self.storage.roster.setRosterItem(
                user, RosterItem(jid=f"{contact}@localhost", subscription="both")))

    def offline(self, localpart):
        return [m.stanza for m in result(self.storage.offline.fetchOffline(localpart))]


class HeldPublishes:
    """
    The PUBLISHes of C{node} to C{target}'s bus channel for which
    C{when(payload)} is true are held back, in order, until L{release}:
    bus frames still on their way (a slow hop, a busy node).
    """

    def __init__(self, node, target, when=lambda payload: True):
        redis = node.node.redis
        self.real = redis.execute
        self.held: list = []
        self.holding = True
        channel = node.node.keys.channel(target)

        def execute(*args):
            if self.holding and args[:2] == ("PUBLISH", channel) and when(args[2]):
                d = defer.Deferred()
                self.held.append((args, d))
                return d
            return self.real(*args)

        redis.execute = execute

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for args, d in held:
            self.real(*args).chainDeferred(d)


def stanzaFrames(payload: bytes) -> bool:
    """Bus frames other than control frames (stanzas, batches, fences)."""
    return not payload.startswith(b"c ")
