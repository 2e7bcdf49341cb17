"""
XEP-0045: Multi-User Chat, https://xmpp.org/extensions/xep-0045.html --
the component on C{muc.<domain>} (minimal: addressing and events).

Room JIDs are ConnectyCube dialog JIDs, C{<appId>_<dialogId>@muc.<domain>}
(SDK reference §5.2); an occupant is C{<room>/<userId>} there, and
C{<room>/<nick>} in rooms made the XMPP way (issue 16 item 5).  The router hands
every stanza for the MUC domain to L{MUCService.receive} with C{from}
already stamped; the service classifies the target (C{service}: the bare
domain, C{room}: a room's bare JID, C{occupant}: C{room/nick}) and fires
named events on the host's hook bus, the same way the router does::

    muc-message/room                    a message to a room (dialog fan-out)
    muc-presence/occupant               join / leave / nick change
    muc-iq-get/room/<ns>:<name>         IQ requests, by type, target, payload
    muc-iq-set/room/urn:xmpp:mam:2:query

The dialog layer (L{xmppchat.modules.dialogs}) handles room messages
without any join (the SDK never joins, §1.8); XEP-0045 presence (join,
leave, kick, room creation, occupant lists) is L{xmppchat.muc.room}'s, on
C{muc-presence/occupant} and C{muc-iq-*/room/...}.  Unhandled IQ requests
get C{service-unavailable} (RFC 6120 §8.3.3), as do messages nobody takes.
Other room names (C{team@muc.<domain>}) are rooms created the XMPP way:
L{MUCService.resolveNamed} maps them to their dialog (C{None} while they
do not exist yet: only presence and IQs reach the room code then, other
stanzas get C{item-not-found}).
"""

from __future__ import annotations


from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.dialogs.addressing import appIdOf, parseRoom, roomJID
from xmppchat.dialogs.rules import isOpen, seesRoom
from xmppchat.modules.base import Module, hook
from xmppchat.modules.disco import NS_DISCO_INFO, infoQuery
from xmppchat.muc.admin import AdminMixin
from xmppchat.muc.room import Room, RoomsMixin
from xmppchat.muc.roomconfig import EXT_PASSWORD, EXT_PUBLIC
from xmppchat.stanzas import StanzaError, firstChild
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_PRIVATE

NS_MUC = "http://jabber.org/protocol/muc"

class RoomEvent:
    """
    What a C{muc-*} handler receives.

    @ivar origin: the sending L{Session}, or C{None} (server-generated).
    @ivar to: the parsed C{to} JID.
    @ivar kind: C{service}, C{room} or C{occupant}.
    @ivar room: the room's bare JID (C{None} for C{service}).
    @ivar appId: the application id of the room JID.
    @ivar dialogId: the dialog id of the room JID (C{None}: a named room
        that does not exist yet).
    @ivar named: the localpart of a room created the XMPP way, else C{None}.
    """

    __slots__ = ("host", "stanza", "origin", "to", "kind", "stanzaType", "room", "appId",
                 "dialogId", "service", "named")

    def __init__(self, service, stanza, origin, to, kind, stanzaType, room=None, appId=None,
                 dialogId=None, named=None):
        self.named = named
        self.service = service
        self.host = service.host
        self.stanza = stanza
        self.origin = origin
        self.to = to
        self.kind = kind
        self.stanzaType = stanzaType
        self.room = room
        self.appId = appId
        self.dialogId = dialogId


class MUCService:
    """
    The component registered in C{host.components[muc_domain]}.
    """

    log = Logger()

    def __init__(self, host, domain: str):
        self.host = host
        self.domain = domain
        # localpart -> Deferred firing with a dialog id or None (set by the rooms)
        self.resolveNamed = None

    def receive(self, origin, stanza, toJID) -> None:
        name = stanza.name
        stanzaType = stanza.getAttribute("type")
        if name == "message" and stanzaType is None:
            stanzaType = "normal"
        if toJID.user is None:
            event = RoomEvent(self, stanza, origin, toJID, "service", stanzaType)
        else:
            parsed = parseRoom(toJID.user)
            kind = "room" if toJID.resource is None else "occupant"
            if parsed is None:
                if self.resolveNamed is None:
                    return self.sendError(origin, stanza, "item-not-found",
                                          "Room names are <appId>_<dialogId>")
                return self.resolveNamed(toJID.user).addCallback(
                    self._named, origin, stanza, toJID, kind, stanzaType).addErrback(
                    self._namedFailed, origin, stanza)
            appId, dialogId = parsed
            event = RoomEvent(self, stanza, origin, toJID, kind, stanzaType,
                              roomJID(appId, dialogId, self.domain), appId, dialogId)
        return self.dispatch(event)

    def _named(self, dialogId, origin, stanza, toJID, kind, stanzaType):
        if dialogId is None and stanza.name == "message":
            return self.sendError(origin, stanza, "item-not-found", "No such room")
        appId = appIdOf(origin.localpart) if origin is not None else None
        if appId is None:
            appId = self.host.modules["dialogs"].defaultAppId() if "dialogs" in self.host.modules else 1
        event = RoomEvent(self, stanza, origin, toJID, kind, stanzaType,
                          f"{toJID.user}@{self.domain}", appId, dialogId, named=toJID.user)
        return self.dispatch(event)

    def _namedFailed(self, failure, origin, stanza) -> None:
        self.log.failure("Resolving a room name failed", failure)
        self.sendError(origin, stanza, "internal-server-error")

    def dispatch(self, event):
        """
        Fire the room event; returns what its handler returned, so that the
        router keeps the sender's next stanzas behind a pending one (a
        Deferred), else C{None}.
        """
        origin, stanza, name, stanzaType = event.origin, event.stanza, event.stanza.name, event.stanzaType
        fire = self.host.hooks.fire
        if name == "iq":
            if stanzaType in ("get", "set"):
                child = firstChild(stanza)
                if child is not None:
                    handled = fire(f"muc-iq-{stanzaType}/{event.kind}/{child.uri}:{child.name}", event)
                    if handled:
                        return handled
                return self.sendError(origin, stanza, "service-unavailable")
            return None
        handled = fire(f"muc-{name}/{event.kind}", event)
        if handled:
            return handled
        return self.sendError(origin, stanza, "service-unavailable")

    def sendError(self, origin, stanza, condition: str, text: str | None = None) -> None:
        self.host.router.sendError(origin, stanza, condition, text)


class MUCModule(AdminMixin, RoomsMixin, Module):
    """
    Registers the L{MUCService} for C{server.muc_domain} and answers
    disco#info (XEP-0030, XEP-0045 §6.2, §6.4) for the service and for the
    rooms of existing (non-private) dialogs, with the C{roomFeatures} of
    the loaded modules (MAM, corrections...).
    """

    name = "muc"
    features = ()

    def setUp(self):
        domain = self.host.config.server.muc_domain
        self.service = MUCService(self.host, domain)
        self.host.components[domain] = self.service
        self.setUpRooms()

    def tearDown(self):
        self.tearDownRooms()
        domain = self.service.domain
        if self.host.components.get(domain) is self.service:
            del self.host.components[domain]

    def allRoomFeatures(self) -> list[str]:
        features = [NS_MUC, NS_DISCO_INFO]
        for module in self.host.modules.values():
            features.extend(getattr(module, "roomFeatures", ()))
        return features

    @hook(f"muc-iq-get/service/{NS_DISCO_INFO}:query")
    def onServiceInfo(self, event):
        return self.reply(event, infoQuery([("conference", "text", "Dialogs")], [NS_MUC, NS_DISCO_INFO]))

    @hook(f"muc-iq-get/room/{NS_DISCO_INFO}:query")
    @defer.inlineCallbacks
    def onRoomInfo(self, event):
        """
        XEP-0045 §6.4.  A members-only room is hidden (§4.2): to anyone but
        its owner, admins and occupants it answers C{item-not-found}, as a
        room that does not exist does (XEP-0030 §3.1), so neither its name
        nor its existence leaks (issue 15 finding 11).
        """
        session = self.requireSession(event)
        userId = session.account.id if session.account is not None else None
        dialog = None
        if event.dialogId is not None:
            dialog = yield self.storage.dialogs.getDialog(event.dialogId)
        if dialog is None or dialog.type == DIALOG_PRIVATE or not seesRoom(dialog, userId):
            raise StanzaError("item-not-found", text="No such room")
        # a view of the stored dialog, never put onto the live room: that one may have
        # changed during the read (review finding 4b)
        room = Room(event.room, event.appId, dialog, named=event.named)
        public = isOpen(dialog)
        temporary = (dialog.extensions or {}).get("muc_persistent") == "0"
        listed = public if event.named is None else room.setting(EXT_PUBLIC, "1") == "1"
        features = self.allRoomFeatures() + [
            "muc_temporary" if temporary else "muc_persistent",
            "muc_open" if public else "muc_membersonly",
            "muc_nonanonymous" if room.nonAnonymous() else "muc_semianonymous",
            "muc_passwordprotected" if room.setting(EXT_PASSWORD) else "muc_unsecured",
            "muc_public" if listed else "muc_hidden"]
        if dialog.type == DIALOG_BROADCAST or room.moderated():
            features.append("muc_moderated")  # visitors may not post (issue 17 item 5)
        else:
            features.append("muc_unmoderated")
        return self.reply(event, infoQuery([("conference", "text", dialog.name)], features))
