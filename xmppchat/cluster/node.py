"""
One cluster node: the Redis connections, the session directory, the
stanza bus and the heartbeat, wired to a L{xmppchat.host.Host}.

Lifecycle: L{ClusterNode.start} connects (the node serves its local
sessions whether or not Redis is there); when both Redis connections are
up the node (re-)registers every local session, loads the others'
(reconciliation after an outage or a Redis restart) and goes online.  When
Redis is lost it goes offline: pending cross-node messages go to offline
storage, lookups see local sessions only, and it rejoins by itself.
Stream management queues of resumable sessions are mirrored in Redis
(L{durable}) and recovered by a survivor when their node dies.
"""

from __future__ import annotations

import os
import secrets
import socket

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppchat import observe
from xmppchat.cluster.bus import StanzaBus
from xmppchat.cluster.directory import Keys, SessionDirectory
from xmppchat.cluster.durable import DurableQueues
from xmppchat.cluster.fence import HandoverFences
from xmppchat.cluster.resp import RedisClient, parseRedisURI
from xmppchat.cluster.resumption import ClusterResumption
from xmppchat.cluster.rooms import ClusterRooms


#: Local hooks whose news other nodes need, and the directory event each becomes:
#: a roster or XEP-0016/0191 lists written here (they drop or reload their cached
#: copy), a message stored offline here (the user may have just bound a session
#: there that this node's replica does not show yet: that node delivers it now),
#: an account changed here (they reload it and fire C{account-updated} again, so
#: privacy settings apply to the sessions there at once: issue 17 item 3), a
#: vCard changed here (they drop their cached XEP-0153 hash: issue 16 item 7).
ANNOUNCED = {"roster-changed": "roster", "privacy-changed": "privacy", "offline-stored": "offline",
             "account-updated": "account", "vcard-changed": "vcard"}


def defaultNodeId() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterNode:
    """
    Joins C{host} to the cluster described by C{config} (a
    L{xmppchat.config.ClusterConfig}).
    """

    log = Logger()

    def __init__(self, host, config, reactor, clientFactory=RedisClient):
        self.host = host
        self.config = config
        self.reactor = reactor
        self.nodeId = config.node_id or defaultNodeId()
        self.incarnation = secrets.token_hex(8)
        self.keys = Keys(config.key_prefix, host.domain)
        self.directory = SessionDirectory(host, self.nodeId, self.keys)
        self.bus = StanzaBus(host, self.nodeId, self.keys, reactor, config.max_pending,
                             stallSeconds=config.expiry_seconds)
        self.directory.bus = self.bus
        self.bus.directory = self.directory
        self.bus.onSessionsLost = self.sessionsLost
        self.expiryMs = config.expiry_seconds * 1000
        self.myChannel = self.keys.channel(self.nodeId).encode()
        self.directoryChannel = self.keys.directory.encode()
        self.redis = clientFactory(reactor, config.redis_uri,
                                   [self.myChannel, self.directoryChannel],
                                   self._up, self._down, self._message)
        self.directory.redis = self.bus.redis = self.redis
        self.heartbeat = task.LoopingCall(self._beat)
        self.heartbeat.clock = reactor
        self._joining = None
        self._onlineWaiters: list = []
        self.stopping = False
        self.resumption = ClusterResumption(self)
        self.durable = None
        smacks = host.modules.get("smacks")
        if smacks is not None and config.sm_queue_seconds:
            self.durable = DurableQueues(self, config.sm_queue_seconds)
            smacks.ackBarrier = self.durable.barrier
            self.bus.beforeAck = self.durable.flushNow
        self.rooms = None
        muc = host.modules.get("muc")
        if muc is not None:
            self.rooms = ClusterRooms(self, muc.service, muc)
            self.directory.onSessionGone = self.rooms.sessionGone
        self.bus.onNodeLost = self._nodeLost
        self.bus.onControl = self._control
        # more control frame handlers: fn(payload) -> True when handled (the admin API)
        self.controlHandlers: list = []
        self.bus.movedTo = self.resumption.movedTo
        self.fences = HandoverFences(self)
        self.bus.onFence = self.fences.fenceReceived
        self.directory.onMovedHere = self.fences.expect
        host.sessions.attach(self.directory)
        host.cluster = self
        for hookName, op in ANNOUNCED.items():
            host.hooks.add(hookName, lambda event, op=op: self._announce(op, event))
        host.hooks.add("account-updated", self._accountUpdated)

    @property
    def online(self) -> bool:
        return self.directory.online

    def start(self) -> None:
        self.log.info("Cluster node {node} connecting to Redis", node=self.nodeId)
        self.redis.start()
        self.heartbeat.start(self.config.heartbeat_seconds, now=False)

    def whenOnline(self, timeout: float) -> defer.Deferred:
        """
        Fires once this node has joined the cluster; fails after C{timeout}
        seconds without Redis (issue 18 item 1: a node that cannot reach
        Redis at start does not report itself ready).
        """
        if self.online:
            return defer.succeed(None)
        d = defer.Deferred()
        self._onlineWaiters.append(d)

        def expired():
            if not d.called:
                self._onlineWaiters.remove(d)
                where = parseRedisURI(self.config.redis_uri)  # no password in the message
                d.errback(ConnectionError(f"cannot reach Redis at {where['host']}:{where['port']}"
                                          f" within {timeout:g} s"))

        call = self.reactor.callLater(timeout, expired)
        d.addBoth(lambda result: (call.cancel() if call.active() else None, result)[1])
        return d

    @defer.inlineCallbacks
    def stop(self):
        """
        Leave the cluster cleanly: remove this node's entries so the others
        drop its sessions at once.
        """
        self.stopping = True
        if self.heartbeat.running:
            self.heartbeat.stop()
        if self.durable is not None:
            # what no client acknowledged goes to offline storage while
            # Redis is still there to forget its durable copy
            self.host.modules["smacks"].flushAll()
        self.bus.stop()
        if self.durable is not None:
            yield self.durable.stop()
        if self.online:
            try:
                yield self.redis.execute("DEL", self.keys.sessions(self.nodeId))
                yield self.redis.execute("DEL", self.keys.alive(self.nodeId))
                yield self.redis.execute("SREM", self.keys.nodes, self.nodeId)
                yield self.directory.publish({"o": "down", "n": self.nodeId})
            except Exception as e:
                self.log.warn("Leaving the cluster cleanly failed: {e}", e=e)
            observe.emit("cluster-node", node=self.nodeId, state="left")
        self.directory.online = False
        self.redis.stop()

    # -- connection state ---------------------------------------------------

    def _up(self) -> None:
        if self.stopping:
            return
        self._joining = defer.ensureDeferred(self._join())
        self._joining.addErrback(self._joinFailed)

    async def _join(self):
        """
        Register our sessions, load everyone else's, go online.
        """
        await self.directory.registerAll(list(self.host.sessions.all()), self.incarnation,
                                         self.expiryMs)
        await self.directory.loadAll()
        if self.redis.ready:
            self.directory.online = True
            if self.durable is not None:
                self.durable.joined()
            self.log.info("Cluster node {node} online: {remote} remote session(s)",
                          node=self.nodeId, remote=self.directory.remoteCount())
            observe.emit("cluster-node", node=self.nodeId, state="joined")
            waiters, self._onlineWaiters = self._onlineWaiters, []
            for d in waiters:
                d.callback(None)

    def _joinFailed(self, failure):
        self.log.warn("Joining the cluster failed ({e}); retrying at the next heartbeat",
                      e=failure.getErrorMessage())

    def _down(self) -> None:
        wasOnline = self.directory.online
        self.directory.online = False
        self.directory.clear()
        self.bus.flushAll()
        if wasOnline and not self.stopping:
            self.log.warn("Lost Redis: cluster node {node} serves local sessions only", node=self.nodeId)
            observe.emit("cluster-node", node=self.nodeId, state="left")

    def _control(self, payload: dict) -> bool:
        if payload.get("op") == "revoke":
            # another node revoked credentials of an account with sessions
            # here (issue 15 finding 4): end the streams they opened
            from xmppchat.auth.revocation import Revocation

            self.host.hooks.fire("credentials-revoked", Revocation.fromJSON(payload))
            return True
        if self.resumption.controlReceived(payload):
            return True
        if self.durable is not None and self.durable.controlReceived(payload):
            return True
        if self.rooms is not None and self.rooms.controlReceived(payload):
            return True
        return any(handler(payload) for handler in self.controlHandlers)

    def _message(self, channel: bytes, data: bytes) -> None:
        if channel == self.myChannel:
            self.bus.messageReceived(data)
        elif channel == self.directoryChannel:
            self.directory.eventReceived(data)

    # -- heartbeat ---------------------------------------------------------------

    def _beat(self):
        if not self.redis.ready:
            return None
        if not self.online:
            if self._joining is None or self._joining.called:
                self._up()
            return None
        d = defer.ensureDeferred(self._check())
        d.addErrback(lambda f: self.log.warn("Heartbeat failed: {e}", e=f.getErrorMessage()))
        return None

    async def _check(self):
        previous = await self.redis.execute("SET", self.keys.alive(self.nodeId), self.incarnation,
                                            "PX", self.expiryMs, "GET")
        if previous is None:
            # our key had expired (Redis restarted, or we stalled): the
            # others may have dropped us; register again
            self.log.warn("Cluster node {node} had expired; registering again", node=self.nodeId)
            self.directory.online = False
            self._up()
            return
        for node in await self.directory.checkNodes():
            self.log.info("Cluster node {node} expired; dropping its sessions", node=node)
            observe.emit("cluster-node", node=node, state="left")
            self.bus.nodeLost(node)
            await self.directory.removeDeadNode(node)
        for session in list(self.host.sessions.all()):
            self.host.sessions.changed(session)
        if self.rooms is not None:
            self.rooms.renew()
        if self.durable is not None:
            self.durable.beat()

    # -- lost nodes ---------------------------------------------------------------

    def _nodeLost(self, node: str) -> None:
        self.fences.nodeLost(node)
        if self.rooms is not None:
            self.rooms.nodeLost(node)
        if self.durable is not None and self.online:
            self.durable.sweep()  # moves its queues if its alive key is gone already

    def sessionsLost(self, sessions) -> None:
        """
        A node died or left with these sessions: their available presence
        will never be withdrawn by their own node, so tell our local
        contacts (RFC 6121 §4.5.2, as for a stream that ends without
        unavailable presence).
        """
        for session in sessions:
            if session.available:
                self._unavailable(session).addErrback(
                    lambda f: self.log.failure("Unavailable presence for a lost node failed", f))

    @defer.inlineCallbacks
    def _unavailable(self, gone):
        from xmppchat.modules.presence import SUBSCRIBED_FROM, presenceStanza

        sessions = self.host.sessions
        items = yield self.host.storage.roster.getRoster(gone.localpart)
        targets = [item.jid for item in items if item.subscription in SUBSCRIBED_FROM]
        targets.append(gone.bare)
        for bare in targets:
            for target in sessions.localSessionsOf(bare):
                if target.available:
                    target.send(presenceStanza(gone.full, target.full, "unavailable"))

    # -- shared caches -----------------------------------------------------------

    def _announce(self, op: str, event):
        """
        Tell the other nodes (a directory event, L{SessionDirectory._apply})
        that something they may hold about C{event.localpart} changed here
        (not again for an event they told us of: C{event.remote}).
        """
        if self.online and not getattr(event, "remote", False):
            self.directory.publish({"o": op, "n": self.nodeId, "l": event.localpart}).addErrback(
                lambda f: None)
        return None

    def _accountUpdated(self, event):
        """
        The rooms owned here hand the new account to the stanzas of its
        sessions on other nodes (their privacy settings).
        """
        if self.rooms is not None and event.localpart in self.rooms.accounts:
            self.rooms.accounts[event.localpart] = event.account
        return None
