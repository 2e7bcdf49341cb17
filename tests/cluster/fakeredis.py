"""
An in-memory Redis for unit tests: the few commands the cluster uses, key
expiry on a fake clock, pub/sub delivered on the next clock turn, and
outages on demand.  It stands in for L{xmppchat.cluster.resp.RedisClient}.
"""

from __future__ import annotations

from twisted.internet import defer

from xmppchat.cluster.resp import RedisError, RedisUnavailable


def _b(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class FakeRedisServer:
    def __init__(self, clock):
        self.clock = clock
        self.data: dict = {}
        self.expires: dict = {}
        self.clients: list = []
        self.running = True
        self.commands: list = []

    def _expire(self):
        now = self.clock.seconds()
        for key, at in list(self.expires.items()):
            if at <= now:
                self.data.pop(key, None)
                del self.expires[key]

    def run(self, client, args):
        self._expire()
        name = args[0].upper()
        self.commands.append(name)
        args = [_b(a) for a in args[1:]]
        handler = getattr(self, "cmd_" + name, None)
        if handler is None:
            raise RedisError(f"ERR unknown command {name}")
        return handler(*args)

    def cmd_SET(self, key, value, *options):
        old = self.data.get(key)
        opts = [o.upper() for o in options]
        if b"NX" in opts and old is not None:
            return None
        self.data[key] = value
        self.expires.pop(key, None)
        if b"PX" in opts:
            self.expires[key] = self.clock.seconds() + int(options[opts.index(b"PX") + 1]) / 1000
        return old if b"GET" in opts else b"OK"

    def cmd_GET(self, key):
        return self.data.get(key)

    def cmd_MGET(self, *keys):
        return [self.data.get(k) if isinstance(self.data.get(k), bytes) else None for k in keys]

    def cmd_DEL(self, *keys):
        count = 0
        for key in keys:
            if self.data.pop(key, None) is not None:
                count += 1
            self.expires.pop(key, None)
        return count

    def cmd_HSET(self, key, *pairs):
        h = self.data.setdefault(key, {})
        added = 0
        for i in range(0, len(pairs), 2):
            added += pairs[i] not in h
            h[pairs[i]] = pairs[i + 1]
        return added

    def cmd_HDEL(self, key, *fields):
        h = self.data.get(key, {})
        count = sum(1 for f in fields if h.pop(f, None) is not None)
        if not h:
            self.data.pop(key, None)
        return count

    def cmd_HGETALL(self, key):
        out = []
        for k, v in self.data.get(key, {}).items():
            out += [k, v]
        return out

    def cmd_SADD(self, key, *members):
        s = self.data.setdefault(key, set())
        before = len(s)
        s.update(members)
        return len(s) - before

    def cmd_SREM(self, key, *members):
        s = self.data.get(key, set())
        before = len(s)
        s.difference_update(members)
        if not s:
            self.data.pop(key, None)
            self.expires.pop(key, None)
        return before - len(s)

    def cmd_SMEMBERS(self, key):
        return sorted(self.data.get(key, set()))

    def cmd_EXISTS(self, *keys):
        return sum(1 for k in keys if k in self.data)

    def cmd_PEXPIRE(self, key, ms):
        if key not in self.data:
            return 0
        self.expires[key] = self.clock.seconds() + int(ms) / 1000
        return 1

    def cmd_PTTL(self, key):
        if key not in self.data:
            return -2
        at = self.expires.get(key)
        return -1 if at is None else int((at - self.clock.seconds()) * 1000)

    def cmd_RPUSH(self, key, *values):
        items = self.data.setdefault(key, [])
        if not isinstance(items, list):
            raise RedisError("WRONGTYPE Operation against a key holding the wrong kind of value")
        items.extend(values)
        return len(items)

    def cmd_LTRIM(self, key, start, stop):
        items = self.data.get(key)
        if items is None:
            return b"OK"
        start, stop = int(start), int(stop)
        n = len(items)
        start = max(start + n if start < 0 else start, 0)
        stop = stop + n if stop < 0 else min(stop, n - 1)
        items[:] = items[start:stop + 1] if start <= stop else []
        if not items:
            del self.data[key]
            self.expires.pop(key, None)
        return b"OK"

    def cmd_LRANGE(self, key, start, stop):
        items = self.data.get(key, [])
        start, stop = int(start), int(stop)
        n = len(items)
        start = max(start + n if start < 0 else start, 0)
        stop = stop + n if stop < 0 else min(stop, n - 1)
        return list(items[start:stop + 1])

    def purge(self) -> None:
        """
        Drop the keys whose time is up (otherwise done before each command).
        """
        self._expire()

    def ttl(self, key) -> int:
        """
        The key's remaining time to live in ms (C{PTTL}), for assertions.
        """
        self._expire()
        return self.cmd_PTTL(_b(key))

    def cmd_PUBLISH(self, channel, message):
        receivers = [c for c in self.clients if c.ready and channel in c.channels]
        for c in receivers:
            self.clock.callLater(0, c._deliver, channel, message)
        return len(receivers)

    # -- outages -------------------------------------------------------

    def stop(self, flush=True):
        """
        The server goes away (and, like a restart without persistence,
        forgets everything when C{flush}).
        """
        self.running = False
        if flush:
            self.data.clear()
            self.expires.clear()
        for client in list(self.clients):
            client._lost()

    def start(self):
        self.running = True
        for client in list(self.clients):
            client._connect()


class FakeRedisClient:
    """
    Same interface as L{RedisClient}, talking to a L{FakeRedisServer}.
    """

    def __init__(self, server, reactor, uri, channels, onUp, onDown, onMessage):
        self.server = server
        self.channels = [_b(c) for c in channels]
        self.onUp = onUp
        self.onDown = onDown
        self.onMessage = onMessage
        self.ready = False
        self.started = False

    @classmethod
    def factoryFor(cls, server):
        return lambda *args: cls(server, *args)

    def start(self):
        self.started = True
        self.server.clients.append(self)
        self._connect()

    def _connect(self):
        if self.started and self.server.running and not self.ready:
            self.ready = True
            self.onUp()

    def _lost(self):
        if self.ready:
            self.ready = False
            self.onDown()

    def kill(self):
        """
        The process died: connections dropped, nothing cleaned up.
        """
        self.started = False
        self.ready = False
        if self in self.server.clients:
            self.server.clients.remove(self)

    def stop(self):
        self.kill()

    def push(self):
        """Commands reach the fake server at once: nothing to write out."""

    def execute(self, *args):
        if not self.ready or not self.server.running:
            return defer.fail(RedisUnavailable("Redis is not connected"))
        try:
            return defer.succeed(self.server.run(self, args))
        except RedisError as e:
            return defer.fail(e)

    def _deliver(self, channel, message):
        if self.ready:
            self.onMessage(channel, message)
