"""
The admin API of the panel's Moderation page (issue 19): the users'
reports, stored as custom objects of the C{[moderation]} classes (the
ConnectyCube docs' recipe: C{UserReports} with C{reportedUserId} and
C{reason}, C{MessageReports} with C{reportedMessageId} and C{reason}),
each with what it reports; a reported message in its dialog; deleting a
message for everyone; blocking and unblocking an account.

    GET    reports?kind=user|message[&handled=0|1][&skip=&limit=]
                                      {"kind", "class", "declared", "total", "skip", "limit",
                                       "items": [report...]}, newest first
    PUT    reports/<ID>               {"handled": true|false} -> the report
    GET    messages/<ID>/context[?around=N]
                                      {"message", "dialog", "before": [message...], "after": [...]}
    DELETE messages/<ID>              {"deleted": id, "dialog": id}
    POST   users/<NAME>/block         {"reason"?} -> {"blocked": jid, "ended": [full JID...],
                                       "revoked": tokens, "unreachable": [node...]}
    POST   users/<NAME>/unblock       {"unblocked": jid}

A report is C{{"id", "class", "created", "reporter": user, "reason",
"handled", "fields": {its own fields}}} with C{"user": user} (kind
C{user}) or C{"message": message} (kind C{message}); a user C{{"id",
"name", "jid", "login", "fullName", "blocked"}} (C{"missing": true} when
no such account); a message C{{"id", "dialog", "text", "attachments",
"sender": user, "date"}} or C{{"id", "dialog", "deleted": true}}.

Deleting a message takes the REST API's C{force=1} path
(L{xmppchat.api.messages.removeForEveryone}): gone from every history
(REST, XEP-0313), and the SDK's C{<remove/>} reaches the dialog's online
users from the message's sender, as when he deletes it himself.

Blocking does what ejabberd's C{ban_account} does (kick the sessions, no
more logins), keeping the password: the flag on the account (both
storage backends), its REST session tokens deleted, its streams ended on
every node with C{<policy-violation/>} (the admin kick); from then on
SASL answers C{<account-disabled/>} and REST 403
(L{xmppchat.auth.revocation.BLOCKED}).  C{DELETE users/<NAME>} (deleting
the reported user) is the admin API's own route.
"""

from __future__ import annotations

from xmppchat.api.json import intOf
from xmppchat.api.messages import removeForEveryone
from xmppchat.auth.revocation import BLOCKED_TEXT
from xmppchat.ops.adminapi import MAX_REASON, ApiError
from xmppchat.storage.interfaces import Query, isObjectId
from xmppchat.usernames import serverAppId

KINDS = ("user", "message")
MAX_PAGE = 100
MAX_SKIP = 1_000_000
MAX_AROUND = 50
# messages read beyond the wanted ones when paging by creation time, for
# those created in the same instant (their order decides)
SLACK = 16


def install(api) -> None:
    """Register the Moderation routes on C{api} (an L{xmppchat.ops.adminapi.AdminAPI})."""
    moderation = Moderation(api)
    for method, pattern, handler in (
            ("GET", "reports", moderation.reports),
            ("PUT", "reports/*", moderation.markHandled),
            ("GET", "messages/*/context", moderation.context),
            ("DELETE", "messages/*", moderation.deleteMessage),
            ("POST", "users/*/block", moderation.block),
            ("POST", "users/*/unblock", moderation.unblock)):
        api.route(method, pattern, handler)


class Moderation:
    """
    The routes' handlers over one L{AdminAPI}; names and classes read from
    its live configuration (C{[moderation]}) at each request.
    """

    def __init__(self, api):
        self.api = api

    @property
    def settings(self):
        return self.api.config.moderation

    def classOf(self, kind: str) -> str:
        return self.settings.user_reports_class if kind == "user" else self.settings.message_reports_class

    # -- what reports point at ---------------------------------------------

    def userJSON(self, account, given=None) -> dict:
        if account is None:
            return {"id": given, "missing": True}
        return {"id": account.id, "name": account.localpart,
                "jid": f"{account.localpart}@{self.api.host.domain}", "login": account.login,
                "fullName": (account.profile or {}).get("full_name"), "blocked": account.blocked}

    async def accounts(self, ids) -> dict:
        wanted = {i for i in ids if isinstance(i, int)}
        return await self.api.storage.accounts.getAccounts(wanted) if wanted else {}

    def messageJSON(self, message, users: dict) -> dict:
        return {"id": message.id, "dialog": message.dialogId, "text": message.body,
                "attachments": len(message.attachments or []), "date": message.dateSent,
                "sender": self.userJSON(users.get(message.senderId), message.senderId)}

    @staticmethod
    def _userId(value):
        """
        A reported user's id as the app stored it (a number or a numeric
        string); C{None} for anything else, "²" or a number beyond 64
        bits included (review 19 B1: such a record made the page 500).
        """
        return intOf(value)

    async def reportsJSON(self, kind: str, records: list) -> list:
        settings = self.settings
        messages = {}
        if kind == "message":
            for record in records:
                messageId = record.fields.get(settings.reported_message_field)
                if isinstance(messageId, str) and isObjectId(messageId):
                    messages[messageId.lower()] = await self.api.storage.messages.getMessage(
                        messageId.lower())
        userIds = {r.userId for r in records} | {m.senderId for m in messages.values() if m}
        if kind == "user":
            userIds |= {self._userId(r.fields.get(settings.reported_user_field)) for r in records}
        users = await self.accounts(userIds)
        out = []
        for record in records:
            fields = record.fields
            report = {"id": record.id, "class": record.className, "created": record.createdAt,
                      "reporter": self.userJSON(users.get(record.userId), record.userId),
                      "reason": fields.get(settings.reason_field),
                      "handled": fields.get(settings.handled_field) is True, "fields": fields}
            if kind == "user":
                given = fields.get(settings.reported_user_field)
                report["user"] = self.userJSON(users.get(self._userId(given)), given)
            else:
                given = fields.get(settings.reported_message_field)
                message = messages.get(given.lower()) if isinstance(given, str) else None
                report["message"] = self.messageJSON(message, users) if message is not None else {
                    "id": given, "dialog": fields.get(settings.reported_dialog_field),
                    "deleted": True}
            out.append(report)
        return out

    # -- routes ----------------------------------------------------------------

    async def reports(self, request, body):
        api = self.api
        kind = api.arg(request, "kind", "user")
        if kind not in KINDS:
            raise ApiError(400, "kind must be \"user\" or \"message\"")
        cls = self.classOf(kind)
        query = Query(sort="created_at", descending=True,
                      skip=api.intArg(request, "skip", 0, 0, MAX_SKIP),
                      limit=api.intArg(request, "limit", 20, 1, MAX_PAGE))
        handled = api.arg(request, "handled")
        if handled not in (None, "", "0", "1"):
            raise ApiError(400, "handled must be 0 or 1")
        if handled:
            query.where(self.settings.handled_field, "eq" if handled == "1" else "ne", True)
        records = api.storage.records
        return {"kind": kind, "class": cls, "declared": cls in api.config.rest.data_classes,
                "total": await records.countRecords(cls, query), "skip": query.skip,
                "limit": query.limit,
                "items": await self.reportsJSON(kind, await records.listRecords(cls, query))}

    async def markHandled(self, request, body, reportId):
        handled = body.get("handled")
        if not isinstance(handled, bool):
            raise ApiError(400, "\"handled\" must be true or false")
        records = self.api.storage.records
        for kind in KINDS:
            cls = self.classOf(kind)
            record = await records.getRecord(cls, reportId.lower()) if isObjectId(reportId) else None
            if record is not None:
                break
        else:
            raise ApiError(404, f"No such report: {reportId}")
        field = self.settings.handled_field
        record = await records.updateRecord(cls, record.id, set={field: True} if handled else None,
                                            unset=() if handled else (field,))
        self.api.audit(request, "report-handled" if handled else "report-reopened", report=record.id,
                       cls=cls)
        return (await self.reportsJSON(kind, [record]))[0]

    async def message(self, messageId: str):
        message = None
        if isObjectId(messageId):
            message = await self.api.storage.messages.getMessage(messageId.lower())
        if message is None:
            raise ApiError(404, f"No such message: {messageId} (deleted?)")
        return message

    async def context(self, request, body, messageId):
        """
        The message with up to C{around} messages before and after it in
        its dialog ("jump to the message in context").
        """
        api = self.api
        around = api.intArg(request, "around", 5, 0, MAX_AROUND)
        message = await self.message(messageId)
        storage = api.storage
        dialog = await storage.dialogs.getDialog(message.dialogId)
        earlier = await storage.messages.listMessages(message.dialogId, None, Query(
            sort="created_at", descending=True, limit=around + SLACK).where(
            "created_at", "lte", message.createdAt))
        later = await storage.messages.listMessages(message.dialogId, None, Query(
            sort="created_at", limit=around + SLACK).where("created_at", "gte", message.createdAt))
        before = sorted((m for m in earlier if m.order < message.order), key=lambda m: m.order)
        after = sorted((m for m in later if m.order > message.order), key=lambda m: m.order)
        before, after = before[len(before) - around:] if around else [], after[:around]
        users = await self.accounts({m.senderId for m in [message, *before, *after]})
        return {"message": self.messageJSON(message, users),
                "dialog": {"id": message.dialogId, "type": dialog.type, "name": dialog.name,
                           "occupants": len(dialog.occupantIds)} if dialog is not None else None,
                "before": [self.messageJSON(m, users) for m in before],
                "after": [self.messageJSON(m, users) for m in after]}

    async def deleteMessage(self, request, body, messageId):
        api = self.api
        message = await self.message(messageId)
        dialog = await api.storage.dialogs.getDialog(message.dialogId)
        if dialog is None:
            await api.storage.messages.deleteMessages([message.id])  # nobody left to tell
        else:
            await removeForEveryone(api.storage, api.host.hooks.fire, [message],
                                    {dialog.id: dialog}, message.senderId, serverAppId(api.config))
        api.audit(request, "delete-message", message=message.id, dialog=message.dialogId,
                  sender=message.senderId)
        return {"deleted": message.id, "dialog": message.dialogId}

    async def block(self, request, body, name):
        api = self.api
        account = await api.account(name)
        reason = api.text(body, "reason", limit=MAX_REASON)
        jid = f"{account.localpart}@{api.host.domain}"
        await api.storage.accounts.updateAccount(account.id, blocked=True)
        revoked = await api.storage.tokens.deleteAccountTokens(account.id)
        results, unreachable = await api.agent.gather("kick", {"jid": jid, "reason": BLOCKED_TEXT})
        ended = [full for _, part in results for full in part]
        api.audit(request, "block-user", user=jid, ended=len(ended), reason=repr(reason or ""))
        return {"blocked": jid, "ended": ended, "revoked": len(revoked), "unreachable": unreachable}

    async def unblock(self, request, body, name):
        api = self.api
        account = await api.account(name)
        jid = f"{account.localpart}@{api.host.domain}"
        await api.storage.accounts.updateAccount(account.id, blocked=False)
        api.audit(request, "unblock-user", user=jid)
        return {"unblocked": jid}
