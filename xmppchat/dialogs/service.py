"""
The operations of the ConnectyCube dialog domain shared by the REST API
and the XMPP modules (issue 17): find-or-create a private dialog (one race
handling), the message limits both sides check, and the checked changes
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
from xmppchat.dialogs.errors import Invalid, NotAcceptable, NotFound
from xmppchat.quotas import quotaLimit
from xmppchat.storage.interfaces import DIALOG_PRIVATE, AlreadyExists, isObjectId

# Message limits, one set for REST (POST/PUT /chat/Message) and XMPP
# (stored dialog messages and their corrections): issue 17, item 2.
MAX_BODY = 65536
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 4096
MAX_CUSTOM = 30
MAX_CUSTOM_BYTES = 4096


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
    """

    def __init__(self, storage, quotas):
        self.storage = storage
        self.quotas = quotas

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
    def storedMessage(self, messageId, userId: int | None = None, dialog=None):
        """
        C{(message, dialog)} of a stored message (as C{userId} sees it);
        L{NotFound} when there is none, L{NotAcceptable} when C{dialog} is
        given and the message belongs to another.
        """
        message = None
        if isObjectId(messageId):
            message = yield self.storage.messages.getMessage(messageId.lower(), userId)
        if message is None:
            raise NotFound("Message not found")
        if dialog is not None and message.dialogId != dialog.id:
            raise NotAcceptable("That message belongs to another dialog", "chat_dialog_id")
        if dialog is None:
            dialog = yield self.getDialog(message.dialogId)
        return message, dialog

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
           "MAX_CUSTOM", "MAX_CUSTOM_BYTES"]
