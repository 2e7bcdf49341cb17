"""
Which resources want which PEP notifications (XEP-0163 §4.2, XEP-0115).

A client says it wants the notifications of node N by listing the disco
feature C{N+notify}; its presence carries only the caps hash of its
disco#info answer.  Each verified C{ver} is kept in a bounded
L{xmppchat.caps.CapsCache}; an unknown one is learned by sending
disco#info (node C{<node>#<ver>}) to the client's full JID and checking
the answer against the hash (§5.4); an answer that does not verify is used
for that resource only, never cached.  The resource's interest is kept in
its session's state (L{STATE_INTEREST}); in a cluster it travels in the
session directory entry, so the node handling a publish knows the interest
of resources on other nodes.

Security review findings 2 and 3 bound what a client can make us keep:

  - one query outstanding per session (a new C{ver} replaces it), at most
    C{maxPending} in all, each for L{QUERY_SECONDS}; a query forgotten
    before its answer (evicted or expired) also forgets the session's
    C{ver}, so its next presence asks again rather than never learning
    the interest;
  - the cache keeps a C{ver}'s C{+notify} nodes only, never for an answer
    of more than L{MAX_CAPS_FEATURES} features; a resource's interest is at
    most L{MAX_INTEREST_NODES} nodes of at most L{MAX_NOTIFY_NODE}
    characters (what goes into the cluster directory entry too).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from twisted.words.xish import domish

from xmppchat.caps import NS_DISCO_INFO, CapsCache, capsOf, featuresOf, verify
from xmppchat.pep.service import STATE_INTEREST, STATE_OWNERS
from xmppchat.stanzas import NS_CLIENT

NOTIFY = "+notify"
STATE_VER = "pep-ver"
STATE_QUERY = "pep-caps-query"
QUERY_PREFIX = "caps-"
#: seconds a disco#info query waits for its answer before it is forgotten
QUERY_SECONDS = 60
#: features of a disco#info answer whose C{+notify} nodes are cached
MAX_CAPS_FEATURES = 1024
#: nodes a resource's interest holds, and characters of one such node
MAX_INTEREST_NODES = 64
MAX_NOTIFY_NODE = 256


def notifyNodes(features) -> frozenset:
    """
    The nodes of the C{N+notify} features (XEP-0163 §4.2), the first
    L{MAX_INTEREST_NODES} in order, of at most L{MAX_NOTIFY_NODE} characters.
    """
    nodes = sorted(f[:-len(NOTIFY)] for f in features
                   if f.endswith(NOTIFY) and len(NOTIFY) < len(f) <= len(NOTIFY) + MAX_NOTIFY_NODE)
    return frozenset(nodes[:MAX_INTEREST_NODES])


class InterestTracker:
    """
    Caps of a host's resources, and the interest they imply.

    @param changed: called as C{changed(session, newNodes)} when a
        resource's interest grows (last-item delivery).
    """

    def __init__(self, host, cacheSize: int, changed):
        self.host = host
        self.cache = CapsCache(cacheSize)
        self.changed = changed
        # query id -> (session, ver, hash, sent at), oldest first
        self.pending: OrderedDict = OrderedDict()
        self.maxPending = cacheSize

    def presence(self, session, stanza: domish.Element) -> None:
        """
        An available presence of C{session}: learn its caps (a presence
        without caps keeps what the resource had, §6.4 caps optimisation).
        """
        caps = capsOf(stanza)
        if caps is None:
            if STATE_INTEREST not in session.state:
                self.set(session, frozenset())
            return
        node, ver, hashName = caps
        if session.state.get(STATE_VER) == ver:
            return
        session.state[STATE_VER] = ver
        nodes = self.cache.get(ver)
        if nodes is not None:
            self.set(session, nodes, available=True)
            return
        self.query(session, f"{node}#{ver}", ver, hashName)

    def query(self, session, node: str, ver: str, hashName: str) -> None:
        """
        Ask C{session} for the disco#info of C{node}: its earlier query, if
        any, is replaced; the oldest of all is dropped beyond
        C{maxPending}, and any older than L{QUERY_SECONDS} (finding 2).
        """
        self.pending.pop(session.state.get(STATE_QUERY), None)
        now = self.host.clock.seconds()
        queryId = QUERY_PREFIX + secrets.token_hex(8)
        session.state[STATE_QUERY] = queryId
        self.pending[queryId] = (session, ver, hashName, now)
        while self.pending:
            oldestId, (oldest, oldVer, _, sent) = next(iter(self.pending.items()))
            if len(self.pending) <= self.maxPending and sent > now - QUERY_SECONDS:
                break
            del self.pending[oldestId]
            self.unasked(oldest, oldestId, oldVer)
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["id"] = queryId
        iq["from"] = self.host.domain
        iq["to"] = session.full
        iq.addElement((NS_DISCO_INFO, "query"))["node"] = node
        session.send(iq)

    def answer(self, stanza: domish.Element) -> bool:
        """
        A result or error to the server: the answer of one of our queries
        (returns C{True}), or someone else's.
        """
        queryId = stanza.getAttribute("id")
        if queryId is None or not queryId.startswith(QUERY_PREFIX):
            return False
        waiting = self.pending.pop(queryId, None)
        if waiting is None:
            return True
        session, ver, hashName, _ = waiting
        if session.state.get(STATE_QUERY) == queryId:
            del session.state[STATE_QUERY]
        if stanza.getAttribute("from") != session.full or session.state.get(STATE_VER) != ver:
            return True
        query = None
        if stanza.getAttribute("type") == "result":
            for child in stanza.elements():
                if child.name == "query" and child.uri == NS_DISCO_INFO:
                    query = child
        if query is None:
            self.set(session, frozenset())
            return True
        features = featuresOf(query)
        nodes = notifyNodes(features)
        if len(features) <= MAX_CAPS_FEATURES and verify(query, ver, hashName):
            self.cache.put(ver, nodes)
        self.set(session, nodes)
        return True

    @staticmethod
    def unasked(session, queryId: str, ver: str) -> None:
        """
        The query C{queryId} for C{ver} of C{session} is forgotten unanswered:
        so is the C{ver}, and the session's next presence with it asks again.
        """
        if session.state.get(STATE_QUERY) == queryId:
            del session.state[STATE_QUERY]
            if session.state.get(STATE_VER) == ver:
                del session.state[STATE_VER]

    def set(self, session, nodes: frozenset, available: bool = False) -> None:
        """
        C{session} wants C{nodes}; what it did not want before gets its
        last items when the session is available (or, C{available}, is
        becoming so: its available presence is being handled).
        """
        old = session.state.get(STATE_INTEREST, frozenset())
        session.state[STATE_INTEREST] = nodes
        if nodes != old:
            self.host.sessions.changed(session)
        added = nodes - old
        if added and (available or session.available):
            self.changed(session, added)

    def forget(self, session) -> None:
        """
        The resource went unavailable: no more notifications, and its next
        available presence counts as new interest.
        """
        self.pending.pop(session.state.pop(STATE_QUERY, None), None)
        for key in (STATE_INTEREST, STATE_VER, STATE_OWNERS):
            session.state.pop(key, None)
        self.host.sessions.changed(session)
