"""
The operations of the ConnectyCube dialog domain shared by the REST API
and the XMPP modules (issue 17): create a dialog, find-or-create a private
dialog (one race handling), leave or delete one, the message limits both sides check, and the checked changes
of a stored message (edit, delete for everyone) and marks.

Methods return Deferreds (the REST API awaits them) and raise the errors
of L{xmppchat.dialogs.errors}, which each side maps to its own error
(HTTP status, stanza error).  Nothing here sends stanzas or writes HTTP:
changes made over REST are announced by the REST layer with the events of
L{xmppchat.dialogs.events}, and the XMPP adapter
(L{xmppchat.modules.dialogs}) turns them into the stanzas the SDK expects.
"""

from __future__ import annotations

import json

from twisted.internet import defer

from xmppchat.dialogs import rules
from xmppchat.dialogs.errors import Conflict, Forbidden, Invalid, NotAcceptable, NotFound, TooMany
from xmppchat.dialogs.events import DialogEvent
from xmppchat.quotas import quotaLimit
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_GROUP,
    DIALOG_PRIVATE,
    DIALOG_PUBLIC,
    AlreadyExists,
    Query,
    isObjectId,
)

# Message limits, one set for REST (POST/PUT /chat/Message) and XMPP
# (stored dialog messages and their corrections): issue 17, item 2.
MAX_BODY = 65536
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 4096
MAX_CUSTOM = 30
MAX_CUSTOM_BYTES = 4096
# dialogs: admins (the owner names them) and occupants
MAX_ADMINS = 5
MAX_OCCUPANTS = 1000
# reactions (XEP-0444 and REST PUT .../reactions.json): per message and user
MAX_REACTIONS = 20
MAX_EMOJI = 16
# shared dialogs looked at for consent to presence and last activity
CONSENT_DIALOGS = 100


def _size(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def checkMessage(body: str | None, attachments=None, custom=None) -> None:
    """
    Raise L{Invalid} (naming the field) when a message's body, attachments
    or custom fields (C{extraParams} / REST extension keys) are over the
    limits.
    """
    if body is not None and len(body) > MAX_BODY:
        raise Invalid(f"is too long (maximum is {MAX_BODY} characters)", "message")
    attachments = attachments or []
    if len(attachments) > MAX_ATTACHMENTS:
        raise Invalid(f"at most {MAX_ATTACHMENTS}", "attachments")
    if any(_size(item) > MAX_ATTACHMENT_BYTES for item in attachments):
        raise Invalid(f"an attachment is at most {MAX_ATTACHMENT_BYTES} bytes", "attachments")
    custom = custom or {}
    if len(custom) > MAX_CUSTOM or _size(custom) > MAX_CUSTOM_BYTES:
        raise Invalid(f"custom fields: at most {MAX_CUSTOM} keys, {MAX_CUSTOM_BYTES} bytes", "base")


class DialogService:
    """
    The dialog operations over one storage (L{xmppchat.storage}) and the
    per-user quotas (L{xmppchat.quotas}).

    @ivar fire: C{fire(hook, event)} announcing the dialogs created, left
        and deleted (C{rest-dialog-updated}, a L{DialogEvent}), or C{None}
        to announce nothing.
    """

    def __init__(self, storage, quotas, fire=None):
        self.storage = storage
        self.quotas = quotas
        self.fire = fire

    def _announce(self, event: DialogEvent) -> None:
        if self.fire is not None:
            self.fire("rest-dialog-updated", event)

    def _announceCreated(self, dialog, userId: int, appId: int | None) -> None:
        self._announce(DialogEvent(dialog, userId, appId, list(dialog.occupantIds), [], created=True))

    @defer.inlineCallbacks
    def getDialog(self, dialogId):
        dialog = None
        if isObjectId(dialogId):
            dialog = yield self.storage.dialogs.getDialog(dialogId.lower())
        if dialog is None:
            raise NotFound(f"No dialog {str(dialogId)[:64]}")
        return dialog

    @defer.inlineCallbacks
    def privateDialog(self, userId: int, peerId: int, create: bool = True, **fields):
        """
        C{(dialog, created)}: the private dialog of the pair, created (by
        C{userId}, within his C{dialogs_per_user} quota) when there is none
        and C{create} (with C{fields}: name, photo, extensions...);
        C{(None, False)} otherwise.  Two racing creations
        end with the one dialog the store kept (the loser's C{AlreadyExists}
        is answered by reading it).
        """
        dialogs = self.storage.dialogs
        dialog = yield dialogs.findPrivateDialog(userId, peerId)
        if dialog is not None or not create or userId == peerId:
            return dialog, False
        try:
            dialog = yield dialogs.createDialog(
                DIALOG_PRIVATE, userId, occupantIds=[peerId],
                limit=quotaLimit(self.quotas.dialogs_per_user), **fields)
        except AlreadyExists:
            dialog = yield dialogs.findPrivateDialog(userId, peerId)
            return dialog, False
        return dialog, True

    @defer.inlineCallbacks
    def namedPrivateDialog(self, dialogId, senderId: int, recipientId: int):
        """
        The private dialog C{dialog_id} names for a 1-1 message: it must be
        private (L{NotAcceptable}: group dialogs take messages at their
        room) and hold the sender (L{Forbidden}) and the recipient
        (L{NotAcceptable}).
        """
        dialog = yield self.getDialog(dialogId)
        if dialog.type != DIALOG_PRIVATE:
            raise NotAcceptable(f"Dialog {dialogId} is not a private dialog: "
                                "send groupchat messages to its room JID")
        if senderId not in dialog.occupantIds:
            raise Forbidden(f"You are not an occupant of dialog {dialogId}")
        if recipientId not in dialog.occupantIds:
            raise NotAcceptable(f"The recipient is not an occupant of dialog {dialogId}")
        return dialog

    @staticmethod
    def otherOccupant(dialog, userId: int) -> int | None:
        """
        The recipient of C{userId}'s messages in a private dialog (its
        other occupant); C{None} in other dialogs.
        """
        if dialog.type != DIALOG_PRIVATE:
            return None
        return next((o for o in dialog.occupantIds if o != userId), None)

    @defer.inlineCallbacks
    def recipientIds(self, dialog):
        """
        Who gets a dialog's messages: the occupants (and owner), plus the
        subscribers of a public dialog.
        """
        ids = set(dialog.occupantIds)
        if dialog.type != DIALOG_PUBLIC:
            ids.add(dialog.ownerId)
        else:
            subscribers = yield self.storage.dialogs.listSubscribers(dialog.id)
            ids.update(subscribers)
        return sorted(ids)

    @defer.inlineCallbacks
    def post(self, dialog, senderId: int, body: str | None, attachments=None, custom=None,
             messageId: str | None = None, dateSent: int | None = None,
             recipientId: int | None = None, stanza: str | None = None):
        """
        Store a new dialog message (which also updates the dialog's last
        message and the unread counts) within the message limits and the
        sender's daily quota (C{QuotaExceeded}, issue 15 finding 15).  A
        re-sent message (same id, sender and dialog) is not stored twice;
        an id taken by another message is a L{Conflict}.  The caller has
        checked L{rules.POST}.  C{stanza}: a stock client's message XML, kept
        verbatim (L{Message.stanza}).
        """
        checkMessage(body, attachments, custom)
        try:
            message = yield self.storage.messages.createMessage(
                dialog.id, senderId, body, dateSent=dateSent, messageId=messageId,
                recipientId=recipientId, attachments=attachments, custom=custom,
                dailyLimit=quotaLimit(self.quotas.messages_per_user_per_day), stanza=stanza)
        except AlreadyExists:
            message = yield self.storage.messages.getMessage(messageId) if messageId else None
            if message is None or message.senderId != senderId or message.dialogId != dialog.id:
                raise Conflict("This message id is already taken", "_id") from None
        return message

    @defer.inlineCallbacks
    def markUpTo(self, userId: int, kind: str, messageId: str | None):
        """
        A XEP-0333 marker: move the user's delivered (C{received}) or read
        (C{displayed}, C{acknowledged}) watermark up to the message, earlier
        messages following (XEP-0333 §4), when the user may read its
        dialog.  Fires with whether it moved.
        """
        if not isObjectId(messageId):
            return False
        messageId = messageId.lower()
        message = yield self.storage.messages.getMessage(messageId)
        if message is None:
            return False
        dialog = yield self.storage.dialogs.getDialog(message.dialogId)
        if dialog is None or not rules.canRead(dialog, userId):
            return False
        messages = self.storage.messages
        mark = messages.markDelivered if kind == "received" else messages.markRead
        moved = yield mark(dialog.id, userId, messageId)
        return moved

    @defer.inlineCallbacks
    def conversed(self, a: int, b: int):
        """
        Whether C{b} took part in a dialog with C{a}: both are in it and
        C{b} has written in it (issue 15 finding 9: opening a dialog with
        someone, or adding him to a group, grants nothing of his presence
        or last activity).  At most C{CONSENT_DIALOGS} shared dialogs are
        looked at.
        """
        ids = []
        private = yield self.storage.dialogs.findPrivateDialog(a, b)
        if private is not None:
            ids.append(private.id)
        shared = yield self.storage.dialogs.listDialogs(
            a, Query(limit=CONSENT_DIALOGS).where("occupants_ids", "eq", b))
        ids.extend(d.id for d in shared if rules.isMember(d, a) and rules.isMember(d, b))
        if not ids:
            return False
        sent = yield self.storage.messages.hasSent(b, ids)
        return sent

    @defer.inlineCallbacks
    def react(self, userId: int, message, dialog, added, removed):
        """
        Add and remove the user's reactions to a stored message (whoever
        may post in its dialog, L{rules.POST}); at most C{MAX_REACTIONS}
        distinct emoji per message and user afterwards (L{TooMany}).
        Fires with the message's reactions C{{emoji: [user ids]}}.
        """
        rules.require(dialog, userId, rules.POST)
        current = {e for e, ids in (message.reactions or {}).items() if userId in ids}
        if len((current | set(added)) - set(removed)) > MAX_REACTIONS:
            raise TooMany(f"At most {MAX_REACTIONS} reactions per message", "add")
        reactions = message.reactions
        store = self.storage.messages
        for emoji in sorted(added):
            reactions = yield store.react(message.id, userId, add=emoji)
        for emoji in sorted(removed):
            reactions = yield store.react(message.id, userId, remove=emoji)
        return reactions

    @defer.inlineCallbacks
    def checkUsers(self, ids, field: str):
        """
        L{Invalid} naming C{field} unless every id is an account.
        """
        if not ids:
            return
        found = yield self.storage.accounts.getAccounts(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise Invalid(f"unknown user ids: {', '.join(map(str, missing[:10]))}", field)

    @staticmethod
    def checkType(dialogType: int) -> None:
        """
        The types a user creates: 2 (group), 3 (private), 4 (public); a
        broadcast dialog is the server administrator's (L{Forbidden}).
        """
        if dialogType == DIALOG_BROADCAST:
            raise Forbidden("Broadcast dialogs are created by the server administrator")
        if dialogType not in (DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC):
            raise Invalid("must be 2 (group), 3 (private) or 4 (public)", "type")

    @defer.inlineCallbacks
    def create(self, userId: int, dialogType: int, occupants, admins, fields: dict,
               appId: int | None = None):
        """
        Create a dialog owned by C{userId} (L{checkType}) with C{occupants}
        (other users' ids), C{admins} and C{fields} (name, photo,
        extensions...), within his C{dialogs_per_user} quota.  A private
        dialog has exactly one other occupant and no admins, and is the
        pair's one (L{privateDialog}: an existing one is shown to the user
        again and returned); the others need a name; at most
        C{MAX_ADMINS} admins, occupants in a group, any user in a public
        dialog, which has subscribers instead of occupants.  Announces a
        new dialog (C{created}); fires with C{(dialog, created)}.
        """
        self.checkType(dialogType)
        yield self.checkUsers(occupants, "occupants_ids")
        if dialogType == DIALOG_PRIVATE:
            if len(occupants) != 1:
                raise Invalid("a private dialog has exactly one other occupant", "occupants_ids")
            if admins:
                raise Invalid("private dialogs have no admins", "admins_ids")
            dialog, created = yield self.privateDialog(userId, occupants[0], **fields)
            if not created:
                yield self.storage.dialogs.setHidden(dialog.id, userId, False)
                return dialog, False
            self._announceCreated(dialog, userId, appId)
            return dialog, True
        dialog = yield self._createNamed(dialogType, userId, occupants, admins, fields, appId,
                                         quotaLimit(self.quotas.dialogs_per_user))
        return dialog, True

    @defer.inlineCallbacks
    def createBroadcast(self, ownerId: int, occupants, admins, fields: dict,
                        appId: int | None = None):
        """
        A broadcast dialog (type 1) owned by C{ownerId}: the server
        administrator's act (ConnectyCube: broadcast dialogs "can be
        created only via Admin panel"; issue 19, the panel's Dialogs page,
        and C{python -m xmppchat.admin create-broadcast}), so outside the
        owner's C{dialogs_per_user} quota; otherwise the rules of
        L{create} (a name, at most C{MAX_ADMINS} admins, who may be any
        users).  Announced as a new dialog; fires with it.
        """
        yield self.checkUsers([ownerId], "owner")
        yield self.checkUsers(occupants, "occupants_ids")
        dialog = yield self._createNamed(DIALOG_BROADCAST, ownerId, occupants, admins, fields,
                                         appId, None)
        return dialog

    @defer.inlineCallbacks
    def _createNamed(self, dialogType: int, userId: int, occupants, admins, fields: dict,
                     appId: int | None, limit: int | None):
        """
        A group, public or broadcast dialog: named, at most C{MAX_ADMINS}
        admins (occupants of a group, any users otherwise), no occupants
        in a public one; announced.
        """
        if not fields.get("name"):
            raise Invalid("can't be blank", "name")
        if len(admins) > MAX_ADMINS:
            raise Invalid(f"at most {MAX_ADMINS} admins", "admins_ids")
        members = set(occupants) | {userId}
        if rules.adminsNeedOccupancy(dialogType):
            if any(a not in members for a in admins):
                raise Invalid("admins must be occupants", "admins_ids")
        else:
            yield self.checkUsers([a for a in admins if a != userId], "admins_ids")
        if dialogType == DIALOG_PUBLIC:
            occupants = []
        dialog = yield self.storage.dialogs.createDialog(
            dialogType, userId, occupantIds=occupants, adminIds=admins, limit=limit, **fields)
        self._announceCreated(dialog, userId, appId)
        return dialog

    @defer.inlineCallbacks
    def remove(self, userId: int, dialog, appId: int | None = None):
        """
        Delete a dialog for everyone (C{force=1}): its owner only
        (L{Forbidden}).  Announces it (C{deleted}).
        """
        if userId != dialog.ownerId:
            raise Forbidden("You cannot delete this dialog")
        yield self.storage.dialogs.deleteDialog(dialog.id)
        self._announce(DialogEvent(dialog, userId, appId, [], list(dialog.occupantIds),
                                   deleted=True))

    @defer.inlineCallbacks
    def leave(self, userId: int, dialog, appId: int | None = None):
        """
        Delete a dialog for the user only: unsubscribe from a public
        dialog and hide it, hide a broadcast dialog (until its next
        message), a private dialog or one the user owns; otherwise leave
        its occupants (and admins), which is announced.  L{Forbidden} when
        the user is not a member of a private or group dialog.
        """
        dialogs = self.storage.dialogs
        if dialog.type == DIALOG_PUBLIC:
            yield dialogs.unsubscribe(dialog.id, userId)
            yield dialogs.setHidden(dialog.id, userId, True)
            return
        if dialog.type == DIALOG_BROADCAST:  # every user's: hidden until its next message
            yield dialogs.setHidden(dialog.id, userId, True)
            return
        if not rules.isMember(dialog, userId):
            raise Forbidden("You are not an occupant of this dialog")
        if dialog.type == DIALOG_PRIVATE or userId == dialog.ownerId:
            yield dialogs.setHidden(dialog.id, userId, True)
            return
        updated = yield dialogs.updateDialog(dialog.id, pull={"occupants_ids": [userId],
                                                              "admins_ids": [userId]})
        self._announce(DialogEvent(updated, userId, appId, [], [userId]))

    @defer.inlineCallbacks
    def update(self, dialog, userId: int, push: dict, pull: dict, fields: dict):
        """
        Change a dialog: C{fields} (name, photo, ...) and pins by its
        managers (L{rules.MANAGE}), admins by its owner
        (L{rules.canSetAdmins}, at most C{MAX_ADMINS}; occupants in a group,
        any user in a public or broadcast dialog),
        occupants added by managers and removed by managers or by
        themselves (leaving; never the owner by others), never in private
        or public dialogs; removed occupants stop being admins.  Fires
        with C{(updated dialog, ids added, ids removed)}.
        """
        manager = rules.may(dialog, userId, rules.MANAGE)
        if fields and not manager:
            raise Forbidden(rules.REFUSALS[rules.MANAGE])
        if "pinned_messages_ids" in push or "pinned_messages_ids" in pull:
            if not manager:
                raise Forbidden("Only the owner and admins can pin messages")
        if ("admins_ids" in push or "admins_ids" in pull) and not rules.canSetAdmins(dialog, userId):
            if dialog.type not in rules.ADMIN_TYPES:
                raise Invalid("private dialogs have no admins", "admins_ids")
            raise Forbidden("Only the owner can change admins")
        added = push.get("occupants_ids", [])
        removed = pull.get("occupants_ids", [])
        if added or removed:
            if dialog.type == DIALOG_PRIVATE:
                raise Invalid("the occupants of a private dialog cannot change", "occupants_ids")
            if dialog.type == DIALOG_PUBLIC:
                raise Invalid("public dialogs have subscribers, not occupants", "occupants_ids")
            if added and not manager:
                raise Forbidden("Only the owner and admins can add occupants")
            if removed and not manager and removed != [userId]:
                raise Forbidden("Only the owner and admins can remove other occupants")
            if dialog.ownerId in removed and userId != dialog.ownerId:
                raise Forbidden("The owner cannot be removed")
            yield self.checkUsers(added, "occupants_ids")
        occupants = (set(dialog.occupantIds) | set(added)) - set(removed)
        if len(occupants) > MAX_OCCUPANTS:
            raise Invalid(f"at most {MAX_OCCUPANTS} occupants", "occupants_ids")
        newAdmins = (set(dialog.adminIds) | set(push.get("admins_ids", []))) - set(
            pull.get("admins_ids", []))
        if len(newAdmins) > MAX_ADMINS:
            raise Invalid(f"at most {MAX_ADMINS} admins", "admins_ids")
        pushedAdmins = [a for a in push.get("admins_ids", []) if a != dialog.ownerId]
        if not rules.adminsNeedOccupancy(dialog.type):  # public, broadcast: any user (issue 17 item 5)
            yield self.checkUsers(pushedAdmins, "admins_ids")
        elif any(a not in occupants for a in pushedAdmins):
            raise Invalid("admins must be occupants", "admins_ids")
        if removed:
            # Removed occupants stop being admins.
            pull = dict(pull, admins_ids=sorted(set(pull.get("admins_ids", [])) | set(removed)))
        updated = yield self.storage.dialogs.updateDialog(
            dialog.id, push=push or None, pull=pull or None, **fields)
        return (updated, [a for a in added if a not in dialog.occupantIds],
                [r for r in removed if r in dialog.occupantIds])

    @defer.inlineCallbacks
    def edit(self, userId: int, message, dialog, body: str | None, attachments=None):
        """
        Replace a stored message's body (and attachments when given): only
        its sender, while a participant (L{rules.EDIT}); within the message
        limits.  Fires with the edited message.
        """
        rules.require(dialog, userId, rules.EDIT, message.senderId)
        checkMessage(body, attachments)
        edited = yield self.storage.messages.editMessage(message.id, body=body,
                                                         attachments=attachments)
        return edited

    @defer.inlineCallbacks
    def removeForAll(self, userId: int, message, dialog):
        """
        Delete a stored message for everyone (L{rules.DELETE}).
        """
        rules.require(dialog, userId, rules.DELETE, message.senderId)
        yield self.storage.messages.deleteMessages([message.id])

    @defer.inlineCallbacks
    def mark(self, userId: int, dialog, messageId: str | None, read: bool, delivered: bool):
        """
        Move the user's read and/or delivered watermark up to C{messageId}
        (C{None}: the newest message) in C{dialog} (L{rules.MARK}); fires
        with whether one moved.
        """
        rules.require(dialog, userId, rules.MARK)
        messages = self.storage.messages
        moved = False
        if read:
            moved = (yield messages.markRead(dialog.id, userId, messageId)) or moved
        if delivered:
            moved = (yield messages.markDelivered(dialog.id, userId, messageId)) or moved
        return moved


__all__ = ["DialogService", "checkMessage", "MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES", "MAX_BODY",
           "MAX_CUSTOM", "MAX_CUSTOM_BYTES", "MAX_EMOJI", "MAX_REACTIONS", "MAX_ADMINS",
           "MAX_OCCUPANTS"]
