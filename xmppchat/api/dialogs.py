"""
REST dialogs (reference/connectycube-sdk.md §4.4, route C{chat/Dialog}):
create, list with filters, update with C{push_all}/C{pull_all}, delete
(leave, or C{force=1} by the owner), admins, public subscriptions and
occupants, notification settings and clearing one's history.

Types follow the ConnectyCube REST docs: 1 broadcast (created only with
C{python -m xmppchat.admin create-broadcast}), 2 group, 3 private, 4
public.  Access (L{xmppchat.dialogs.rules}): a user sees and changes only
the dialogs they occupy; public and broadcast dialogs and dialogs with
C{permissions.allow_preview} are readable by every user, and every
broadcast dialog is in every user's list.  The owner and admins manage a
dialog; only the owner manages admins (group, public and broadcast
dialogs, at most L{MAX_ADMINS}; in a group they must be occupants).
Changes fire the host hook C{rest-dialog-updated} (a L{DialogEvent}) for
the chat layer.

Extensions (issue 17 item 5, the ConnectyCube seed): only the fields of
C{[dialogs] extension_fields} are stored, any other key is ignored
(neither stored nor an error); values are cast to strings, C{null}
removes a field, an update changes only the fields it names.  The list
filters and sorts on them as C{<field>=v}, C{<field>[op]=v} (or
C{extensions.<field>}), with the other fields' operators and bounds.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web import http

from xmppchat.api.json import (
    isoTime,
    USER,
    JSONResource,
    Params,
    QueryLimits,
    buildQuery,
    deleteSummary,
    fieldError,
    flagValue,
    forbidden,
    idList,
    notFound,
    optionalString,
    requireDict,
    route,
)
from xmppchat.dialogs.errors import Forbidden
from xmppchat.dialogs.events import DialogEvent
from xmppchat.dialogs.rules import (
    canRead,
    isManager,
    isMember,
    isParticipant,
    lastMessageStatus,
)
from xmppchat.dialogs.service import MAX_ADMINS, MAX_OCCUPANTS, DialogService
from xmppchat.privacysettings import readersHidingReads
from xmppchat.storage.interfaces import (
    DIALOG_LIST_FIELDS,
    DIALOG_PUBLIC,
    isObjectId,
)

log = Logger()

MAX_IDS_PER_DELETE = 100
MAX_EXTENSION_BYTES = 4096
CREATE_FIELDS = {"type", "occupants_ids", "admins_ids", "name", "photo", "description",
                 "extensions", "permissions"}
UPDATE_FIELDS = {"push_all", "pull_all", "name", "photo", "description", "extensions",
                 "permissions"}
INT_FIELDS = ("type", "user_id", "occupants_ids", "admins_ids", "last_message_user_id",
              "occupants_count")
TIME_FIELDS = ("created_at", "updated_at", "last_message_date_sent")


def roomJID(ctx, appId: int, dialogId: str) -> str:
    """
    The dialog's MUC room JID, as the SDK builds it (§5.2).
    """
    return f"{appId}_{dialogId}@{ctx.server.muc_domain}"


def dialogService(ctx) -> DialogService:
    """
    The dialog operations (L{xmppchat.dialogs.service}) over the REST
    context's storage and quotas, announcing their changes on its hooks.
    """
    return DialogService(ctx.storage, ctx.quotas, ctx.fire)


async def readableDialog(ctx, dialogId: str, userId: int):
    """
    The dialog if the user may read it; 404 if it does not exist, 403
    otherwise.
    """
    dialog = await ctx.storage.dialogs.getDialog(dialogId) if isObjectId(dialogId) else None
    if dialog is None:
        raise notFound("Dialog")
    if not canRead(dialog, userId):
        raise forbidden("You are not an occupant of this dialog")
    return dialog


async def dialogsJSON(ctx, dialogs, viewer: int, appId: int) -> list[dict]:
    """
    The SDK's C{Dialog} objects for C{dialogs}, with the viewer's unread
    counts and last-message status fetched once for the page.
    """
    if not dialogs:
        return []
    counts = await ctx.storage.messages.unreadCounts(viewer, [d.id for d in dialogs])
    sent = {}
    for dialog in dialogs:
        if dialog.lastMessageId and dialog.lastMessageUserId == viewer:
            sent[dialog.id] = await ctx.storage.messages.getMessage(dialog.lastMessageId)
    # only a "read" status can turn out hidden: look up just those readers
    readers = {o for d in dialogs if lastMessageStatus(d, sent.get(d.id), viewer, ()) == "read"
               for o in d.occupantIds if o != viewer}
    hiding = await readersHidingReads(ctx.storage.accounts, readers)
    out = []
    for dialog in dialogs:
        status = lastMessageStatus(dialog, sent.get(dialog.id), viewer, hiding)
        count = counts.get(dialog.id, 0) if isParticipant(dialog, viewer) else 0
        out.append(dialogJSON(ctx, dialog, appId, count, status))
    return out


def dialogJSON(ctx, dialog, appId: int, unread: int = 0, status=None) -> dict:
    return {
        "_id": dialog.id,
        "type": dialog.type,
        "name": dialog.name,
        "description": dialog.description,
        "photo": dialog.photo,
        "user_id": dialog.ownerId,
        "created_at": isoTime(dialog.createdAt),
        "updated_at": isoTime(dialog.updatedAt),
        "xmpp_room_jid": roomJID(ctx, appId, dialog.id),
        "occupants_ids": list(dialog.occupantIds),
        "occupants_count": len(dialog.occupantIds),
        "admins_ids": list(dialog.adminIds),
        "pinned_messages_ids": list(dialog.pinnedMessageIds),
        "last_message": dialog.lastMessage,
        "last_message_date_sent": dialog.lastMessageDateSent,
        "last_message_id": dialog.lastMessageId,
        "last_message_user_id": dialog.lastMessageUserId,
        "last_message_status": status,
        "unread_messages_count": unread,
        # a MUC room's password is the room's secret, not the dialog's (issue 16 item 5)
        "extensions": {k: v for k, v in (dialog.extensions or {}).items() if k != "muc_password"},
        "permissions": dict(dialog.permissions or {}),
    }


def _extensions(value, allowed) -> dict:
    """
    The configured fields (C{allowed}) of a request's C{extensions}, cast
    to strings (C{true}/C{false} for booleans), C{None} for a C{null}
    (remove it); any other key is ignored (issue 17 item 5).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fieldError("extensions", "must be an object")
    out = {}
    size = 0
    for key in allowed:
        if key not in value:
            continue
        item = value[key]
        if isinstance(item, (dict, list)):
            raise fieldError("extensions", f"{key} must be a string, number or boolean")
        text = None if item is None else (str(item).lower() if isinstance(item, bool) else str(item))
        size += len(key) + len((text or "").encode("utf-8"))
        out[key] = text
    if size > MAX_EXTENSION_BYTES:
        raise fieldError("extensions", f"too large (at most {MAX_EXTENSION_BYTES} bytes)")
    return out


def mergeExtensions(current: dict, changes: dict) -> dict:
    """
    C{current} with the fields of C{changes} set, or removed where C{None}.
    """
    merged = dict(current or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _permissions(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - {"allow_preview"}:
        raise fieldError("permissions", 'must be {"allow_preview": true|false}')
    if "allow_preview" not in value:
        return {}
    return {"allow_preview": flagValue(value["allow_preview"])}


def dialogFields(data: dict, extensionFields) -> dict:
    """
    The settable scalar fields present in C{data}, validated; the
    extensions (of C{extensionFields}, the configured ones) as changes
    (L{_extensions}).  Also the admin API's (issue 19, Dialogs page).
    """
    out = {}
    for name, maxLength in (("name", 200), ("photo", 1024), ("description", 1000)):
        if name in data:
            out[name] = optionalString(data, name, maxLength)
    if "extensions" in data:
        out["extensions"] = _extensions(data["extensions"], extensionFields)
    if "permissions" in data:
        out["permissions"] = _permissions(data["permissions"])
    return out


def _unknown(data: dict, known: set) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise fieldError(extra[0], f"unknown field (known: {', '.join(sorted(known))})")


class DialogsResource(JSONResource):
    """
    C{/chat/Dialog...}.
    """

    @route("POST", auth=USER)
    async def create(self, call):
        body = requireDict(call.body, "body")
        _unknown(body, CREATE_FIELDS)
        viewer = call.account.id
        try:
            dialogType = int(body.get("type"))
        except (TypeError, ValueError):
            raise fieldError("type", "is required: 2 (group), 3 (private) or 4 (public)") from None
        if isinstance(body.get("type"), bool) or isinstance(body.get("type"), float):
            raise fieldError("type", "must be an integer")
        service = dialogService(self.ctx)
        service.checkType(dialogType)
        occupants = [i for i in idList(body.get("occupants_ids"), "occupants_ids", MAX_OCCUPANTS)
                     if i != viewer]
        admins = idList(body.get("admins_ids"), "admins_ids", MAX_ADMINS + 1)
        fields = dialogFields(body, self.ctx.dialogs.extension_fields)
        if "extensions" in fields:
            fields["extensions"] = mergeExtensions({}, fields["extensions"])
        dialog, created = await service.create(viewer, dialogType, occupants, admins, fields,
                                               call.appId)
        return (http.CREATED if created else http.OK,
                (await dialogsJSON(self.ctx, [dialog], viewer, call.appId))[0])

    def _query(self, call):
        """
        The list's query: dialog fields, and the configured extension
        fields by name, as C{extensions.<name>} or C{extensions[<name>]};
        other extension keys are 422 (they are not stored).
        """
        names = {}
        for key in self.ctx.dialogs.extension_fields:
            names[key] = names[f"extensions.{key}"] = f"extensions.{key}"
        values = dict(call.params.values)
        nested = values.pop("extensions", None)
        if nested is not None:
            if not isinstance(nested, dict):
                raise fieldError("extensions", "filter as extensions[<field>]=value", 400)
            values.update((f"extensions.{key}", value) for key, value in nested.items())
        params = Params(values)
        for name in [*values, params.string("sort_asc"), params.string("sort_desc")]:
            if isinstance(name, str) and name.startswith("extensions.") and name not in names:
                configured = ", ".join(self.ctx.dialogs.extension_fields) or "none"
                raise fieldError(name[:64], f"is not a configured extension field ({configured})")
        return buildQuery(params, names, ints=INT_FIELDS, floats=TIME_FIELDS,
                          defaultLimit=self.ctx.config.max_page, maxLimit=self.ctx.config.max_page,
                          limits=QueryLimits.of(self.ctx.config))

    @route("GET", auth=USER)
    async def list(self, call):
        viewer = call.account.id
        query = self._query(call)
        if query.sort is None:
            query.sort, query.descending = "updated_at", True
        dialogs = self.ctx.storage.dialogs
        total = await dialogs.countDialogs(viewer, query)
        if call.params.flag("count"):
            return {"total_entries": total, "items": {"count": total}}
        items = await dialogs.listDialogs(viewer, query)
        return {"total_entries": total, "skip": query.skip, "limit": query.limit,
                "items": await dialogsJSON(self.ctx, items, viewer, call.appId)}

    @route("GET", "{dialogId}", auth=USER)
    async def show(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        return (await dialogsJSON(self.ctx, [dialog], call.account.id, call.appId))[0]

    async def _managed(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        if not (isMember(dialog, call.account.id) or isManager(dialog, call.account.id)):
            raise forbidden("You are not an occupant of this dialog")
        return dialog

    @route("PUT", "{dialogId}", auth=USER)
    async def update(self, call, dialogId):
        body = requireDict(call.body, "body")
        _unknown(body, UPDATE_FIELDS)
        return await self._update(call, dialogId, body)

    @route("PUT", "{dialogId}/admins", auth=USER)
    async def admins(self, call, dialogId):
        body = requireDict(call.body, "body")
        _unknown(body, {"push_all", "pull_all"})
        for key in ("push_all", "pull_all"):
            _unknown(requireDict(body.get(key), key), {"admins_ids"})
        return await self._update(call, dialogId, body)

    async def _update(self, call, dialogId, body):
        viewer = call.account.id
        dialog = await self._managed(call, dialogId)
        push, pull = {}, {}
        for key, target in (("push_all", push), ("pull_all", pull)):
            lists = requireDict(body.get(key), key)
            _unknown(lists, set(DIALOG_LIST_FIELDS))
            for name, value in lists.items():
                if name == "pinned_messages_ids":
                    ids = value if isinstance(value, list) else [value]
                    if not all(isObjectId(i) for i in ids):
                        raise fieldError(name, "must be message ids")
                    target[name] = [i.lower() for i in ids]
                else:
                    target[name] = idList(value, name, MAX_OCCUPANTS)
        fields = dialogFields(body, self.ctx.dialogs.extension_fields)
        if "extensions" in fields:
            fields["extensions"] = mergeExtensions(dialog.extensions, fields["extensions"])
        updated, added, removed = await dialogService(self.ctx).update(dialog, viewer, push, pull,
                                                                       fields)
        self.ctx.fire("rest-dialog-updated", DialogEvent(updated, viewer, call.appId, added, removed))
        return (await dialogsJSON(self.ctx, [updated], viewer, call.appId))[0]

    @route("DELETE", "{dialogIds}", auth=USER, text=True)
    async def delete(self, call, dialogIds):
        viewer = call.account.id
        ids = [i.strip() for i in dialogIds.split(",") if i.strip()]
        if not ids or len(ids) > MAX_IDS_PER_DELETE:
            raise fieldError("ids", f"give 1 to {MAX_IDS_PER_DELETE} dialog ids", 400)
        force = flagValue(requireDict(call.body, "body").get("force")) or call.params.flag("force")
        valid = [i for i in ids if isObjectId(i)]
        found = await self.ctx.storage.dialogs.getDialogs(valid) if valid else {}
        service = dialogService(self.ctx)
        done, missing, refused = [], [], []
        for dialogId in ids:
            dialog = found.get(dialogId)
            if dialog is None:
                if len(ids) == 1:
                    raise notFound("Dialog")
                missing.append(dialogId)
                continue
            try:
                if force:
                    await service.remove(viewer, dialog, call.appId)
                else:
                    await service.leave(viewer, dialog, call.appId)
            except Forbidden:
                if len(ids) == 1:
                    raise
                refused.append(dialogId)
                continue
            done.append(dialogId)
        if len(ids) == 1:
            return None
        return deleteSummary(done, missing, refused)

    @route("POST", "{dialogId}/subscribe", auth=USER)
    async def subscribe(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        if dialog.type != DIALOG_PUBLIC:
            raise forbidden("Only public dialogs can be subscribed to")
        await self.ctx.storage.dialogs.subscribe(dialog.id, call.account.id)
        await self.ctx.storage.dialogs.setHidden(dialog.id, call.account.id, False)
        return (await dialogsJSON(self.ctx, [dialog], call.account.id, call.appId))[0]

    @route("DELETE", "{dialogId}/subscribe", auth=USER, text=True)
    async def unsubscribe(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        if dialog.type != DIALOG_PUBLIC:
            raise forbidden("Only public dialogs can be unsubscribed from")
        await self.ctx.storage.dialogs.unsubscribe(dialog.id, call.account.id)
        return None

    @route("GET", "{dialogId}/occupants", auth=USER)
    async def occupants(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        limit = call.params.integer("limit", 10, 1, self.ctx.config.max_page)
        skip = call.params.integer("skip", 0, 0)
        if dialog.type == DIALOG_PUBLIC:
            ids = await self.ctx.storage.dialogs.listSubscribers(dialog.id, skip, limit)
            total = await self.ctx.storage.dialogs.countSubscribers(dialog.id)
        else:
            ids = dialog.occupantIds[skip:skip + limit]
            total = len(dialog.occupantIds)
        from xmppchat.api.users import userJSON

        found = await self.ctx.storage.accounts.getAccounts(ids)
        viewer = call.account.id
        return {"total_entries": total, "skip": skip, "limit": limit,
                "items": [userJSON(self.ctx, found[i], viewer) for i in ids if i in found]}

    @route("GET", "{dialogId}/notifications", auth=USER)
    async def getNotifications(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        enabled = await self.ctx.storage.dialogs.getNotifications(dialog.id, call.account.id)
        return {"notifications": {"enabled": int(bool(enabled))}}

    @route("PUT", "{dialogId}/notifications", auth=USER)
    async def setNotifications(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        body = requireDict(call.body, "body")
        _unknown(body, {"enabled"})
        if "enabled" not in body or body["enabled"] not in (0, 1, True, False, "0", "1"):
            raise fieldError("enabled", "must be 0 or 1")
        enabled = flagValue(body["enabled"])
        await self.ctx.storage.dialogs.setNotifications(dialog.id, call.account.id, enabled)
        return {"notifications": {"enabled": int(enabled)}}

    @route("DELETE", "clearHistory/{dialogId}", auth=USER, text=True)
    async def clearHistory(self, call, dialogId):
        dialog = await readableDialog(self.ctx, dialogId, call.account.id)
        await self.ctx.storage.messages.clearHistory(dialog.id, call.account.id)
        return None


__all__ = ["DialogsResource", "dialogFields", "dialogJSON", "dialogsJSON", "mergeExtensions",
           "roomJID", "readableDialog"]
