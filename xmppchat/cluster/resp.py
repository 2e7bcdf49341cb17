"""
A minimal Redis client on Twisted protocols: RESP2 framing, pipelined
commands, one subscriber connection, reconnection with backoff.
https://redis.io/docs/latest/develop/reference/protocol-spec/

Why not txredisapi: its reconnecting connection handler queues commands
while Redis is down (C{getConnection} waits for a connection to come back),
and the cluster must fail fast instead (stanzas for remote users go to
offline storage or get an error, RFC 6120 §8.3.3.19); and its
C{SubscriberFactory} is an endpoint factory without the C{ClientFactory}
reconnection hooks we need.  What we use is small: a command connection
(each command a Deferred, answered in order) and a subscriber connection
(push messages to a callback).

L{RedisClient} keeps both connected, reconnecting with capped exponential
backoff, and calls C{onUp()} once both are ready (subscriptions restored)
and C{onDown()} when either is lost.  While down, L{RedisClient.execute}
fails at once with L{RedisUnavailable}.
"""

from __future__ import annotations

from collections import deque
from urllib.parse import unquote, urlsplit

from twisted.internet import defer, protocol
from twisted.logger import Logger

MAX_BULK = 512 * 1024 * 1024
MAX_LINE = 64 * 1024


class RedisError(Exception):
    """
    Redis answered a command with an error reply (C{-ERR ...}).
    """


class RedisUnavailable(Exception):
    """
    There is no connection to Redis right now.
    """


class ProtocolError(Exception):
    """
    The server sent something that is not RESP.
    """


def encodeCommand(args) -> bytes:
    """
    A command as a RESP array of bulk strings.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif isinstance(arg, float):
            arg = repr(arg).encode()
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


SUBSCRIBER_READ_BYTES = 256 * 1024


class RESPParser:
    """
    Incremental RESP2 reply parser: feed bytes, get complete replies.
    Bulk strings come back as C{bytes}, errors as L{RedisError} instances.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> list:
        self.buffer += data
        replies = []
        while True:
            start = self.pos
            try:
                reply = self._parse()
            except _Incomplete:
                self.pos = start
                break
            replies.append(reply)
        if self.pos:
            del self.buffer[:self.pos]
            self.pos = 0
        return replies

    def _line(self) -> bytes:
        end = self.buffer.find(b"\r\n", self.pos)
        if end < 0:
            if len(self.buffer) - self.pos > MAX_LINE:
                raise ProtocolError("reply line too long")
            raise _Incomplete()
        line = bytes(self.buffer[self.pos:end])
        self.pos = end + 2
        return line

    def _parse(self):
        line = self._line()
        if not line:
            raise ProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            if length > MAX_BULK:
                raise ProtocolError("bulk string too long")
            if len(self.buffer) - self.pos < length + 2:
                raise _Incomplete()
            value = bytes(self.buffer[self.pos:self.pos + length])
            self.pos += length + 2
            return value
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._parse() for _ in range(count)]
        raise ProtocolError(f"unknown reply type {kind!r}")


class _Incomplete(Exception):
    pass


class RedisProtocol(protocol.Protocol):
    """
    One connection.  In command mode each L{execute} returns a Deferred
    fired with its reply, in order.  In subscriber mode (after
    L{subscribe}) pushed C{message} replies go to C{factory.messageReceived}.
    """

    log = Logger()

    def __init__(self):
        self.parser = RESPParser()
        self.waiting: deque = deque()
        self.subscriber = False

    def connectionMade(self):
        # Commands and bus frames are small writes that must go out at once:
        # Nagle's algorithm would hold each behind the previous one's ACK.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            setNoDelay(True)
        self.factory.connected(self)

    def dataReceived(self, data):
        try:
            replies = self.parser.feed(data)
        except (ProtocolError, ValueError) as e:
            self.log.error("Redis protocol error: {e}", e=e)
            self.transport.abortConnection()
            return
        for reply in replies:
            if (self.subscriber and isinstance(reply, list) and len(reply) == 3
                    and reply[0] == b"message"):
                self.factory.messageReceived(reply[1], reply[2])
                continue
            if not self.waiting:
                continue  # subscribe confirmations beyond the first
            d = self.waiting.popleft()
            if isinstance(reply, RedisError):
                d.errback(reply)
            else:
                d.callback(reply)

    def execute(self, *args) -> defer.Deferred:
        d = defer.Deferred()
        self.waiting.append(d)
        self.transport.write(encodeCommand(args))
        return d

    def subscribe(self, channels) -> defer.Deferred:
        """
        Enter subscriber mode; fires when the first channel is confirmed.
        """
        self.subscriber = True
        # The bus carries every stanza other nodes send here: read it in
        # larger chunks than a client socket (64 KiB), so that a node under
        # load keeps up with it rather than favouring its own clients.
        self.transport.bufferSize = SUBSCRIBER_READ_BYTES
        return self.execute("SUBSCRIBE", *channels)

    def connectionLost(self, reason):
        waiting, self.waiting = self.waiting, deque()
        for d in waiting:
            d.errback(RedisUnavailable("connection to Redis lost"))
        self.factory.disconnected(self)


class _ConnectionFactory(protocol.ReconnectingClientFactory):
    """
    Keeps one L{RedisProtocol} connected for L{RedisClient}.
    """

    protocol = RedisProtocol
    maxDelay = 5
    initialDelay = 0.2
    factor = 2.0
    noisy = False

    def __init__(self, client, role):
        self.client = client
        self.role = role
        self.proto = None

    def connected(self, proto):
        self.proto = proto
        self.resetDelay()
        self.client._connected(self.role, proto)

    def disconnected(self, proto):
        if self.proto is proto:
            self.proto = None
            self.client._disconnected(self.role)

    def messageReceived(self, channel, data):
        self.client.onMessage(channel, data)


def parseRedisURI(uri: str) -> dict:
    """
    C{redis://[:password@]host[:port][/db]} -> host, port, password, db;
    raise C{ValueError} for anything else.
    """
    parts = urlsplit(uri)
    if parts.scheme != "redis":
        raise ValueError("must start with redis://")
    if not parts.hostname:
        raise ValueError("needs a host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError("the database must be a number")
    return {"host": parts.hostname, "port": parts.port or 6379,
            "password": unquote(parts.password) if parts.password else None,
            "db": int(db) if db else 0}


class RedisClient:
    """
    A command connection and a subscriber connection to one Redis server.

    @ivar onUp: called with no argument when both connections are ready.
    @ivar onDown: called when the client stops being ready.
    @ivar onMessage: called with C{(channel, data)} for each pushed message.
    """

    log = Logger()

    def __init__(self, reactor, uri: str, channels, onUp, onDown, onMessage, connectTimeout=5):
        self.reactor = reactor
        self.settings = parseRedisURI(uri)
        self.channels = list(channels)
        self.onUp = onUp
        self.onDown = onDown
        self.onMessage = onMessage
        self.connectTimeout = connectTimeout
        self.command = None
        self._subscribed = False
        self.ready = False
        self.factories = {}

    def start(self) -> None:
        for role in ("command", "subscriber"):
            factory = _ConnectionFactory(self, role)
            self.factories[role] = factory
            self.reactor.connectTCP(self.settings["host"], self.settings["port"], factory,
                                    timeout=self.connectTimeout)

    def stop(self) -> None:
        for factory in self.factories.values():
            factory.stopTrying()
            if factory.proto is not None:
                factory.proto.transport.loseConnection()
        self.factories = {}

    def execute(self, *args) -> defer.Deferred:
        """
        Run one command; fails with L{RedisUnavailable} while down.
        """
        if self.command is None:
            return defer.fail(RedisUnavailable("Redis is not connected"))
        return self.command.execute(*args)

    def push(self) -> None:
        """
        Write what the commands issued so far put in the connection's buffer
        now, instead of when the reactor next polls: a node in the middle of
        a long turn (a burst from its clients) gets its bus frames to the
        other nodes while it is still working, so that they work in parallel
        rather than in turns.
        """
        transport = self.command.transport if self.command is not None else None
        doWrite = getattr(transport, "doWrite", None)
        if doWrite is not None and getattr(transport, "connected", False):
            doWrite()  # a failure shows again, and is handled, at the reactor's next write

    @defer.inlineCallbacks
    def _prepare(self, proto):
        if self.settings["password"]:
            yield proto.execute("AUTH", self.settings["password"])
        if self.settings["db"]:
            yield proto.execute("SELECT", self.settings["db"])

    def _connected(self, role, proto):
        d = self._prepare(proto)
        if role == "command":
            d.addCallback(lambda _: setattr(self, "command", proto))
        else:
            d.addCallback(lambda _: proto.subscribe(self.channels))
            d.addCallback(lambda _: setattr(self, "_subscribed", True))
        d.addCallback(lambda _: self._checkReady())
        d.addErrback(self._prepareFailed, proto)

    def _prepareFailed(self, failure, proto):
        self.log.error("Redis connection setup failed: {error}", error=failure.getErrorMessage())
        proto.transport.loseConnection()

    def _checkReady(self):
        if not self.ready and self.command is not None and self._subscribed:
            self.ready = True
            self.onUp()

    def _disconnected(self, role):
        if role == "command":
            self.command = None
        else:
            self._subscribed = False
        if self.ready:
            self.ready = False
            self.onDown()
