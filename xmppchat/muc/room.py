"""
XEP-0045: Multi-User Chat, https://xmpp.org/extensions/xep-0045.html --
rooms, occupants and their presence on C{muc.<domain>}.

Every dialog of type 1 (broadcast), 2 (group) and 4 (public) is a room
C{<appId>_<dialogId>@muc.<domain>}; rooms made the XMPP way (a join of any
other localpart, §10.1) become group dialogs once configured, the
localpart kept in the dialog's C{extensions.muc_room}.

What is implemented:
  - join (§7.2): in a dialog room the nickname is always the numeric
    account id (another nick is rewritten, status 210), in a room made
    the XMPP way the one asked for (issue 16 item 5; nick change §7.6,
    status 303); a nick held by another user is a C{conflict}; password
    (§7.2.5), full room (§7.2.10) and ban (§7.2.8) checks; the other
    occupants' presences first, then the
    self-presence with status 110 last (§7.2.3), 100 in non-anonymous
    rooms, 201 for a new room; then the history (§7.2.15: C{maxstanzas},
    C{maxchars}, C{seconds}, C{since}; C{<delay from=room/>}) and the
    subject (§7.2.16, the dialog's description, possibly empty);
  - leave (§7.14) and the end of a session (every room left);
  - affiliations from the dialog (owner -> owner, admins -> admin,
    occupants -> member, banned -> outcast, anyone else in an open room
    -> none); role moderator for owner/admins, visitor for the others in
    a broadcast room (and, without voice, in a moderated room),
    participant otherwise; their changes: L{xmppchat.muc.admin};
  - JID visibility: members-only rooms (type 2) are non-anonymous
    (every occupant sees the full JIDs, status 100); public and broadcast
    rooms (types 4 and 1), open to every user, are semi-anonymous (full
    JIDs to moderators only);
  - access (L{xmppchat.dialogs.rules.seesRoom}): a group room admits only
    the dialog's owner, admins and occupants (others get
    C{registration-required}, §7.2.7); public and broadcast rooms admit
    any user of the application (issue 17 item 5: in a broadcast room
    those are visitors, read-only); joining a public room subscribes the
    user to the public dialog (as REST C{subscribe} does; leaving does
    not unsubscribe);
  - kick (§8.2) when a user is removed from the dialog (REST
    C{rest-dialog-updated}): unavailable presence with status 307 and 321;
    a deleted dialog destroys its rooms (§10.9);
  - creating rooms (§10.1): status 201, locked until the owner submits
    the C{muc#roomconfig} form (an empty submit is an instant room with
    the C{[muc] room_default_*} settings, open by default, §10.1.2; a
    filled form a reserved room, §10.1.3), or cancels; the form and its
    changes (§10.2): L{xmppchat.muc.roomconfig};
  - disco#items of a room (§6.5): its online occupants C{room/<userId>};
  - how many rooms an account (and an address) may bring into the
    C{max_rooms} table, and how fast: L{xmppchat.muc.limits}.

ConnectyCube compatibility (C{[muc] connectycube_compat}, SDK reference
§5.17): the self-presence echoes the join id and carries
C{<xmlns><code>110</code></xmlns>} inside C{<x/>}, as does the leave reply;
a join whose id ends in C{:join} (the SDK's) gets no subject message, which the
SDK would report as a message without body; the kicked user's presence carries C{<xmlns><code>301</code></xmlns>} and a
direct C{<item><actor jid=.../></item>} child naming who removed them.
The other occupants get the standard kick presence only (the SDK would
otherwise take it for its own kick).
"""

from __future__ import annotations

import calendar
import time
from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat import observe
from xmppchat.dialogs.addressing import parseRoom
from xmppchat.dialogs import rules
from xmppchat.dialogs.rules import isOpen, seesRoom
from xmppchat.dialogs.events import DialogEvent
from xmppchat.dialogs.service import DialogService
from xmppchat.dialogs.wire import messageStanza
from xmppchat.modules.base import hook
from xmppchat.modules.disco import NS_DISCO_ITEMS
from xmppchat.muc import roomconfig
from xmppchat.muc.limits import RoomOpenings
from xmppchat.muc.roomconfig import (
    EXT_MAXUSERS,
    EXT_MEMBERSONLY,
    EXT_MODERATED,
    EXT_OUTCASTS,
    EXT_PASSWORD,
    EXT_PERSISTENT,
    EXT_PUBLIC,
    EXT_ROOM,
    EXT_WHOIS,
    NS_XDATA,
)
from xmppchat.quotas import resourceConstraint
from xmppchat.stanzas import NS_CLIENT, StanzaError, delayElement, firstChild, parseCount
from xmppchat.storage.interfaces import (
    DIALOG_GROUP,
    DIALOG_PUBLIC,
    Query,
    QuotaExceeded,
)

log = Logger()

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
STATE_ROOMS = "muc-rooms"


def isoStamp(value: str) -> float | None:
    """
    Seconds since the epoch of a XEP-0082 date-time, or C{None}.
    """
    value = (value or "").strip()
    if value.endswith("Z"):
        value = value[:-1]
    value = value.split(".")[0].replace("+00:00", "")
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%S")))
    except (ValueError, OverflowError):
        return None


def _int(value) -> int | None:
    """A §7.2.15 history attribute (security review finding 4: not a number is ignored)."""
    return parseCount(value, 999_999_999)


class Occupant:
    """
    One user in a room: the nick (the account id in a dialog room, the one
    asked for in a room made the XMPP way), its sessions there and its
    last presence payload.
    """

    __slots__ = ("userId", "nick", "bare", "sessions", "payload")

    def __init__(self, userId: int, bare: str, nick: str | None = None):
        self.userId = userId
        self.nick = nick if nick is not None else str(userId)
        self.bare = bare
        self.sessions: list = []
        self.payload: list = []

    @property
    def full(self) -> str:
        return self.sessions[0].full if self.sessions else self.bare


class Room:
    """
    A room with occupants (rooms exist in memory only while occupied).

    @ivar jid: the bare room JID.
    @ivar dialog: the L{Dialog}, C{None} while a new room is locked.
    @ivar named: the localpart of a room created the XMPP way, or C{None}.
    @ivar nicks: account id -> nick of the occupants.
    @ivar voice: account ids given (C{True}) or denied (C{False}) voice by
        a moderator (§8.3, §8.4; kept while the room is open).
    """

    def __init__(self, jid: str, appId: int | None, dialog=None, named: str | None = None,
                 creatorId: int | None = None):
        self.jid = jid
        self.appId = appId
        self.dialog = dialog
        self.named = named
        self.creatorId = creatorId
        self.occupants: dict[str, Occupant] = {}
        self.nicks: dict[int, str] = {}
        self.voice: dict[int, bool] = {}
        self.lockTimer = None
        # (account id, client address) of the join that opened it (muc/limits.py)
        self.opener = None

    @property
    def locked(self) -> bool:
        return self.dialog is None

    def occupantOf(self, userId: int) -> Occupant | None:
        nick = self.nicks.get(userId)
        return self.occupants.get(nick) if nick is not None else None

    def addOccupant(self, occupant: Occupant) -> None:
        self.occupants[occupant.nick] = occupant
        self.nicks[occupant.userId] = occupant.nick

    def removeOccupant(self, occupant: Occupant) -> None:
        if self.occupants.get(occupant.nick) is occupant:
            del self.occupants[occupant.nick]
        if self.nicks.get(occupant.userId) == occupant.nick:
            del self.nicks[occupant.userId]

    def setting(self, key: str, default: str = "") -> str:
        return (self.dialog.extensions or {}).get(key, default) if self.dialog is not None else default

    def outcasts(self) -> set[int]:
        """
        §9.1: the banned account ids (rooms made the XMPP way only).
        """
        value = self.setting(EXT_OUTCASTS)
        return {int(v) for v in value.split(",") if v.isdigit()} if value else set()

    def affiliation(self, userId: int) -> str:
        dialog = self.dialog
        if dialog is None:
            return "owner" if userId == self.creatorId else "none"
        if userId == dialog.ownerId:
            return "owner"
        if userId in dialog.adminIds:
            return "admin"
        if userId in dialog.occupantIds:
            return "member"
        if self.named and userId in self.outcasts():
            return "outcast"
        return "none"

    def role(self, userId: int) -> str:
        affiliation = self.affiliation(userId)
        if affiliation in ("owner", "admin"):
            return "moderator"
        if self.dialog is not None and not rules.canPost(self.dialog, userId):
            return "visitor"  # a broadcast's readers
        if userId in self.voice:
            return "participant" if self.voice[userId] else "visitor"
        if self.moderated() and affiliation == "none":
            return "visitor"  # §8.3: voice is given by a moderator
        return "participant"

    def moderated(self) -> bool:
        return self.named is not None and self.setting(EXT_MODERATED) == "1"

    def nonAnonymous(self) -> bool:
        if self.named is not None:  # muc#roomconfig_whois (a new room: moderators)
            return self.setting(EXT_WHOIS, "moderators") == "anyone"
        return self.dialog is None or not isOpen(self.dialog)

    def admits(self, userId: int) -> bool:
        dialog = self.dialog
        if dialog is None:
            return userId == self.creatorId
        if self.named and userId in self.outcasts():
            return False
        return seesRoom(dialog, userId)

    def seesJIDs(self, userId: int) -> bool:
        return self.nonAnonymous() or self.role(userId) == "moderator"


class RoomsMixin:
    """
    The XEP-0045 presence side of L{xmppchat.muc.service.MUCModule}.
    """

    def setUpRooms(self):
        self.mucConfig = self.host.config.muc
        self.rooms: dict[str, Room] = {}
        self.byDialog: dict[str, set] = {}
        self.named: OrderedDict[str, str] = OrderedDict()
        self.openings = RoomOpenings(self.mucConfig, self.host.config.limits, self.host.clock)
        self.service.resolveNamed = self.resolveNamed
        # dialog id -> (reason, alternate venue) of a room being destroyed (§10.9)
        self.destroying: dict[str, tuple] = {}
        # called as f(room, occupant, session, joined) when a session enters
        # (or updates its presence in) or leaves a room (cluster mode)
        self.onOccupancy = None

    def tearDownRooms(self):
        for room in list(self.rooms.values()):
            if room.lockTimer is not None and room.lockTimer.active():
                room.lockTimer.cancel()
        self.rooms.clear()
        self.byDialog.clear()

    @property
    def compat(self) -> bool:
        return self.mucConfig.connectycube_compat

    def dialogs(self):
        module = self.host.modules.get("dialogs")
        if module is None:
            raise StanzaError("service-unavailable", text="Dialogs are not enabled")
        return module

    # -- named rooms ---------------------------------------------------------

    def _rememberNamed(self, localpart: str, dialogId: str) -> None:
        self.named[localpart] = dialogId
        self.named.move_to_end(localpart)
        while len(self.named) > self.mucConfig.max_rooms:
            self.named.popitem(last=False)

    def resolveNamed(self, localpart: str) -> defer.Deferred:
        """
        Fires with the dialog id of a room created the XMPP way, or
        C{None} (no such room yet, or still locked).
        """
        dialogId = self.named.get(localpart)
        if dialogId is not None:
            self.named.move_to_end(localpart)
            return defer.succeed(dialogId)
        room = self.rooms.get(f"{localpart}@{self.service.domain}")
        if room is not None:
            return defer.succeed(room.dialog.id if room.dialog is not None else None)
        d = self.storage.dialogs.listDialogs(None, Query(limit=1).where(f"extensions.{EXT_ROOM}", "eq", localpart))

        def found(dialogs):
            if not dialogs:
                return None
            self._rememberNamed(localpart, dialogs[0].id)
            return dialogs[0].id

        return d.addCallback(found)

    # -- stanzas -------------------------------------------------------------------

    def occupantPresence(self, room: Room, occupant: Occupant, viewerId: int | None,
                         stanzaType: str | None = None, codes=(), selfTo=None,
                         nick: str | None = None) -> domish.Element:
        presence = domish.Element((NS_CLIENT, "presence"))
        presence["from"] = f"{room.jid}/{occupant.nick}"
        if stanzaType:
            presence["type"] = stanzaType
        else:
            for child in occupant.payload:
                presence.addChild(child)
        x = presence.addElement((NS_MUC_USER, "x"))
        item = x.addElement("item")
        if stanzaType == "unavailable":
            item["affiliation"] = room.affiliation(occupant.userId)
            item["role"] = "none"
        else:
            item["affiliation"] = room.affiliation(occupant.userId)
            item["role"] = room.role(occupant.userId)
        if selfTo is not None or (viewerId is not None and room.seesJIDs(viewerId)):
            item["jid"] = selfTo if selfTo is not None else occupant.full
        if nick is not None:
            item["nick"] = nick  # §7.6: the new nick (status 303)
        for code in codes:
            x.addElement("status")["code"] = str(code)
        return presence

    def compatCode(self, presence, code: str) -> None:
        """
        The element the ConnectyCube SDK 6.1.2 reads (SDK reference §5.17).
        """
        x = presence.x
        x.addElement("xmlns").addElement("code", content=code)

    def sendCopy(self, session, stanza) -> None:
        copy = domish.Element((NS_CLIENT, stanza.name))
        copy.attributes = dict(stanza.attributes)
        copy["to"] = session.full
        copy.children = stanza.children
        session.send(copy)

    def broadcastPresence(self, room: Room, occupant: Occupant, stanzaType=None, codes=(),
                          skip: Occupant | None = None, nick: str | None = None) -> None:
        """
        An occupant's presence to the other occupants (each sees the full
        JID or not), minus those whose privacy lists block the occupant.
        """
        privacy = self.host.modules.get("privacy")
        plain = withJID = None
        for other in list(room.occupants.values()):
            if other is occupant or other is skip:
                continue
            if privacy is not None and privacy.blocks(other.bare, occupant.bare, "presence-in"):
                continue
            if room.seesJIDs(other.userId):
                if withJID is None:
                    withJID = self.occupantPresence(room, occupant, other.userId, stanzaType, codes, nick=nick)
                stanza = withJID
            else:
                if plain is None:
                    plain = self.occupantPresence(room, occupant, None, stanzaType, codes, nick=nick)
                stanza = plain
            for session in other.sessions:
                self.sendCopy(session, stanza)

    # -- join ----------------------------------------------------------------------------

    @hook("muc-presence/occupant")
    def onOccupantPresence(self, event):
        stanzaType = event.stanzaType
        session = event.origin
        if stanzaType == "error" or session is None or session.account is None:
            return True
        if stanzaType == "unavailable":
            return self.leave(event)
        if stanzaType is not None:
            return True  # subscriptions and probes mean nothing to a room
        return self.join(event)

    @hook("muc-presence/room")
    def onRoomPresence(self, event):
        """
        §7.2.6: a join needs a nickname (C{room/nick}).
        """
        if event.stanzaType is None:
            raise StanzaError("jid-malformed", text="Join with room@service/nick (the nick is your user id)")
        return True

    @defer.inlineCallbacks
    def join(self, event):
        session, stanza = event.origin, event.stanza
        userId = session.account.id
        room = self.rooms.get(event.room)
        occupant = room.occupantOf(userId) if room is not None else None
        if occupant is not None and session in occupant.sessions:
            if room.named is not None and event.to.resource != occupant.nick:
                return self.changeNick(room, occupant, session, event.to.resource, stanza)
            # a presence update (§7.7); in a dialog room a nick change keeps the nick
            occupant.payload = self.payloadOf(stanza)
            self.entered(room, occupant, session)
            self.broadcastPresence(room, occupant)
            self.sendSelfPresence(room, occupant, session, stanza.getAttribute("id"), ())
            return True
        mucX = self.mucElement(stanza)
        if room is None:
            if event.dialogId is None:
                if event.named is None:
                    raise StanzaError("item-not-found", text="No such room")
                self.openings.check(userId, session)
                room = self.createRoom(event, userId)
                self.openings.opened(room, userId, session)
                created = True
            else:
                dialog = yield self.dialogs().roomDialog(event)
                room = self.rooms.get(event.room)  # may have appeared meanwhile
                if room is None:
                    self.openings.check(userId, session)
                    room = self.openRoom(event, dialog)
                    self.openings.opened(room, userId, session)
                created = False
        else:
            created = False
            if room.locked and userId != room.creatorId:
                raise StanzaError("item-not-found", text="This room is being created: try again later")
        occupant = room.occupantOf(userId)  # another session of this user may be in
        self.checkEntry(room, userId, mucX, occupant)
        codes = []
        nick = self.nickFor(room, userId, event.to.resource, occupant)
        if nick != event.to.resource:
            codes.append(210)
        if occupant is None:
            limits = self.mucConfig
            if len(room.occupants) >= self.capacity(room):
                self.maybeClose(room)
                raise StanzaError("service-unavailable", text="This room is full")
            if len(session.state.get(STATE_ROOMS, ())) >= limits.max_rooms_per_user:
                self.maybeClose(room)
                raise StanzaError("resource-constraint", text="You are in too many rooms")
            if room.dialog is not None and room.dialog.type == DIALOG_PUBLIC and userId not in room.dialog.occupantIds:
                yield self.storage.dialogs.subscribe(room.dialog.id, userId)
            occupant = Occupant(userId, session.bare, nick)
        first = not occupant.sessions
        occupant.sessions.append(session)
        occupant.payload = self.payloadOf(stanza)
        self.entered(room, occupant, session)
        # §7.2.3: the existing occupants to the new one, the new one to the others, self last
        for other in list(room.occupants.values()):
            if other is occupant:
                continue
            presence = self.occupantPresence(room, other, userId)
            self.sendCopy(session, presence)
        room.addOccupant(occupant)
        if first:
            self.broadcastPresence(room, occupant)
        if room.nonAnonymous():
            codes.append(100)
        if created:
            codes.append(201)
        self.sendSelfPresence(room, occupant, session, stanza.getAttribute("id"), codes)
        if room.dialog is not None:
            yield self.sendHistory(room, session, userId, mucX)
        if not (self.compat and (stanza.getAttribute("id") or "").endswith(":join")):
            # the SDK (its join ids end in ":join") would take the subject for a message
            self.sendSubject(room, session)
        return True

    def checkEntry(self, room: Room, userId: int, mucX, occupant) -> None:
        """
        §7.2.7 (members-only: C{registration-required}), §9.1 (banned:
        C{forbidden}) and §7.2.5 (password: C{not-authorized}); another
        session of an occupant is already in.
        """
        if occupant is not None:
            return
        if room.admits(userId):
            password = room.setting(EXT_PASSWORD)
            given = mucX.password if mucX is not None else None
            if not password or (given is not None and str(given) == password):
                return
            self.maybeClose(room)
            raise StanzaError("not-authorized", text="This room needs a password")
        self.maybeClose(room)
        if room.affiliation(userId) == "outcast":
            raise StanzaError("forbidden", text="You are banned from this room")
        raise StanzaError("registration-required", text="Only members may join this room")

    def nickFor(self, room: Room, userId: int, asked: str, occupant) -> str:
        """
        §7.2.9: the nick an entering user gets: in a dialog room always the
        account id (the SDK's), in a room made the XMPP way the one asked
        for (another session of an occupant keeps the occupant's); a nick
        held by another user is a C{conflict}.
        """
        if occupant is not None:
            return occupant.nick
        nick = asked if room.named is not None else str(userId)
        self.checkDigitNick(room, userId, nick)
        for taken in {asked, nick}:
            holder = room.occupants.get(taken)
            if holder is not None and holder.userId != userId:
                self.maybeClose(room)
                raise StanzaError("conflict", text="That nickname is taken")
        return nick

    def checkDigitNick(self, room: Room, userId: int, nick: str) -> None:
        """
        Issue 16 review finding 1: in a room made the XMPP way an all-digit
        nick is a C{conflict} unless it is the user's own account id: the
        messages (and history) of a sender who is not in the room show as
        C{room/<account id>}, which must never be someone else's nick.
        """
        if room.named is not None and nick.isdigit() and nick != str(userId):
            self.maybeClose(room)
            raise StanzaError("conflict", text="A nick of digits only is another user's account id")

    def capacity(self, room: Room) -> int:
        """
        How many occupants a room takes: C{muc#roomconfig_maxusers} within
        C{[muc] max_occupants}.
        """
        users = room.setting(EXT_MAXUSERS)
        limit = self.mucConfig.max_occupants
        users = parseCount(users, limit)
        return users if users is not None else limit

    def changeNick(self, room: Room, occupant: Occupant, session, nick: str, stanza) -> bool:
        """
        §7.6: unavailable presence from the old nick with status 303 and the
        new nick (110 to the occupant), then the presence from the new one;
        a nick held by another user is a C{conflict} (§7.6.3).
        """
        holder = room.occupants.get(nick)
        if holder is not None and holder is not occupant:
            raise StanzaError("conflict", text="That nickname is taken")
        self.checkDigitNick(room, occupant.userId, nick)
        self.broadcastPresence(room, occupant, "unavailable", (303,), nick=nick)
        for mine in occupant.sessions:
            own = self.occupantPresence(room, occupant, occupant.userId, "unavailable", (110, 303),
                                        selfTo=mine.full, nick=nick)
            self.sendCopy(mine, own)
        room.removeOccupant(occupant)
        occupant.nick = nick
        occupant.payload = self.payloadOf(stanza)
        room.addOccupant(occupant)
        self.broadcastPresence(room, occupant)
        for mine in occupant.sessions:
            self.entered(room, occupant, mine)
            self.sendSelfPresence(room, occupant, mine, stanza.getAttribute("id") if mine is session else None,
                                  [100] if room.nonAnonymous() else [])
        return True

    @staticmethod
    def mucElement(stanza):
        for child in stanza.elements():
            if child.name == "x" and child.uri == NS_MUC:
                return child
        return None

    @staticmethod
    def payloadOf(stanza) -> list:
        """
        What an occupant's presence shows the others: show, status,
        priority, caps -- not the MUC element nor errors.
        """
        return [c for c in stanza.elements() if c.uri not in (NS_MUC, NS_MUC_USER) and c.name != "error"]

    def sendSelfPresence(self, room, occupant, session, stanzaId, codes, stanzaType=None) -> None:
        presence = self.occupantPresence(room, occupant, occupant.userId, stanzaType,
                                         [110, *codes], selfTo=session.full)
        if stanzaId:
            presence["id"] = stanzaId
        if self.compat:
            self.compatCode(presence, "110")
        self.sendCopy(session, presence)

    def openRoom(self, event, dialog) -> Room:
        return self.openRoomFor(event.room, event.appId, dialog, event.named)

    def openRoomFor(self, jid: str, appId: int, dialog, named: str | None) -> Room:
        if len(self.rooms) >= self.mucConfig.max_rooms:
            raise StanzaError("resource-constraint", text="Too many active rooms")
        room = Room(jid, appId, dialog, named=named)
        self.rooms[room.jid] = room
        self.byDialog.setdefault(dialog.id, set()).add(room.jid)
        return room

    def entered(self, room: Room, occupant: Occupant, session) -> None:
        session.state.setdefault(STATE_ROOMS, set()).add(room.jid)
        if self.onOccupancy is not None:
            self.onOccupancy(room, occupant, session, True)

    def left(self, room: Room, session) -> None:
        rooms = session.state.get(STATE_ROOMS)
        if rooms is not None:
            rooms.discard(room.jid)
        if self.onOccupancy is not None:
            self.onOccupancy(room, None, session, False)

    # -- rebuilding a room on another node (cluster failover) ------------------------------

    @defer.inlineCallbacks
    def dialogOfRoom(self, jid: str):
        """
        C{(dialog, appId, named)} of a room JID, from storage (C{dialog} is
        C{None} when there is no such dialog).
        """
        localpart = jid.partition("@")[0]
        parsed = parseRoom(localpart)
        if parsed is not None:
            appId, dialogId = parsed
            named = None
        else:
            named = localpart
            dialogId = yield self.resolveNamed(localpart)
            dialogs = self.host.modules.get("dialogs")
            appId = dialogs.defaultAppId() if dialogs is not None else 1
        dialog = yield self.storage.dialogs.getDialog(dialogId) if dialogId is not None else None
        return dialog, appId, named

    @defer.inlineCallbacks
    def restoreOccupants(self, jid: str, entries):
        """
        Put sessions that were in a room back in it without the join
        presence exchange (the room's previous node was lost): C{entries}
        are C{(session, payload)} pairs, the session with its account.
        Each restored session gets one self-presence (status 110) and
        nothing else; sessions the dialog no longer admits (or that no
        longer fit) are left out.  Fires with the number restored.
        """
        room = self.rooms.get(jid)
        if room is None:
            dialog, appId, named = yield self.dialogOfRoom(jid)
            room = self.rooms.get(jid)  # may have been opened meanwhile
            if room is None:
                if dialog is None:
                    return 0
                room = self.openRoomFor(jid, appId, dialog, named)
        restored = 0
        for session, payload, *nick in entries:
            userId = session.account.id
            occupant = room.occupantOf(userId)
            if session.closed or not room.admits(userId) or (
                    occupant is None and len(room.occupants) >= self.mucConfig.max_occupants):
                continue
            if occupant is None:
                asked = nick[0] if nick and nick[0] and room.named is not None else None
                if asked is not None and asked in room.occupants:
                    asked = None  # taken meanwhile: the account id
                occupant = Occupant(userId, session.bare, asked)
                room.addOccupant(occupant)
            if session in occupant.sessions:
                continue
            occupant.sessions.append(session)
            occupant.payload = payload
            self.entered(room, occupant, session)
            self.sendSelfPresence(room, occupant, session, None, [100] if room.nonAnonymous() else [])
            restored += 1
        self.maybeClose(room)
        return restored

    def createRoom(self, event, userId: int) -> Room:
        """
        §10.1.1: a new room, locked until its owner configures it.
        """
        if len(self.rooms) >= self.mucConfig.max_rooms:
            raise StanzaError("resource-constraint", text="Too many active rooms")
        room = Room(event.room, event.appId, None, named=event.named, creatorId=userId)
        self.rooms[room.jid] = room
        observe.emit("room-created", room=room.jid, owner=getattr(event.origin, "bare", None))
        room.lockTimer = self.host.clock.callLater(self.mucConfig.locked_room_seconds,
                                                   self.destroyRoom, room, "Not configured in time")
        return room

    def maybeClose(self, room: Room, destroyed: bool = False) -> None:
        """
        Forget a room nobody is in (a locked one is destroyed, a temporary
        one too, XEP-0045 §10.1.3).
        """
        if room.occupants or self.rooms.get(room.jid) is not room:
            return
        self._forgetRoom(room)
        if room.dialog is not None:
            if room.named and (room.dialog.extensions or {}).get(EXT_PERSISTENT) == "0":
                if not destroyed:
                    observe.emit("room-destroyed", room=room.jid, reason="temporary room left empty")
                self.named.pop(room.named, None)
                self.storage.dialogs.deleteDialog(room.dialog.id).addErrback(
                    lambda f: self.log.failure("Deleting a temporary room's dialog failed", f))

    def _forgetRoom(self, room: Room) -> None:
        del self.rooms[room.jid]
        self.openings.closed(room)
        if room.lockTimer is not None and room.lockTimer.active():
            room.lockTimer.cancel()
        if room.dialog is not None:
            jids = self.byDialog.get(room.dialog.id)
            if jids is not None:
                jids.discard(room.jid)
                if not jids:
                    del self.byDialog[room.dialog.id]

    def dropRoom(self, jid: str) -> list:
        """
        Forget an open room without a word to its occupants (it moved to
        another cluster node, which restores them): its
        C{(session, occupant)} pairs.
        """
        room = self.rooms.get(jid)
        if room is None:
            return []
        self._forgetRoom(room)
        dropped = []
        for occupant in room.occupants.values():
            for session in occupant.sessions:
                rooms = session.state.get(STATE_ROOMS)
                if rooms is not None:
                    rooms.discard(jid)
                dropped.append((session, occupant))
        return dropped

    @defer.inlineCallbacks
    def sendHistory(self, room: Room, session, userId: int, mucX) -> None:
        """
        §7.2.15: the stored dialog history the join asked for (at most
        C{max_history_stanzas}), oldest first, each with a delay from the
        room.
        """
        history = mucX.history if mucX is not None else None
        limits = self.mucConfig
        maxStanzas = limits.default_history_stanzas
        maxChars = since = None
        if history is not None:
            asked = _int(history.getAttribute("maxstanzas"))
            if asked is not None:
                maxStanzas = asked
            maxChars = _int(history.getAttribute("maxchars"))
            seconds = _int(history.getAttribute("seconds"))
            if seconds is not None:
                since = self.host.clock.seconds() - seconds
            stamp = history.getAttribute("since")
            if stamp is not None:
                parsed = isoStamp(stamp)
                if parsed is not None:
                    since = max(since or parsed, parsed)
        maxStanzas = min(maxStanzas, limits.max_history_stanzas)
        if maxStanzas <= 0 or maxChars == 0:
            return
        query = Query(limit=maxStanzas, sort="created_at", descending=True)
        if since is not None:
            query.where("created_at", "gte", since)
        messages = yield self.storage.messages.listMessages(room.dialog.id, userId, query)
        if not messages:
            return
        privacy = self.host.modules.get("privacy")
        directory = self.dialogs().directory
        senders = yield directory.jidsOf({m.senderId for m in messages})
        stanzas = []
        for message in messages:  # newest first
            sender = senders.get(message.senderId)
            if privacy is not None and sender and privacy.blocks(session.bare, sender, "message"):
                continue
            stanza = messageStanza(message, self.occupantJID(room.jid, message.senderId), session.full,
                                   "groupchat", room.dialog.id)
            stanza.addChild(delayElement(message.createdAt, room.jid))
            if maxChars is not None:
                maxChars -= len(stanza.toXml())
                if maxChars < 0:
                    break
            stanzas.append(stanza)
        for stanza in reversed(stanzas):
            if session.closed:
                return
            session.send(stanza)

    def sendSubject(self, room: Room, session) -> None:
        """
        §7.2.16: the subject (the dialog's description), empty when unset
        (and while a new room is locked: clients wait for it to end a join).
        """
        message = domish.Element((NS_CLIENT, "message"))
        message["from"] = room.jid
        message["to"] = session.full
        message["type"] = "groupchat"
        message["id"] = f"subject-{room.dialog.id if room.dialog is not None else 'new'}"
        message.addElement("subject", content=(room.dialog.description if room.dialog else None) or "")
        session.send(message)

    def occupantsLeft(self, jid: str, nicks) -> int:
        """
        The occupants C{nicks} are gone without leaving (lost with their
        cluster node): those not in the room (any more) are announced to
        the others with unavailable presence (§7.14).  Returns how many.
        """
        room = self.rooms.get(jid)
        if room is None:
            return 0
        count = 0
        for nick in sorted(nicks):
            if nick in room.occupants or not nick or len(nick) > 1023:
                continue
            userId = int(nick) if nick.isdigit() and len(nick) <= 10 and room.named is None else -1
            presence = self.occupantPresence(room, Occupant(userId, "", nick), None, "unavailable")
            for occupant in list(room.occupants.values()):
                for session in occupant.sessions:
                    self.sendCopy(session, presence)
            count += 1
        return count

    # -- leave ----------------------------------------------------------------------------

    def leave(self, event):
        session = event.origin
        room = self.rooms.get(event.room)
        occupant = room.occupantOf(session.account.id) if room is not None else None
        if occupant is None or session not in occupant.sessions:
            # not in the room: still answer, so a client waiting for it does not hang
            presence = domish.Element((NS_CLIENT, "presence"))
            presence["from"] = f"{event.room}/{event.to.resource if event.named else session.account.id}"
            presence["to"] = session.full
            presence["type"] = "unavailable"
            x = presence.addElement((NS_MUC_USER, "x"))
            item = x.addElement("item")
            item["affiliation"], item["role"] = "none", "none"
            x.addElement("status")["code"] = "110"
            if self.compat:
                self.compatCode(presence, "110")
            session.send(presence)
            return True
        self.sendSelfPresence(room, occupant, session, event.stanza.getAttribute("id"), (),
                              stanzaType="unavailable")
        self.removeSession(room, occupant, session)
        return True

    def removeSession(self, room: Room, occupant: Occupant, session, codes=()) -> None:
        if session in occupant.sessions:
            occupant.sessions.remove(session)
        self.left(room, session)
        if not occupant.sessions:
            room.removeOccupant(occupant)
            self.broadcastPresence(room, occupant, "unavailable", codes)
        if room.locked and occupant.userId == room.creatorId and not occupant.sessions:
            self.destroyRoom(room, "The owner left before configuring the room")
            return
        self.maybeClose(room)

    @hook("session-ended")
    def onSessionEnded(self, event):
        session = event.session
        for jid in list(session.state.get(STATE_ROOMS, ())):
            room = self.rooms.get(jid)
            occupant = room.occupantOf(session.account.id) if room is not None else None
            if occupant is not None:
                self.removeSession(room, occupant, session)
        session.state.pop(STATE_ROOMS, None)
        return None

    def occupantJID(self, roomJID: str, userId: int) -> str:
        """
        C{room/nick} of a user: his nick while in the room, else the
        account id (dialog rooms' nicks).
        """
        room = self.rooms.get(roomJID)
        nick = room.nicks.get(userId) if room is not None else None
        return f"{roomJID}/{nick if nick is not None else userId}"

    def joinedSessions(self, roomJID: str) -> list:
        """
        The sessions in a room (for the dialog fan-out: each gets one copy).
        """
        room = self.rooms.get(roomJID)
        if room is None:
            return []
        return [s for o in room.occupants.values() for s in o.sessions]

    # -- kick and destroy --------------------------------------------------------------------

    @hook("rest-dialog-updated")
    def onDialogUpdated(self, event):
        jids = self.byDialog.get(event.dialog.id)
        if not jids:
            return None
        if event.deleted:
            reason, venue = self.destroying.get(event.dialog.id, ("The dialog was deleted", None))
            for jid in list(jids):
                room = self.rooms.get(jid)
                if room is not None:
                    self.destroyRoom(room, reason, venue)
            return None
        self.updateRooms(event).addErrback(lambda f: self.log.failure("Updating rooms failed", f))
        return None

    @defer.inlineCallbacks
    def updateRooms(self, event):
        """
        A changed dialog: occupants it no longer admits (or members removed
        from a members-only room) are kicked (§9.4: 321, §9.1: 301 for a
        ban), the others whose affiliation or role changed get their new
        presence; a changed subject goes to everyone.
        """
        actor = yield self.dialogs().directory.jidOf(event.userId)
        for jid in list(self.byDialog.get(event.dialog.id, ())):
            room = self.rooms.get(jid)
            if room is None:
                continue
            before = {nick: (room.affiliation(o.userId), room.role(o.userId))
                      for nick, o in room.occupants.items()}
            subject = room.dialog.description if room.dialog is not None else None
            room.dialog = event.dialog
            for nick, occupant in list(room.occupants.items()):
                if not room.admits(occupant.userId) or (
                        occupant.userId in event.removed and not isOpen(room.dialog)):
                    self.kick(room, occupant, actor, event.userId, self.kickCodes(room, occupant, event),
                              (event.reasons or {}).get(occupant.userId))
                elif before.get(nick) != (room.affiliation(occupant.userId), room.role(occupant.userId)):
                    self.broadcastPresence(room, occupant)
                    for session in occupant.sessions:
                        self.sendSelfPresence(room, occupant, session, None, ())
            if subject != room.dialog.description and room.occupants:
                for occupant in list(room.occupants.values()):
                    for session in occupant.sessions:
                        self.sendSubject(room, session)
            self.maybeClose(room)

    @staticmethod
    def kickCodes(room: Room, occupant: Occupant, event) -> tuple:
        """
        Why a changed dialog lets an occupant go: banned (§9.1: 301),
        removed from the members (§9.4: 307, 321), or not a member of a
        room that became members-only (§10.2: 322).
        """
        if room.affiliation(occupant.userId) == "outcast":
            return (301,)
        if occupant.userId in event.removed or isOpen(room.dialog):
            return (307, 321)
        return (322,)

    def kick(self, room: Room, occupant: Occupant, actorJID: str | None, actorId: int,
             codes=(307, 321), reason: str | None = None) -> None:
        """
        §8.2 (and §9.4 for the affiliation, §9.1 for a ban): the status
        C{codes} to the kicked user (with 110) and to everybody else.
        """
        presence = self.occupantPresence(room, occupant, occupant.userId, "unavailable",
                                         (110, *codes), selfTo=occupant.full)
        item = presence.x.item
        item.addElement("actor")["nick"] = room.nicks.get(actorId, str(actorId))
        item.addElement("reason", content=reason or (
            "Removed from the dialog" if actorJID is not None else "Kicked by a moderator"))
        if self.compat:
            self.compatCode(presence, "301")
            direct = presence.addElement((NS_MUC_USER, "item"))
            direct["affiliation"], direct["role"] = "none", "none"
            if actorJID is not None:
                direct.addElement("actor")["jid"] = actorJID
        for session in list(occupant.sessions):
            self.sendCopy(session, presence)
            self.left(room, session)
        occupant.sessions = []
        room.removeOccupant(occupant)
        self.broadcastPresence(room, occupant, "unavailable", codes)

    def destroyRoom(self, room: Room, reason: str | None, venue: str | None = None) -> None:
        """
        §10.9: unavailable presence with C{<destroy/>} (the alternate venue
        and the reason, when given) to every occupant.
        """
        for occupant in list(room.occupants.values()):
            presence = self.occupantPresence(room, occupant, occupant.userId, "unavailable")
            destroy = presence.x.addElement("destroy")
            if venue:
                destroy["jid"] = venue
            if reason:
                destroy.addElement("reason", content=reason)
            for session in occupant.sessions:
                self.sendCopy(session, presence)
                self.left(room, session)
            occupant.sessions = []
        room.occupants.clear()
        room.nicks.clear()
        observe.emit("room-destroyed", room=room.jid, reason=reason)
        self.maybeClose(room, destroyed=True)

    # -- owner configuration (§10.1.2, §10.1.3, §10.2) ------------------------------------------

    def ownedRoom(self, event):
        session = self.requireSession(event)
        room = self.rooms.get(event.room)
        userId = session.account.id if session.account is not None else None
        if room is None:
            if event.dialogId is None:
                raise StanzaError("item-not-found", text="No such room")
            return None, userId
        if room.affiliation(userId) != "owner":
            raise StanzaError("forbidden", text="Only the room's owner may configure it")
        return room, userId

    @hook(f"muc-iq-get/room/{NS_MUC_OWNER}:query")
    @defer.inlineCallbacks
    def onConfigGet(self, event):
        room, userId = self.ownedRoom(event)
        dialog = room.dialog if room is not None else (yield self.dialogs().roomDialog(event))
        if dialog is not None:
            rules.require(dialog, userId, rules.MANAGE)  # owner and admins, as over REST
        values = roomconfig.settings(dialog, event.named is not None, self.mucConfig)
        if not values[roomconfig.NAME] and room is not None:
            values[roomconfig.NAME] = room.named or ""
        query = domish.Element((NS_MUC_OWNER, "query"))
        query.addChild(roomconfig.formElement(values))
        return self.reply(event, query)

    @hook(f"muc-iq-set/room/{NS_MUC_OWNER}:query")
    def onOwnerSet(self, event):
        """
        §10.1-§10.2 (a form) or §10.9 (C{<destroy/>}, L{onDestroy}).
        """
        child = firstChild(firstChild(event.stanza))
        if child is not None and child.name == "destroy" and child.uri == NS_MUC_OWNER:
            return self.onDestroy(event, child)
        return self.onConfigSet(event, child)

    @defer.inlineCallbacks
    def onConfigSet(self, event, form):
        room, userId = self.ownedRoom(event)
        if form is None or form.name != "x" or form.uri != NS_XDATA:
            raise StanzaError("bad-request", text="Expected a jabber:x:data form")
        formType = form.getAttribute("type")
        if formType == "cancel":
            if room is not None and room.locked:
                self.destroyRoom(room, "Creation cancelled")
            return self.reply(event)
        if formType != "submit":
            raise StanzaError("bad-request", text="The form type must be submit or cancel")
        asked = roomconfig.submitted(form)
        named = event.named is not None
        if room is not None and room.locked:
            yield self.createDialog(event, room, userId, asked)
            return True
        dialog = room.dialog if room is not None else (yield self.dialogs().roomDialog(event))
        rules.require(dialog, userId, rules.MANAGE)
        current = roomconfig.settings(dialog, named, self.mucConfig)
        fields, extensions = roomconfig.changes(current, asked, named, self.mucConfig)
        if EXT_MEMBERSONLY in extensions and dialog.type != DIALOG_GROUP:
            # a room made the XMPP way before issue 16 as a public dialog: its type decides
            raise StanzaError("not-acceptable", text="This room is a public dialog: it stays open")
        if extensions:
            fields["extensions"] = dict(dialog.extensions or {}, **extensions)
        updated = (yield self.storage.dialogs.updateDialog(dialog.id, **fields)) if fields else None
        self.reply(event)
        if updated is not None:  # presence and subject updates, the SDK's notice, other nodes
            self.host.hooks.fire("rest-dialog-updated", DialogEvent(updated, userId, event.appId, [], []))
            if room is not None:
                self.notifyConfigChange(room)
        return True

    def notifyConfigChange(self, room: Room) -> None:
        """
        §10.2.1: a message with status 104 to the occupants after a
        configuration change.
        """
        message = domish.Element((NS_CLIENT, "message"))
        message["from"], message["type"] = room.jid, "groupchat"
        message.addElement((NS_MUC_USER, "x")).addElement("status")["code"] = "104"
        for occupant in list(room.occupants.values()):
            for session in occupant.sessions:
                self.sendCopy(session, message)

    @defer.inlineCallbacks
    def createDialog(self, event, room: Room, userId: int, asked: dict):
        """
        §10.1.2 (an empty form: an instant room, with the C{[muc]
        room_default_*} settings) and §10.1.3 (a reserved room): the room's
        group dialog, under the REST create rule (the owner's quota).
        """
        current = roomconfig.settings(None, True, self.mucConfig)
        fields, extensions = roomconfig.changes(current, asked, True, self.mucConfig)
        extensions = dict(roomconfig.defaults(self.mucConfig), **extensions)
        extensions[EXT_ROOM] = room.named
        try:
            dialog, _ = yield DialogService(self.storage, self.host.config.quotas).create(
                userId, DIALOG_GROUP, [], [],
                {"name": fields.get("name") or room.named, "description": fields.get("description"),
                 "extensions": extensions}, room.appId)
        except QuotaExceeded as e:
            raise resourceConstraint(e) from None
        if room.lockTimer is not None and room.lockTimer.active():
            room.lockTimer.cancel()
        room.dialog = dialog
        self.byDialog.setdefault(dialog.id, set()).add(room.jid)
        self._rememberNamed(room.named, dialog.id)
        self.reply(event)
        for occupant in room.occupants.values():
            for session in occupant.sessions:
                self.sendSubject(room, session)

    # -- disco#items (§6.5) -------------------------------------------------------------------

    @hook(f"muc-iq-get/room/{NS_DISCO_ITEMS}:query")
    @defer.inlineCallbacks
    def onRoomItems(self, event):
        session = self.requireSession(event)
        room = self.rooms.get(event.room)
        if room is None or room.dialog is None:
            if event.dialogId is None:
                raise StanzaError("item-not-found", text="No such room")
            dialog = yield self.dialogs().roomDialog(event)
            allowed = seesRoom(dialog, session.account.id)
        else:
            allowed = room.admits(session.account.id)
        if not allowed:  # a hidden room (§4.2), like one that does not exist (issue 15 finding 11)
            raise StanzaError("item-not-found", text="No such room")
        query = domish.Element((NS_DISCO_ITEMS, "query"))
        if room is not None:
            for nick in room.occupants:
                query.addElement("item")["jid"] = f"{room.jid}/{nick}"
        return self.reply(event, query)

    @hook(f"muc-iq-get/service/{NS_DISCO_ITEMS}:query")
    def onServiceItems(self, event):
        """
        §6.3: the active rooms this user may enter (public ones and their own).
        """
        session = self.requireSession(event)
        userId = session.account.id if session.account is not None else None
        query = domish.Element((NS_DISCO_ITEMS, "query"))
        for room in list(self.rooms.values())[:self.mucConfig.max_occupants]:
            if room.dialog is not None and room.admits(userId) and (
                    room.setting(EXT_PUBLIC, "1") == "1" or room.affiliation(userId) != "none"):
                item = query.addElement("item")
                item["jid"] = room.jid
                item["name"] = room.dialog.name or room.jid
        return self.reply(event, query)


__all__ = ["Room", "Occupant", "RoomsMixin", "NS_MUC", "NS_MUC_USER", "NS_MUC_OWNER",
           "isoStamp"]
