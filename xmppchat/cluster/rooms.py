"""
XEP-0045 rooms across cluster nodes: one owner node per room, and its
failover.

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

Occupancy records.  When a room admits (or updates the presence of) or
lets go a session of another node, the owner tells that node (control
frame C{muc-occ}: room, full JID, nick, presence payload); so every node
knows which of its own sessions are in which remote-owned room, with
which nick, and who the owner is.  The nodes with occupants in a room
also hear which nicks come and go (the same frame without a session;
the whole list when their first session enters), so they know who was
in the room when its owner dies.

Failover.  When a node is lost (heartbeat expiry, C{down}, or a PUBLISH to
it that reached nobody: L{StanzaBus.nodeLost}), every node with sessions
in rooms that node owned claims each such room again: C{SET NX} as usual,
and when the key still names the dead node (it has not expired yet), the
first node to set C{P:room:<room>:after:<dead>} NX wins and overwrites
the room key, the others read the winner from that key.  Each node then
re-registers its sessions with the new owner (control frame
C{muc-rejoin}, or directly when it is the owner), which reopens the room
from storage (the dialog: name, type, members) and puts them back
silently (L{RoomsMixin.restoreOccupants}): no join or leave presence to
anybody, one self-presence (status 110) to each restored session so its
client knows the room is still there.  Occupants whose session was on the
dead node are not restored: C{expiry_seconds + heartbeat_seconds} after
the first re-registration (every survivor has noticed the loss by then),
the nicks the re-registering nodes had seen in the room that are not
back get one unavailable presence each (§7.14), as if they had left.  Messages work again once the survivors
noticed the loss: at most C{expiry_seconds + heartbeat_seconds} after the
kill, sooner when someone sends to the room (the first PUBLISH to the dead
owner finds no subscriber).

During the failover window, a stanza forwarded to the dead owner (the
PUBLISH reached nobody, or failed) is answered with C{recipient-unavailable}
(type C{wait}, RFC 6120 §8.3.3.13: "try again in a few seconds"), never
dropped silently; once the loss is known, stanzas wait for the claim (one
Redis round trip) and go to the new owner.  An owner that finds on renewal
that another live node holds its room's key (it was unreachable long
enough to be taken over) drops the room without a word and re-registers
all its occupants with that node (room stanzas still forwarded to it
follow the room there), so split ownership heals within one heartbeat.

REST dialog changes (C{rest-dialog-updated}: name, occupants, admins,
deletion) made on a node that does not own the dialog's open room are
forwarded to the owner (control frame C{muc-dialog}), which reloads the
dialog from storage and applies it exactly as a local change (kicks,
affiliation changes, destroy).

Limits: a room still locked (XEP-0045 §10.1, being created and not yet
configured) is lost with its owner; the occupants' presence payloads are
the last ones the owner had told their nodes.
"""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import jid as jjid

from xmppchat.cluster.directory import RemoteSession
from xmppchat.xmlstream import parseElement

MAX_ACCOUNTS = 10000
MAX_HOPS = 2


class ClusterRooms:
    """
    Room ownership, forwarding and failover for one node's MUC service.
    """

    log = Logger()

    def __init__(self, node, service, module):
        self.node = node
        self.host = node.host
        self.service = service
        self.module = module
        self.local = service.receive
        service.receive = self.receive
        module.onOccupancy = self.occupancyChanged
        self.owners: dict[str, tuple] = {}  # room -> (owner node, cache expiry time)
        self.owned: dict[str, float] = {}  # room -> last use
        self.claiming: dict[str, list] = {}  # room -> callables waiting for the claim: f(owner)
        self.accounts: OrderedDict = OrderedDict()  # localpart -> account (ids never change)
        self.loading: dict[str, list] = {}  # localpart -> Deferreds waiting for the account
        # our sessions in rooms owned elsewhere, as their owners told us
        self.joined: dict[str, dict] = {}  # full JID -> {room: (nick, presence payload XML)}
        self.roomOwner: dict[str, str] = {}  # room -> the owner that told us
        self.rosters: dict[str, set] = {}  # room (with our sessions in) -> the nicks in it
        # as the owner: room -> node -> full JIDs of that node's sessions in the room
        self.present: dict[str, dict] = {}
        # as a new owner: room -> nicks the re-registering nodes saw in it, until
        # those not back are announced gone
        self.former: dict[str, set] = {}
        self.forwarded = 0
        self.bounced = 0
        self.restored = 0
        self.host.hooks.add("session-ended", self.localSessionEnded)
        self.host.hooks.add("rest-dialog-updated", self.dialogUpdated)

    def key(self, room: str) -> str:
        return self.node.keys.room(room)

    @property
    def now(self) -> float:
        return self.node.reactor.seconds()

    def alive(self, node: str) -> bool:
        return node in self.node.directory.incarnations

    # -- who owns a room ------------------------------------------------------------

    def knownOwner(self, room: str) -> str | None:
        """
        The room's owner if known now (this node, or a live node cached),
        else C{None}: the caller then waits for L{claim}.
        """
        if room in self.claiming:
            return None
        if room in self.owned:
            self.owned[room] = self.now
            return self.node.nodeId
        cached = self.owners.get(room)
        if cached is not None and cached[1] > self.now and self.alive(cached[0]):
            return cached[0]
        return None

    def claim(self, room: str, waiter) -> None:
        """
        Find (or become) the room's owner, then call C{waiter(owner)}.
        """
        waiting = self.claiming.get(room)
        if waiting is not None:
            waiting.append(waiter)
            return
        self.claiming[room] = [waiter]
        d = self.node.redis.execute("SET", self.key(room), self.node.nodeId, "NX", "PX",
                                    self.node.expiryMs)
        d.addCallback(self._claimed, room)
        d.addErrback(self._claimFailed, room)

    def _claimed(self, reply, room):
        if reply is not None:
            return self._resolved(room, self.node.nodeId)
        d = self.node.redis.execute("GET", self.key(room))
        d.addCallback(lambda owner: self._resolved(room, owner.decode() if owner else self.node.nodeId))
        return d

    def _claimFailed(self, failure, room):
        self.log.warn("Claiming room {room} failed ({e}): handling it here", room=room,
                      e=failure.getErrorMessage())
        self._settle(room, self.node.nodeId)

    def _resolved(self, room: str, owner: str):
        if owner == self.node.nodeId or self.alive(owner):
            return self._settle(room, owner)
        return self.takeOver(room, owner)

    def takeOver(self, room: str, dead: str):
        """
        The key names a node that is gone and has not expired yet: the
        first node to set C{<key>:after:<dead>} (NX) takes the room, the
        others learn the winner from that key.
        """
        after = f"{self.key(room)}:after:{dead}"
        redis = self.node.redis
        d = redis.execute("SET", after, self.node.nodeId, "NX", "PX", self.node.expiryMs)

        def won(reply):
            if reply is not None:
                redis.execute("SET", self.key(room), self.node.nodeId, "PX", self.node.expiryMs)
                self.log.info("Took over room {room} from lost node {node}", room=room, node=dead)
                return self._settle(room, self.node.nodeId)
            return redis.execute("GET", after).addCallback(winner)

        def winner(value):
            value = value.decode() if value else None
            if value is not None and (value == self.node.nodeId or self.alive(value)):
                return self._settle(room, value)
            # the winner is gone as well: handle it here
            redis.execute("SET", self.key(room), self.node.nodeId, "PX", self.node.expiryMs)
            return self._settle(room, self.node.nodeId)

        d.addCallback(won)
        d.addErrback(self._claimFailed, room)
        return d

    def _settle(self, room: str, owner: str) -> None:
        waiting = self.claiming.pop(room, [])
        if owner == self.node.nodeId:
            self.owned[room] = self.now
            self.owners.pop(room, None)
        else:
            self.owners[room] = (owner, self.now + self.node.config.expiry_seconds)
        for waiter in waiting:
            waiter(owner)

    # -- stanzas from this node's sessions -----------------------------------------

    def receive(self, origin, stanza, toJID) -> None:
        if toJID.user is None or not self.node.online:
            return self.local(origin, stanza, toJID)
        room = toJID.userhost().lower()
        owner = self.knownOwner(room)
        if owner is None:
            self.claim(room, lambda owner: self.deliver(owner, origin, stanza, toJID))
            return None
        return self.deliver(owner, origin, stanza, toJID)

    def deliver(self, owner, origin, stanza, toJID):
        """
        Hand the stanza to the room's owner: here, returning what the local
        service returned (the router keeps the sender's order on it), or
        over the bus.
        """
        if owner == self.node.nodeId:
            return self.local(origin, stanza, toJID)
        self.forward(owner, origin, stanza, toJID)
        return None

    def forward(self, owner, origin, stanza, toJID) -> None:
        self.forwarded += 1
        d = self.node.bus.control(owner, {
            "op": "muc", "n": self.node.nodeId, "t": toJID.full(), "x": stanza.toXml(),
            "j": origin.full if origin is not None else None,
            "l": origin.localpart if origin is not None else None,
        })
        if d is None:
            self.bounce(origin, stanza)
        else:
            d.addCallback(self._forwarded, owner, origin, stanza)

    def _forwarded(self, receivers, owner, origin, stanza) -> None:
        if receivers:
            return
        # nobody listens on the owner's channel (it died, or Redis failed):
        # the sender gets an error; a dead owner's rooms move on now
        self.bounce(origin, stanza)
        if receivers == 0 and self.alive(owner):
            self.log.info("Room owner {node} has no subscriber: dropping it", node=owner)
            self.node.bus.nodeLost(owner)

    def bounce(self, origin, stanza) -> None:
        """
        A room stanza that could not reach the room's owner: a
        C{recipient-unavailable} error (type wait, RFC 6120 §8.3.3.13) to
        the sender, never silence.
        """
        self.bounced += 1
        if stanza.getAttribute("type") in ("error", "result"):
            return
        self.host.router.sendError(origin, stanza, "recipient-unavailable",
                                   "The room is moving to another cluster node: try again in a few seconds")

    # -- stanzas forwarded to us as the owner ---------------------------------------

    def forwardedReceived(self, payload: dict) -> None:
        try:
            toJID = jjid.JID(payload["t"])
            stanza = parseElement(payload["x"])
            full, localpart, src = payload.get("j"), payload.get("l"), payload["n"]
        except Exception:
            self.log.warn("Ignoring an unreadable forwarded room stanza")
            return
        room = toJID.userhost().lower()
        if room not in self.owned:
            cached = self.owners.get(room)
            hops = payload.get("h", 0) if isinstance(payload.get("h", 0), int) else MAX_HOPS
            if cached is not None and self.alive(cached[0]) and hops < MAX_HOPS:
                # we handed this room over: it follows the room
                payload["h"] = hops + 1
                self.node.bus.control(cached[0], payload)
                return
        self.owned[room] = self.now
        if full is None:
            self.local(None, stanza, toJID)
            return
        account = self.accounts.get(localpart)
        if account is not None:
            self._handle(src, full, account, stanza, toJID)
            return
        self.account(localpart).addCallback(
            lambda account: self._handle(src, full, account, stanza, toJID) if account else None)

    def account(self, localpart: str) -> defer.Deferred:
        """
        The account of C{localpart} (cached; one storage load at a time).
        """
        account = self.accounts.get(localpart)
        if account is not None:
            return defer.succeed(account)
        d = defer.Deferred()
        waiting = self.loading.get(localpart)
        if waiting is not None:
            waiting.append(d)
            return d
        self.loading[localpart] = [d]
        load = self.host.storage.accounts.getAccountByLocalpart(localpart)
        load.addCallback(self._accountLoaded, localpart)
        load.addErrback(self._accountFailed, localpart)
        return d

    def _accountLoaded(self, account, localpart) -> None:
        waiting = self.loading.pop(localpart, [])
        if account is not None:
            self.accounts[localpart] = account
            if len(self.accounts) > MAX_ACCOUNTS:
                self.accounts.popitem(last=False)
        for d in waiting:
            d.callback(account)

    def _accountFailed(self, failure, localpart) -> None:
        self.log.failure("Loading a room sender's account failed", failure)
        self._accountLoaded(None, localpart)

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

    # -- occupancy: the owner tells each occupant's node ------------------------------

    def occupancyChanged(self, room, occupant, session, joined: bool) -> None:
        """
        The owner's room admitted (or updated) or let go a session: the
        nodes with occupants in the room hear of it (control frame
        C{muc-occ}: the nick, in or gone), the session's own node with the
        session's record (full JID, presence payload) and, when it had no
        occupant there yet, every nick in the room.
        """
        remote = getattr(session, "remote", False)
        present = self.present.get(room.jid)
        first = False
        if remote:
            if joined:
                if present is None:
                    present = self.present[room.jid] = {}
                first = session.node not in present
                present.setdefault(session.node, set()).add(session.full)
            elif present is not None:
                fulls = present.get(session.node)
                if fulls is not None:
                    fulls.discard(session.full)
                    if not fulls:
                        del present[session.node]
                if not present:
                    del self.present[room.jid]
        nodes = [n for n in present or () if not (remote and n == session.node)]
        if not nodes and not remote:
            return
        if joined:
            nick, gone = occupant.nick, False
        else:
            userId = session.account.id if session.account is not None else None
            nick = room.nicks.get(userId, str(userId))
            holder = room.occupants.get(nick)
            gone = holder is None or not [s for s in holder.sessions if s is not session]
        base = {"op": "muc-occ", "n": self.node.nodeId, "r": room.jid, "k": nick, "in": joined,
                "gone": gone}
        control = self.node.bus.control
        if remote:
            frame = dict(base, j=session.full)
            if joined:
                frame["p"] = "".join(child.toXml() for child in occupant.payload)
                if first:
                    frame["all"] = list(room.occupants)
            control(session.node, frame)
        if joined or gone:
            for node in nodes:
                control(node, base)

    def occupancyReceived(self, payload: dict) -> None:
        room, full, owner, nick = payload.get("r"), payload.get("j"), payload.get("n"), payload.get("k")
        if not (isinstance(room, str) and isinstance(owner, str) and isinstance(nick, str)):
            return
        if isinstance(full, str):
            if payload.get("in"):
                bare, _, resource = full.partition("/")
                session = self.host.sessions.localGet(bare, resource)
                if session is None or session.closed:
                    return
                self.joined.setdefault(full, {})[room] = (nick, str(payload.get("p") or ""))
                self.roomOwner[room] = owner
                if isinstance(payload.get("all"), list):
                    self.rosters[room] = {str(k) for k in payload["all"][:self.module.mucConfig.max_occupants]}
            else:
                rooms = self.joined.get(full)
                if rooms is not None:
                    rooms.pop(room, None)
                    if not rooms:
                        del self.joined[full]
        roster = self.rosters.get(room)
        if roster is None:
            if not payload.get("in") or not isinstance(full, str):
                return
            roster = self.rosters[room] = set()
        if payload.get("in"):
            if len(roster) < self.module.mucConfig.max_occupants:
                roster.add(nick)
        elif payload.get("gone"):
            roster.discard(nick)

    def localSessionEnded(self, event) -> None:
        self.joined.pop(event.session.full, None)
        return None

    # -- failover -------------------------------------------------------------------

    def nodeLost(self, node: str) -> None:
        """
        C{node} is gone: forget it as an owner, and re-register our
        sessions in the rooms it owned with their new owner.
        """
        for room in [r for r, (owner, _) in self.owners.items() if owner == node]:
            del self.owners[room]
        orphans: dict[str, list] = {}
        for full, rooms in self.joined.items():
            for room, (nick, presence) in rooms.items():
                if self.roomOwner.get(room) == node:
                    orphans.setdefault(room, []).append([full, nick, presence])
        for room, entries in orphans.items():
            del self.roomOwner[room]
            self.log.info("Room {room} lost its owner {node}: re-registering {count} occupant(s)",
                          room=room, node=node, count=len(entries))
            self.reregister(room, entries, sorted(self.rosters.pop(room, ())))

    def reregister(self, room: str, entries: list, known: list, hops: int = 0) -> None:
        owner = self.knownOwner(room)
        if owner is None:
            self.claim(room, lambda owner: self._reregisterWith(owner, room, entries, known, hops))
        else:
            self._reregisterWith(owner, room, entries, known, hops)

    def _reregisterWith(self, owner: str, room: str, entries: list, known: list, hops: int) -> None:
        if owner == self.node.nodeId:
            self.restore(room, entries, known).addErrback(
                lambda f: self.log.failure("Rebuilding room {room} failed", f, room=room))
        elif hops < MAX_HOPS:
            self.node.bus.control(owner, {"op": "muc-rejoin", "n": self.node.nodeId, "r": room,
                                          "o": entries, "k": known, "h": hops + 1})

    def rejoinReceived(self, payload: dict) -> None:
        room, entries = payload.get("r"), payload.get("o")
        if not isinstance(room, str) or not isinstance(entries, list):
            return
        entries = [e for e in entries[:self.module.mucConfig.max_occupants]
                   if isinstance(e, list) and len(e) == 3 and all(isinstance(v, str) for v in e)]
        hops = payload.get("h") if isinstance(payload.get("h"), int) else MAX_HOPS
        cached = self.owners.get(room)
        if cached is not None and cached[0] == payload.get("n"):
            del self.owners[room]  # the sender says it does not own the room (any more)
        known = [k for k in (payload.get("k") or [])[:self.module.mucConfig.max_occupants] if isinstance(k, str)]
        self.reregister(room, entries, known, hops)

    @defer.inlineCallbacks
    def restore(self, room: str, entries: list, known=()):
        """
        As the new owner: the sessions of C{entries} (C{[full JID, nick,
        presence payload]}) that are still in the cluster go back in the
        room silently (L{RoomsMixin.restoreOccupants}).  C{known} are the
        nicks the re-registering node saw in the room: those not back
        after C{expiry_seconds + heartbeat_seconds} (every survivor has
        noticed the loss and re-registered by then) were lost with the
        dead node, and the room announces that they left.
        """
        pairs = []
        for full, nick, presence in entries:
            bare, _, resource = full.partition("/")
            session = self.host.sessions.localGet(bare, resource) or self.node.directory.get(bare, resource)
            if session is None or session.closed:
                continue  # its node died too, or it ended meanwhile
            if session.account is None:
                account = yield self.account(session.localpart)
                if account is None:
                    continue
                session.account = account
            pairs.append((session, payloadOf(presence), nick if isinstance(nick, str) else None))
        self.owned[room] = self.now
        former = self.former.get(room)
        if former is None:
            former = self.former[room] = set()
            config = self.node.config
            self.node.reactor.callLater(config.expiry_seconds + config.heartbeat_seconds,
                                        self._announceLost, room)
        former.update(known)
        count = yield self.module.restoreOccupants(room, pairs)
        self.restored += count
        return count

    def _announceLost(self, room: str) -> None:
        former = self.former.pop(room, set())
        lost = self.module.occupantsLeft(room, former)
        if lost:
            self.log.info("Room {room}: {count} occupant(s) lost with their node", room=room, count=lost)

    def handOver(self, room: str, owner: str) -> None:
        """
        Renewing found another live node owning a room we hold (it took
        the room over while we were unreachable): our room goes silently,
        its occupants are re-registered with the other node.
        """
        self.owned.pop(room, None)
        self.present.pop(room, None)
        self.owners[room] = (owner, self.now + self.node.config.expiry_seconds)
        dropped = self.module.dropRoom(room)
        if not dropped:
            return
        self.log.warn("Room {room} is owned by {node} now: handing over {count} session(s)",
                      room=room, node=owner, count=len(dropped))
        entries = [[s.full, o.nick, "".join(c.toXml() for c in o.payload)] for s, o in dropped]
        self._reregisterWith(owner, room, entries, sorted({o.nick for _, o in dropped}), 0)

    # -- REST dialog changes --------------------------------------------------------

    def dialogUpdated(self, event) -> None:
        """
        A REST change of a dialog (C{rest-dialog-updated}): rooms of it
        open on other nodes get it from their owner (control frame
        C{muc-dialog}); rooms open here get it from L{RoomsMixin}.
        """
        if not self.node.online:
            return None
        from xmppchat.muc.room import EXT_ROOM

        dialog = event.dialog
        domain = self.service.domain
        rooms = {f"{event.appId}_{dialog.id}@{domain}".lower()}
        named = (getattr(dialog, "extensions", None) or {}).get(EXT_ROOM)
        if named:
            rooms.add(f"{named}@{domain}".lower())
        rooms = sorted(r for r in rooms if r not in self.module.rooms)
        if not rooms:
            return None
        payload = {"op": "muc-dialog", "n": self.node.nodeId, "d": dialog.id, "u": event.userId,
                   "a": event.appId, "+": list(event.added), "-": list(event.removed),
                   "x": bool(event.deleted)}
        d = self.node.redis.execute("MGET", *[self.key(r) for r in rooms])

        def owners(values):
            for owner in {v.decode() for v in values or () if v}:
                if owner != self.node.nodeId and self.alive(owner):
                    self.node.bus.control(owner, payload)

        d.addCallback(owners)
        d.addErrback(lambda f: self.log.warn("Forwarding a dialog update failed: {e}",
                                             e=f.getErrorMessage()))
        return None

    @defer.inlineCallbacks
    def dialogReceived(self, payload: dict):
        """
        As an owner: apply a REST dialog change made on another node to
        our open rooms, exactly as L{RoomsMixin.onDialogUpdated} does locally.
        """
        from xmppchat.dialogs.events import DialogEvent

        dialogId = payload.get("d")
        if not isinstance(dialogId, str) or dialogId not in self.module.byDialog:
            return
        deleted = bool(payload.get("x"))
        dialog = None if deleted else (yield self.host.storage.dialogs.getDialog(dialogId))
        if dialog is None:
            deleted = True
            dialog = SimpleNamespace(id=dialogId)
        ids = [[v for v in payload.get(k) or () if isinstance(v, int)] for k in ("+", "-")]
        self.module.onDialogUpdated(DialogEvent(dialog, payload.get("u"), payload.get("a"),
                                                ids[0], ids[1], deleted))

    # -- upkeep ---------------------------------------------------------------------

    def renew(self) -> None:
        """
        Heartbeat: keep the rooms we own (handing over those another node
        took meanwhile), release the idle ones.
        """
        node = self.node
        referenced = {room for rooms in self.joined.values() for room in rooms}
        for room in [r for r in self.roomOwner if r not in referenced]:
            del self.roomOwner[room]
        for room in [r for r in self.rosters if r not in referenced]:
            del self.rosters[room]
        idle = self.now - 2 * node.config.expiry_seconds
        open_ = self.module.rooms
        for room, used in list(self.owned.items()):
            if room in open_ or used > idle:
                node.redis.execute("GET", self.key(room)).addCallback(self._renew, room).addErrback(
                    lambda f: None)
            else:
                del self.owned[room]
                node.redis.execute("DEL", self.key(room)).addErrback(lambda f: None)

    def _renew(self, value, room: str) -> None:
        holder = value.decode() if value else None
        if room not in self.owned:
            return
        if holder is not None and holder != self.node.nodeId and self.alive(holder):
            self.handOver(room, holder)
            return
        self.node.redis.execute("SET", self.key(room), self.node.nodeId, "PX",
                                self.node.expiryMs).addErrback(lambda f: None)

    def controlReceived(self, payload: dict) -> bool:
        op = payload.get("op")
        if op == "muc":
            self.forwardedReceived(payload)
        elif op == "muc-occ":
            self.occupancyReceived(payload)
        elif op == "muc-rejoin":
            self.rejoinReceived(payload)
        elif op == "muc-dialog":
            self.dialogReceived(payload).addErrback(
                lambda f: self.log.failure("Applying a forwarded dialog update failed", f))
        else:
            return False
        return True


def payloadOf(presence: str) -> list:
    """
    The presence payload elements of an occupant (L{RoomsMixin.payloadOf}),
    from their serialised form in a C{muc-occ} or C{muc-rejoin} frame.
    """
    if not presence:
        return []
    try:
        wrapper = parseElement(f"<presence xmlns='jabber:client'>{presence}</presence>")
    except Exception:
        return []
    return list(wrapper.elements())
