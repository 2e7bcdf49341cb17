"""
Per-sender stanza order across a XEP-0198 §5 handover between cluster
nodes (L{resumption}): RFC 6120 §10.1 in-order processing, which a
client resuming on another node must not see broken.

The race it closes: while a session moves from node A (the old owner) to
node B, a sender's node S still routes its stanzas to A, which forwards
them to B (L{bus.StanzaBus.targetGone}); once S hears of the move it
sends straight to B.  A stanza forwarded through A (two hops) could then
arrive after a later one S sent straight to B (one hop): the resumed
client saw m94 before m93.

The protocol:

 1. A hands the session over and publishes a directory C{move} event
    (instead of the C{del} a logout publishes), before its C{sm-given}
    answer.  Every node re-points its replica entry to B at once (no
    window in which the session is unknown and a message would go to
    offline storage) and sends A a fence frame (C{f S full}) queued behind
    whatever it had queued for A, then sends straight to B.
 2. A forwards stanzas and fences for the moved JID to B, in the order it
    got them (one publisher, one channel: Redis keeps that order).
 3. B, from the C{move} event on, holds the stanzas for that JID that come
    from any node S other than A (and its own local deliveries, S = B,
    whose fence B sends to A when it takes the session over) until S's
    fence arrives through A; then it delivers S's held stanzas, in order,
    and lets S's later ones through.  Stanzas from A wait only until B
    has taken the session over (or abandoned it), keeping their hop count,
    so that they cannot bounce between A and B (review 18 #2).
    S's stanzas are acknowledged (L{bus}) only once they are delivered, so
    a held stanza is not lost if B dies meanwhile.  Accepted trade-off
    (review 18 #4): if S wrongly declares B lost during that window, S
    stores the unacknowledged stanzas offline while B still delivers them:
    the client can get those (at most C{FENCE_SECONDS} worth) twice.

Bounds: a fence is up at most C{FENCE_SECONDS}, and holds at most
C{cluster.max_pending} stanzas; past either, or when A or S is lost, what
it holds is delivered at once (order is then best effort, logged), so a
dead node cannot stall a session.  Held stanzas whose session ended
meanwhile follow the usual path for a gone session (another resource or
offline storage; L{bus.StanzaBus.targetGone}); a session handed over
again while its fence is up hands what it holds over in its queue (order
across two handovers within C{FENCE_SECONDS} is best effort).  If B
cannot take the session over after all (the resuming stream went away,
the answer came too late, A died before answering), B withdraws the JID
from the directory and puts the handed queue, if it got it, into offline
storage, before what the fence held (sent later; review 18 #3):
nothing is lost.
"""

from __future__ import annotations

from twisted.logger import Logger

from xmppchat.sessions import Session

FENCE_SECONDS = 5.0


class FencedSession(Session):
    """
    A session taken over from another node: while its fence is up, local
    deliveries (this node's own senders) wait for this node's fence too.
    """

    __slots__ = ("fence",)

    def __init__(self, *args, **kwargs):
        Session.__init__(self, *args, **kwargs)
        self.fence = None

    def send(self, element) -> None:
        fence = self.fence
        if fence is None:
            Session.send(self, element)
        else:
            fence.received(fence.fences.nodeId, element)


class Fence:
    """
    The stanzas for one full JID moving here from C{origin}, held per
    sending node until that node's fence arrives.
    """

    def __init__(self, fences, full: str, origin: str, expected: set, call):
        self.fences = fences
        self.full = full
        self.bare, _, self.resource = full.partition("/")
        self.origin = origin
        self.expected = expected
        self.call = call
        self.held: dict[str, list] = {}
        self.count = 0
        self.session = None
        self.waiting: list | None = []  # delivered before the takeover; None once ended

    def received(self, src: str, element, hops: int = 0) -> None:
        if src == self.origin or src not in self.expected:
            self.deliver(element, hops)
            return
        self.held.setdefault(src, []).append((element, hops))
        self._count()

    def _count(self) -> None:
        self.count += 1
        if self.count > self.fences.maxHeld:
            self.fences.log.warn("Handover fence of {jid} full ({count} stanzas): delivering them now",
                                 jid=self.full, count=self.count)
            self.fences.end(self)

    def fenced(self, src: str) -> None:
        """
        C{src}'s fence arrived: what it sent through C{origin} is delivered.
        """
        self.expected.discard(src)
        held = self.held.pop(src, None)
        if held:
            for element, hops in held:
                self.deliver(element, hops)
            self.fences.node.bus.ackLater()
        if not self.expected and self.session is not None:
            self.fences.end(self)

    def deliver(self, element, hops: int) -> None:
        """
        Until the session is taken over (or abandoned) a stanza waits here:
        sent on as for a gone session it could bounce back to this node
        again and again (review 18 #2); its hop count travels with it.
        """
        if self.session is None and self.waiting is not None:
            self.waiting.append((element, hops))
            self._count()
            return
        session = self.fences.host.sessions.localGet(self.bare, self.resource)
        if session is not None and not session.closed:
            Session.send(session, element)
        else:
            self.fences.node.bus.targetGone(element, self.bare, hops, self.full)

    def takenOver(self, session) -> None:
        self.session = session
        session.fence = self
        waiting, self.waiting = self.waiting or [], []
        for element, hops in waiting:
            self.deliver(element, hops)
        if waiting:
            self.fences.node.bus.ackLater()
        if not self.expected:
            self.fences.end(self)

    def release(self) -> None:
        waiting, self.waiting = self.waiting or [], None
        held, self.held = self.held, {}
        self.expected = set()
        for element, hops in waiting:
            self.deliver(element, hops)
        for elements in held.values():
            for element, hops in elements:
                self.deliver(element, hops)
        if held or waiting:
            self.fences.node.bus.ackLater()


class HandoverFences:
    """
    The fences of one node: those it raises for sessions moving here, and
    the fence frames it passes on for sessions that moved away.
    """

    log = Logger()

    def __init__(self, node):
        self.node = node
        self.host = node.host
        self.nodeId = node.nodeId
        self.maxHeld = node.config.max_pending
        self.fences = node.bus.fences

    def expect(self, origin: str, full: str) -> None:
        """
        The directory says C{full} moves here from C{origin}: raise its fence.
        """
        old = self.fences.get(full)
        if old is not None:
            self.end(old)
        expected = {n for n in self.node.directory.incarnations if n != origin}
        expected.add(self.nodeId)
        call = self.node.reactor.callLater(FENCE_SECONDS, self._expired, full)
        self.fences[full] = Fence(self, full, origin, expected, call)

    def takenOver(self, session, origin: str) -> None:
        """
        C{session} was taken over from C{origin}: this node's own senders,
        which routed to C{origin} until now, fence there too.
        """
        fence = self.fences.get(session.full)
        if fence is None or fence.origin != origin:
            self.expect(origin, session.full)
            fence = self.fences[session.full]
        self.node.bus.fence(origin, session.full)
        fence.takenOver(session)

    def fenceReceived(self, fencer: str, full: str) -> None:
        fence = self.fences.get(full)
        if fence is not None:
            fence.fenced(fencer)
            return
        bare, _, resource = full.partition("/")
        if self.host.sessions.localGet(bare, resource) is not None:
            return  # (back) here without a fence up: nothing to pass on
        moved = self.node.bus.movedTo(full) if self.node.bus.movedTo is not None else None
        if moved is not None:
            self.node.bus.fence(moved, full, fencer)  # behind what we forwarded there

    def handingOver(self, full: str) -> None:
        """
        C{full} leaves this node again while its fence is up: what the
        fence holds goes into the queue handed over (best effort: order
        across two handovers within C{FENCE_SECONDS} is not guaranteed).
        """
        fence = self.fences.get(full)
        if fence is not None:
            self.end(fence)

    def nodeLost(self, node: str) -> None:
        for fence in list(self.fences.values()):
            if fence.origin == node:
                self._drop(fence)
            elif node in fence.expected:
                fence.fenced(node)

    def _expired(self, full: str) -> None:
        fence = self.fences.get(full)
        if fence is None:
            return
        fence.call = None
        if fence.expected:
            self.log.warn("Handover fence of {jid}: no fence from {nodes} within {s}s; delivering",
                          jid=full, nodes=", ".join(sorted(fence.expected)), s=FENCE_SECONDS)
        self._drop(fence)

    def _drop(self, fence) -> None:
        if fence.session is None:
            self.abandon(fence.full, fence.origin)  # never taken over; ends the fence
        else:
            self.end(fence)

    def end(self, fence) -> None:
        if self.fences.get(fence.full) is fence:
            del self.fences[fence.full]
        if fence.call is not None and fence.call.active():
            fence.call.cancel()
        fence.call = None
        if fence.session is not None:
            fence.session.fence = None
        fence.release()
        if fence.count:
            self.log.info("Handover fence of {jid} down: {count} stanza(s) sent straight here waited"
                          " for those forwarded by {node}", jid=fence.full, count=fence.count,
                          node=fence.origin)

    def abandon(self, full: str, origin: str) -> None:
        """
        C{full} was announced as moving here but is not taken over: the
        directory forgets it (the C{move} pointed everyone here), and what
        its fence holds follows the path of a gone session.
        """
        directory = self.node.directory
        directory.delEntry(origin, full)
        if self.host.sessions.localGet(*full.split("/", 1)) is None and directory.online:
            directory.publish({"o": "del", "n": self.nodeId, "j": full}).addErrback(directory._failed)
        fence = self.fences.get(full)
        if fence is not None:
            self.end(fence)
