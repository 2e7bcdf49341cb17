"""
The admin API of the panel's Dialogs page (issue 19: "search and view any
dialog (type, occupants, admins, last message, message count), create
broadcast dialogs (name, owner, photo, admins), edit and delete dialogs").

    GET    dialogs?q=&type=&user=&<field>=&skip=&limit=  {"total", "skip", "limit", "items": [dialog],
                                                 "extension_fields": [name]}
    GET    dialogs/<ID>                          the dialog, its users, message count, last message
    POST   dialogs                               {"name", "owner", "photo"?, "description"?,
                                                 "admins_ids"?, "occupants_ids"?, "extensions"?}
                                                 -> 201 the new broadcast dialog (type 1)
    PUT    dialogs/<ID>                          {"name"?, "photo"?, "description"?, "extensions"?,
                                                 "admins_ids"?, "occupants_ids"?} -> the dialog
    DELETE dialogs/<ID>                          {"deleted": ID}   (for everyone)
    POST   dialogs/<ID>/messages                 {"message"} -> 201 {"id", "dialog_id", ...}

The list finds any dialog: C{q} is a dialog id or a substring of the name
(case-sensitive), C{type} 1 to 4, C{user} an account (id, login or name)
that owns or occupies it, and C{<field>=value} (or
C{extensions.<field>=value}) one of C{[dialogs] extension_fields}, read at
each request (the Chat settings page changes them at run time); newest
change first, at most L{MAX_PAGE} per page (C{q} and C{skip} bounded as on the
Users page).  C{PUT} takes the full new
lists of admins and occupants (the page's edit form) and extension values
(an empty or C{null} value removes one).

The administrator acts with the dialog owner's rights, through the dialog
domain's service (L{xmppchat.dialogs.service.DialogService}, the rules of
the REST API): a change the rules refuse even to the owner (occupants of a
private dialog, admins who are not occupants of a group...) is 409, bad
input 400.  A broadcast dialog is the server's act
(L{DialogService.createBroadcast}, ConnectyCube: "can be created only via
Admin panel").  Changes fire the host hooks a REST change fires
(C{rest-dialog-updated}, C{rest-message-created} with C{send_to_chat}), so
online clients learn of them as when the owner makes them over REST: a
message sent here is stored as the owner's and delivered over XMPP (to
every online user of the application for a broadcast dialog, SDK
reference §4.5 / §5.2).  Every change is audited (C{api.audit}).
"""

from __future__ import annotations

import functools

from xmppchat.api.dialogs import dialogFields, mergeExtensions
from xmppchat.api.json import ApiError as RestError
from xmppchat.api.json import idList, intOf, isoTime
from xmppchat.dialogs import rules
from xmppchat.dialogs.addressing import roomJID
from xmppchat.dialogs.errors import Conflict, DialogError, Forbidden, NotAcceptable
from xmppchat.dialogs.events import DialogEvent, MessageEvent
from xmppchat.dialogs.service import MAX_ADMINS, MAX_BODY, MAX_OCCUPANTS, DialogService
from xmppchat.ops.admin.users import MAX_SKIP, searchText
from xmppchat.ops.apierror import ApiError
from xmppchat.storage.interfaces import DIALOG_PUBLIC, DIALOG_TYPES, Query, QuotaExceeded, isObjectId
from xmppchat.usernames import serverAppId

MAX_PAGE = 100
# the users (owner, admins, first occupants) a dialog's view names
USERS_SHOWN = 100
LIST_PARAMS = ("q", "type", "user", "skip", "limit")
CREATE_FIELDS = {"name", "owner", "photo", "description", "admins_ids", "occupants_ids", "extensions"}
UPDATE_FIELDS = CREATE_FIELDS - {"owner"}
TYPE_NAMES = {1: "broadcast", 2: "group", 3: "private", 4: "public"}


def refusals(handler):
    """
    The dialog domain's and the REST validators' errors as the admin API's:
    bad input 400, what the dialog's rules refuse (even to its owner) 409,
    an unknown dialog 404, a daily quota 429.
    """
    @functools.wraps(handler)
    async def run(*args):
        try:
            return await handler(*args)
        except DialogError as e:
            status = 404 if e.status == 404 else 409 if isinstance(
                e, (Forbidden, Conflict, NotAcceptable)) else 400
            raise ApiError(status, f"{e.field}: {e.text}" if e.field else e.text) from None
        except RestError as e:
            text = "; ".join(f"{k}: {' '.join(map(str, v))}" if k != "base" else " ".join(map(str, v))
                             for k, v in e.errors.items()) if isinstance(e.errors, dict) else str(e.errors)
            raise ApiError(404 if e.status == 404 else 400, text) from None
        except QuotaExceeded as e:
            raise ApiError(429 if e.retryAfter is not None else 409, str(e)) from None

    return run


class DialogsAdmin:
    """
    The handlers, on the admin API's helpers (C{api}).
    """

    def __init__(self, api):
        self.api = api

    @property
    def service(self) -> DialogService:
        api = self.api
        return DialogService(api.storage, api.config.quotas, api.host.hooks.fire)

    @property
    def appId(self) -> int:
        return serverAppId(self.api.config)

    def extensionFields(self) -> list:
        return list(self.api.config.dialogs.extension_fields)

    async def dialog(self, dialogId: str):
        found = await self.api.storage.dialogs.getDialog(dialogId.lower()) if isObjectId(dialogId) else None
        if found is None:
            raise ApiError(404, f"No such dialog: {dialogId[:64]}")
        return found

    async def user(self, value, field: str):
        """
        The account C{value} names: an id, a login (REST users) or a
        user name (localpart or JID).
        """
        accounts, number = self.api.storage.accounts, intOf(value)  # review 19 B1: 64-bit, ASCII
        if isinstance(value, int) and not isinstance(value, bool):
            if number is None:
                raise ApiError(400, f'"{field}": no such user id (ids are 64-bit integers)')
            account = await accounts.getAccount(number)
        elif isinstance(value, str) and value.strip():
            value = value.strip()
            account = await accounts.getAccount(number) if number is not None else (
                await accounts.getAccountByLogin(value[:1024]))
            if account is None and number is None:
                account = await self.api.account(value)
        else:
            raise ApiError(400, f'"{field}" must be a user id, login or name')
        if account is None:
            raise ApiError(404, f"No such user: {value}")
        return account

    # -- JSON ------------------------------------------------------------------

    @staticmethod
    def summary(dialog) -> dict:
        last = None
        if dialog.lastMessageId is not None:
            last = {"id": dialog.lastMessageId, "text": dialog.lastMessage,
                    "sender_id": dialog.lastMessageUserId, "date_sent": dialog.lastMessageDateSent}
        return {
            "id": dialog.id, "type": dialog.type, "type_name": TYPE_NAMES.get(dialog.type),
            "name": dialog.name, "owner_id": dialog.ownerId,
            "occupants_count": len(dialog.occupantIds),
            # a MUC room's password is the room's secret (as in the REST API's dialogs)
            "extensions": {k: v for k, v in (dialog.extensions or {}).items() if k != "muc_password"},
            "created_at": isoTime(dialog.createdAt), "updated_at": isoTime(dialog.updatedAt),
            "last_message": last,
        }

    async def detail(self, dialog) -> dict:
        """
        L{summary} and the rest: photo, description, occupants, admins,
        permissions, the room JID, the message count, and the owner, admins
        and first L{USERS_SHOWN} occupants by id (login, name, JID).
        """
        storage, domain = self.api.storage, self.api.host.domain
        ids = list(dict.fromkeys([dialog.ownerId, *dialog.adminIds, *dialog.occupantIds]))[:USERS_SHOWN]
        if dialog.lastMessageUserId is not None:
            ids.append(dialog.lastMessageUserId)
        found = await storage.accounts.getAccounts(ids)
        out = self.summary(dialog)
        out.update({
            "photo": dialog.photo, "description": dialog.description,
            "occupants_ids": list(dialog.occupantIds), "admins_ids": list(dialog.adminIds),
            "permissions": dict(dialog.permissions or {}),
            "xmpp_room_jid": roomJID(self.appId, dialog.id, self.api.config.server.muc_domain),
            "messages_count": await storage.messages.countMessages(dialog.id),
            "users": {str(i): {"login": a.login, "name": (a.profile or {}).get("full_name"),
                               "jid": f"{a.localpart}@{domain}"} for i, a in found.items()},
            "extension_fields": self.extensionFields(),
        })
        if dialog.type == DIALOG_PUBLIC:
            out["subscribers_count"] = await storage.dialogs.countSubscribers(dialog.id)
        return out

    # -- handlers --------------------------------------------------------------

    @refusals
    async def search(self, request, body):
        api = self.api
        query = Query(sort="updated_at", descending=True,
                      skip=api.intArg(request, "skip", 0, 0, MAX_SKIP),
                      limit=api.intArg(request, "limit", 20, 1, MAX_PAGE))
        text = searchText(api, request)  # review 19 B5, B8: the Users page's bounds
        if isObjectId(text):
            query.where("_id", "eq", text.lower())
        elif text:
            query.where("name", "ctn", text)
        kind = api.arg(request, "type")
        if kind:
            if intOf(kind) not in DIALOG_TYPES:
                raise ApiError(400, '"type" must be 1 (broadcast), 2 (group), 3 (private) or 4 (public)')
            query.where("type", "eq", intOf(kind))
        user = api.arg(request, "user")
        if user:
            account = await self.user(user, "user")
            query.where("user_id", "or", [account.id]).where("occupants_ids", "or", [account.id])
        fields = self.extensionFields()
        for raw in request.args:
            name = raw.decode("utf-8", "replace")
            value = api.arg(request, name)
            if name in LIST_PARAMS or not value:
                continue
            field = name.removeprefix("extensions.")
            if field not in fields:
                raise ApiError(400, f"Unknown filter {name[:64]!r}: the extension fields are "
                                    f"{', '.join(fields) or 'none'} ([dialogs] extension_fields)")
            query.where(f"extensions.{field}", "eq", value)
        dialogs = api.storage.dialogs
        total = await dialogs.countDialogs(None, query)
        items = await dialogs.listDialogs(None, query)
        return {"total": total, "skip": query.skip, "limit": query.limit,
                "items": [self.summary(d) for d in items], "extension_fields": fields}

    @refusals
    async def show(self, request, body, dialogId):
        return await self.detail(await self.dialog(dialogId))

    def fields(self, body: dict, known: set, current: dict | None = None) -> dict:
        """
        The dialog fields of C{body} validated as the REST API validates
        them; an extension that is not configured is 400 here (REST
        ignores it); C{current}: the extensions the changes apply to.
        """
        unknown = sorted(set(body) - known)
        if unknown:
            raise ApiError(400, f"Unknown field {unknown[0][:64]!r} (known: {', '.join(sorted(known))})")
        configured = self.extensionFields()
        extensions = body.get("extensions")
        if isinstance(extensions, dict):
            other = sorted(set(extensions) - set(configured))
            if other:
                raise ApiError(400, f"{other[0][:64]!r} is not an extension field (configured: "
                                    f"{', '.join(configured) or 'none'})")
            body = dict(body, extensions={k: (v if v != "" else None) for k, v in extensions.items()})
        fields = dialogFields({k: v for k, v in body.items() if k not in ("admins_ids", "occupants_ids",
                                                                            "owner")}, configured)
        if "extensions" in fields:
            fields["extensions"] = mergeExtensions(current or {}, fields["extensions"])
        return fields

    @refusals
    async def create(self, request, body):
        fields = self.fields(body, CREATE_FIELDS)
        if "owner" not in body:
            raise ApiError(400, '"owner" (a user id, login or name) is required')
        owner = await self.user(body["owner"], "owner")
        admins = idList(body.get("admins_ids"), "admins_ids", MAX_ADMINS + 1)
        occupants = idList(body.get("occupants_ids"), "occupants_ids", MAX_OCCUPANTS)
        dialog = await self.service.createBroadcast(owner.id, occupants, admins, fields, self.appId)
        self.api.audit(request, "create-broadcast", dialog=dialog.id, owner=owner.id)
        return 201, await self.detail(dialog)

    @refusals
    async def update(self, request, body, dialogId):
        dialog = await self.dialog(dialogId)
        fields = self.fields(body, UPDATE_FIELDS, dialog.extensions)
        push, pull = {}, {}
        for key, current in (("occupants_ids", dialog.occupantIds), ("admins_ids", dialog.adminIds)):
            if key not in body:
                continue
            wanted = set(idList(body[key], key, MAX_OCCUPANTS))
            if key == "occupants_ids" and dialog.type != DIALOG_PUBLIC and dialog.ownerId not in wanted:
                raise ApiError(400, f"occupants_ids: the owner ({dialog.ownerId}) stays an occupant")
            if wanted - set(current):
                push[key] = sorted(wanted - set(current))
            if set(current) - wanted:
                pull[key] = sorted(set(current) - wanted)
        if not (fields or push or pull):
            raise ApiError(400, "Nothing to change")
        owner = dialog.ownerId
        updated, added, removed = await self.service.update(dialog, owner, push, pull, fields)
        self.api.host.hooks.fire("rest-dialog-updated",
                                 DialogEvent(updated, owner, self.appId, added, removed))
        self.api.audit(request, "edit-dialog", dialog=dialog.id, changed=",".join(sorted(body)))
        return await self.detail(updated)

    @refusals
    async def delete(self, request, body, dialogId):
        dialog = await self.dialog(dialogId)
        await self.service.remove(dialog.ownerId, dialog, self.appId)
        self.api.audit(request, "delete-dialog", dialog=dialog.id, owner=dialog.ownerId)
        return {"deleted": dialog.id}

    @refusals
    async def send(self, request, body, dialogId):
        """
        A message from the dialog's owner, as his C{POST chat/Message}
        with C{send_to_chat=1} makes it: stored (history, last message,
        unread counts, his daily quota) and delivered over XMPP.
        """
        dialog = await self.dialog(dialogId)
        unknown = sorted(set(body) - {"message"})
        if unknown:
            raise ApiError(400, f"Unknown field {unknown[0][:64]!r} (known: message)")
        text = self.api.text(body, "message", required=True, limit=MAX_BODY)
        owner, service = dialog.ownerId, self.service
        rules.require(dialog, owner, rules.POST)
        message = await service.post(dialog, owner, text,
                                     recipientId=service.otherOccupant(dialog, owner))
        self.api.host.hooks.fire("rest-message-created", MessageEvent(message, dialog, self.appId, True))
        self.api.audit(request, "send-dialog-message", dialog=dialog.id, message=message.id)
        return 201, {"id": message.id, "dialog_id": dialog.id, "sender_id": owner,
                     "date_sent": message.dateSent, "message": message.body}


def install(api) -> None:
    """
    The Dialogs page's routes (issue 19).
    """
    admin = DialogsAdmin(api)
    api.route("GET", "dialogs", admin.search)
    api.route("POST", "dialogs", admin.create)
    api.route("GET", "dialogs/*", admin.show)
    api.route("PUT", "dialogs/*", admin.update)
    api.route("DELETE", "dialogs/*", admin.delete)
    api.route("POST", "dialogs/*/messages", admin.send)
