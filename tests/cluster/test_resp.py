"""
The RESP client: framing (hypothesis round trips over arbitrary chunking),
and a live L{RedisClient} against a private redis-server, stopped and
restarted under it.
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.trial import unittest

from tests.cluster.live import RedisProcess, requireRedis
from xmppchat.cluster.resp import RedisClient, RedisError, RedisUnavailable, RESPParser, encodeCommand


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.data())
def test_roundTripAnyChunking(args, data):
    """A command's encoding parses back to its arguments, however the bytes are split."""
    wire = encodeCommand(args) * 2
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    parser = RESPParser()
    replies = []
    start = 0
    for cut in cuts + [len(wire)]:
        replies += parser.feed(wire[start:cut])
        start = cut
    assert replies == [args, args]


def test_replyTypes():
    """Status, error, integer, nil bulk, nil array and nested arrays are decoded."""
    parser = RESPParser()
    replies = parser.feed(b"+OK\r\n-ERR bad\r\n:42\r\n$-1\r\n*-1\r\n*2\r\n*1\r\n:1\r\n$3\r\nabc\r\n")
    assert replies[0] == b"OK"
    assert isinstance(replies[1], RedisError) and str(replies[1]) == "ERR bad"
    assert replies[2:] == [42, None, None, [[1], b"abc"]]


def test_unknownReplyType():
    """A byte that starts no RESP type is a protocol error, not a hang."""
    parser = RESPParser()
    try:
        parser.feed(b"?what\r\n")
    except Exception as e:
        assert "unknown reply type" in str(e)
    else:
        raise AssertionError("accepted garbage")


class LiveClientTests(unittest.TestCase):
    """
    L{RedisClient} on the real reactor against a private redis-server.
    """

    timeout = 30

    def setUp(self):
        requireRedis()
        import tempfile

        self.directory = tempfile.mkdtemp()
        from pathlib import Path

        self.redis = RedisProcess(Path(self.directory)).start()
        self.addCleanup(self.redis.stop)
        from twisted.internet import reactor

        self.reactor = reactor
        self.events = []
        self.messages = []
        self.client = RedisClient(reactor, self.redis.uri, [b"ch"], lambda: self.events.append("up"),
                                  lambda: self.events.append("down"),
                                  lambda c, d: self.messages.append((c, d)))
        self.addCleanup(self.client.stop)

    @defer.inlineCallbacks
    def waitFor(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            self.assertLess(time.monotonic(), deadline, "condition not met in time")
            yield task.deferLater(self.reactor, 0.02, lambda: None)

    @defer.inlineCallbacks
    def test_commandsPubSubAndOutage(self):
        """Commands and pub/sub work; while Redis is down commands fail at once; both connections come back."""
        self.client.start()
        yield self.waitFor(lambda: self.events == ["up"])
        yield self.client.execute("SET", "k", b"v\x00\xff")
        self.assertEqual((yield self.client.execute("GET", "k")), b"v\x00\xff")
        self.assertEqual((yield self.client.execute("PUBLISH", "ch", b"hello")), 1)
        yield self.waitFor(lambda: self.messages == [(b"ch", b"hello")])
        with self.assertRaises(RedisError):
            yield self.client.execute("NOSUCHCOMMAND")
        self.redis.stop()
        yield self.waitFor(lambda: self.events == ["up", "down"])
        started = time.monotonic()
        with self.assertRaises(RedisUnavailable):
            yield self.client.execute("GET", "k")
        self.assertLess(time.monotonic() - started, 0.5)
        self.redis.start()
        yield self.waitFor(lambda: self.events == ["up", "down", "up"])
        self.assertEqual((yield self.client.execute("PUBLISH", "ch", b"again")), 1)
        yield self.waitFor(lambda: (b"ch", b"again") in self.messages)
