"""
XEP-0198: Stream Management. https://xmpp.org/extensions/xep-0198.html

- §2: C{<sm xmlns='urn:xmpp:sm:3'/>} in the stream features after
  authentication (next to resource binding).
- §3: C{<enable/>} once a resource is bound (earlier, or twice:
  C{<failed>} with C{unexpected-request}).  With C{resume='true'} the
  C{<enabled/>} carries an unguessable id, bound to the account, and
  C{max}, the resumption window (C{[smacks] resume_timeout}, shortened to
  the client's C{max} if it asks for less).
- §4: C{h} counts handled stanzas modulo 2^32 in both directions.  An
  C{<r/>} is answered only once every stanza received before it is durably
  handled: a hook handler that returned a Deferred for a stanza (an offline
  store, a roster write...) holds the C{<a/>} back until it fires, so a
  message is never acknowledged before it is stored.  The server asks with
  C{<r/>} after C{request_every} unacknowledged stanzas, or
  C{request_seconds} after the first one.  An C{h} acknowledging more than
  was sent ends the stream (C{undefined-condition} with
  C{<handled-count-too-high/>}).
- §5: a stream that breaks without C{</stream>} (or is closed by the server
  for C{connection-timeout}) keeps its session, same full JID and presence,
  nothing broadcast, for the resumption window.  C{<resume previd h/>}
  from the same account takes the session over: C{<resumed/>}, then every
  unacknowledged stanza in order; an old stream still open is closed
  (C{conflict}) without ending the session.  Unknown, expired or another
  account's ids get C{item-not-found}.
- §4 (end of session): when the session finally ends (window expired,
  stream closed cleanly, resource re-bound, more than C{max_unacked}
  stanzas unacknowledged), unacknowledged messages worth storing go to
  offline storage with their original delivery time (XEP-0203 delay, as
  §4 asks), unacknowledged IQ requests are answered with
  C{service-unavailable}; a message the server accepted is never dropped
  silently.

The state lives on the L{Session} (C{session.sm}), not on the transport, so
it works over TCP, WebSocket and BOSH alike.  On a cluster node the queue of
a resumable session is also mirrored in Redis (C{sm.mirror},
L{xmppchat.cluster.durable}) so that it survives the process.
"""

from __future__ import annotations

import calendar
import secrets
import time
from collections import deque

from twisted.words.xish import domish

from xmppchat.c2s.negotiation import AUTHENTICATED, BOUND
from xmppchat.modules.base import Module, hook
from xmppchat.modules.offline import worthStoring
from xmppchat.stanzas import NS_DELAY, NS_XMPP_STANZAS, STANZA_NAMES, StanzaError

NS_SM = "urn:xmpp:sm:3"
MOD = 2**32
# <r/> requests waiting for pending writes, per session; more are merged
MAX_WAITING = 16


def smElement(name: str, **attributes) -> domish.Element:
    element = domish.Element((NS_SM, name))
    for key, value in attributes.items():
        element[key] = str(value)
    return element


def failed(condition: str, text: str | None = None) -> domish.Element:
    """
    C{<failed/>} with a stanza error condition (XEP-0198 §6).
    """
    element = smElement("failed")
    element.addElement((NS_XMPP_STANZAS, condition))
    if text:
        element.addElement((NS_XMPP_STANZAS, "text"), content=text)
    return element


def parseCount(value: str | None) -> int | None:
    """
    An C{xs:unsignedInt} attribute (C{h}, C{max}), or C{None} if absent or
    invalid.
    """
    if value is None or not value or len(value) > 10 or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number < MOD else None


def parseStamp(stamp: str) -> float | None:
    """
    The POSIX time of a XEP-0082 C{DateTime} in UTC, or C{None}.
    """
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except (ValueError, TypeError):
        return None


def withoutOwnDelay(stanza: domish.Element, domain: str) -> tuple[domish.Element, float | None]:
    """
    A shallow copy of C{stanza} without the XEP-0203 delay C{domain} added
    (offline storage adds a new one) and that delay's time, if any.
    """
    stamp = None
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri)
    copy.attributes = dict(stanza.attributes)
    children = []
    for child in stanza.children:
        if (type(child) is not str and child.name == "delay" and child.uri == NS_DELAY
                and child.getAttribute("from") == domain):
            stamp = parseStamp(child.getAttribute("stamp", ""))
            continue
        children.append(child)
    copy.children = children
    return copy, stamp


class StreamManagement:
    """
    The XEP-0198 state of one session; it outlives the stream it was
    enabled on.  Counters are unbounded here and reduced modulo 2^32 on the
    wire.

    @ivar smid: the resumption id, or C{None} when not resumable.
    @ivar timeout: seconds the session waits for resumption.
    @ivar queue: unacknowledged outbound stanzas, oldest first, as
        C{(time sent, stanza)}.
    @ivar acked: outbound stanzas acknowledged by the client.
    @ivar received: inbound stanzas handled (routed).
    @ivar pending: inbound stanza number -> how many of the Deferreds its
        handling produced are still running (in increasing key order).
    @ivar waiting: C{[count, action]}: call C{action(count)} once the first
        C{count} inbound stanzas are durably handled.
    @ivar expiry: the call that ends the session while it waits for
        resumption, or C{None} while a stream is attached.
    @ivar resuming: the stream a resumption is in progress on.
    @ivar mirror: in cluster mode, the copy of C{queue} kept in Redis
        (L{xmppchat.cluster.durable}), told of every append and ack; else
        C{None}.
    """

    __slots__ = (
        "module", "session", "clock", "smid", "timeout", "queue", "acked", "received",
        "pending", "waiting", "unrequested", "requestTimer", "expiry", "resuming", "done",
        "mirror",
    )

    def __init__(self, module, session, smid: str | None = None, timeout: int = 0):
        self.module = module
        self.session = session
        self.clock = module.host.clock
        self.smid = smid
        self.timeout = timeout
        self.queue: deque = deque()
        self.acked = 0
        self.received = 0
        self.pending: dict[int, int] = {}
        self.waiting: deque = deque()
        self.unrequested = 0
        self.requestTimer = None
        self.expiry = None
        self.resuming = None
        self.done = False
        self.mirror = None

    @property
    def sent(self) -> int:
        return self.acked + len(self.queue)

    @property
    def hibernating(self) -> bool:
        return self.expiry is not None

    # -- outbound -----------------------------------------------------

    def send(self, element: domish.Element) -> None:
        """
        Send a stanza to the client and keep it until acknowledged; while
        no stream is attached it is only kept.
        """
        session = self.session
        if session.closed:
            return
        stream = session.stream
        if element.name not in STANZA_NAMES:
            stream.send(element)
            return
        queue = self.queue
        stamp = self.clock.seconds()
        queue.append((stamp, element))
        wire = element
        if self.mirror is not None:
            # the mirror serialised it: the stream writes that same XML
            wire = self.mirror.append(stamp, element)
        if len(queue) > self.module.maxUnacked:
            self.module.overflow(self)
            return
        if stream.closed:
            return
        stream.send(wire)
        self.unrequested += 1
        module = self.module
        if module.requestEvery and self.unrequested >= module.requestEvery:
            self.request()
        elif self.requestTimer is None and module.requestSeconds:
            self.requestTimer = self.clock.callLater(module.requestSeconds, self._requestDue)

    def request(self) -> None:
        """
        Ask the client for an acknowledgement (C{<r/>}, §4).
        """
        self.unrequested = 0
        self._cancelRequestTimer()
        stream = self.session.stream
        if not stream.closed:
            stream.send(smElement("r"))

    def _requestDue(self) -> None:
        self.requestTimer = None
        if self.queue and not self.session.stream.closed:
            self.request()

    def _cancelRequestTimer(self) -> None:
        if self.requestTimer is not None:
            if self.requestTimer.active():
                self.requestTimer.cancel()
            self.requestTimer = None

    def acknowledge(self, h: int) -> bool:
        """
        The client handled outbound stanzas up to C{h} (mod 2^32): forget
        them.  C{False} if C{h} acknowledges more than was sent.
        """
        count = (h - self.acked) % MOD
        queue = self.queue
        if count > len(queue):
            return False
        for _ in range(count):
            queue.popleft()
        self.acked += count
        if count and self.mirror is not None:
            self.mirror.acked(count)
        if not queue:
            self.unrequested = 0
            self._cancelRequestTimer()
        return True

    # -- inbound ------------------------------------------------------

    def stanzaHandled(self) -> None:
        """
        The stream routed one more stanza from the client.
        """
        self.received += 1

    def track(self, d) -> None:
        """
        Handling the stanza being routed produced C{d} (e.g. a storage
        write): acknowledgements covering it wait until C{d} fires.
        """
        number = self.current()
        pending = self.pending
        pending[number] = pending.get(number, 0) + 1
        d.addBoth(self._written, number)

    def current(self) -> int:
        """
        The number of the inbound stanza being routed now.
        """
        return self.received + 1

    def _written(self, result, number):
        left = self.pending[number] - 1
        if left:
            self.pending[number] = left
        else:
            del self.pending[number]
            if self.waiting:
                self._runWaiting()
        return result

    def durable(self) -> int:
        """
        How many inbound stanzas are handled with nothing pending for them
        or for any stanza before them.
        """
        for number in self.pending:
            return number - 1
        return self.received

    def afterDurable(self, action) -> None:
        """
        Call C{action(h)} once every stanza received so far is durably
        handled: now, or when the pending writes are done.
        """
        if not self.pending:
            action(self.received)
            return
        waiting = self.waiting
        if len(waiting) >= MAX_WAITING and waiting[-1][1] == action:
            waiting[-1][0] = self.received
        else:
            waiting.append([self.received, action])

    def _runWaiting(self) -> None:
        durable = self.durable()
        waiting = self.waiting
        while waiting and waiting[0][0] <= durable:
            _, action = waiting.popleft()
            action(durable)

    def sendAck(self, h: int) -> None:
        barrier = self.module.ackBarrier
        if barrier is not None:
            # cluster mode: what was queued for other clients up to now is
            # in Redis before this client is told its stanzas were handled
            d = barrier()
            if d is not None:
                d.addCallback(lambda _: self._sendAck(h))
                return
        self._sendAck(h)

    def _sendAck(self, h: int) -> None:
        stream = self.session.stream
        if not stream.closed:
            stream.send(smElement("a", h=h % MOD))

    # -- resumption ---------------------------------------------------

    def hibernate(self) -> None:
        """
        No stream is attached: keep the session for C{timeout} seconds.
        Acknowledgements owed to the old stream are dropped.
        """
        self.waiting.clear()
        self.unrequested = 0
        self._cancelRequestTimer()
        if self.expiry is None:
            self.expiry = self.clock.callLater(self.timeout, self._expire)

    def wake(self) -> None:
        if self.expiry is not None:
            if self.expiry.active():
                self.expiry.cancel()
            self.expiry = None

    def _expire(self) -> None:
        self.expiry = None
        self.module.log.info("Resumption window of {jid} expired", jid=self.session.full)
        self.session.state["logout"] = "resumption timeout"
        self.module.host.endSession(self.session)

    def stop(self) -> None:
        self.done = True
        self.wake()
        self._cancelRequestTimer()
        self.waiting.clear()


class SmacksModule(Module):
    """
    XEP-0198 §2-§7 for client streams: acks, resumption, and the offline
    fallback for what was never acknowledged.
    """

    name = "smacks"

    def setUp(self):
        config = self.host.config.smacks
        self.resumeTimeout = config.resume_timeout
        self.maxUnacked = config.max_unacked
        self.requestEvery = config.request_every
        self.requestSeconds = config.request_seconds
        # resumption id -> state, for every resumable session alive
        self.resumable: dict[str, StreamManagement] = {}
        # cluster mode: () -> a Deferred that <a/> waits for, or None
        self.ackBarrier = None

    @property
    def cluster(self):
        """
        The cluster's resumption tokens (L{xmppchat.cluster.resumption}), if
        this host is a cluster node.
        """
        node = getattr(self.host, "cluster", None)
        return node.resumption if node is not None else None

    def tearDown(self):
        self.flushAll()

    def flushAll(self) -> None:
        """
        Shutting down: what no client acknowledged goes to offline storage
        now, while storage still runs; sessions waiting for resumption end.
        """
        for session in list(self.host.sessions.all()):
            sm = session.sm
            if sm is not None:
                hibernating = sm.hibernating
                self.finish(session)
                if hibernating:
                    self.host.endSession(session)
        self.resumable.clear()

    # -- negotiation --------------------------------------------------

    @hook("stream-features")
    def onFeatures(self, event):
        if event.stream.phase == AUTHENTICATED:
            event.features.addElement((NS_SM, "sm"))

    @hook(f"stream-element/{NS_SM}:enable")
    def onEnable(self, event):
        stream, element = event.stream, event.stanza
        if stream.phase != BOUND:
            stream.send(failed("unexpected-request", "Bind a resource before enabling stream management"))
            return True
        session = stream.session
        if session.sm is not None:
            stream.send(failed("unexpected-request", "Stream management is already enabled"))
            return True
        enabled = smElement("enabled")
        smid, timeout = None, 0
        if element.getAttribute("resume") in ("true", "1") and self.resumeTimeout:
            timeout = self.resumeTimeout
            wanted = parseCount(element.getAttribute("max"))
            if wanted:
                timeout = min(timeout, wanted)
            smid = secrets.token_urlsafe(24)
            enabled["id"] = smid
            enabled["resume"] = "true"
            enabled["max"] = str(timeout)
        sm = StreamManagement(self, session, smid, timeout)
        if smid is not None:
            self.resumable[smid] = sm
        stream.send(enabled)
        session.sm = sm
        if smid is not None and self.cluster is not None:
            self.cluster.register(sm)
        return True

    @hook(f"stream-element/{NS_SM}:r")
    def onRequest(self, event):
        session = event.stream.session
        if session is not None and session.sm is not None:
            session.sm.afterDurable(session.sm.sendAck)
        return True

    @hook(f"stream-element/{NS_SM}:a")
    def onAck(self, event):
        stream = event.stream
        session = stream.session
        if session is None or session.sm is None:
            return True
        sm = session.sm
        h = parseCount(event.stanza.getAttribute("h"))
        if h is None:
            stream.close("bad-format", "<a/> needs an 'h' between 0 and 4294967295")
        elif not sm.acknowledge(h):
            self._tooHigh(stream, sm, h)
        return True

    def _tooHigh(self, stream, sm, h: int) -> None:
        """
        §4: the client acknowledged stanzas never sent.
        """
        sent = sm.sent % MOD
        detail = smElement("handled-count-too-high", h=h, **{"send-count": sent})
        stream.close("undefined-condition",
                     f"You acknowledged {h} stanzas, but only {sent} were sent", detail)

    @hook(f"stream-element/{NS_SM}:resume")
    def onResume(self, event):
        stream, element = event.stream, event.stanza
        if stream.phase != AUTHENTICATED:
            text = "Already bound" if stream.phase == BOUND else "Authenticate first"
            stream.send(failed("unexpected-request", text))
            return True
        previd = element.getAttribute("previd")
        h = parseCount(element.getAttribute("h"))
        if not previd or h is None:
            stream.send(failed("bad-request", "<resume/> needs 'previd' and 'h'"))
            return True
        sm = self.resumable.get(previd)
        if sm is None and self.cluster is not None:
            self.cluster.resume(stream, previd, h)  # held by another cluster node?
            return True
        if (sm is None or sm.done or sm.session.localpart != stream.localpart
                or sm.session.stream.clientClosed):
            stream.send(failed("item-not-found", "Unknown or expired session"))
            return True
        session = sm.session
        if not sm.acknowledge(h):
            stream.send(failed("undefined-condition",
                               f"You acknowledged {h} stanzas, but only {sm.sent % MOD} were sent"))
            self.host.endSession(session)
            return True
        old = session.stream
        # the old stream, even half-dead, no longer speaks for the session
        old.session = None
        old.close("conflict", "The session was resumed on another stream")
        previous = sm.resuming
        if previous is not None and previous is not stream:
            previous.close("conflict", "The session was resumed on another stream")
        sm.resuming = stream
        sm.hibernate()
        sm.afterDurable(lambda handled: self._resumed(sm, stream, handled))
        return True

    def _resumed(self, sm, stream, handled: int) -> None:
        """
        Attach C{stream} to the session: C{<resumed/>}, then the replay.
        """
        if sm.resuming is not stream:
            return
        sm.resuming = None
        if stream.closed:
            return
        session = sm.session
        if sm.done or session.closed:
            stream.send(failed("item-not-found", "The session ended"))
            return
        sm.wake()
        session.stream = stream
        stream.bound(session, resumed=True)
        stream.send(smElement("resumed", previd=sm.smid, h=handled % MOD))
        for _, stanza in sm.queue:
            stream.send(stanza)
        if sm.queue:
            sm.request()
        self.log.info("{jid} resumed with {count} stanzas replayed", jid=session.full, count=len(sm.queue))

    # -- end of streams and sessions -------------------------------------

    @hook("stream-lost")
    def onStreamLost(self, event):
        """
        §7: an unfinished stream (no C{</stream>} from the client) of a
        resumable session leaves the session waiting for resumption.
        """
        stream = event.stream
        session = stream.session
        sm = session.sm
        if sm is None or sm.smid is None or sm.done or session.closed:
            return None
        if stream.clientClosed or stream.closeCondition not in (None, "connection-timeout"):
            return None
        sm.hibernate()
        self.log.info("{jid} waits {seconds}s for resumption", jid=session.full, seconds=sm.timeout)
        return True

    @hook("session-ended", priority=100)
    def onSessionEnded(self, event):
        self.finish(event.session)

    def overflow(self, sm) -> None:
        """
        More than C{max_unacked} stanzas unacknowledged: end the session.
        """
        session = sm.session
        self.log.warn("{jid}: more than {limit} unacknowledged stanzas, ending the session",
                      jid=session.full, limit=self.maxUnacked)
        session.stream.close("policy-violation", f"More than {self.maxUnacked} unacknowledged stanzas")
        self.host.endSession(session)

    def finish(self, session) -> None:
        """
        The session is over: treat what the client never acknowledged as
        sent to an unavailable resource (§4).
        """
        sm = session.sm
        if sm is None:
            return
        session.sm = None
        sm.stop()
        if sm.smid is not None:
            self.resumable.pop(sm.smid, None)
            if self.cluster is not None:
                self.cluster.forget(sm.smid)
        unacked, sm.queue = sm.queue, deque()
        stores = [self.requeue(session.localpart, stanza, stamp, session) for stamp, stanza in unacked]
        if sm.mirror is not None:
            # the copy in Redis goes once the offline copies are written
            sm.mirror.end([d for d in stores if d is not None])

    def requeue(self, localpart: str, stanza, stamp: float, session=None):
        """
        Treat C{stanza}, delivered to C{localpart}'s C{session} at C{stamp} and never
        acknowledged, as sent to an unavailable resource: for a message,
        another ready resource of the account or offline storage (the
        offline module's lane; a Deferred firing once done, errors
        handled), an error for an IQ request, nothing for the rest
        (C{None}).
        """
        stanzaType = stanza.getAttribute("type")
        if stanza.name == "iq":
            if stanzaType in ("get", "set"):
                self.router.sendError(None, stanza, "service-unavailable", "The recipient's session ended")
            return
        if stanza.name != "message" or stanzaType not in (None, "chat", "normal"):
            return
        if not worthStoring(stanza):
            return
        offline = self.host.modules.get("offline")
        if offline is None:
            self.router.sendError(None, stanza, "service-unavailable", "The recipient's session ended")
            return
        copy, delayed = withoutOwnDelay(stanza, self.host.domain)
        d = offline.storeFor(localpart, copy, delayed if delayed is not None else stamp, session)
        d.addErrback(self._storeFailed, stanza)
        return d

    def _storeFailed(self, failure, stanza) -> None:
        if failure.check(StanzaError):
            self.router.sendError(None, stanza, failure.value.condition, failure.value.text)
            return
        self.log.failure("Storing an unacknowledged message failed", failure)
        self.router.sendError(None, stanza, "internal-server-error")
