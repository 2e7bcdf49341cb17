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
of resources on other nodes.  Queries outstanding at once are bounded
(the oldest is forgotten).
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
QUERY_PREFIX = "caps-"


def notifyNodes(features) -> frozenset:
    return frozenset(f[:-len(NOTIFY)] for f in features if f.endswith(NOTIFY) and len(f) > len(NOTIFY))


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
        # query id -> (session, ver, hash)
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
        features = self.cache.get(ver)
        if features is not None:
            self.set(session, notifyNodes(features), available=True)
            return
        self.query(session, f"{node}#{ver}", ver, hashName)

    def query(self, session, node: str, ver: str, hashName: str) -> None:
        queryId = QUERY_PREFIX + secrets.token_hex(8)
        self.pending[queryId] = (session, ver, hashName)
        while len(self.pending) > self.maxPending:
            self.pending.popitem(last=False)
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
        session, ver, hashName = waiting
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
        if verify(query, ver, hashName):
            self.cache.put(ver, features)
        self.set(session, notifyNodes(features))
        return True

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
        for key in (STATE_INTEREST, STATE_VER, STATE_OWNERS):
            session.state.pop(key, None)
        self.host.sessions.changed(session)
