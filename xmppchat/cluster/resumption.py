"""
XEP-0198 §5 resumption across cluster nodes.

Every resumable session's id is kept in Redis (C{P:sm:<previd>} -> JSON
C{{n: node, i: incarnation, l: localpart}}, expiring after
C{TOKEN_SECONDS} at most; removed when the session ends).  A C{<resume/>}
for an id this node does not hold looks the token up: if the owning node
is alive (same incarnation in the directory), this node asks it over the
bus (a C{c} control frame C{sm-take}) to hand the session over.  The owner
waits until the client's stanzas are durably handled (as a local
resumption does), then answers C{sm-given} with the unacknowledged
outbound stanzas (serialised, with the time they were queued), the
counters and what routing needs (presence, priority, roster interest,
carbons), and drops its session silently: no unavailable presence, no
offline flush, no C{conflict}; its directory entry is not deleted but
moved to the asking node (a C{move} event, published before the answer),
and what still reaches the owner for that JID follows it there.  The
asking node binds the same full JID, replays and answers C{<resumed/>}.
Each sender's stanzas keep their order across the handover (RFC 6120
§10.1): the new node holds those sent to it directly until the sender's
fence, sent through the old node, arrives (L{fence}).  If the asking node
cannot take the session over after all (the resuming stream went away,
the answer came after C{HANDOVER_SECONDS}), the handed queue goes to
offline storage and the directory forgets the session.

Unknown ids, ids of dead or restarted nodes, another account's ids and a
handover that is refused or not answered within C{HANDOVER_SECONDS} get
C{<failed><item-not-found/></failed>}.  A dead node's session is not
resumed elsewhere (its count of the client's stanzas died with it), but its
queue is not lost: it was mirrored in Redis (L{durable}), and the
C{<failed/>} for it is sent once the queue is in offline storage (waiting
at most C{HANDOVER_SECONDS}), so the session the client starts instead gets
those messages, with their original time; at-least-once, as XEP-0198 §4
allows.  A handover hands the mirror over too: the owner deletes its list
before answering, the new owner writes it again.
"""

from __future__ import annotations

import json
import secrets
from collections import deque

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.cluster.directory import entryOf
from xmppchat.cluster.fence import FencedSession
from xmppchat.modules.smacks import MOD, StreamManagement, failed
from xmppchat.xmlstream import parseElement

HANDOVER_SECONDS = 5.0
TOKEN_SECONDS = 24 * 3600
MAX_MOVED = 10000


class ClusterResumption:
    """
    The resumption tokens of one node and the handover protocol.
    """

    log = Logger()

    def __init__(self, node):
        self.node = node
        self.host = node.host
        self.waiting: dict[str, tuple] = {}  # request id -> (stream, previd, timeout call)
        self.handedOver = 0
        # full JID -> (node, until): sessions handed over recently, so that
        # stanzas other nodes still route here follow them
        self.moved: dict[str, tuple] = {}
        self.takenOver = 0

    @property
    def smacks(self):
        return self.host.modules.get("smacks")

    def key(self, smid: str) -> str:
        return self.node.keys.sm(smid)

    # -- tokens --------------------------------------------------------

    def register(self, sm) -> None:
        """
        C{sm} became resumable (or was taken over) on this node.
        """
        node = self.node
        if sm.smid is None:
            return
        if node.durable is not None:
            node.durable.attach(sm)
        if not node.online:
            return
        token = json.dumps({"n": node.nodeId, "i": node.incarnation, "l": sm.session.localpart},
                           separators=(",", ":"))
        node.redis.execute("SET", self.key(sm.smid), token, "PX", TOKEN_SECONDS * 1000).addErrback(
            self._failed)

    def forget(self, smid: str) -> None:
        """
        The session of C{smid} ended here.
        """
        if self.node.online:
            self.node.redis.execute("DEL", self.key(smid)).addErrback(self._failed)

    def _failed(self, failure):
        self.log.warn("Resumption token update failed: {e}", e=failure.getErrorMessage())

    # -- the resuming side ---------------------------------------------------

    def resume(self, stream, previd: str, h: int) -> None:
        """
        C{<resume/>} for an id this node does not hold: find its node.
        """
        if not self.node.online:
            stream.send(failed("item-not-found", "Unknown or expired session"))
            return
        d = self.node.redis.execute("GET", self.key(previd))
        d.addCallback(self._located, stream, previd, h)
        d.addErrback(lambda f: self._notFound(stream, "The session directory is unreachable"))

    def _notFound(self, stream, text="Unknown or expired session") -> None:
        if not stream.closed:
            stream.send(failed("item-not-found", text))

    def _located(self, raw, stream, previd, h) -> None:
        node = self.node
        try:
            token = json.loads(raw) if raw is not None else None
            owner, incarnation, localpart = token["n"], token["i"], token["l"]
        except (ValueError, TypeError, KeyError):
            token = None
        if token is None or owner == node.nodeId or localpart != stream.localpart:
            self._notFound(stream)
            return
        known = node.directory.incarnations.get(owner)
        if known is None or known.decode() != incarnation:
            # the node died or restarted: the session is gone with it
            self.log.info("Resumption of a session on lost node {node} refused", node=owner)
            node.redis.execute("DEL", self.key(previd)).addErrback(self._failed)
            if node.durable is None:
                self._notFound(stream)
                return
            # ... but not its unacknowledged stanzas: they go to offline
            # storage before the client is told, so that the session it
            # starts instead gets them
            d = defer.ensureDeferred(node.durable.rescue(previd, HANDOVER_SECONDS))
            d.addErrback(lambda f: self.log.warn("Recovering the queue of {id} failed: {e}", id=previd,
                                                 e=f.getErrorMessage()))
            d.addBoth(lambda _: self._notFound(
                stream, "The session's node is gone; its unacknowledged messages go to offline storage"))
            return
        request = secrets.token_hex(8)
        call = node.reactor.callLater(HANDOVER_SECONDS, self._timedOut, request)
        self.waiting[request] = (stream, previd, call)
        node.bus.control(owner, {"op": "sm-take", "q": request, "id": previd, "l": localpart,
                                 "h": h, "r": node.nodeId})

    def _timedOut(self, request) -> None:
        entry = self.waiting.pop(request, None)
        if entry is not None:
            self.log.warn("No handover of a resumed session within {s}s", s=HANDOVER_SECONDS)
            self._notFound(entry[0], "The session's node did not answer")

    def given(self, payload: dict) -> None:
        """
        The owner's answer: take the session over, or fail.
        """
        entry = self.waiting.pop(payload.get("q"), None)
        if entry is None:
            self._notTaken(payload)  # timed out meanwhile
            return
        stream, previd, call = entry
        if call.active():
            call.cancel()
        if stream.closed:
            self._notTaken(payload)
            return
        if not payload.get("ok"):
            if payload.get("e") == "h":
                stream.send(failed("undefined-condition", payload.get("t") or "Bad 'h'"))
            else:
                self._notFound(stream)
            return
        try:
            self._takeOver(stream, previd, payload)
        except (KeyError, TypeError, ValueError) as e:
            self.log.warn("Unreadable session handover: {e}", e=e)
            self._notFound(stream)
            self._notTaken(payload)

    def _notTaken(self, payload: dict) -> None:
        """
        The owner handed a session over that this node does not take (the
        resuming stream is gone, or the answer came too late): the
        directory forgets it and its queue goes to offline storage (as when
        a resumption window expires), so nothing is lost.
        """
        if not payload.get("ok") or not isinstance(payload.get("j"), str):
            return
        full = payload["j"]
        self.log.info("Handover of {jid} not taken: its queue goes to offline storage", jid=full)
        smacks = self.smacks
        localpart = full.partition("@")[0]
        try:
            queue = [(float(stamp), parseElement(xml)) for stamp, xml in payload.get("qu") or ()]
        except (TypeError, ValueError):
            queue = []
        # The handed queue first, then what the fence held (sent later):
        # the offline module's per-account lane keeps that order (review 18 #3).
        for stamp, stanza in queue:
            smacks.requeue(localpart, stanza, stamp)
        self.node.fences.abandon(full, payload.get("n"))

    def _takeOver(self, stream, previd, payload) -> None:
        host = self.host
        smacks = self.smacks
        full = payload["j"]
        session = FencedSession(host, stream, jjid.JID(full), stream.account)
        if session.localpart != stream.localpart:
            raise ValueError(full)
        session.available = bool(payload["a"])
        session.priority = int(payload["p"])
        if payload.get("x"):
            session.presence = parseElement(payload["x"])
        session.rosterRequested = bool(payload.get("r"))
        session.interested = bool(payload.get("ri"))
        session.directed = set(payload.get("d") or ())
        if payload.get("c"):
            session.state["carbons"] = True
        sm = StreamManagement(smacks, session, previd, int(payload["to"]))
        sm.acked = int(payload["ak"])
        sm.received = int(payload["rc"])
        sm.queue = deque((float(stamp), parseElement(xml)) for stamp, xml in payload["qu"])
        session.sm = sm
        old = host.sessions.add(session)
        if old is not None:
            old.state["replaced"] = True
            host.endSession(old)
            old.close("conflict", "Replaced by a new connection for the same resource")
        self.node.fences.takenOver(session, payload["n"])
        smacks.resumable[previd] = sm
        self.moved.pop(full, None)  # back here: no longer following it elsewhere
        self.register(sm)
        from xmppchat.host import SessionEvent

        host.hooks.fire("session-bound", SessionEvent(host, session))
        sm.resuming = stream
        self.takenOver += 1
        smacks._resumed(sm, stream, sm.received)
        self.log.info("{jid} resumed here, taken over from {node}", jid=full, node=payload.get("n"))

    # -- the owning side ---------------------------------------------------------

    def take(self, payload: dict) -> None:
        """
        Another node asks for one of our sessions (C{sm-take}).
        """
        request, previd, asker = payload.get("q"), payload.get("id"), payload.get("r")
        h = payload.get("h")
        if not (isinstance(request, str) and isinstance(previd, str) and isinstance(asker, str)
                and isinstance(h, int) and 0 <= h < MOD):
            return
        smacks = self.smacks
        sm = smacks.resumable.get(previd) if smacks is not None else None
        if (sm is None or sm.done or sm.session.closed or sm.session.localpart != payload.get("l")
                or sm.session.stream.clientClosed):
            self._answer(asker, {"op": "sm-given", "q": request, "ok": False})
            return
        session = sm.session
        if not sm.acknowledge(h):
            text = f"You acknowledged {h} stanzas, but only {sm.sent % MOD} were sent"
            self._answer(asker, {"op": "sm-given", "q": request, "ok": False, "e": "h", "t": text})
            self.host.endSession(session)
            return
        old = session.stream
        old.session = None
        old.close("conflict", "The session was resumed on another stream")
        sm.resuming = None
        sm.hibernate()
        sm.afterDurable(lambda handled: self._give(sm, asker, request, handled))

    def _give(self, sm, asker, request, handled) -> None:
        session = sm.session
        if sm.done or session.closed:
            self._answer(asker, {"op": "sm-given", "q": request, "ok": False})
            return
        self.node.fences.handingOver(session.full)  # into the queue, before it is serialised
        presence = session.presence
        entry = entryOf(session)  # what the others route on, before it goes unavailable here
        payload = {
            "op": "sm-given", "q": request, "ok": True, "n": self.node.nodeId,
            "j": session.full, "a": session.available, "p": session.priority,
            "x": presence.toXml() if presence is not None else None,
            "r": session.rosterRequested, "ri": session.interested,
            "d": sorted(session.directed), "c": bool(session.state.get("carbons")),
            "to": sm.timeout, "ak": sm.acked, "rc": handled,
            "qu": [(stamp, stanza.toXml()) for stamp, stanza in sm.queue],
        }
        # drop the session here without side effects: no offline flush of
        # the queue (it moves), no unavailable broadcast (it stays online)
        smacks = self.smacks
        session.sm = None
        if sm.mirror is not None:
            sm.mirror.end()  # before the answer: the new owner writes the queue after this
        sm.queue = deque()
        sm.stop()
        smacks.resumable.pop(sm.smid, None)
        session.available = False
        now = self.node.reactor.seconds()
        if len(self.moved) >= MAX_MOVED:
            self.moved = {j: m for j, m in self.moved.items() if m[1] > now}
        # from here on, what reaches us for it follows it, fences included
        self.moved[session.full] = (asker, now + self.node.config.expiry_seconds)
        session.state["handover"] = (asker, entry)  # the directory publishes a move (L{fence})
        self.host.endSession(session)
        self.handedOver += 1
        self.log.info("{jid} handed over to {node}", jid=session.full, node=asker)
        self._answer(asker, payload)

    def movedTo(self, full: str):
        entry = self.moved.get(full)
        if entry is None:
            return None
        if entry[1] <= self.node.reactor.seconds():
            del self.moved[full]
            return None
        return entry[0]

    def _answer(self, node: str, payload: dict) -> None:
        self.node.bus.control(node, payload)

    # -- bus -------------------------------------------------------------------

    def controlReceived(self, payload: dict) -> bool:
        op = payload.get("op")
        if op == "sm-take":
            self.take(payload)
        elif op == "sm-given":
            self.given(payload)
        else:
            return False
        return True
