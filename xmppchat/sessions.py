"""
Bound client sessions (RFC 6120 §7) and the registry that finds them.

A L{Session} knows nothing of its transport: it sends through the stream
object it was bound on (TCP, WebSocket or BOSH), which only has to offer
C{send(element)} and C{close(condition, text)}.  The registry answers "where
is this JID connected" for the router; a cluster replaces it with one that
also knows remote nodes, behind the same methods.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.logger import Logger


class Session:
    """
    One bound resource of one account.

    @ivar available: the resource has sent initial presence (RFC 6121 §4.2).
    @ivar priority: the priority of its last available presence.
    @ivar presence: its last broadcast available presence, or C{None}.
    @ivar directed: full JIDs it sent directed presence to (RFC 6121 §4.6; at
        most C{limits.directed_presences_per_session}),
        which get unavailable presence when it ends.
    @ivar state: per-module state, keyed by module name.
    @ivar inactive: the client said it is in the background (XEP-0352 CSI,
        or the Tigase mobile IQ the ConnectyCube SDK sends).
    @ivar filters: outbound filters, called in order as C{f(session,
        element)}; each returns the element to send (possibly another one)
        or C{None} to hold it back (CSI).  Empty on most sessions.
    @ivar sm: the XEP-0198 state (L{xmppchat.modules.smacks.StreamManagement})
        once the client enabled stream management, else C{None}.
    @ivar backlog: while one of its stanzas waits in the router's message
        pipeline, the stanzas it sent since, in order; else C{None}.
    """

    __slots__ = (
        "host", "stream", "jid", "bare", "full", "localpart", "resource", "account",
        "available", "priority", "presence", "rosterRequested", "directed", "state",
        "closed", "interested", "inactive", "filters", "sm", "backlog",
    )

    def __init__(self, host, stream, jid, account=None):
        self.host = host
        self.stream = stream
        self.jid = jid
        self.localpart = jid.user
        self.resource = jid.resource
        self.bare = jid.userhost()
        self.full = jid.full()
        self.account = account
        self.available = False
        self.priority = 0
        self.presence = None
        self.rosterRequested = False
        self.interested = False
        self.directed: set[str] = set()
        self.state: dict[str, Any] = {}
        self.closed = False
        self.inactive = False
        self.filters: list = []
        self.sm = None
        self.backlog = None

    def __repr__(self):
        return f"<Session {self.full}>"

    def send(self, element) -> None:
        """
        Send a stanza to this client, unless one of the host's
        C{deliveryFilters} (privacy lists) refuses it, through the session's
        outbound filters (CSI).  With stream management enabled it goes
        through the unacknowledged queue (XEP-0198 §4), which also keeps it
        while the session waits for resumption; refused or held stanzas are
        never counted.
        """
        if self.closed and self.sm is None:
            return
        for accept in self.host.deliveryFilters:
            if not accept(self, element):
                return
        for f in self.filters:
            element = f(self, element)
            if element is None:
                return
        counter = self.host.metrics.stanzasOut.get(element.name)
        if counter is not None:
            counter.inc()
        if self.sm is not None:
            self.sm.send(element)
        else:
            self.stream.send(element)

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        """
        End the stream, with a stream error when C{condition} is given.
        """
        self.stream.close(condition, text)


class SessionRegistry:
    """
    The local sessions of one host, by bare JID and resource.
    """

    log = Logger()

    def __init__(self):
        self._byBare: dict[str, dict[str, Session]] = {}
        self.count = 0

    def add(self, session: Session) -> Session | None:
        """
        Register C{session}; return the session it replaces (same full JID),
        which the caller closes with a C{conflict} stream error.
        """
        resources = self._byBare.setdefault(session.bare, {})
        old = resources.get(session.resource)
        resources[session.resource] = session
        if old is None:
            self.count += 1
        return old

    def remove(self, session: Session) -> bool:
        """
        Forget C{session} if it is still the registered one for its JID.
        """
        resources = self._byBare.get(session.bare)
        if not resources or resources.get(session.resource) is not session:
            return False
        del resources[session.resource]
        if not resources:
            del self._byBare[session.bare]
        self.count -= 1
        return True

    def get(self, bare: str, resource: str) -> Session | None:
        resources = self._byBare.get(bare)
        return resources.get(resource) if resources else None

    def sessionsOf(self, bare: str) -> Iterable[Session]:
        """
        Every session of an account (available or not).
        """
        resources = self._byBare.get(bare)
        return tuple(resources.values()) if resources else ()

    def localSessionsOf(self, bare: str) -> Iterable[Session]:
        """
        The sessions of an account on this node: all of them here (a
        cluster registry also knows sessions on other nodes).
        """
        return self.sessionsOf(bare)

    def isConnected(self, bare: str) -> bool:
        return bare in self._byBare

    def resourceCount(self, bare: str) -> int:
        resources = self._byBare.get(bare)
        return len(resources) if resources else 0

    def changed(self, session: Session) -> None:
        """
        The router routed a stanza from C{session}, which may have changed
        what others route on (presence, priority); a cluster registry
        re-announces it, a local one has nothing to do.
        """

    def all(self) -> Iterable[Session]:
        for resources in list(self._byBare.values()):
            yield from list(resources.values())
