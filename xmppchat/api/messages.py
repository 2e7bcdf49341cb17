"""
REST messages (reference/connectycube-sdk.md §4.5, route C{chat/Message})
and global search (§4.6, C{/chat/search.json}): list, create, mark
read/delivered, edit, delete (for oneself or C{force=1} for everyone by the
sender), unread counts, reactions and system messages.

Delivery over XMPP is the chat layer's job: creating a message fires the
host hook C{rest-message-created} with a L{MessageEvent} (C{sendToChat}
is the request's C{send_to_chat=1}); marking read/delivered fires
C{rest-messages-marked}, reactions C{rest-message-reacted} and system
messages C{rest-system-message}.  Nothing is sent over XMPP from here.
"""

from __future__ import annotations

import calendar
import time
from twisted.logger import Logger
from twisted.web import http

from xmppchat.api.dialogs import dialogService, dialogsJSON, readableDialog
from xmppchat.api.json import (
    isoTime,
    INT_MAX,
    INT_MIN,
    PAGING,
    USER,
    JSONResource,
    QueryLimits,
    buildQuery,
    checkFieldNames,
    deleteSummary,
    fieldError,
    flagValue,
    notFound,
    requireDict,
    route,
    toInt,
)
from xmppchat.dialogs import rules
from xmppchat.dialogs.events import DialogEvent, EditEvent, MarkEvent, MessageEvent, RemoveEvent
from xmppchat.dialogs.rules import isMember, isParticipant
from xmppchat.dialogs.service import MAX_CUSTOM, MAX_EMOJI, DialogService, checkMessage
from xmppchat.privacysettings import readersHidingReads, visibleReaders
from xmppchat.storage.interfaces import Query, isObjectId, newObjectId

log = Logger()

MAX_IDS = 100
# The names unreadCount's dialog ids come under (issue 17 item 5).
UNREAD_ID_PARAMS = ("chat_dialog_ids", "dialogs_ids")
CORE_FIELDS = {"chat_dialog_id", "recipient_id", "message", "attachments", "send_to_chat",
               "_id", "date_sent", "sender_id"}
INT_FIELDS = ("sender_id", "recipient_id", "date_sent")
TIME_FIELDS = ("created_at", "updated_at")


def messageJSON(message, viewer: int, hiding=frozenset()) -> dict:
    """
    The SDK's C{Message}: stored custom fields first, then the core fields;
    the readers in C{hiding} (they hide their reads: issue 17 item 3) are
    left out of C{read_ids} and C{views_count}, except the viewer himself.
    """
    out = {k: v for k, v in (message.custom or {}).items() if k not in CORE_FIELDS}
    reactions = message.reactions or {}
    readers = visibleReaders(message.readIds, viewer, hiding)
    out.update({
        "_id": message.id,
        "chat_dialog_id": message.dialogId,
        "message": message.body,
        "date_sent": message.dateSent,
        "sender_id": message.senderId,
        "recipient_id": message.recipientId,
        "created_at": isoTime(message.createdAt),
        "updated_at": isoTime(message.updatedAt),
        "read_ids": readers,
        "delivered_ids": list(message.deliveredIds),
        "views_count": len(readers),
        "attachments": list(message.attachments or []),
        "read": int(viewer in message.readIds),
        "edited": bool(message.edited),
        "reactions": {
            "own": sorted(e for e, ids in reactions.items() if viewer in ids),
            "total": {e: len(ids) for e, ids in reactions.items()},
        },
    })
    return out


async def messagesJSON(ctx, messages, viewer: int) -> list[dict]:
    """
    L{messageJSON} of a page, with one account read for the readers who
    hide their reads.
    """
    hiding = await readersHidingReads(ctx.storage.accounts,
                                      {i for m in messages for i in m.readIds} - {viewer})
    return [messageJSON(m, viewer, hiding) for m in messages]


def _attachments(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise fieldError("attachments", "must be a list of objects")
    checkMessage(None, attachments=value)
    return value


def _custom(body: dict) -> dict:
    custom = {k: v for k, v in body.items() if k not in CORE_FIELDS}
    checkMessage(None, custom=custom)
    for key, value in custom.items():
        if isinstance(value, (dict, list)) and key != "extension":
            raise fieldError(key, "custom fields must be strings, numbers or booleans")
    return checkFieldNames(custom, "custom field")


def _body(body: dict):
    value = body.get("message")
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise fieldError("message", "must be a string")
    checkMessage(value)
    return value


def _ids(raw: str) -> list[str]:
    ids = [i.strip().lower() for i in raw.split(",") if i.strip()]
    if not ids or len(ids) > MAX_IDS:
        raise fieldError("ids", f"give 1 to {MAX_IDS} message ids", 400)
    return ids


def _seconds(value, name: str):
    """
    Unix seconds from a number or an ISO-8601 date (the SDK's search sends
    C{2023-11-14T22:13:20.000Z}).
    """
    if value is None or value == "":
        return None
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999
        pass
    else:
        if not INT_MIN <= seconds <= INT_MAX:
            raise fieldError(name, "is out of range", 400)
        return seconds
    if isinstance(value, str):
        text = value.strip().rstrip("Z").split(".")[0]
        try:
            return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            pass
    raise fieldError(name, "must be Unix seconds or an ISO-8601 date", 400)


async def removeForEveryone(storage, fire, messages: list, dialogs: dict, userId: int,
                            appId) -> None:
    """
    Delete C{messages} for everyone and tell the chat layer, one
    C{rest-messages-removed} (L{RemoveEvent}: the SDK's C{<remove/>} from
    C{userId} to the dialog's users, §5.8) per dialog of C{dialogs}: the
    REST C{force=1} delete and the admin API's (issue 19, Moderation).
    """
    await storage.messages.deleteMessages([m.id for m in messages])
    for dialogId in dict.fromkeys(m.dialogId for m in messages):
        fire("rest-messages-removed", RemoveEvent(
            [m.id for m in messages if m.dialogId == dialogId], dialogs[dialogId], userId, appId))


class MessagesResource(JSONResource):
    """
    C{/chat/Message...}.
    """

    @route("GET", auth=USER)
    async def list(self, call):
        viewer = call.account.id
        dialogId = call.params.string("chat_dialog_id")
        if not dialogId:
            raise fieldError("chat_dialog_id", "is required", 400)
        dialog = await readableDialog(self.ctx, dialogId, viewer)
        query = buildQuery(call.params, ints=INT_FIELDS, floats=TIME_FIELDS,
                           defaultLimit=self.ctx.config.max_page, maxLimit=self.ctx.config.max_page,
                           reserved=PAGING | {"chat_dialog_id"},
                           limits=QueryLimits.of(self.ctx.config))
        messages = self.ctx.storage.messages
        if call.params.flag("count"):
            total = await messages.countMessages(dialog.id, viewer, query)
            return {"items": {"count": total}}
        items = await messages.listMessages(dialog.id, viewer, query)
        if items and isParticipant(dialog, viewer) and call.params.flag("mark_as_read", True):
            newest = max(items, key=lambda m: m.order)
            if await messages.markRead(dialog.id, viewer, newest.id):
                self.ctx.fire("rest-messages-marked",
                              MarkEvent(dialog.id, viewer, newest.id, True, True))
            for m in items:
                if m.order <= newest.order and m.senderId != viewer:
                    if viewer not in m.readIds:
                        m.readIds = sorted(set(m.readIds) | {viewer})
                    if viewer not in m.deliveredIds:
                        m.deliveredIds = sorted(set(m.deliveredIds) | {viewer})
        return {"skip": query.skip, "limit": query.limit,
                "items": await messagesJSON(self.ctx, items, viewer)}

    @route("POST", auth=USER)
    async def create(self, call):
        viewer = call.account.id
        body = requireDict(call.body, "body")
        recipientId = None
        if body.get("chat_dialog_id") not in (None, ""):
            dialogId = body["chat_dialog_id"]
            if not isinstance(dialogId, str):
                raise fieldError("chat_dialog_id", "must be a dialog id")
            dialog = await readableDialog(self.ctx, dialogId, viewer)
        elif body.get("recipient_id") not in (None, ""):
            recipientId = toInt(body["recipient_id"], "recipient_id")
            if recipientId == viewer or await self.ctx.storage.accounts.getAccount(recipientId) is None:
                raise fieldError("recipient_id", "is not another user")
            dialog, created = await dialogService(self.ctx).privateDialog(viewer, recipientId)
            if created:
                self.ctx.fire("rest-dialog-updated", DialogEvent(
                    dialog, viewer, call.appId, list(dialog.occupantIds), [], created=True))
        else:
            raise fieldError("chat_dialog_id", "chat_dialog_id or recipient_id is required")
        rules.require(dialog, viewer, rules.POST)
        text = _body(body)
        attachments = _attachments(body.get("attachments"))
        if text is None and not attachments:
            raise fieldError("message", "a message needs a body or attachments")
        custom = _custom(body)
        if recipientId is None:
            recipientId = DialogService.otherOccupant(dialog, viewer)
        messageId = body.get("_id")
        if messageId is not None and not isObjectId(messageId):
            raise fieldError("_id", "must be 24 hex digits")
        message = await dialogService(self.ctx).post(
            dialog, viewer, text, attachments, custom, messageId.lower() if messageId else None,
            recipientId=recipientId)
        self.ctx.fire("rest-message-created", MessageEvent(
            message, dialog, call.appId, flagValue(body.get("send_to_chat"))))
        return http.CREATED, messageJSON(message, viewer)

    @route("PUT", auth=USER, text=True)
    async def markDialog(self, call):
        return await self._mark(call, None)

    @route("PUT", "{messageIds}", auth=USER, text=True)
    async def update(self, call, messageIds):
        return await self._mark(call, _ids(messageIds))

    async def _mark(self, call, ids):
        viewer = call.account.id
        body = requireDict(call.body, "body")
        extra = sorted(set(body) - {"chat_dialog_id", "read", "delivered", "message",
                                    "attachments", "last"})
        if extra:
            raise fieldError(extra[0], "unknown field")
        messages = self.ctx.storage.messages
        found = []
        if ids:
            for messageId in ids:
                message = await messages.getMessage(messageId, viewer) if isObjectId(messageId) else None
                if message is None:
                    raise notFound("Message")
                found.append(message)
        dialogId = body.get("chat_dialog_id") or (found[0].dialogId if found else None)
        if not isinstance(dialogId, str) or not dialogId:
            raise fieldError("chat_dialog_id", "is required")
        dialog = await readableDialog(self.ctx, dialogId, viewer)
        if any(m.dialogId != dialog.id for m in found):
            raise fieldError("chat_dialog_id", "the messages belong to another dialog")
        service = dialogService(self.ctx)
        if "message" in body or "attachments" in body:
            if len(found) != 1:
                raise fieldError("message", "edit one message at a time")
            text = _body(body)
            attachments = _attachments(body["attachments"]) if "attachments" in body else None
            original = found[0]
            edited = await service.edit(viewer, original, dialog, text, attachments)
            self.ctx.fire("rest-message-edited", EditEvent(
                edited or original, dialog, viewer, call.appId, dialog.lastMessageId == original.id))
            return None
        read, delivered = flagValue(body.get("read")), flagValue(body.get("delivered"))
        if not (read or delivered):
            raise fieldError("read", "give read=1, delivered=1 or a new message body")
        newest = max(found, key=lambda m: m.order).id if found else None
        await service.mark(viewer, dialog, newest, read, delivered)
        self.ctx.fire("rest-messages-marked", MarkEvent(dialog.id, viewer, newest, read,
                                                        read or delivered))
        return None

    @route("DELETE", "{messageIds}", auth=USER, text=True)
    async def delete(self, call, messageIds):
        viewer = call.account.id
        ids = _ids(messageIds)
        force = flagValue(requireDict(call.body, "body").get("force")) or call.params.flag("force")
        messages = self.ctx.storage.messages
        done, missing, refused = [], [], []
        dialogs = {}
        for messageId in ids:
            message = await messages.getMessage(messageId, viewer) if isObjectId(messageId) else None
            if message is None:
                missing.append(messageId)
                continue
            if message.dialogId not in dialogs:
                dialogs[message.dialogId] = await self.ctx.storage.dialogs.getDialog(message.dialogId)
            dialog = dialogs[message.dialogId]
            action = rules.DELETE if force else rules.MARK  # hiding from oneself: a participant
            if dialog is None or not rules.may(dialog, viewer, action, message.senderId):
                refused.append(messageId)
            else:
                done.append(message)
        if done:
            ids = [m.id for m in done]
            if force:
                await removeForEveryone(self.ctx.storage, self.ctx.fire, done, dialogs, viewer,
                                        call.appId)
            else:
                await messages.deleteForUser(ids, viewer)
        return deleteSummary([m.id for m in done], missing, refused)

    @route("GET", "unread", auth=USER)
    async def unread(self, call):
        """
        The caller's unread counts, of the dialogs named by
        C{chat_dialog_ids} (what the SDK's C{unreadCount} sends, §4.5) or
        C{dialogs_ids} (ConnectyCube's REST docs, issue 17 item 5), each
        comma-joined or repeated (C{name[]=}), or of all their dialogs.
        """
        viewer = call.account.id
        ids = None
        for name in UNREAD_ID_PARAMS:
            raw = call.params.get(name)
            if raw in (None, ""):
                continue
            items = raw if isinstance(raw, list) else [raw]
            ids = (ids or []) + [i.strip() for item in items for i in str(item).split(",") if i.strip()]
        if ids is not None:
            ids = list(dict.fromkeys(ids))[:MAX_IDS]
        counts = await self.ctx.storage.messages.unreadCounts(viewer, ids)
        if ids is not None:
            found = await self.ctx.storage.dialogs.getDialogs([i for i in ids if isObjectId(i)])
            counts = {i: (counts.get(i, 0) if i in found and isParticipant(found[i], viewer) else 0)
                      for i in ids}
        out = {"total": sum(counts.values())}
        out.update(counts)
        return out

    async def _readable(self, call, messageId):
        message = None
        if isObjectId(messageId):
            message = await self.ctx.storage.messages.getMessage(messageId.lower(), call.account.id)
        if message is None:
            raise notFound("Message")
        dialog = await readableDialog(self.ctx, message.dialogId, call.account.id)
        return message, dialog

    @route("GET", "{messageId}/reactions", auth=USER)
    async def reactions(self, call, messageId):
        message, _ = await self._readable(call, messageId)
        return {emoji: sorted(ids) for emoji, ids in (message.reactions or {}).items()}

    @route("PUT", "{messageId}/reactions", auth=USER, text=True)
    async def react(self, call, messageId):
        message, dialog = await self._readable(call, messageId)
        body = requireDict(call.body, "body")
        extra = sorted(set(body) - {"add", "remove"})
        if extra:
            raise fieldError(extra[0], "unknown field")
        values = {}
        for key in ("add", "remove"):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not 0 < len(value) <= MAX_EMOJI:
                raise fieldError(key, f"must be an emoji (1 to {MAX_EMOJI} characters)")
            values[key] = value
        if not values:
            raise fieldError("add", "give add and/or remove")
        added = {values["add"]} if "add" in values else set()
        removed = {values["remove"]} - added if "remove" in values else set()
        reactions = await dialogService(self.ctx).react(call.account.id, message, dialog, added, removed)
        self.ctx.fire("rest-message-reacted", (message, dialog, call.account.id, values, reactions))
        return None

    @route("POST", "system", auth=USER)
    async def system(self, call):
        body = requireDict(call.body, "body")
        recipient = body.get("recipientId", body.get("recipient_id"))
        recipientId = toInt(recipient, "recipientId")
        if await self.ctx.storage.accounts.getAccount(recipientId) is None:
            raise fieldError("recipientId", "unknown user")
        params = {k: v for k, v in body.items() if k not in ("recipientId", "recipient_id")}
        if len(params) > MAX_CUSTOM:
            raise fieldError("base", f"at most {MAX_CUSTOM} parameters")
        messageId = newObjectId(self.ctx.clock.seconds())
        self.ctx.fire("rest-system-message", (messageId, call.account.id, recipientId, params))
        return {"messageId": messageId, "recipientId": recipientId, "extensionParams": params}


class SearchResource(JSONResource):
    """
    C{/chat/search.json}: the caller's dialogs, messages and users matching
    C{search_text}.
    """

    @route("GET", auth=USER)
    async def search(self, call):
        viewer = call.account.id
        text = call.params.string("search_text")
        if not text or len(text.strip()) < 2:
            raise fieldError("search_text", "give at least 2 characters", 400)
        text = text.strip()[:200]
        limit = call.params.integer("limit", 20, 1, self.ctx.config.max_page)
        start = _seconds(call.params.string("start_date"), "start_date")
        end = _seconds(call.params.string("end_date"), "end_date")
        dialogs = self.ctx.storage.dialogs
        raw = call.params.string("chat_dialog_ids")
        if raw:
            ids = [i.strip() for i in raw.split(",") if isObjectId(i.strip())][:MAX_IDS]
            found = await dialogs.getDialogs(ids)
            mine = [found[i] for i in ids if i in found and isMember(found[i], viewer)]
        else:
            mine = await dialogs.listDialogs(viewer, Query(limit=1000))
        messages = await self.ctx.storage.messages.searchMessages(
            [d.id for d in mine], text, userId=viewer, dateFrom=start, dateTo=end, limit=limit)
        folded = text.casefold()
        named = [d for d in mine if d.name and folded in d.name.casefold()][:limit]
        from xmppchat.api.users import userJSON

        users = await self.ctx.storage.accounts.findAccounts(
            Query(limit=limit).where("full_name", "ctn", text))
        byLogin = await self.ctx.storage.accounts.findAccounts(
            Query(limit=limit).where("login", "ctn", text))
        seen = {}
        for account in users + byLogin:
            seen.setdefault(account.id, account)
        return {"results": {
            "dialogs": await dialogsJSON(self.ctx, named, viewer, call.appId),
            "messages": await messagesJSON(self.ctx, messages, viewer),
            "users": [userJSON(self.ctx, a, viewer) for a in list(seen.values())[:limit]],
        }}


__all__ = ["MessagesResource", "SearchResource", "messageJSON", "removeForEveryone"]
