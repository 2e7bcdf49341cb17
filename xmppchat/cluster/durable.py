"""
Durable XEP-0198 queues: the unacknowledged outbound stanzas of every
resumable session on a cluster node (XEP-0198 §4, C{sm.queue}) are also
kept in Redis, so that a node killed with C{kill -9} loses none of the
messages its senders were told it accepted.

Redis keys (C{P} is C{<key_prefix>:<domain>}, see L{directory.Keys}):

    P:smq:<resumption id>             list: one entry per queued stanza, in
                                      queue order: C{<stamp>\\n<XML>} for a
                                      message or IQ request, C{-} for the rest
    P:node:<id>:smq:<incarnation>     set of C{"<resumption id> <localpart>"},
                                      the queues of one node process
    P:smq-nodes                       set of C{"<id> <incarnation>"} having one
    P:node:<id>:smq-claim:<incarnation>  who moves that process's queues

Mirroring: C{StreamManagement.send} appends to the session's L{Mirror},
C{acknowledge} trims it; at the end of the reactor turn every changed queue
costs one C{LTRIM} (acks) and one C{RPUSH} (the turn's new stanzas),
pipelined on the command connection, never awaited.  The C{RPUSH} reply
(the list's length) is checked against the queue: a list that drifted (a
failed command, a rival's C{DEL}) is rewritten from the queue at the next
turn.  A session's list goes when the session ends (after its offline copies
are written, L{xmppchat.modules.smacks.SmacksModule.finish}) or is handed
over to another node (before the handover is answered, so that the new
owner's writes come after).  A stanza's message is in Redis before any
acknowledgement that depends on it leaves this node: bus acks (C{a} frames,
sent after L{DurableQueues.flushNow} on the same connection) and, through
C{SmacksModule.ackBarrier}, the C{<a/>} of local senders.

Keys expire C{sm_queue_seconds} after the node's last heartbeat (each
heartbeat renews the non-empty lists, the node's set and C{P:smq-nodes}),
so a cluster that dies leaves nothing behind for longer than that.

Recovery: at every heartbeat (and when a node is lost) each node compares
the members of C{P:smq-nodes} with the nodes' C{alive} tokens; a process
whose token expired or changed (restarted under the same id) is dead.  The
first node to C{SET ... NX} its claim key moves every queue in its set to
offline storage, stanza by stanza, exactly as a clean stop does
(L{xmppchat.modules.smacks.SmacksModule.requeue}: XEP-0203 delay with the
original time, C{service-unavailable} for IQ requests), then deletes the
list; when the set is empty it goes with its C{P:smq-nodes} member.  A
mover that dies mid-way leaves its claim to expire; the next heartbeat's
sweep finishes the job.  Delivery is at-least-once: what the dead node had
written to its client but not seen acknowledged comes again from offline
storage, and a message both in a dead node's queue and in its sender's bus
window is stored twice.

When Redis is unreachable the queues stay in memory only (as without a
cluster); on rejoining, every queue is rewritten from memory.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.cluster.serialised import SerialisedStanza
from xmppchat.xmlstream import parseElement

KEPT = (None, "chat", "normal")
PLACEHOLDER = b"-"
POLL_SECONDS = 0.1
# an <a/> waits this long at most for Redis (a Redis that hangs without
# disconnecting must not stop acknowledgements)
BARRIER_SECONDS = 2.0


def worthKeeping(element) -> bool:
    """
    What a survivor can do something with: messages that offline storage
    takes and IQ requests that must be answered (the rest is a placeholder
    that keeps the list aligned with the queue).
    """
    name = element.name
    if name == "message":
        return element.getAttribute("type") in KEPT
    return name == "iq" and element.getAttribute("type") in ("get", "set")


class Mirror:
    """
    The Redis copy of one session's queue.

    @ivar pushed: entries the list will hold once the commands sent so far
        are done.
    @ivar trim: entries to drop from the list's head at the next flush.
    @ivar buffer: entries queued this turn, not sent yet.
    @ivar stale: rewrite the whole list from the queue at the next flush.
    """

    __slots__ = ("owner", "sm", "key", "member", "pushed", "trim", "buffer", "stale", "dirty",
                 "ended")

    def __init__(self, owner, sm):
        self.owner = owner
        self.sm = sm
        self.key = owner.keys.smq(sm.smid)
        self.member = f"{sm.smid} {sm.session.localpart}"
        self.pushed = 0
        self.trim = 0
        self.buffer: list = []
        self.stale = True
        self.dirty = False
        self.ended = False

    def append(self, stamp: float, element):
        """
        C{element} was queued at C{stamp}; returns what the stream should
        write: the element, or its XML as serialised for the list (one
        serialisation for both).
        """
        owner = self.owner
        if not owner.node.online:
            return element
        self.buffer.append(owner.entry(stamp, element))
        if not self.dirty:
            owner.changed(self)
        return owner.wire(element)

    def acked(self, count: int) -> None:
        if not self.owner.node.online:
            return
        inList = self.pushed - self.trim
        if count <= inList:
            self.trim += count
        else:
            self.trim = self.pushed
            del self.buffer[:count - inList]
        if not self.dirty:
            self.owner.changed(self)

    def end(self, after=()) -> None:
        """
        The session is over here: delete the list once the Deferreds in
        C{after} (its offline copies) have fired.
        """
        self.owner.release(self, after)


class DurableQueues:
    """
    The durable queues of one cluster node (see the module docstring).
    """

    log = Logger()

    def __init__(self, node, seconds: int):
        self.node = node
        self.keys = node.keys
        self.ttlMs = seconds * 1000
        self.mirrors: dict[str, Mirror] = {}
        self._dirty: list[Mirror] = []
        self._flushCall = None
        self._next: list = []  # ack barriers waiting for the coming flush
        self._tail = None  # ... and for the last flush sent, until answered
        self._ending: set = set()
        self._sweeping = None
        self._lastElement = None
        self._lastText = ""
        self._lastXML = b""
        self._fresh = False
        self.written = 0
        self.moved = 0
        self.rewrites = 0

    @property
    def member(self) -> str:
        return f"{self.node.nodeId} {self.node.incarnation}"

    @property
    def setKey(self) -> str:
        return self.keys.smqSet(self.node.nodeId, self.node.incarnation)

    # -- mirroring -----------------------------------------------------

    def attach(self, sm) -> None:
        """
        C{sm} became resumable here (enabled, or taken over with its queue).
        """
        old = self.mirrors.get(sm.smid)
        if old is not None:
            old.sm.mirror = None
            old.ended = True
        mirror = Mirror(self, sm)
        sm.mirror = mirror
        self.mirrors[sm.smid] = mirror
        if self.node.online:
            self.changed(mirror)

    def entry(self, stamp: float, element) -> bytes:
        self._fresh = False
        if not worthKeeping(element):
            return PLACEHOLDER
        if element is not self._lastElement:
            # one serialisation for a message to several resources here
            self._lastElement = element
            self._lastText = element.toXml()
            self._lastXML = self._lastText.encode("utf-8")
            self._fresh = type(element) is not SerialisedStanza
        return b"%r\n%s" % (stamp, self._lastXML)

    def wire(self, element):
        """
        What the stream writes for the element L{entry} just serialised:
        that XML, rather than serialising it again (only when serialised
        just now, so that the client always gets the element as it is).
        """
        if not self._fresh:
            return element
        return SerialisedStanza(element.name, element.attributes, self._lastText)

    def changed(self, mirror: Mirror) -> None:
        mirror.dirty = True
        self._dirty.append(mirror)
        if self._flushCall is None:
            self._flushCall = self.node.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Send this turn's changes: per queue an C{LTRIM} and an C{RPUSH} at
        most, pipelined.
        """
        self._flushCall = None
        self._lastElement = None
        dirty, self._dirty = self._dirty, []
        waiters, self._next = self._next, []
        online = self.node.online
        redis = self.node.redis
        last = None
        for mirror in dirty:
            mirror.dirty = False
            if mirror.ended:
                continue
            if not online:
                mirror.buffer = []
                mirror.trim = 0
                mirror.stale = True
                continue
            last = self._write(redis, mirror) or last
        if waiters:
            if last is None:
                _fire(waiters)
            else:
                self._tail = waiters
                last.addBoth(self._answered, waiters)

    def flushNow(self) -> None:
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self.flush()

    def _write(self, redis, mirror: Mirror):
        key = mirror.key
        last = None
        if mirror.stale:
            self.rewrites += 1
            entries = [self.entry(stamp, element) for stamp, element in mirror.sm.queue]
            mirror.stale = False
            mirror.trim = 0
            mirror.buffer = []
            redis.execute("SADD", self.setKey, mirror.member).addErrback(self._failed, mirror)
            redis.execute("PEXPIRE", self.setKey, self.ttlMs).addErrback(self._failed)
            last = redis.execute("DEL", key)
            last.addErrback(self._failed, mirror)
            mirror.pushed = 0
        else:
            entries = mirror.buffer
            mirror.buffer = []
            if mirror.trim:
                mirror.pushed -= mirror.trim
                last = redis.execute("LTRIM", key, mirror.trim, -1)
                last.addErrback(self._failed, mirror)
                mirror.trim = 0
        if entries:
            created = mirror.pushed == 0
            mirror.pushed += len(entries)
            self.written += len(entries)
            last = redis.execute("RPUSH", key, *entries)
            last.addCallbacks(self._pushed, self._failed, callbackArgs=(mirror, mirror.pushed),
                              errbackArgs=(mirror,))
            if created:
                redis.execute("PEXPIRE", key, self.ttlMs).addErrback(self._failed, mirror)
        return last

    def _pushed(self, length, mirror: Mirror, expected: int) -> None:
        if length != expected and not mirror.ended:
            self.log.warn("Durable queue {key} holds {length} stanzas, not {expected}: rewriting it",
                          key=mirror.key, length=length, expected=expected)
            mirror.stale = True
            if not mirror.dirty:
                self.changed(mirror)

    def _failed(self, failure, mirror: Mirror | None = None) -> None:
        self.log.warn("Durable queue update failed: {e}", e=failure.getErrorMessage())
        if mirror is not None and not mirror.ended:
            mirror.stale = True  # rewritten at its next change or the next heartbeat

    def _answered(self, result, waiters) -> None:
        if self._tail is waiters:
            self._tail = None
        _fire(waiters)

    def barrier(self):
        """
        C{None} if every queued stanza is in Redis (or Redis is away), else
        a Deferred firing once it is; barriers fire in the order asked.
        """
        if self._flushCall is not None:
            waiters = self._next
        elif self._tail is not None:
            waiters = self._tail
        else:
            return None
        d = defer.Deferred()
        waiters.append(d)
        timeout = self.node.reactor.callLater(BARRIER_SECONDS, _fire, [d])
        d.addBoth(lambda r: (timeout.cancel() if timeout.active() else None, r)[1])
        return d

    def release(self, mirror: Mirror, after=()) -> None:
        """
        Stop mirroring C{mirror}'s session and delete its list (once
        C{after} fired).
        """
        mirror.ended = True
        if mirror.sm.mirror is mirror:
            mirror.sm.mirror = None
        if self.mirrors.get(mirror.sm.smid) is mirror:
            del self.mirrors[mirror.sm.smid]
        if not after:
            self._delete(mirror)
            return
        d = defer.DeferredList(list(after), consumeErrors=True)
        self._ending.add(d)
        d.addCallback(lambda _: (self._ending.discard(d), self._delete(mirror)))

    def _delete(self, mirror: Mirror) -> None:
        if not self.node.online:
            return
        redis = self.node.redis
        redis.execute("DEL", mirror.key).addErrback(self._failed)
        redis.execute("SREM", self.setKey, mirror.member).addErrback(self._failed)

    # -- the node's life ---------------------------------------------------

    def joined(self) -> None:
        """
        The node is (again) online: Redis may have lost or missed anything,
        so every queue is written again from memory.
        """
        redis = self.node.redis
        redis.execute("SADD", self.keys.smqNodes, self.member).addErrback(self._failed)
        for mirror in self.mirrors.values():
            mirror.stale = True
            if not mirror.dirty:
                self.changed(mirror)
        self.flushNow()
        self._expire(redis)

    def beat(self) -> None:
        """
        The heartbeat: renew the keys' TTL, then look for dead nodes' queues.
        """
        redis = self.node.redis
        redis.execute("SADD", self.keys.smqNodes, self.member).addErrback(self._failed)
        for mirror in self.mirrors.values():
            if mirror.stale and not mirror.dirty:
                self.changed(mirror)
        self._expire(redis)
        self.sweep()

    def _expire(self, redis) -> None:
        ttl = self.ttlMs
        redis.execute("PEXPIRE", self.keys.smqNodes, ttl).addErrback(self._failed)
        redis.execute("PEXPIRE", self.setKey, ttl).addErrback(self._failed)
        for mirror in self.mirrors.values():
            if mirror.pushed:
                redis.execute("PEXPIRE", mirror.key, ttl).addErrback(self._failed)

    @defer.inlineCallbacks
    def stop(self):
        """
        A clean stop: the queues went to offline storage
        (C{SmacksModule.flushAll}); delete their lists once those writes are
        done, then this process's set.
        """
        self.flushNow()
        if self._ending:
            yield defer.DeferredList(list(self._ending), consumeErrors=True)
        for mirror in list(self.mirrors.values()):
            self.release(mirror)
        if self.node.online:
            redis = self.node.redis
            try:
                yield redis.execute("DEL", self.setKey)
                yield redis.execute("SREM", self.keys.smqNodes, self.member)
            except Exception as e:
                self.log.warn("Removing the durable queues failed: {e}", e=e)

    # -- recovering a dead node's queues -------------------------------------------

    def sweep(self):
        """
        Move the queues of every dead node process to offline storage (one
        sweep at a time); fires when done.
        """
        done = defer.Deferred()
        if self._sweeping is not None:
            self._sweeping.append(done)
            return done
        waiters = self._sweeping = [done]
        d = defer.ensureDeferred(self._sweep())
        d.addErrback(lambda f: self.log.warn("Recovering durable queues failed: {e}",
                                             e=f.getErrorMessage()))
        d.addBoth(self._swept, waiters)
        return done

    def _swept(self, _, waiters) -> None:
        self._sweeping = None
        _fire(waiters)

    async def _sweep(self) -> None:
        redis = self.node.redis
        if not self.node.online:
            return
        members = await redis.execute("SMEMBERS", self.keys.smqNodes)
        processes = []
        for raw in members or ():
            nodeId, _, incarnation = raw.decode().partition(" ")
            if nodeId != self.node.nodeId or incarnation != self.node.incarnation:
                processes.append((nodeId, incarnation, raw))
        if not processes:
            return
        tokens = await redis.execute("MGET", *[self.keys.alive(n) for n, _, _ in processes])
        for (nodeId, incarnation, raw), token in zip(processes, tokens, strict=True):
            if token is not None and token.decode() == incarnation:
                continue  # alive
            claim = self.keys.smqClaim(nodeId, incarnation)
            won = await redis.execute("SET", claim, self.node.nodeId, "NX", "PX", self.claimMs)
            if won is None:
                continue  # another node moves them (or did)
            await self._move(nodeId, incarnation, raw, claim)

    @property
    def claimMs(self) -> int:
        return max(60, 6 * self.node.config.expiry_seconds) * 1000

    async def _move(self, nodeId: str, incarnation: str, raw: bytes, claim: str) -> None:
        redis = self.node.redis
        setKey = self.keys.smqSet(nodeId, incarnation)
        queues = await redis.execute("SMEMBERS", setKey)
        count = 0
        for member in queues or ():
            smid, _, localpart = member.decode().partition(" ")
            key = self.keys.smq(smid)
            entries = await redis.execute("LRANGE", key, 0, -1)
            stored = await self._store(localpart, entries or ())
            await redis.execute("DEL", key)
            await redis.execute("SREM", setKey, member)
            await redis.execute("PEXPIRE", claim, self.claimMs)
            if stored:
                count += stored
                self.notify(localpart)
        await redis.execute("DEL", setKey)
        await redis.execute("SREM", self.keys.smqNodes, raw)
        self.moved += count
        self.log.info("Moved {count} unacknowledged stanza(s) of {n} session(s) of lost node {node}"
                      " to offline storage", count=count, n=len(queues or ()), node=nodeId)

    async def _store(self, localpart: str, entries) -> int:
        smacks = self.node.host.modules.get("smacks")
        if smacks is None:
            return 0
        stores = []
        for entry in entries:
            if entry == PLACEHOLDER:
                continue
            stamp, _, xml = entry.partition(b"\n")
            try:
                stanza = parseElement(xml.decode("utf-8"))
                stamp = float(stamp)
            except Exception:
                self.log.warn("Skipping an unreadable durable queue entry of {user}", user=localpart)
                continue
            d = smacks.requeue(localpart, stanza, stamp)
            if d is not None:
                stores.append(d)
        if stores:
            await defer.DeferredList(stores, consumeErrors=True)
        return len(stores)

    def notify(self, localpart: str) -> None:
        """
        Messages were just stored offline for C{localpart}: its sessions
        already back online (on any node) get them now, not at their next
        login.
        """
        bare = f"{localpart}@{self.node.host.domain}"
        nodes = set()
        for session in self.node.host.sessions.sessionsOf(bare):
            if getattr(session, "remote", False):
                if session.available:
                    nodes.add(session.node)
        self.deliverOffline(localpart)
        for node in sorted(nodes):
            self.node.bus.control(node, {"op": "smq-offline", "l": localpart})

    def deliverOffline(self, localpart: str) -> None:
        offline = self.node.host.modules.get("offline")
        if offline is None:
            return
        bare = f"{localpart}@{self.node.host.domain}"
        for session in self.node.host.sessions.localSessionsOf(bare):
            if session.available and not session.closed:
                offline.deliver(session).addErrback(
                    lambda f: self.log.failure("Offline delivery of a recovered queue failed", f))

    def controlReceived(self, payload: dict) -> bool:
        if payload.get("op") != "smq-offline":
            return False
        localpart = payload.get("l")
        if isinstance(localpart, str):
            self.deliverOffline(localpart)
        return True

    async def rescue(self, smid: str, timeout: float) -> bool:
        """
        A client resumes C{smid}, whose node is dead: wait (at most
        C{timeout} seconds) until its queue is in offline storage.  C{True}
        if it is (or there was none).
        """
        redis = self.node.redis
        clock = self.node.reactor
        deadline = clock.seconds() + timeout
        key = self.keys.smq(smid)
        while True:
            await self.sweep()
            if not await redis.execute("EXISTS", key):
                return True
            if clock.seconds() >= deadline:
                return False
            await _sleep(clock, POLL_SECONDS)


def _fire(waiters) -> None:
    for d in waiters:
        if not d.called:
            d.callback(None)


def _sleep(clock, seconds):
    d = defer.Deferred()
    clock.callLater(seconds, d.callback, None)
    return d
