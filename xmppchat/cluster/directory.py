"""
The cluster session directory: which node holds which full JID, kept in
Redis and replicated in memory on every node.

Redis keys (C{P} is C{<key_prefix>:<domain>}):

    P:nodes                 set of node ids that registered
    P:node:<id>:alive       the node's incarnation token, with a TTL of
                            C{expiry_seconds}, renewed every heartbeat
    P:node:<id>:sessions    hash: full JID -> JSON entry (available,
                            priority, presence, roster interest, carbons...)
    P:directory             pub/sub channel of changes (set, del, sync)
    P:sm:<previd>           XEP-0198 resumption token (L{resumption})
    P:smq:<previd>          its unacknowledged stanzas (L{durable}), and
    P:node:<id>:smq:<inc>   the set of those of one node process
    P:room:<room JID>       the node owning an XEP-0045 room (L{rooms})

Each node publishes its own sessions and applies the others' changes to a
local replica, so lookups stay synchronous and cost what a local lookup
costs (ejabberd replicates its session table the same way).  A node whose
C{alive} key has expired is dropped by whichever node notices first, so a
dead node's sessions disappear within C{expiry_seconds + heartbeat_seconds}.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.modules.vcard import VCardChanged
from xmppchat.privacysettings import AccountUpdated
from xmppchat.xmlstream import parseElement


class Keys:
    """
    Redis key and channel names of one domain's cluster.
    """

    def __init__(self, prefix: str, domain: str):
        base = f"{prefix}:{domain}"
        self.nodes = f"{base}:nodes"
        self.directory = f"{base}:directory"
        self.smqNodes = f"{base}:smq-nodes"
        self._base = base

    def alive(self, node: str) -> str:
        return f"{self._base}:node:{node}:alive"

    def sessions(self, node: str) -> str:
        return f"{self._base}:node:{node}:sessions"

    def room(self, room: str) -> str:
        return f"{self._base}:room:{room}"

    def sm(self, smid: str) -> str:
        return f"{self._base}:sm:{smid}"

    def channel(self, node: str) -> str:
        return f"{self._base}:node:{node}"

    def smq(self, smid: str) -> str:
        return f"{self._base}:smq:{smid}"

    def smqSet(self, node: str, incarnation: str) -> str:
        return f"{self._base}:node:{node}:smq:{incarnation}"

    def smqClaim(self, node: str, incarnation: str) -> str:
        return f"{self._base}:node:{node}:smq-claim:{incarnation}"


def entryOf(session) -> dict:
    """
    What other nodes need to know of a local session to route to it.
    """
    presence = session.presence
    return {
        "a": session.available,
        "p": session.priority,
        "x": presence.toXml() if presence is not None else None,
        "r": session.rosterRequested,
        "c": bool(session.state.get("carbons")),
        "i": session.inactive,
        # XEP-0163 +notify interest (xmppchat.pep.interest): PEP events of
        # a publish on any node reach the resources that want them
        "n": sorted(session.state.get("pep", ())),
    }


def snapshotOf(session) -> tuple:
    """
    Cheap fingerprint of L{entryOf}, compared after each routed stanza.
    """
    return (session.available, session.priority, id(session.presence), session.rosterRequested,
            bool(session.state.get("carbons")), session.inactive, session.state.get("pep"))


class RemoteSession:
    """
    A session bound on another node: the attributes routing and modules
    read, and a L{send} that publishes to that node's channel.
    """

    stream = None
    account = None  # modules needing it load it from storage
    closed = False
    remote = True
    interested = False
    sm = None  # stream management state lives on the session's own node

    def __init__(self, host, bus, node: str, full: str, entry: dict):
        self.host = host
        self.bus = bus
        self.node = node
        self.jid = jjid.JID(full)
        self.full = full
        self.bare = self.jid.userhost()
        self.localpart = self.jid.user
        self.resource = self.jid.resource
        self.directed: set = set()
        self.filters: list = []
        self._presence = None
        self.update(entry)

    def __repr__(self):
        return f"<RemoteSession {self.full} on {self.node}>"

    def update(self, entry: dict) -> None:
        self.available = bool(entry.get("a"))
        self.priority = int(entry.get("p") or 0)
        self._presenceXML = entry.get("x")
        self._presence = None
        self.rosterRequested = bool(entry.get("r"))
        # keep what this node's modules stored (e.g. the rooms it is in here)
        state = getattr(self, "state", None) or {}
        state.pop("carbons", None)
        if entry.get("c"):
            state["carbons"] = True
        state["pep"] = frozenset(entry.get("n") or ())
        self.state = state
        self.inactive = bool(entry.get("i"))

    @property
    def presence(self):
        if self._presence is None and self._presenceXML:
            try:
                self._presence = parseElement(self._presenceXML)
            except Exception:
                self._presenceXML = None
        return self._presence

    def send(self, element) -> None:
        self.bus.send(self, element)

    def close(self, condition=None, text=None) -> None:
        self.bus.control(self.node, {"close": self.full, "condition": condition, "text": text})


class SessionDirectory:
    """
    The replica of the other nodes' sessions, and this node's entries in
    Redis.
    """

    log = Logger()

    def __init__(self, host, nodeId: str, keys: Keys):
        self.host = host
        self.nodeId = nodeId
        self.keys = keys
        self.bus = None
        self.redis = None
        self.online = False
        self.byBare: dict[str, dict[str, RemoteSession]] = {}
        self.byNode: dict[str, dict[str, RemoteSession]] = {}
        self.incarnations: dict[str, bytes] = {}
        self._buffer: list | None = None
        self.onSessionGone = None
        self.onMovedHere = None  # (old node, full JID): a session moves here (L{fence})

    # -- lookups (synchronous) -----------------------------------------

    def get(self, bare: str, resource: str):
        resources = self.byBare.get(bare)
        return resources.get(resource) if resources else None

    def sessionsOf(self, bare: str) -> tuple:
        resources = self.byBare.get(bare)
        return tuple(resources.values()) if resources else ()

    def remoteCount(self) -> int:
        return sum(len(s) for s in self.byNode.values())

    # -- replica maintenance ---------------------------------------------

    def setEntry(self, node: str, full: str, entry: dict) -> None:
        if node == self.nodeId:
            return
        existing = self.byNode.get(node, {}).get(full)
        if existing is not None:
            existing.update(entry)
            return
        session = RemoteSession(self.host, self.bus, node, full, entry)
        old = self.get(session.bare, session.resource)
        if old is not None:
            self.delEntry(old.node, full)
        self.byBare.setdefault(session.bare, {})[session.resource] = session
        self.byNode.setdefault(node, {})[full] = session
        local = self.host.sessions.localGet(session.bare, session.resource)
        if local is not None:
            # the same full JID bound on two nodes at once: the newer one
            # (announced after ours) wins, as it would locally
            self.log.info("{jid} was bound again on {node}", jid=full, node=node)
            local.state["replaced"] = True
            local.close("conflict", "Replaced by a new connection for the same resource")

    def delEntry(self, node: str, full: str) -> None:
        sessions = self.byNode.get(node)
        session = sessions.pop(full, None) if sessions else None
        if session is None:
            return
        if not sessions:
            del self.byNode[node]
        resources = self.byBare.get(session.bare)
        if resources and resources.get(session.resource) is session:
            del resources[session.resource]
            if not resources:
                del self.byBare[session.bare]
                self._forget(session)
        if self.onSessionGone is not None:
            self.onSessionGone(session)

    def _forget(self, session) -> None:
        """
        The account has no session left in the cluster as far as this node
        knows: drop what this node cached for it while it was connected.
        """
        if not self.host.sessions.localSessionsOf(session.bare):
            roster = self.host.modules.get("roster")
            if roster is not None:
                roster.cache.pop(session.localpart, None)
            privacy = self.host.modules.get("privacy")
            if privacy is not None:
                privacy.forget(session.localpart)

    def dropNode(self, node: str) -> list:
        """
        Forget every session of C{node}; return them.
        """
        sessions = list(self.byNode.get(node, {}).values())
        for session in sessions:
            self.delEntry(node, session.full)
        self.incarnations.pop(node, None)
        return sessions

    def replaceNode(self, node: str, entries: dict) -> None:
        """
        Make the replica of C{node} exactly C{entries} (full JID -> entry).
        """
        current = self.byNode.get(node, {})
        for full in [f for f in current if f not in entries]:
            self.delEntry(node, full)
        for full, entry in entries.items():
            self.setEntry(node, full, entry)

    def clear(self) -> None:
        self.byBare.clear()
        self.byNode.clear()
        self.incarnations.clear()

    # -- change events -----------------------------------------------------

    def eventReceived(self, data: bytes) -> None:
        try:
            event = json.loads(data)
            node = event["n"]
            if not isinstance(event["o"], str):
                raise TypeError(event["o"])
        except (ValueError, KeyError, TypeError):
            self.log.warn("Ignoring an unreadable directory event")
            return
        if node == self.nodeId:
            return
        if self._buffer is not None:
            self._buffer.append(event)
            return
        self._apply(event)

    def _apply(self, event) -> None:
        op, node = event["o"], event["n"]
        if op == "set":
            self.setEntry(node, event["j"], event["e"])
        elif op == "del":
            self.delEntry(node, event["j"])
        elif op == "move":
            self._moved(node, event["j"], event["t"], event["e"])
        elif op == "sync":
            token = str(event.get("i", "")).encode()
            if self.incarnations.get(node, token) != token:
                self.bus.nodeRestarted(node)  # a new process under the same id
            self.incarnations[node] = token
            self._loadNode(node)
        elif op == "down":
            self.bus.nodeLost(node)
        elif op == "roster":
            roster = self.host.modules.get("roster")
            if roster is not None:
                roster.cache.pop(event.get("l"), None)
            if isinstance(event.get("l"), str):
                # for this node's sessions of that user (PEP last items)
                self.host.hooks.fire("roster-changed", SimpleNamespace(
                    host=self.host, localpart=event["l"], remote=True))
        elif op == "offline":
            self._offlineStored(event.get("l"))
        elif op == "privacy":
            privacy = self.host.modules.get("privacy")
            if privacy is not None and isinstance(event.get("l"), str):
                privacy.forget(event["l"])
        elif op == "account":
            self._accountChanged(event.get("l"))
        elif op == "vcard" and isinstance(event.get("l"), str):
            self.host.hooks.fire("vcard-changed", VCardChanged(self.host, event["l"], remote=True))

    def _moved(self, old: str, full: str, new: str, entry: dict) -> None:
        """
        C{old} handed the session C{full} over to C{new} (XEP-0198 §5
        resumption there): route to C{new} from now on, behind a fence sent
        through C{old}; C{new} raises its own fence
        (L{xmppchat.cluster.fence}).
        """
        if new == self.nodeId:
            # until the takeover, our senders still go through the old node
            if self.onMovedHere is not None:
                self.onMovedHere(old, full)
            return
        self.delEntry(old, full)  # as a del and a set would, at once
        self.setEntry(new, full, entry)
        self.bus.fence(old, full)

    def _accountChanged(self, localpart) -> None:
        """
        Another node changed the account of C{localpart}: load it and fire
        C{account-updated} here (issue 17 item 3: its privacy settings
        apply to the sessions and rooms of this node at once).
        """
        if not isinstance(localpart, str):
            return
        def loaded(account):
            if account is not None:
                self.host.hooks.fire("account-updated", AccountUpdated(account, remote=True))

        d = self.host.storage.accounts.getAccountByLocalpart(localpart)
        d.addCallback(loaded)
        d.addErrback(lambda f: self.log.failure("Reloading the account {l} failed", f, l=localpart))

    def _offlineStored(self, localpart) -> None:
        """
        Another node stored a message offline for C{localpart}: if the user
        is available here (bound before that node knew), deliver it now
        (XEP-0160 delivery, to the first available resource).
        """
        offline = self.host.modules.get("offline")
        if offline is None or not isinstance(localpart, str):
            return
        for session in self.host.sessions.localSessionsOf(f"{localpart}@{self.host.domain}"):
            if session.available and session.priority >= 0 and not session.closed:
                offline.deliver(session).addErrback(
                    lambda f, jid=session.full: self.log.failure("Offline delivery to {jid} failed", f, jid=jid))
                return

    def _loadNode(self, node):
        d = self.redis.execute("HGETALL", self.keys.sessions(node))
        d.addCallback(lambda reply: self.replaceNode(node, _decodeHash(reply)))
        d.addErrback(lambda f: self.log.warn("Loading {node}'s sessions failed: {e}", node=node,
                                             e=f.getErrorMessage()))

    # -- this node's entries -----------------------------------------------

    def publish(self, event: dict):
        return self.redis.execute("PUBLISH", self.keys.directory,
                                  json.dumps(event, separators=(",", ":")))

    def announce(self, session) -> None:
        """
        Register or update a local session in Redis.
        """
        if not self.online:
            return
        entry = entryOf(session)
        data = json.dumps(entry, separators=(",", ":"))
        self.redis.execute("HSET", self.keys.sessions(self.nodeId), session.full, data).addErrback(
            self._failed)
        self.publish({"o": "set", "n": self.nodeId, "j": session.full, "e": entry}).addErrback(
            self._failed)

    def withdraw(self, session) -> None:
        """
        A local session ended, or was handed over to another node
        (C{session.state["handover"]} is then C{(node, entry)}): a C{move}
        event re-points every replica at once (L{xmppchat.cluster.fence}),
        ours too.
        """
        if not self.online:
            return
        self.redis.execute("HDEL", self.keys.sessions(self.nodeId), session.full).addErrback(
            self._failed)
        handover = session.state.get("handover")
        if handover is None:
            self.publish({"o": "del", "n": self.nodeId, "j": session.full}).addErrback(self._failed)
            return
        node, entry = handover
        self.publish({"o": "move", "n": self.nodeId, "j": session.full, "t": node, "e": entry}).addErrback(
            self._failed)
        self.setEntry(node, session.full, entry)

    def _failed(self, failure):
        self.log.warn("Directory update failed: {e}", e=failure.getErrorMessage())

    # -- (re)joining the cluster ---------------------------------------------

    def registerAll(self, sessions, incarnation: str, expiryMs: int):
        """
        Replace this node's entries in Redis with C{sessions} and tell the
        others to reload them; fires when Redis has them.
        """
        mine = self.keys.sessions(self.nodeId)
        redis = self.redis
        redis.execute("SET", self.keys.alive(self.nodeId), incarnation, "PX", expiryMs)
        redis.execute("SADD", self.keys.nodes, self.nodeId)
        redis.execute("DEL", mine)
        args = []
        for session in sessions:
            args.append(session.full)
            args.append(json.dumps(entryOf(session), separators=(",", ":")))
        if args:
            redis.execute("HSET", mine, *args)
        return self.publish({"o": "sync", "n": self.nodeId, "i": incarnation})

    async def loadAll(self) -> list:
        """
        Read every live node's sessions into the replica; return the ids of
        nodes found dead (their keys are removed).  Change events received
        meanwhile are applied afterwards, in order.
        """
        self._buffer = []
        dead = []
        try:
            others = await self.otherMembers()
            alive = await self.redis.execute("MGET", *[self.keys.alive(n) for n in others]) if others else []
            self.clear()
            for node, token in zip(others, alive, strict=True):
                if token is None:
                    dead.append(node)
                    continue
                self.incarnations[node] = token
                reply = await self.redis.execute("HGETALL", self.keys.sessions(node))
                self.replaceNode(node, _decodeHash(reply))
        finally:
            buffered, self._buffer = self._buffer, None
        for event in buffered:
            self._apply(event)
        for node in dead:
            await self.removeDeadNode(node)
        return dead

    async def otherMembers(self) -> list:
        """
        The ids of the other nodes in the cluster's node set (live or not:
        their C{alive} keys tell).
        """
        members = await self.redis.execute("SMEMBERS", self.keys.nodes)
        return [m.decode() for m in members or () if m.decode() != self.nodeId]

    async def removeDeadNode(self, node: str) -> None:
        self.dropNode(node)
        await self.redis.execute("DEL", self.keys.sessions(node))
        await self.redis.execute("SREM", self.keys.nodes, node)
        await self.publish({"o": "down", "n": node})

    async def checkNodes(self) -> list:
        """
        The heartbeat's liveness check of the other nodes: drop those whose
        C{alive} key expired; return their ids.
        """
        others = sorted((set(await self.otherMembers()) | set(self.byNode)) - {self.nodeId})
        if not others:
            return []
        tokens = await self.redis.execute("MGET", *[self.keys.alive(n) for n in others])
        dead = []
        for node, token in zip(others, tokens, strict=True):
            if token is None:
                dead.append(node)
            elif node in self.incarnations and self.incarnations[node] != token:
                # restarted with the same id without us hearing its sync
                self.incarnations[node] = token
                self.bus.nodeRestarted(node)
                self._loadNode(node)
        return dead


def _decodeHash(reply) -> dict:
    entries = {}
    reply = reply or []
    for i in range(0, len(reply) - 1, 2):
        try:
            entries[reply[i].decode()] = json.loads(reply[i + 1])
        except ValueError:
            continue
    return entries
