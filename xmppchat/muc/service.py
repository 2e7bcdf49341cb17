"""
XEP-0045: Multi-User Chat, https://xmpp.org/extensions/xep-0045.html --
the component on C{muc.<domain>} (minimal: addressing and events).

Room JIDs are ConnectyCube dialog JIDs, C{<appId>_<dialogId>@muc.<domain>}
(SDK reference §5.2); an occupant is C{<room>/<userId>}.  The router hands
every stanza for the MUC domain to L{MUCService.receive} with C{from}
already stamped; the service classifies the target (C{service}: the bare
domain, C{room}: a room's bare JID, C{occupant}: C{room/nick}) and fires
named events on the host's hook bus, the same way the router does::

    muc-message/room                    a message to a room (dialog fan-out)
    muc-presence/occupant               join / leave / nick change
    muc-iq-get/room/<ns>:<name>         IQ requests, by type, target, payload
    muc-iq-set/room/urn:xmpp:mam:2:query

The dialog layer (L{xmppchat.modules.dialogs}) handles room messages
without any join (the SDK never joins, §1.8).  B{XEP-0045 presence goes
here}: join/leave/occupant lists register handlers for C{muc-presence/*}
and C{muc-iq-get/room/http://jabber.org/protocol/disco#items:query}; until
then a presence to the service gets a C{service-unavailable} error that
says so, unhandled IQ requests C{service-unavailable} (RFC 6120 §8.3.3),
and messages nobody takes C{service-unavailable} too.  Room names that are
not C{<appId>_<24-hex dialog id>} get C{item-not-found}.
"""

from __future__ import annotations

import re

from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.modules.base import Module, hook
from xmppchat.modules.disco import NS_DISCO_INFO, infoQuery
from xmppchat.stanzas import StanzaError, firstChild
from xmppchat.storage.interfaces import DIALOG_PRIVATE, DIALOG_PUBLIC

NS_MUC = "http://jabber.org/protocol/muc"

ROOM_RE = re.compile(r"^([0-9]{1,10})_([0-9a-fA-F]{24})$")


def parseRoom(localpart: str | None):
    """
    C{(appId, dialogId)} for a room localpart C{<appId>_<dialogId>}, or
    C{None}.  Dialog ids are returned lower-case, as the store keeps them.
    """
    if not localpart:
        return None
    match = ROOM_RE.match(localpart)
    if match is None:
        return None
    return int(match.group(1)), match.group(2).lower()


def roomJID(appId: int, dialogId: str, mucDomain: str) -> str:
    """
    The bare room JID of a dialog (SDK reference §5.2).
    """
    return f"{appId}_{dialogId}@{mucDomain}"


class RoomEvent:
    """
    What a C{muc-*} handler receives.

    @ivar origin: the sending L{Session}, or C{None} (server-generated).
    @ivar to: the parsed C{to} JID.
    @ivar kind: C{service}, C{room} or C{occupant}.
    @ivar room: the room's bare JID (C{None} for C{service}).
    @ivar appId: the application id of the room JID.
    @ivar dialogId: the dialog id of the room JID.
    """

    __slots__ = ("host", "stanza", "origin", "to", "kind", "stanzaType", "room", "appId",
                 "dialogId", "service")

    def __init__(self, service, stanza, origin, to, kind, stanzaType, room=None, appId=None,
                 dialogId=None):
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

    def receive(self, origin, stanza, toJID) -> None:
        name = stanza.name
        stanzaType = stanza.getAttribute("type")
        if name == "message" and stanzaType is None:
            stanzaType = "normal"
        if toJID.user is None:
            event = RoomEvent(self, stanza, origin, toJID, "service", stanzaType)
        else:
            parsed = parseRoom(toJID.user)
            if parsed is None:
                return self.sendError(origin, stanza, "item-not-found",
                                      "Room names are <appId>_<dialogId>")
            appId, dialogId = parsed
            kind = "room" if toJID.resource is None else "occupant"
            event = RoomEvent(self, stanza, origin, toJID, kind, stanzaType,
                              roomJID(appId, dialogId, self.domain), appId, dialogId)
        fire = self.host.hooks.fire
        if name == "iq":
            if stanzaType in ("get", "set"):
                child = firstChild(stanza)
                if child is not None and fire(
                        f"muc-iq-{stanzaType}/{event.kind}/{child.uri}:{child.name}", event):
                    return None
                return self.sendError(origin, stanza, "service-unavailable")
            return None
        if fire(f"muc-{name}/{event.kind}", event):
            return None
        if name == "presence":
            # XEP-0045 join/leave goes on muc-presence/*; until then say so.
            return self.sendError(origin, stanza, "service-unavailable",
                                  "Joining rooms is not supported yet: send groupchat messages "
                                  "to the room JID directly")
        return self.sendError(origin, stanza, "service-unavailable")

    def sendError(self, origin, stanza, condition: str, text: str | None = None) -> None:
        self.host.router.sendError(origin, stanza, condition, text)


class MUCModule(Module):
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

    def tearDown(self):
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
        dialog = yield self.storage.dialogs.getDialog(event.dialogId)
        if dialog is None or dialog.type == DIALOG_PRIVATE:
            raise StanzaError("item-not-found", text="No such room")
        features = self.allRoomFeatures() + ["muc_persistent", "muc_membersonly"
                                          if dialog.type != DIALOG_PUBLIC else "muc_open"]
        return self.reply(event, infoQuery([("conference", "text", dialog.name)], features))
