"""
The session registry of a cluster node: this node's sessions plus the
replica of the others' (L{xmppchat.cluster.directory}), behind the methods
of L{xmppchat.sessions.SessionRegistry}, so the router and the modules
reach remote resources without knowing they are remote (RFC 6121 §8.5
delivery to a bare JID, §4.2 presence broadcast).

While the node has no Redis connection, lookups see local sessions only:
the RFC defaults then apply to everyone else (messages to offline storage,
IQs to a full JID answered C{service-unavailable}).
"""

from __future__ import annotations

from xmppchat.cluster.directory import snapshotOf
from xmppchat.sessions import SessionRegistry


class ClusterSessionRegistry(SessionRegistry):
    """
    Local sessions, announced in the directory, plus remote ones.

    C{count} and L{all} stay local (this node's streams); L{get},
    L{sessionsOf}, L{isConnected} and L{resourceCount} span the cluster.
    """

    def __init__(self):
        SessionRegistry.__init__(self)
        self.directory = None
        self._snapshots: dict[str, tuple] = {}

    def attach(self, directory) -> None:
        self.directory = directory

    def _remote(self):
        directory = self.directory
        return directory if directory is not None and directory.online else None

    def add(self, session):
        old = SessionRegistry.add(self, session)
        remote = self._remote()
        if remote is not None:
            other = remote.get(session.bare, session.resource)
            if other is not None:
                # bound on another node before: that node closes it with a
                # conflict when our announcement reaches it
                remote.delEntry(other.node, other.full)
        self._snapshots[session.full] = snapshotOf(session)
        if self.directory is not None:
            self.directory.announce(session)
        return old

    def remove(self, session) -> bool:
        if not SessionRegistry.remove(self, session):
            return False
        self._snapshots.pop(session.full, None)
        if self.directory is not None:
            self.directory.withdraw(session)
        return True

    def changed(self, session) -> None:
        """
        Re-announce C{session} if what others route on (presence, priority,
        roster interest, carbons, CSI) changed since last time.
        """
        if session is None or session.closed:
            return
        snapshot = snapshotOf(session)
        if self._snapshots.get(session.full) != snapshot:
            if self.localGet(session.bare, session.resource) is not session:
                return
            self._snapshots[session.full] = snapshot
            if self.directory is not None:
                self.directory.announce(session)

    def localGet(self, bare: str, resource: str):
        return SessionRegistry.get(self, bare, resource)

    def localSessionsOf(self, bare: str):
        return SessionRegistry.sessionsOf(self, bare)

    def get(self, bare: str, resource: str):
        session = SessionRegistry.get(self, bare, resource)
        if session is None:
            remote = self._remote()
            if remote is not None:
                return remote.get(bare, resource)
        return session

    def sessionsOf(self, bare: str):
        local = SessionRegistry.sessionsOf(self, bare)
        remote = self._remote()
        if remote is None:
            return local
        others = remote.sessionsOf(bare)
        return local + others if others else local

    def isConnected(self, bare: str) -> bool:
        if SessionRegistry.isConnected(self, bare):
            return True
        remote = self._remote()
        return remote is not None and bool(remote.sessionsOf(bare))

    def resourceCount(self, bare: str) -> int:
        count = SessionRegistry.resourceCount(self, bare)
        remote = self._remote()
        return count + len(remote.sessionsOf(bare)) if remote is not None else count
