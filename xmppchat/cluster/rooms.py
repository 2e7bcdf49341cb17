"""
XEP-0045 rooms across cluster nodes: one owner node per room.

Rooms live in the memory of one process (L{xmppchat.muc.room}), so every
stanza addressed to a room (C{room@muc.<domain>} or C{room/nick}) is
handled by the room's owner node.  The first node that needs a room claims
it with C{SET P:room:<room> <node> NX PX <expiry>}; the owner renews the
key with its heartbeat while the room is open (or was used within two
expiry periods), then deletes it.  Other nodes cache the owner for
C{expiry_seconds} and forward the room's stanzas to it over the bus
(control frame C{muc}: sender's full JID, localpart and the stanza, which
already carries C{from}); the owner handles them as if they came from the
sender's L{RemoteSession} (with the sender's account attached), and what
the room sends back reaches the occupants' sessions like any stanza to a
remote full JID.  A remote occupant whose session ends anywhere in the
cluster (or whose node is lost) leaves the owner's rooms.

Limits: when the owner node dies, its rooms (occupant lists, locked
rooms) are gone with it; the key expires and the next stanza makes
another node the owner, so occupants have to join again (XEP-0045 §7.2).
Dialog updates made through the REST API on a non-owner node do not reach
the owner's open rooms until they are reopened.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.cluster.directory import RemoteSession
from xmppchat.xmlstream import parseElement

MAX_ACCOUNTS = 10000


class ClusterRooms:
    """
    Room ownership and forwarding for one node's MUC service.
    """

    log = Logger()

    def __init__(self, node, service, module):
        self.node = node
        self.host = node.host
        self.service = service
        self.module = module
        self.local = service.receive
        service.receive = self.receive
        self.owners: dict[str, tuple] = {}  # room -> (owner node, cache expiry time)
        self.owned: dict[str, float] = {}  # room -> last use
        self.claiming: dict[str, list] = {}  # room -> stanzas waiting for the claim
        self.accounts: OrderedDict = OrderedDict()  # localpart -> account (ids never change)
        self.loading: dict[str, list] = {}
        self.forwarded = 0

    def key(self, room: str) -> str:
        return self.node.keys.room(room)

    @property
    def now(self) -> float:
        return self.node.reactor.seconds()

    # -- stanzas from this node's sessions -----------------------------------------

    def receive(self, origin, stanza, toJID) -> None:
        if toJID.user is None or not self.node.online:
            return self.local(origin, stanza, toJID)
        room = toJID.userhost().lower()
        waiting = self.claiming.get(room)
        if waiting is not None:
            waiting.append((origin, stanza, toJID))
            return None
        if room in self.owned:
            self.owned[room] = self.now
            return self.local(origin, stanza, toJID)
        cached = self.owners.get(room)
        if cached is not None and cached[1] > self.now and cached[0] in self.node.directory.incarnations:
            return self.forward(cached[0], origin, stanza, toJID)
        self.claiming[room] = [(origin, stanza, toJID)]
        expiry = self.node.expiryMs
        d = self.node.redis.execute("SET", self.key(room), self.node.nodeId, "NX", "PX", expiry)
        d.addCallback(self._claimed, room)
        d.addErrback(self._claimFailed, room)
        return None

    def _claimed(self, reply, room):
        if reply is not None:
            return self._resolved(room, self.node.nodeId)
        d = self.node.redis.execute("GET", self.key(room))
        d.addCallback(lambda owner: self._resolved(room, owner.decode() if owner else self.node.nodeId))
        return d

    def _claimFailed(self, failure, room):
        self.log.warn("Claiming room {room} failed ({e}): handling it here", room=room,
                      e=failure.getErrorMessage())
        self._resolved(room, self.node.nodeId)

    def _resolved(self, room: str, owner: str) -> None:
        waiting = self.claiming.pop(room, [])
        if owner == self.node.nodeId or owner not in self.node.directory.incarnations:
            # ours, or a dead node's key not expired yet: handle it here
            self.owned[room] = self.now
            self.owners.pop(room, None)
            if owner != self.node.nodeId:
                self.node.redis.execute("SET", self.key(room), self.node.nodeId, "PX",
                                        self.node.expiryMs).addErrback(lambda f: None)
            for origin, stanza, toJID in waiting:
                self.local(origin, stanza, toJID)
            return
        self.owners[room] = (owner, self.now + self.node.config.expiry_seconds)
        for origin, stanza, toJID in waiting:
            self.forward(owner, origin, stanza, toJID)

    def forward(self, owner, origin, stanza, toJID) -> None:
        self.forwarded += 1
        self.node.bus.control(owner, {
            "op": "muc", "n": self.node.nodeId, "t": toJID.full(), "x": stanza.toXml(),
            "j": origin.full if origin is not None else None,
            "l": origin.localpart if origin is not None else None,
        })

    # -- stanzas forwarded to us as the owner ---------------------------------------

    def forwardedReceived(self, payload: dict) -> None:
        try:
            toJID = jjid.JID(payload["t"])
            stanza = parseElement(payload["x"])
            full, localpart, src = payload.get("j"), payload.get("l"), payload["n"]
        except Exception:
            self.log.warn("Ignoring an unreadable forwarded room stanza")
            return
        self.owned[toJID.userhost().lower()] = self.now
        if full is None:
            self.local(None, stanza, toJID)
            return
        account = self.accounts.get(localpart)
        if account is not None:
            self._handle(src, full, account, stanza, toJID)
            return
        waiting = self.loading.get(localpart)
        if waiting is not None:
            waiting.append((src, full, stanza, toJID))
            return
        self.loading[localpart] = [(src, full, stanza, toJID)]
        d = self.host.storage.accounts.getAccountByLocalpart(localpart)
        d.addCallback(self._accountLoaded, localpart)
        d.addErrback(lambda f: self.log.failure("Loading a room sender's account failed", f))

    def _accountLoaded(self, account, localpart) -> None:
        waiting = self.loading.pop(localpart, [])
        if account is None:
            return
        self.accounts[localpart] = account
        if len(self.accounts) > MAX_ACCOUNTS:
            self.accounts.popitem(last=False)
        for src, full, stanza, toJID in waiting:
            self._handle(src, full, account, stanza, toJID)

    def _handle(self, src, full, account, stanza, toJID) -> None:
        bare, _, resource = full.partition("/")
        origin = self.host.sessions.localGet(bare, resource)
        if origin is None:
            origin = self.node.directory.get(bare, resource)
            if origin is None:
                # not (yet) in our replica: answer through a transient one
                origin = RemoteSession(self.host, self.node.bus, src, full, {})
            origin.account = account
        self.local(origin, stanza, toJID)

    def sessionGone(self, session) -> None:
        """
        A remote session left the cluster: it leaves our rooms.
        """
        from xmppchat.muc.room import STATE_ROOMS

        if session.state.get(STATE_ROOMS) and session.account is not None:
            from xmppchat.host import SessionEvent

            self.module.onSessionEnded(SessionEvent(self.host, session))

    # -- upkeep ---------------------------------------------------------------------

    def renew(self) -> None:
        """
        Heartbeat: keep the rooms we own, release the idle ones.
        """
        node = self.node
        idle = self.now - 2 * node.config.expiry_seconds
        open_ = self.module.rooms
        for room, used in list(self.owned.items()):
            if room in open_ or used > idle:
                node.redis.execute("SET", self.key(room), node.nodeId, "PX", node.expiryMs).addErrback(
                    lambda f: None)
            else:
                del self.owned[room]
                node.redis.execute("DEL", self.key(room)).addErrback(lambda f: None)

    def nodeLost(self, node: str) -> None:
        for room in [r for r, (owner, _) in self.owners.items() if owner == node]:
            del self.owners[room]

    def controlReceived(self, payload: dict) -> bool:
        if payload.get("op") == "muc":
            self.forwardedReceived(payload)
            return True
        return False
