"""
Clients that stop reading (RFC 6120 §13.12, resource exhaustion), for the
transports on a TCP connection (TCP, WebSocket).

A L{SlowReaderGuard} protocol registers itself as the streaming producer of
its transport.  When the client stops reading and Twisted's write buffer
passes its high-water mark (64 KiB), Twisted pauses us: we stop reading
from the client, so that it cannot make us queue more answers.  Whatever
is still written to it while paused (messages from others) is counted, and
past C{limits.max_unsent_bytes} the connection is aborted.  When the buffer
drains, reading resumes and the count starts again.

Reading can also be held for the node's own reasons (L{holdInput}: a
congested cluster bus); the connection reads again only when no reason to
hold it is left.
"""

from __future__ import annotations

from twisted.internet import interfaces
from twisted.logger import Logger
from zope.interface import implementer


@implementer(interfaces.IPushProducer)
class SlowReaderGuard:
    """
    Mixin for a protocol with C{transport}, C{host}-reaching C{limits},
    C{stream}, C{peer} and C{_closing}; call L{guardWrites} once connected
    and L{mayWrite} before each write.

    @ivar unsent: bytes written while the transport's buffer was full.
    """

    log = Logger()
    writePaused = False
    unsent = 0
    readHolds: frozenset | set = frozenset()

    def guardWrites(self) -> None:
        self.transport.registerProducer(self, True)

    def pauseProducing(self):
        self.writePaused = True
        self.unsent = 0
        self.holdReading("unread")

    def resumeProducing(self):
        self.writePaused = False
        self.unsent = 0
        self.releaseReading("unread")

    def holdReading(self, reason: str) -> None:
        """
        Stop reading from the client until L{releaseReading} with the same
        C{reason} (and every other reason is released too).
        """
        if not self.readHolds:
            self.readHolds = set()
            self.transport.pauseProducing()
        self.readHolds.add(reason)

    def releaseReading(self, reason: str) -> None:
        holds = self.readHolds
        if reason not in holds:
            return
        holds.discard(reason)
        if not holds and not self._closing:
            self.transport.resumeProducing()

    def stopProducing(self):
        pass

    def mayWrite(self, size: int, limit: int) -> bool:
        """
        Whether C{size} more bytes may be written; C{False} once the
        connection was dropped for having C{limit} unsent bytes.
        """
        if not self.writePaused:
            return True
        self.unsent += size
        if self.unsent <= limit:
            return True
        if not self._closing:
            self.log.info("Dropping {peer}: more than {limit} bytes unread", peer=self.peer, limit=limit)
            self._closing = True
            if self.stream is not None:
                self.stream.closed = True
            self.transport.abortConnection()
        return False


def readerOf(session) -> SlowReaderGuard | None:
    """
    The connection of C{session}'s client whose reading can be held (TCP and
    WebSocket streams, not closing), or C{None} (BOSH clients are bounded by
    their request window).
    """
    transport = getattr(getattr(session, "stream", None), "transport", None)
    if isinstance(transport, SlowReaderGuard) and not transport._closing:
        return transport
    return None


def holdInput(host, reason: str) -> list:
    """
    Stop reading from every bound client of C{host} that can be held
    (L{readerOf}); returns them for L{releaseInput}.
    """
    held = []
    for session in host.sessions.all():
        transport = readerOf(session)
        if transport is not None:
            transport.holdReading(reason)
            held.append(transport)
    return held


def releaseInput(held: list, reason: str) -> None:
    for transport in held:
        transport.releaseReading(reason)
