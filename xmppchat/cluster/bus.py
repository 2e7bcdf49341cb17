"""
The cluster stanza bus: one Redis pub/sub channel per node carrying the
stanzas for the sessions on that node, serialised once.

Frames::

    s <from-node> <seq> <hops> <target full JID>\\n<stanza> (L{serialised.encode})
    a <from-node> <seq>              "I handed your stanzas up to seq to my sessions"
    c <from-node>\\n<JSON>           control: close a session (conflict), hand
                                     a resumable session over (L{resumption})
    f <fencer> <full JID>            end of the fencer's stanzas for that JID on
                                     this (old) route (L{fence})
    b\\n(<length>\\n<frame>)*          several frames in one pub/sub message

Stanzas for one node within one reactor turn go out as one C{b} batch (one
PUBLISH, at most C{MAX_BATCH_BYTES}), which is what keeps a burst cheap.
The outbox and the pending window hold the encoded frame bodies, not the
C{domish} trees: bytes are invisible to the garbage collector, and tens of
thousands of element trees kept until acknowledged made its full passes
costly in bench/cluster.py.  A body
becomes a stanza again (L{serialised.decode}) only when it has to go to
offline storage or bounce.

Messages of type C{chat}/C{normal} stay in a per-destination pending
window until the destination acknowledges them (one acknowledgement per
source node per reactor turn, covering every frame handled in it).  When
the destination is lost (PUBLISH reached no subscriber, its heartbeat
expired, it restarted, or Redis itself went away) every pending message goes to offline storage: nothing a client
was told is sent is lost, at the price of a possible duplicate (RFC 6121
§8.5.2.1.1 allows delivery; XEP-0160 storage).  IQ requests that cannot
cross get C{service-unavailable} (RFC 6120 §8.3.3.19); other stanzas
(presence, results, errors, headlines) are dropped with a log line, as
they would be for an unavailable resource.

Flow control: a destination that falls behind must not make Redis buffer
without bound (Redis drops a subscriber whose output buffer passes its
C{client-output-buffer-limit pubsub}, 32 MB by default, and the node then
looks lost).  When the frames sent to one node and not yet acknowledged
reach half of C{max_pending} or C{HIGH_WATER_BYTES}, this node stops
reading from its clients (L{holdInput}); it reads again once every
destination is back under a quarter of either.  Clients wait in TCP flow
control meanwhile; nothing is dropped.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque

from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.c2s.backpressure import holdInput, releaseInput
from xmppchat.cluster import serialised
from xmppchat.router import Event

HIGH_WATER_BYTES = 4 * 1024 * 1024  # half of Redis's default pub/sub soft limit (8 MB for 60 s)
LOW_WATER_BYTES = 1024 * 1024
ACK_DELAY = 0.0  # acknowledge at the end of the reactor turn that handled the frames
MAX_BATCH_BYTES = 8 * 1024
MAX_HOPS = 2
STORABLE = (None, "chat", "normal")


def storable(element) -> bool:
    return element.name == "message" and element.getAttribute("type") in STORABLE


class _Moved:
    """
    Where a session handed over to another node is now (for L{StanzaBus.send}).
    """

    __slots__ = ("node", "full")

    def __init__(self, node: str, full: str):
        self.node = node
        self.full = full


class StanzaBus:
    """
    Sends stanzas to remote sessions and delivers those received for ours.
    """

    log = Logger()

    def __init__(self, host, nodeId: str, keys, clock, maxPending: int = 10000, stallSeconds: float = 10.0):
        self.host = host
        self.nodeId = nodeId
        self.keys = keys
        self.clock = clock
        self.maxPending = maxPending
        self.redis = None
        self.directory = None
        self.seq: dict[str, int] = {}
        self.inFlight: dict[str, deque] = {}  # node -> (seq, frame bytes) not acknowledged yet
        self.inFlightBytes: dict[str, int] = {}
        self.highWater = max(1, maxPending // 2)
        self.lowWater = maxPending // 4
        self.congested: set = set()
        self.stallSeconds = stallSeconds
        self._held: list = []
        self._stallCall = None
        self.pending: dict[str, OrderedDict] = {}
        self._acks: dict[str, int] = {}
        self._ackCall = None
        self._lastElement = None
        self._outbox: dict[str, list] = {}
        self._outboxBytes: dict[str, int] = {}
        self._flushCall = None
        self._lastXML = b""
        self.onSessionsLost = None
        self.beforeAck = None
        self.onControl = None
        self.onNodeLost = None
        self.movedTo = None  # full JID -> the node it was just handed over to, or None
        self.onFence = None  # (fencer, full JID): a fence frame arrived
        self.fences: dict = {}  # full JID -> its L{fence.Fence} while one is up
        self._overflowing: set = set()
        self.untracked = 0
        self.sent = 0
        self.received = 0
        self.fallbacks = 0

    # -- sending ----------------------------------------------------------

    def _serialise(self, element) -> bytes:
        """
        The stanza's frame body, computed once even when it goes to several
        remote sessions in a row (a message to a bare JID, a presence
        broadcast).
        """
        if element is not self._lastElement:
            self._lastElement = element
            self._lastXML = serialised.encode(element)
        return self._lastXML

    def send(self, session, element, hops: int = 0) -> None:
        """
        Publish C{element} for the remote C{session}.
        """
        node = session.node
        if not self.directory.online:
            self.undeliverable(element, session.full)
            return
        seq = self.seq.get(node, 0) + 1
        self.seq[node] = seq
        header = f"s {self.nodeId} {seq} {hops} {session.full}\n".encode("utf-8")
        body = self._serialise(element)
        frame = header + body
        tracked = storable(element)
        if tracked:
            window = self.pending.setdefault(node, OrderedDict())
            window[seq] = (body, session.full)
            if len(window) > self.maxPending:
                window.popitem(last=False)
                self.untracked += 1
                if node not in self._overflowing:
                    # once per episode, not once per message
                    self._overflowing.add(node)
                    self.log.warn("Pending window for {node} full ({limit}): the oldest messages are"
                                  " no longer kept for offline storage", node=node, limit=self.maxPending)
        self.sent += 1
        batch = self._enqueue(node, (frame, seq, body, session.full, tracked))
        flight = self.inFlight.get(node)
        if flight is None:
            flight = self.inFlight[node] = deque()
            self.inFlightBytes[node] = 0
        flight.append((seq, len(frame)))
        self.inFlightBytes[node] += len(frame)
        if (len(flight) >= self.highWater or self.inFlightBytes[node] >= HIGH_WATER_BYTES) \
                and node not in self.congested:
            self._congest(node)
        self._outboxBytes[node] += len(frame)
        if self._outboxBytes[node] >= MAX_BATCH_BYTES:
            del self._outbox[node]
            self._publish(node, batch)
            self.redis.push()

    def _enqueue(self, node: str, entry: tuple) -> list:
        batch = self._outbox.get(node)
        if batch is None:
            batch = self._outbox[node] = []
            self._outboxBytes[node] = 0
            if self._flushCall is None:
                self._flushCall = self.clock.callLater(0, self._flushOutbox)
        batch.append(entry)
        return batch

    def fence(self, node: str, full: str, fencer: str | None = None) -> None:
        """
        Queue a fence frame for C{node} behind the stanzas queued for it:
        C{fencer} (this node by default) sends nothing more for C{full}
        through C{node} (L{xmppchat.cluster.fence}).
        """
        if self.directory.online:
            self._enqueue(node, (f"f {fencer or self.nodeId} {full}".encode(), 0, None, full, False))

    def _flushOutbox(self) -> None:
        self._flushCall = None
        outbox, self._outbox = self._outbox, {}
        for node, batch in outbox.items():
            self._publish(node, batch)

    def _publish(self, node: str, batch: list) -> None:
        if not self.directory.online:
            self._publishFailed(None, node, batch)
            return
        if len(batch) == 1:
            payload = batch[0][0]
        else:
            parts = [b"b\n"]
            for entry in batch:
                parts.append(b"%d\n" % len(entry[0]))
                parts.append(entry[0])
            payload = b"".join(parts)
        d = self.redis.execute("PUBLISH", self.keys.channel(node), payload)
        d.addCallbacks(self._published, self._publishFailed, callbackArgs=(node, batch),
                       errbackArgs=(node, batch))

    def _published(self, receivers, node, batch):
        if receivers == 0:
            # nobody listens on that channel: the node is gone
            self.log.info("Node {node} has no subscriber: dropping its sessions", node=node)
            self.nodeLost(node)
            for _, _, body, full, tracked in batch:
                if not tracked and body is not None:
                    self._bounce(body, full)

    def _publishFailed(self, failure, node, batch):
        window = self.pending.get(node)
        for _, seq, body, full, tracked in batch:
            if body is None or tracked and (window is None or window.pop(seq, None) is None):
                continue  # a fence, or already flushed to offline storage
            self._bounce(body, full)

    def control(self, node: str, payload: dict):
        """
        Publish a control frame for C{node}; returns a Deferred firing with
        the number of subscribers that got it (C{None} when it failed), or
        C{None} while offline.
        """
        if not self.directory.online:
            return None
        frame = f"c {self.nodeId}\n".encode() + json.dumps(payload).encode()
        return self.redis.execute("PUBLISH", self.keys.channel(node), frame).addErrback(
            lambda f: self.log.warn("Control message to {node} failed", node=node))

    # -- losing a node ---------------------------------------------------------

    def nodeLost(self, node: str) -> None:
        """
        C{node} is gone: forget its sessions, store what it did not
        acknowledge.
        """
        lost = self.directory.dropNode(node)
        if self.onNodeLost is not None:
            self.onNodeLost(node)
        self._forget(node)
        self._flush(self.pending.pop(node, None))
        if lost and self.onSessionsLost is not None:
            self.onSessionsLost(lost)

    def nodeRestarted(self, node: str) -> None:
        """
        C{node} (re)joined: what it had not acknowledged will never be.
        """
        self._forget(node)
        self._flush(self.pending.pop(node, None))

    def _forget(self, node: str) -> None:
        self.seq.pop(node, None)
        self.inFlight.pop(node, None)
        self.inFlightBytes.pop(node, None)
        self._relieve(node)

    # -- flow control ------------------------------------------------------------

    def _congest(self, node: str) -> None:
        if not self.congested:
            self.log.info("{node} is {count} frames ({size} bytes) behind: not reading from clients until it"
                          " catches up", node=node, count=len(self.inFlight[node]),
                          size=self.inFlightBytes[node])
            self._held = holdInput(self.host, "cluster bus")
            self._stallCall = self.clock.callLater(self.stallSeconds, self._stalled)
        self.congested.add(node)

    def _stalled(self) -> None:
        """
        Still behind after C{stallSeconds}: a destination that is alive (its
        heartbeat goes on) but does not acknowledge must not freeze this
        node's clients for good.  They read again; past C{max_pending} the
        oldest messages then lose their offline-storage guarantee (logged).
        """
        self._stallCall = None
        self.log.warn("{nodes} still behind after {seconds} s: reading from clients again",
                      nodes=", ".join(sorted(self.congested)), seconds=self.stallSeconds)
        self._releaseHeld()

    def _relieve(self, node: str) -> None:
        if node not in self.congested:
            return
        self.congested.discard(node)
        if not self.congested:
            if self._stallCall is not None:
                self._stallCall.cancel()
                self._stallCall = None
            self._releaseHeld()

    def _releaseHeld(self) -> None:
        held, self._held = self._held, []
        releaseInput(held, "cluster bus")

    def flushAll(self) -> None:
        """
        Redis went away: no acknowledgement can come back.
        """
        pending, self.pending = self.pending, {}
        outbox, self._outbox = self._outbox, {}
        for node in list(self.seq) + list(self.congested):
            self._forget(node)
        for window in pending.values():
            self._flush(window)
        for batch in outbox.values():
            for _, _, body, full, tracked in batch:
                if not tracked and body is not None:
                    self._bounce(body, full)

    def _flush(self, window) -> None:
        if not window:
            return
        seen = set()
        for body, full in window.values():
            if id(body) in seen:
                continue  # a message to a bare JID sent to two resources there (one body)
            seen.add(id(body))
            self._bounce(body, full)

    def _bounce(self, body: bytes, full: str | None) -> None:
        self.undeliverable(serialised.decode(body), full)

    def undeliverable(self, element, full: str | None) -> None:
        """
        C{element} cannot reach its remote session: offline storage for
        messages, an error for IQ requests, a log line for the rest.
        """
        self.fallbacks += 1
        name = element.name
        stanzaType = element.getAttribute("type")
        router = self.host.router
        if storable(element):
            target = full or element.getAttribute("to")
            try:
                to = jjid.JID(target).userhostJID()
            except Exception:
                return
            event = Event(self.host, element, None, to, "bare", stanzaType or "normal")
            if not self.host.hooks.fire("message/offline", event):
                router.sendError(None, element, "service-unavailable", "The recipient is unreachable")
            return
        if name == "iq" and stanzaType in ("get", "set"):
            router.sendError(None, element, "service-unavailable",
                             "The recipient's cluster node is unreachable")
            return
        self.log.debug("Dropping a {name} for an unreachable session {jid}", name=name, jid=full)

    # -- receiving -----------------------------------------------------------

    def messageReceived(self, data: bytes) -> None:
        """
        One pub/sub message: a frame, or a batch of frames.
        """
        if data[:2] != b"b\n":
            self.frameReceived(data)
            return
        pos = 2
        end = len(data)
        while pos < end:
            newline = data.find(b"\n", pos)
            try:
                length = int(data[pos:newline])
            except ValueError:
                self.log.warn("Ignoring the rest of an unreadable batch")
                return
            start = newline + 1
            self.frameReceived(data[start:start + length])
            pos = start + length

    def frameReceived(self, data: bytes) -> None:
        kind = data[:1]
        try:
            if kind == b"s":
                header, _, xml = data.partition(b"\n")
                _, src, seq, hops, full = header.decode("utf-8").split(" ", 4)
                self._stanzaReceived(src, int(seq), int(hops), full, xml)
            elif kind == b"a":
                _, src, seq = data.decode().split(" ")
                self._ackReceived(src, int(seq))
            elif kind == b"f":
                _, fencer, full = data.decode("utf-8").split(" ", 2)
                if self.onFence is not None:
                    self.onFence(fencer, full)
            elif kind == b"c":
                header, _, payload = data.partition(b"\n")
                self._controlReceived(json.loads(payload))
            else:
                raise ValueError(kind)
        except (ValueError, UnicodeDecodeError):
            self.log.warn("Ignoring an unreadable bus frame")

    def _stanzaReceived(self, src, seq, hops, full, body) -> None:
        self.received += 1
        try:
            element = serialised.decode(body)
        except ValueError:
            self.log.warn("Ignoring an unreadable stanza from {node}", node=src)
            element = None
        fence = self.fences.get(full) if self.fences else None
        if fence is not None and element is not None:
            fence.received(src, element, hops)  # a session just taken over here
        elif element is not None:
            bare, _, resource = full.partition("/")
            session = self.host.sessions.localGet(bare, resource)
            if session is not None and not session.closed:
                session.send(element)
            else:
                self.targetGone(element, bare, hops, full)
        if seq > self._acks.get(src, 0):
            self._acks[src] = seq
        if self._ackCall is None:
            self._ackCall = self.clock.callLater(ACK_DELAY, self._sendAcks)

    def targetGone(self, element, bare: str, hops: int, full: str | None = None) -> None:
        """
        A stanza arrived for a session that ended meanwhile: if the session
        just moved to another node (a resumption there), it follows it;
        otherwise a message sent to that full JID goes to the account's
        other available resources (RFC 6121 §8.5.3.2.1), or offline storage.
        """
        moved = self.movedTo(full) if full is not None and self.movedTo is not None else None
        if moved is not None and hops < MAX_HOPS:
            self.send(_Moved(moved, full), element, hops + 1)
            return
        if storable(element):
            others = [s for s in self.host.sessions.sessionsOf(bare)
                      if s.available and s.priority >= 0 and not s.closed]
            if "/" not in element.getAttribute("to", ""):
                if others:
                    return  # sent to the bare JID: the other resources had their copy
            elif others and hops < MAX_HOPS:
                for session in others:
                    if getattr(session, "remote", False):
                        self.send(session, element, hops + 1)
                    else:
                        session.send(element)
                return
        self.undeliverable(element, bare)

    def _sendAcks(self) -> None:
        self._ackCall = None
        acks, self._acks = self._acks, {}
        if not self.directory.online:
            return
        if self.fences:
            # a node whose stanzas a handover fence holds is acknowledged
            # once they reach the session (and its durable copy), so that
            # they are not lost if this node dies meanwhile
            for fence in self.fences.values():
                waiting = (fence.origin,) if fence.waiting else ()
                for src in (*fence.held, *waiting):
                    if src in acks:
                        self._acks[src] = acks.pop(src)
        if self.beforeAck is not None:
            self.beforeAck()  # durable queues: the copies go out before the acks that rely on them
        for src, seq in acks.items():
            self.redis.execute("PUBLISH", self.keys.channel(src),
                               f"a {self.nodeId} {seq}".encode()).addErrback(lambda f: None)

    def ackLater(self) -> None:
        """
        Acknowledgements kept back for a fence are due (L{_sendAcks}).
        """
        if self._acks and self._ackCall is None:
            self._ackCall = self.clock.callLater(ACK_DELAY, self._sendAcks)

    def _ackReceived(self, src, seq) -> None:
        flight = self.inFlight.get(src)
        if flight:
            size = 0
            while flight and flight[0][0] <= seq:
                size += flight.popleft()[1]
            self.inFlightBytes[src] -= size
            if src in self.congested and len(flight) <= self.lowWater \
                    and self.inFlightBytes[src] <= LOW_WATER_BYTES:
                self._relieve(src)
        window = self.pending.get(src)
        while window:
            first = next(iter(window))
            if first > seq:
                break
            del window[first]
        if src in self._overflowing and (window is None or len(window) < self.maxPending // 2):
            self._overflowing.discard(src)

    def _controlReceived(self, payload) -> None:
        if not isinstance(payload, dict):
            raise ValueError(payload)
        if "op" in payload and self.onControl is not None and self.onControl(payload):
            return
        full = payload.get("close")
        if not isinstance(full, str):
            return
        bare, _, resource = full.partition("/")
        session = self.host.sessions.localGet(bare, resource)
        if session is not None:
            session.close(payload.get("condition"), payload.get("text"))

    def stop(self) -> None:
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
            self._flushOutbox()
        if self._ackCall is not None and self._ackCall.active():
            self._ackCall.cancel()
        self._ackCall = None
        if self._stallCall is not None and self._stallCall.active():
            self._stallCall.cancel()
        self._stallCall = None
