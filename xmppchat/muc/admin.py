"""
XEP-0045 moderation and administration of rooms (issue 16 item 5):

  - C{muc#admin} lists (§9.5 members, §9.8 moderators, §10.5 owners,
    §10.8 admins, §9.2 outcasts; §8.5 voice) and their changes: kick
    (§8.2, role C{none}), voice (§8.3, §8.4, roles C{participant} and
    C{visitor}), ban (§9.1, C{outcast}), membership (§9.3, §9.4), admins
    (§10.6, §10.7);
  - room destroy (§10.9, C{muc#owner} C{<destroy/>});
  - subject changes (§8.1) and the visitors' silence in a moderated room
    (§7.4);
  - private messages between occupants (§7.5);
  - XEP-0410 MUC self-ping: a ping to one's own occupant JID.

Every room is a dialog (L{xmppchat.muc.room}), so affiliations are its
owner (C{owner}), admins (C{admin}) and occupants (C{member}), changed
through L{DialogService.update} with the REST rules (managers add and
remove members, only the owner names admins, a dialog has one owner); a
change fires C{rest-dialog-updated} like a REST change, so the rooms
(on every cluster node) send the presence updates and kicks.  Outcasts
exist in rooms made the XMPP way only (the C{muc_outcasts} extension); a
ConnectyCube dialog room has no ban list and refuses one (C{not-allowed}).
Destroying a room deletes its dialog, as REST C{DELETE ...?force=1}
does: its owner only.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.dialogs import rules
from xmppchat.dialogs.errors import DialogError, Forbidden
from xmppchat.dialogs.events import DialogEvent
from xmppchat.dialogs.service import DialogService
from xmppchat.messageinfo import NS_SID
from xmppchat.modules.base import hook
from xmppchat.modules.chatstates import hideTyping
from xmppchat.modules.markers import hideReadMarker
from xmppchat.muc.room import Room
from xmppchat.muc.roomconfig import EXT_OUTCASTS, EXT_SUBJECT
from xmppchat.stanzas import NS_CLIENT, StanzaError, firstChild
from xmppchat.storage.interfaces import DIALOG_GROUP

NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_PING = "urn:xmpp:ping"
NS_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"
AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLES = ("moderator", "participant", "visitor", "none")
#: characters of a kick, ban or destroy reason kept (more are cut; security review finding 1)
MAX_REASON = 1024


def relayedAway(child) -> bool:
    """
    What a relayed private message (§7.5) loses: the sender's C{muc#user}
    C{<x/>} and a C{<stanza-id/>} (XEP-0359 §3.1: only the server that
    stores the message sets one; security review finding 5).
    """
    name = getattr(child, "name", None)
    return (name == "x" and child.uri == NS_MUC_USER) or (name == "stanza-id" and child.uri == NS_SID)


def reasonOf(element) -> str | None:
    """
    The C{<reason/>} of an admin item or a destroy (XEP-0045 §8.2, §9.1,
    §10.9), cut to L{MAX_REASON} characters (security review finding 1).
    """
    reason = element.reason
    return str(reason)[:MAX_REASON] if reason is not None else None


class AdminMixin:
    """
    The C{muc#admin} side of L{xmppchat.muc.service.MUCModule}.
    """

    roomFeatures = (NS_SELF_PING,)

    def dialogService(self) -> DialogService:
        return DialogService(self.storage, self.host.config.quotas, self.host.hooks.fire)

    @defer.inlineCallbacks
    def roomOf(self, event):
        """
        The open room of an event, or a closed one rebuilt from its dialog
        (not kept); C{item-not-found} for a room that does not exist.
        """
        room = self.rooms.get(event.room)
        if room is not None and room.dialog is not None:
            return room
        if room is not None or event.dialogId is None:
            raise StanzaError("item-not-found", text="No such room (or not configured yet)")
        dialog = yield self.dialogs().roomDialog(event)
        return Room(event.room, event.appId, dialog, named=event.named)

    # -- lists (§9.5, §9.8, §10.5, §10.8, §9.2, §8.5) ------------------------------------------

    @defer.inlineCallbacks
    def adminRequest(self, event):
        """
        C{(room, actor's account id, the request's items)} of a
        C{muc#admin} IQ.
        """
        session = self.requireSession(event)
        room = yield self.roomOf(event)
        items = [i for i in firstChild(event.stanza).elements() if i.name == "item"]
        return room, session.account.id, items

    @hook(f"muc-iq-get/room/{NS_MUC_ADMIN}:query")
    @defer.inlineCallbacks
    def onAdminGet(self, event):
        room, actorId, items = yield self.adminRequest(event)
        if not room.admits(actorId):
            raise StanzaError("item-not-found", text="No such room")
        if len(items) != 1:
            raise StanzaError("bad-request", text="Ask for one affiliation or role")
        affiliation, role = items[0].getAttribute("affiliation"), items[0].getAttribute("role")
        if room.role(actorId) != "moderator":
            raise StanzaError("forbidden", text="Only moderators may read these lists")
        query = domish.Element((NS_MUC_ADMIN, "query"))
        if affiliation in AFFILIATIONS and affiliation != "none":
            dialog = room.dialog
            ids = {"owner": [dialog.ownerId], "admin": dialog.adminIds,
                   "member": [i for i in dialog.occupantIds if i != dialog.ownerId and i not in dialog.adminIds],
                   "outcast": sorted(room.outcasts()) if room.named else []}[affiliation]
            jids = yield self.dialogs().directory.jidsOf(set(ids))
            for userId in ids:
                if userId not in jids:
                    continue
                item = query.addElement("item")
                item["affiliation"], item["jid"] = affiliation, jids[userId]
                occupant = room.occupantOf(userId)
                if occupant is not None:
                    item["nick"], item["role"] = occupant.nick, room.role(userId)
        elif role in ROLES and role != "none":
            for occupant in room.occupants.values():
                if room.role(occupant.userId) == role:
                    item = query.addElement("item")
                    item["role"], item["nick"] = role, occupant.nick
                    item["affiliation"] = room.affiliation(occupant.userId)
                    item["jid"] = occupant.bare
        else:
            raise StanzaError("bad-request", text="Unknown affiliation or role")
        return self.reply(event, query)

    # -- changes ------------------------------------------------------------------------------

    @hook(f"muc-iq-set/room/{NS_MUC_ADMIN}:query")
    @defer.inlineCallbacks
    def onAdminSet(self, event):
        room, actorId, items = yield self.adminRequest(event)
        if not items:
            raise StanzaError("bad-request", text="No item to change")
        for item in items:
            targetId = yield self.targetOf(room, item)
            reason = reasonOf(item)
            if item.getAttribute("affiliation") is not None:
                yield self.setAffiliation(event, room, actorId, targetId, item["affiliation"], reason)
            elif item.getAttribute("role") is not None:
                self.setRole(room, actorId, targetId, item["role"], reason)
            else:
                raise StanzaError("bad-request", text="An item needs an affiliation or a role")
            room = yield self.roomOf(event)  # the dialog as changed
        return self.reply(event)

    @defer.inlineCallbacks
    def targetOf(self, room, item):
        """
        The account id an item names, by C{jid} (its bare JID) or C{nick}.
        """
        jid, nick = item.getAttribute("jid"), item.getAttribute("nick")
        if jid:
            userId = yield self.dialogs().directory.idOf(jid.partition("/")[0])
            if userId is None:
                raise StanzaError("item-not-found", text=f"No user {jid} on this server")
            return userId
        occupant = room.occupants.get(nick) if nick else None
        if occupant is None:
            raise StanzaError("item-not-found" if nick else "bad-request",
                              text="No occupant with that nick" if nick else "An item needs a jid or a nick")
        return occupant.userId

    @defer.inlineCallbacks
    def setAffiliation(self, event, room, actorId: int, targetId: int, affiliation: str, reason):
        """
        §9.1-§9.4, §10.3-§10.7 mapped onto the dialog (module docstring).
        """
        dialog = room.dialog
        if affiliation not in AFFILIATIONS:
            raise StanzaError("bad-request", text=f"Unknown affiliation {affiliation}")
        current = room.affiliation(targetId)
        if current == affiliation:
            return
        if current == "owner" or affiliation == "owner":
            raise StanzaError("not-allowed" if affiliation == "owner" else "conflict",
                              text="A room has exactly one owner, its dialog's")
        if RANK[room.affiliation(actorId)] < 2:
            raise StanzaError("forbidden", text="Only the owner and admins may change affiliations")
        if current == "admin" and actorId != dialog.ownerId:
            raise StanzaError("not-allowed", text="Only the owner may change an admin's affiliation")
        outcasts = room.outcasts()
        push, pull, extensions = {}, {}, None
        if affiliation in ("member", "admin") and dialog.type == DIALOG_GROUP:
            push["occupants_ids"] = [targetId]
        if affiliation == "admin":
            push["admins_ids"] = [targetId]
        elif current == "admin":
            pull["admins_ids"] = [targetId]
        if affiliation in ("none", "outcast") and targetId in dialog.occupantIds:
            pull["occupants_ids"] = [targetId]
        if affiliation == "outcast" or current == "outcast":
            if not room.named:
                raise StanzaError("not-allowed", text=(
                    "A dialog room has no ban list: set the affiliation to none to remove a user"))
            rules.require(dialog, actorId, rules.MANAGE)
            outcasts = outcasts | {targetId} if affiliation == "outcast" else outcasts - {targetId}
            extensions = dict(dialog.extensions or {}, **{EXT_OUTCASTS: ",".join(map(str, sorted(outcasts)))})
        added = removed = []
        try:
            if push or pull:
                dialog, added, removed = yield self.dialogService().update(dialog, actorId, push, pull, {})
            elif affiliation == "member":
                raise StanzaError("not-allowed", text="This dialog has subscribers, not members: "
                                  "any user may join it")
        except Forbidden as e:
            raise StanzaError("forbidden", text=e.text) from None
        except DialogError as e:
            raise StanzaError("not-allowed", text=e.text) from None
        if extensions is not None:
            dialog = yield self.storage.dialogs.updateDialog(dialog.id, extensions=extensions)
        # only an occupant is kicked with a reason; it travels with the event, nothing keeps it
        reasons = {targetId: reason} if reason and room.occupantOf(targetId) is not None else None
        self.host.hooks.fire("rest-dialog-updated",
                             DialogEvent(dialog, actorId, event.appId, added, removed, reasons=reasons))

    def setRole(self, room, actorId: int, targetId: int, role: str, reason) -> None:
        """
        §8.2 (kick: role C{none}), §8.3 and §8.4 (voice): a moderator's
        change of a lower-ranked occupant's role.
        """
        if role not in ROLES:
            raise StanzaError("bad-request", text=f"Unknown role {role}")
        if room.role(actorId) != "moderator":
            raise StanzaError("forbidden", text="Only moderators may change roles")
        occupant = room.occupantOf(targetId)
        if occupant is None:
            raise StanzaError("item-not-found", text="That user is not in the room")
        if role == "moderator":
            raise StanzaError("not-allowed", text="Moderators are the owner and admins: make the user an admin")
        if RANK[room.affiliation(targetId)] >= 2:
            raise StanzaError("not-allowed", text="Owners and admins cannot be kicked or silenced")
        if role == "none":
            self.kick(room, occupant, None, actorId, (307,), reason)
            self.maybeClose(room)
            return
        room.voice[targetId] = role == "participant"
        self.broadcastPresence(room, occupant)
        for session in occupant.sessions:
            self.sendSelfPresence(room, occupant, session, None, ())

    # -- destroy (§10.9) ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def onDestroy(self, event, destroy):
        """
        The owner destroys the room: its dialog is deleted (REST's
        C{force=1} rule: the owner only), every occupant gets the
        C{<destroy/>} presence with the alternate venue and reason.
        """
        session = self.requireSession(event)
        room = yield self.roomOf(event)
        self.destroying[room.dialog.id] = (reasonOf(destroy), destroy.getAttribute("jid"))
        try:
            yield self.dialogService().remove(session.account.id, room.dialog, event.appId)
        except Forbidden:
            raise StanzaError("forbidden", text="Only the room's owner may destroy it") from None
        finally:
            self.destroying.pop(room.dialog.id, None)
        if room.named:
            self.named.pop(room.named, None)
        return self.reply(event)

    # -- messages: subject (§8.1), visitors (§7.4) --------------------------------------------

    @hook("muc-message/room", priority=20)
    def onModeratedMessage(self, event):
        """
        A subject change (a C{<subject/>} without a body) by a moderator
        (any participant when C{muc#roomconfig_changesubject}) becomes the
        dialog's description, sent to every occupant; a visitor's message
        is refused (C{forbidden}); in a room made the XMPP way a
        non-occupant's message is C{not-acceptable} (§7.4; issue 16 review
        finding 1: it would show under a nick someone else may hold).
        """
        room = self.rooms.get(event.room)
        session = event.origin
        if session is None or session.account is None or event.stanzaType != "groupchat":
            return None
        occupant = room.occupantOf(session.account.id) if room is not None else None
        # by full JID: in cluster mode a remote sender's session object may be a new proxy
        if event.named is not None and (occupant is None or all(s.full != session.full for s in occupant.sessions)):
            raise StanzaError("not-acceptable", text="Only occupants may send messages to this room")
        if room is None or room.dialog is None:
            return None
        role = room.role(session.account.id)
        stanza = event.stanza
        if stanza.subject is not None and stanza.body is None:
            if occupant is None or not (role == "moderator" or (
                    role == "participant" and room.setting(EXT_SUBJECT) == "1")):
                raise StanzaError("forbidden", text="You may not change the subject of this room")
            return self.changeSubject(room, occupant, str(stanza.subject), event.appId)
        if role == "visitor" and stanza.body is not None:
            raise StanzaError("forbidden", text="Visitors may not speak in a moderated room")
        return None

    @defer.inlineCallbacks
    def changeSubject(self, room, occupant, subject: str, appId: int):
        subject = subject.strip()[:4 * self.mucConfig.max_room_name] or None
        dialog = yield self.storage.dialogs.updateDialog(room.dialog.id, description=subject)
        room.dialog = dialog
        self.host.hooks.fire("rest-dialog-updated", DialogEvent(dialog, occupant.userId, appId, [], []))
        message = domish.Element((NS_CLIENT, "message"))
        message["from"], message["type"] = f"{room.jid}/{occupant.nick}", "groupchat"
        message.addElement("subject", content=subject or "")
        privacy = self.host.modules.get("privacy")
        for other in list(room.occupants.values()):
            if privacy is not None and other is not occupant and privacy.blocks(other.bare, occupant.bare, "message"):
                continue  # XEP-0016/XEP-0191: nothing from a blocked occupant
            for session in other.sessions:
                self.sendCopy(session, message)
        return True

    @hook("muc-message/occupant")
    def onPrivateMessage(self, event):
        """
        §7.5: a C{chat} (or C{normal}) message to C{room/nick} from an
        occupant goes to the sessions of the occupant with that nick, from
        the sender's occupant JID, with an empty C{muc#user} C{<x/>}
        (§7.5.1); C{not-acceptable} from a non-occupant, C{item-not-found}
        for a nick nobody has; nothing to a recipient who blocks the sender.
        The sender's typing and read-receipt settings hold as for direct
        messages, and a client's own XEP-0359 C{<stanza-id/>} is not relayed
        (security review finding 5).
        """
        session = event.origin
        if session is None or session.account is None or event.stanzaType not in ("chat", "normal"):
            return None
        room = self.rooms.get(event.room)
        sender = room.occupantOf(session.account.id) if room is not None else None
        if sender is None or session not in sender.sessions:
            raise StanzaError("not-acceptable", text="Only occupants may send private messages")
        target = room.occupants.get(event.to.resource)
        if target is None:
            raise StanzaError("item-not-found", text="Nobody in the room has that nick")
        privacy = self.host.modules.get("privacy")
        if privacy is not None and privacy.blocks(target.bare, sender.bare, "message"):
            return True
        message = domish.Element((NS_CLIENT, "message"))
        message.attributes = dict(event.stanza.attributes)
        message["from"] = f"{room.jid}/{sender.nick}"
        message.children = [c for c in event.stanza.children if not relayedAway(c)]
        if hideTyping(session, message) or hideReadMarker(session, message):
            return True  # only what the sender's privacy settings keep to himself
        message.addElement((NS_MUC_USER, "x"))
        for other in target.sessions:
            self.sendCopy(other, message)
        return True

    # -- XEP-0410 -----------------------------------------------------------------------------

    @hook(f"muc-iq-get/occupant/{NS_PING}:ping")
    def onSelfPing(self, event):
        """
        XEP-0410 §3: a ping to one's own occupant JID is answered by the
        service with a result; C{not-acceptable} when the session is not
        in the room, C{item-not-found} for a nick nobody has (as Prosody);
        pings to other occupants are not relayed (C{feature-not-implemented},
        which tells a self-pinging client it is still joined).
        """
        session = self.requireSession(event)
        room = self.rooms.get(event.room)
        mine = room.occupantOf(session.account.id) if room is not None and session.account else None
        if mine is None or session not in mine.sessions:
            raise StanzaError("not-acceptable", text="You are not in this room")
        target = room.occupants.get(event.to.resource)
        if target is None:
            raise StanzaError("item-not-found", text="Nobody in the room has that nick")
        if target is not mine:
            raise StanzaError("feature-not-implemented", text="Pings are not relayed to occupants")
        return self.reply(event)


__all__ = ["AdminMixin", "NS_MUC_ADMIN", "NS_SELF_PING"]
