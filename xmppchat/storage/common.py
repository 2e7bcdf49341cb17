"""
What both storage backends share: the field schemas that L{Query} field
names resolve against, argument checks, and the small pure helpers
(private-dialog keys, reaction sets, text folding) whose results must be
identical on every backend.  Nothing here talks to a database.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import time
from dataclasses import dataclass

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from xmppchat.storage.interfaces import (
    ACCOUNT_FIELDS,
    DIALOG_FIELDS,
    DIALOG_LIST_FIELDS,
    DIALOG_PRIVATE,
    DIALOG_PUBLIC,
    DIALOG_TYPES,
    ID_PLACEHOLDER,
    SUBSCRIPTIONS,
    InvalidQuery,
    QuotaExceeded,
    Storage,
    Query,
    StorageError,
    isObjectId,
)

# How long a query may run before the backend aborts it with QueryTimeout
# ([storage] query_timeout_ms; issue 15 finding 3).
QUERY_TIMEOUT_MS = 2000


def dumpJson(value) -> str | None:
    """
    Compact JSON text (C{None} stays C{None}), non-ASCII kept as is.
    """
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loadJson(text: str | None):
    return None if text is None else json.loads(text)


def _failsAsDeferred(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (TypeError, ValueError, StorageError):
            return defer.fail()

    return wrapper


class Store:
    """
    Base of every backend's store classes: the shared worker and clock,
    and argument errors as failed Deferreds.  Each public method of a
    subclass that raises C{TypeError}, C{ValueError} or L{StorageError}
    before returning (argument checks, L{InvalidQuery}) returns a failed
    Deferred instead, as the interfaces promise.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, _failsAsDeferred(value))

    def __init__(self, db, clock):
        self.db = db
        self._clock = clock

    def _now(self, now: float | None = None) -> float:
        return self._clock() if now is None else now


class AccountLookups:
    """
    The single-account lookups of L{IAccountStore}, on a backend's
    C{_getBy(field, value)} (C{field} one of L{ACCOUNT_QUERY_FIELDS}).
    """

    def getAccount(self, accountId):
        return self._getBy("id", accountId)

    def getAccountByLocalpart(self, localpart):
        return self._getBy("localpart", localpart)

    def getAccountByLogin(self, login):
        return self._getBy("login", login)

    def getAccountByEmail(self, email):
        return self._getBy("email", email)

    def getAccountByExternalId(self, externalId):
        return self._getBy("externalId", externalId)

    def setCredentials(self, accountId, credentials):
        d = self.updateAccount(accountId, credentials=credentials)
        d.addCallback(lambda _: None)
        return d


def byId(objects) -> dict:
    """
    C{{o.id: o}}.
    """
    return {o.id: o for o in objects}


def result(d):
    """
    The result of an already-fired Deferred (synchronous storage: tests, the
    admin command, export and import).
    """
    out = []
    failures = []
    d.addCallbacks(out.append, failures.append)
    if failures:
        failures[0].raiseException()
    if not out:
        raise RuntimeError("storage call did not complete synchronously")
    return out[0]


class WorkerStorage(Storage):
    """
    A L{Storage} whose stores share one L{Worker} (C{self.db}), started
    and stopped with it.  C{STORES} names each store attribute's class.
    """

    STORES: dict = {}

    def _attachStores(self, db, reactor) -> None:
        self.db = db
        clock = reactor.seconds if reactor is not None else time.time
        for name, storeClass in self.STORES.items():
            setattr(self, name, storeClass(db, clock))

    def start(self) -> defer.Deferred:
        return self.db.start()

    def stop(self) -> defer.Deferred:
        return self.db.stop()


class Worker:
    """
    How a backend's blocking calls run: inline (C{synchronous}: tests and
    the admin CLI get already-fired Deferreds), or on a bounded
    L{ThreadPool} started and stopped with the storage, through
    L{threads.deferToThreadPool} so the reactor never blocks.  The pool
    also stops at reactor shutdown.
    """

    def __init__(self, reactor, synchronous: bool, size: int, name: str):
        self.reactor = reactor
        self.synchronous = synchronous
        self.size = size
        self.name = name
        self.pool: ThreadPool | None = None
        self._shutdownTrigger = None

    def _call(self, f, *args) -> defer.Deferred:
        if self.synchronous:
            try:
                result = f(*args)
            except BaseException:
                return defer.fail()
            return defer.succeed(result)
        if self.pool is None:
            return defer.fail(StorageError("storage is not started"))
        return threads.deferToThreadPool(self.reactor, self.pool, f, *args)

    def start(self) -> defer.Deferred:
        """
        Start: run the subclass's C{_connect} (on the pool).
        """
        return self._startWith(self._connect)

    def stop(self) -> defer.Deferred:
        """
        Stop: run the subclass's C{_close}, then stop the pool.
        """
        return self._stopWith(self._close)

    def _startWith(self, connect) -> defer.Deferred:
        """
        Start the pool (unless synchronous) and run C{connect} on it; a
        failure stops the pool again.
        """
        if self.synchronous:
            return self._call(connect)
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        self.pool = ThreadPool(1, self.size, name=self.name)
        self.pool.start()
        self._shutdownTrigger = self.reactor.addSystemEventTrigger(
            "during", "shutdown", self._stopPool)
        d = self._call(connect)
        d.addErrback(self._startFailed)
        return d

    def _startFailed(self, failure):
        self._stopPool()
        return failure

    def _stopPool(self) -> None:
        if self._shutdownTrigger is not None:
            try:
                self.reactor.removeSystemEventTrigger(self._shutdownTrigger)
            except (ValueError, KeyError):
                pass
            self._shutdownTrigger = None
        if self.pool is not None:
            pool, self.pool = self.pool, None
            pool.stop()

    def _stopWith(self, close) -> defer.Deferred:
        """
        Run C{close} (on the pool), then stop the pool.
        """
        if not self.synchronous and self.pool is None:
            return defer.succeed(None)
        d = self._call(close)
        if not self.synchronous:
            d.addBoth(self._closed)
        return d

    def _closed(self, result):
        self._stopPool()
        return result

# A key of a JSON object that finders can address (profile keys, custom
# message fields, record fields, dialog extensions): letters, digits, "_"
# and "-", at most 64 characters.  MongoDB gives "." and a leading "$"
# meanings of their own, so such keys are refused on every backend.
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}\Z")
_SCALARS = (str, int, float, bool)


def checkKey(key, what: str = "field") -> None:
    """
    Raise C{ValueError} unless C{key} is a valid stored key (L{_KEY}).
    """
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"invalid {what} name {key!r}: use letters, digits, '_' or '-'")


def checkKeys(values: dict | None, what: str) -> dict:
    """
    C{values} (or C{{}}), checked with L{checkKey} at the top level.
    """
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be an object")
    for key in values:
        checkKey(key, what)
    return values


@dataclass(frozen=True)
class Resolved:
    """
    What a query field name designates.

    @ivar fixed: the name of a fixed field (a key of the schema's
        C{fixed}), or C{None} for a key inside the dynamic JSON object.
    @ivar key: the dynamic key when C{fixed} is C{None}.
    @ivar isList: the field holds a list of values.
    """

    fixed: str | None
    key: str | None
    isList: bool = False


@dataclass(frozen=True)
class Schema:
    """
    The query fields of one store.

    @ivar fixed: wire name -> whether it is a list field.
    @ivar dynamicPrefix: names starting with it address keys of the
        store's JSON object (C{""}: any other name does; C{None}: none).
    """

    name: str
    fixed: dict
    dynamicPrefix: str | None = ""

    def resolve(self, name: str) -> Resolved:
        if name in self.fixed:
            return Resolved(name, None, self.fixed[name])
        if self.dynamicPrefix is not None and name.startswith(self.dynamicPrefix):
            key = name[len(self.dynamicPrefix):]
            if _KEY.match(key):
                return Resolved(None, key)
        raise InvalidQuery(f"{self.name} cannot be queried by {name!r}")


ACCOUNT_SCHEMA = Schema("accounts", {
    "id": False, "localpart": False, "login": False, "email": False, "externalId": False,
    "created_at": False, "updated_at": False})
DIALOG_SCHEMA = Schema("dialogs", {
    "_id": False, "type": False, "name": False, "photo": False, "description": False,
    "user_id": False, "occupants_ids": True, "admins_ids": True, "pinned_messages_ids": True,
    "created_at": False, "updated_at": False, "last_message": False,
    "last_message_date_sent": False, "last_message_id": False, "last_message_user_id": False},
    dynamicPrefix="extensions.")
MESSAGE_SCHEMA = Schema("messages", {
    "_id": False, "chat_dialog_id": False, "sender_id": False, "recipient_id": False,
    "date_sent": False, "message": False, "created_at": False, "updated_at": False})
RECORD_SCHEMA = Schema("records", {
    "_id": False, "user_id": False, "_parent_id": False, "created_at": False,
    "updated_at": False})


def prepareQuery(query: Query | None, schema: Schema) -> tuple[Query, list, list]:
    """
    A validated query (an empty one for C{None}) and its filters resolved
    against C{schema}: C{(query, [(Resolved, op, value)], [the same for
    its anyOf])}.  Raises L{InvalidQuery} for unknown fields, list sorts,
    and values of the wrong kind (C{None} only with C{eq}/C{ne}; lists of
    scalars only).
    """
    if query is None:
        query = Query()
    if not isinstance(query, Query):
        raise InvalidQuery(f"not a Query: {query!r}")
    query.validate()
    if query.sort is not None and schema.resolve(query.sort).isList:
        raise InvalidQuery(f"cannot sort by the list field {query.sort!r}")
    return (query, [_resolve(schema, *f) for f in query.filters],
            [_resolve(schema, *f) for f in query.anyOf])


def _resolve(schema: Schema, name: str, op: str, value) -> tuple:
    field = schema.resolve(name)
    if op in ("in", "nin", "all") or (op == "or" and isinstance(value, (list, tuple, set,
                                                                         frozenset))):
        values = list(value)
        if not all(isinstance(v, _SCALARS) for v in values):
            raise InvalidQuery(f"{name}[{op}] needs a list of strings or numbers")
        value = values
    elif op == "or":
        if not isinstance(value, _SCALARS):
            raise InvalidQuery(f"{name}[or] needs strings or numbers")
        value = [value]
    elif value is None:
        if op not in ("eq", "ne"):
            raise InvalidQuery(f"{name}[{op}] cannot compare with null")
    elif not isinstance(value, _SCALARS):
        raise InvalidQuery(f"{name}[{op}] needs a string or a number")
    return field, op, value


def isNumber(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- accounts --------------------------------------------------------------------


def checkAccountArguments(localpart, accountId) -> None:
    """
    The checks of C{createAccount}: raise C{ValueError}/C{TypeError}.
    """
    if not isinstance(localpart, str) or not localpart:
        raise ValueError("localpart must be a non-empty string")
    if accountId is not None:
        checkId(accountId)
        if accountId < 1:
            raise ValueError("account id must be positive")


ANY_DIALOG = object()  # count the offline messages with any dialog id


def checkOfflineQuota(limit: int | None, shares, count) -> None:
    """
    Raise L{QuotaExceeded} (its text for the sender, XEP-0160 §3) when one
    more offline message would pass the user's C{limit} or a share of
    L{OfflineShares} (issue 15 finding 8).  C{count(field, value)} counts
    the user's stored messages: all (C{field} C{None}), from a sender
    (C{"sender"}), of a dialog (C{"dialog_id"}; C{ANY_DIALOG}: of any).
    """
    checks = [(limit, None, None, "The recipient's offline storage is full")]
    if shares is not None:
        if shares.sender is not None:
            checks.append((shares.perSender, "sender", shares.sender,
                           "The recipient's offline storage holds its share of messages from you"))
        if shares.dialogId is not None:
            checks.append((shares.perDialog, "dialog_id", shares.dialogId,
                           "The recipient's offline storage holds its share of this dialog"))
            checks.append((shares.dialogs, "dialog_id", ANY_DIALOG,
                           "The recipient's offline storage holds its share of dialog messages"))
    for cap, field, value, text in checks:
        if cap is not None and count(field, value) >= cap:
            raise QuotaExceeded(text)


def storeEach(entries, store) -> list[str]:
    """
    C{store(localpart, stanza)} for each of C{entries} (one backend write,
    L{IOfflineStore.storeOfflineMany}); the localparts whose quota refused.
    """
    refused = []
    for localpart, stanza in entries:
        try:
            store(localpart, stanza)
        except QuotaExceeded:
            refused.append(localpart)
    return refused


def bulkEntries(entries) -> list[tuple]:
    """
    C{createAccounts}' entries as a list, checked.
    """
    rows = []
    for localpart, credentials in entries:
        if not isinstance(localpart, str) or not localpart:
            raise ValueError(f"invalid localpart {localpart!r}")
        rows.append((localpart, credentials))
    return rows


def checkRosterItem(item) -> None:
    if item.subscription not in SUBSCRIPTIONS:
        raise ValueError(f"invalid subscription {item.subscription!r}")
    if item.ask not in (None, "subscribe"):
        raise ValueError(f"invalid ask {item.ask!r}")


def firstRosterVersion(now: float) -> int:
    """
    The version a user's roster gets at its first change (RFC 6121 §2.6):
    the time in milliseconds, not 1, so that an account deleted and created
    again never hands out a version a client cached for the old one.  Each
    later change adds one.
    """
    return max(1, int(now * 1000))


def fillLocalpart(localpart: str, accountId: int) -> str:
    """
    C{localpart} with every L{ID_PLACEHOLDER} replaced by the id.
    """
    return localpart.replace(ID_PLACEHOLDER, str(accountId))


def checkAccountFields(fields: dict) -> None:
    unknown = set(fields) - set(ACCOUNT_FIELDS)
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")


def checkId(value, what: str = "account id") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")


# -- dialogs ---------------------------------------------------------------------


def idList(values, what: str) -> list[int]:
    """
    Sorted distinct account ids; C{TypeError} for non-integers.
    """
    ids = set()
    for value in values or ():
        checkId(value, what)
        ids.add(value)
    return sorted(ids)


def privateKey(occupantIds) -> str:
    """
    The key that makes a private dialog unique per pair of accounts.
    """
    a, b = sorted(occupantIds)
    return f"{a}:{b}"


def newDialogValues(type, ownerId, occupantIds, adminIds, name, photo, description,
                    extensions, permissions, dialogId):
    """
    Check C{createDialog}'s arguments; fires nothing, returns
    C{(occupants, admins, extensions, permissions, privateKey or None)}.
    """
    if type not in DIALOG_TYPES or isinstance(type, bool):
        raise ValueError(f"unknown dialog type {type!r}")
    checkId(ownerId, "owner id")
    if dialogId is not None and not isObjectId(dialogId):
        raise ValueError(f"dialog id must be 24 hex digits, not {dialogId!r}")
    occupants = set(idList(occupantIds, "occupant id"))
    if type != DIALOG_PUBLIC:
        occupants.add(ownerId)
    occupants = sorted(occupants)
    admins = idList(adminIds, "admin id")
    for text, what in ((name, "name"), (photo, "photo"), (description, "description")):
        if text is not None and not isinstance(text, str):
            raise ValueError(f"dialog {what} must be a string")
    extensions = checkExtensions(extensions)
    permissions = checkPermissions(permissions)
    key = None
    if type == DIALOG_PRIVATE:
        if len(occupants) != 2:
            raise ValueError("a private dialog has exactly two occupants")
        key = privateKey(occupants)
    return occupants, admins, extensions, permissions, key


def checkExtensions(extensions) -> dict:
    extensions = checkKeys(extensions, "extension")
    for key, value in extensions.items():
        if not isinstance(value, str):
            raise ValueError(f"extension {key!r} must be a string")
    return dict(extensions)


# The setting that remembers the dialog extension keys of the last
# configureExtensions (both backends).
EXTENSIONS_SETTING = "dialog_extensions"


def extensionKeys(fields, keep) -> tuple[list, list]:
    """
    C{configureExtensions}' arguments checked: C{(fields, kept)}, sorted,
    C{kept} being the fields and the server's own keys together.
    """
    fields = sorted(set(fields))
    kept = sorted(set(fields) | set(keep))
    for key in kept:
        checkKey(key, "extension")
    return fields, kept


def writtenExtensions(given: dict, stored: dict | None, kept) -> dict:
    """
    The extensions a dialog update writes: C{given}'s keys that are kept
    (C{kept}: the fields and server keys of the last C{configureExtensions},
    C{None} before the first: all of C{given}), the others as stored now.
    A field removed, and stripped, after the caller read the dialog does
    not come back with the merged dict it writes (review 19 A6); keys from
    before the setting stay as they are.
    """
    if kept is None:
        return given
    kept = set(kept)
    return {**{k: v for k, v in (stored or {}).items() if k not in kept},
            **{k: v for k, v in given.items() if k in kept}}


def extensionsRemoved(previous, kept) -> list:
    """
    The extension keys to remove from every dialog: those configured at the
    previous start (C{previous}, C{None} before the first) that are no longer
    kept.  Keys never configured (data from before the setting) are never
    removed: they are not served as filters or written, and listing them
    again in the configuration brings them back.
    """
    return sorted(set(previous or ()) - set(kept))


def checkPermissions(permissions) -> dict:
    if permissions is None:
        return {}
    if not isinstance(permissions, dict) or set(permissions) - {"allow_preview"}:
        raise ValueError("permissions may only hold allow_preview")
    return {k: bool(v) for k, v in permissions.items()}


def dialogChanges(dialogType, push, pull, fields) -> tuple[dict, dict, dict]:
    """
    Check C{updateDialog}'s arguments; returns C{(fields, push, pull)} with
    checked values (list fields as lists).
    """
    unknown = set(fields) - set(DIALOG_FIELDS)
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    fields = dict(fields)
    for what in ("name", "photo", "description"):
        if what in fields and fields[what] is not None and not isinstance(fields[what], str):
            raise ValueError(f"dialog {what} must be a string")
    if "extensions" in fields:
        fields["extensions"] = checkExtensions(fields["extensions"])
    if "permissions" in fields:
        fields["permissions"] = checkPermissions(fields["permissions"])
    lists = []
    for changes in (push or {}, pull or {}):
        unknown = set(changes) - set(DIALOG_LIST_FIELDS)
        if unknown:
            raise ValueError(f"cannot push or pull {', '.join(sorted(unknown))}")
        checked = {}
        for name, values in changes.items():
            if name == "pinned_messages_ids":
                values = list(dict.fromkeys(values or ()))
                if not all(isinstance(v, str) for v in values):
                    raise ValueError("pinned message ids must be strings")
            else:
                values = idList(values, name)
            checked[name] = values
        lists.append(checked)
    if dialogType == DIALOG_PRIVATE and any("occupants_ids" in c for c in lists):
        raise ValueError("the occupants of a private dialog cannot change")
    return fields, lists[0], lists[1]


def applyPushPull(current: list, push: list, pull: list, ordered: bool) -> list:
    """
    The new value of a dialog list field: C{push} appended once each, then
    C{pull} removed; sorted unless C{ordered} (pinned messages keep their
    order).
    """
    values = list(current)
    for value in push:
        if value not in values:
            values.append(value)
    pulled = set(pull)
    values = [v for v in values if v not in pulled]
    return values if ordered else sorted(values)


# -- messages --------------------------------------------------------------------


def newMessageValues(messageId, senderId, recipientId, body, dateSent, attachments, custom,
                     now):
    """
    Check C{createMessage}'s arguments; returns C{(dateSent, attachments,
    custom)}.
    """
    if messageId is not None and not isObjectId(messageId):
        raise ValueError(f"message id must be 24 hex digits, not {messageId!r}")
    checkId(senderId, "sender id")
    if recipientId is not None:
        checkId(recipientId, "recipient id")
    if body is not None and not isinstance(body, str):
        raise ValueError("message body must be a string")
    if dateSent is None:
        dateSent = int(now)
    checkId(dateSent, "date_sent")
    return dateSent, checkAttachments(attachments), dict(checkKeys(custom, "custom field"))


def checkAttachments(attachments) -> list:
    if attachments is None:
        return []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise ValueError("attachments must be a list of objects")
    return attachments


def editValues(body, attachments, custom) -> tuple:
    """
    Check C{editMessage}'s arguments; returns C{(attachments or None,
    custom or None)}.
    """
    if body is not None and not isinstance(body, str):
        raise ValueError("message body must be a string")
    attachments = None if attachments is None else checkAttachments(attachments)
    custom = None if custom is None else dict(checkKeys(custom, "custom field"))
    return attachments, custom


def dialogIdList(dialogIds) -> list:
    """
    The dialog ids a message listing covers: one id, or a list of them
    (an account-wide XEP-0313 query), without repeats.
    """
    if isinstance(dialogIds, str):
        return [dialogIds]
    return list(dict.fromkeys(dialogIds))


def searchArguments(dialogIds, text, limit) -> tuple[list, int | None]:
    """
    Check C{searchMessages}'s arguments; returns C{(dialogIds, limit)}.
    """
    if not isinstance(text, str):
        raise ValueError("search text must be a string")
    return list(dict.fromkeys(dialogIds)), pageBounds(0, limit)[1]


def fold(text: str | None) -> str | None:
    """
    The text that body searches compare: Unicode case folded.
    """
    return None if text is None else text.casefold()


def applyReaction(reactions: dict, userId: int, add, remove) -> dict:
    """
    Reactions (emoji -> set of ids) after one user's add/remove; emptied
    emojis are dropped.
    """
    checkId(userId, "user id")
    for emoji in (add, remove):
        if emoji is not None and (not isinstance(emoji, str) or not emoji or len(emoji) > 64):
            raise ValueError(f"invalid reaction {emoji!r}")
    result = {emoji: set(users) for emoji, users in reactions.items()}
    if remove is not None and remove in result:
        result[remove].discard(userId)
        if not result[remove]:
            del result[remove]
    if add is not None:
        result.setdefault(add, set()).add(userId)
    return result


def derivedIds(senderId: int, order: int, watermarks) -> tuple[list[int], list[int]]:
    """
    C{(readIds, deliveredIds)} of a message from the dialog's watermarks,
    C{[(userId, readOrder, deliveredOrder)]}; the sender is always in
    both, and reading implies delivery.
    """
    read = {senderId}
    delivered = {senderId}
    for userId, readOrder, deliveredOrder in watermarks:
        if readOrder >= order:
            read.add(userId)
            delivered.add(userId)
        elif deliveredOrder >= order:
            delivered.add(userId)
    return sorted(read), sorted(delivered)


def newBlobUid() -> str:
    return os.urandom(16).hex()


BLOB_FIELDS = ("name", "contentType", "size", "public", "completed")


def checkBlobFields(fields: dict) -> dict:
    unknown = set(fields) - set(BLOB_FIELDS)
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    fields = dict(fields)
    if "size" in fields and fields["size"] is not None:
        checkId(fields["size"], "size")
    for flag in ("public", "completed"):
        if flag in fields:
            fields[flag] = bool(fields[flag])
    return fields


def newRecordValues(className, userId, fields, recordId) -> dict:
    """
    Check C{createRecord}'s arguments; returns the fields.
    """
    checkKey(className, "class")
    checkId(userId, "user id")
    if recordId is not None and not isObjectId(recordId):
        raise ValueError(f"record id must be 24 hex digits, not {recordId!r}")
    return dict(checkKeys(fields, "record field"))


def updatedFields(fields: dict, set_: dict | None, unset) -> dict:
    """
    A record's fields after C{updateRecord}'s C{set} and C{unset}.
    """
    fields = dict(fields)
    fields.update(checkKeys(set_, "record field"))
    for key in unset:
        fields.pop(key, None)
    return fields


def pageBounds(skip, limit) -> tuple[int, int | None]:
    q = Query(skip=skip, limit=limit)
    q.validate()
    return q.skip, q.limit


# -- per-user quotas (issue 15 finding 15, xmppchat/quotas.py) ----------------

DAY = 86400


def requireRoom(used: int, adding: int, limit: int | None, what: str) -> None:
    """
    Fail with L{QuotaExceeded} when C{adding} more to C{used} would exceed
    C{limit} (C{None}: no limit).
    """
    if limit is not None and used + adding > limit:
        raise QuotaExceeded(f"Quota exceeded: at most {limit} {what} per user (you have {used})")


# A custom object's own fields (reference/connectycube-sdk.md §4.9): never
# among the fields a client stores in it.
RECORD_RESERVED = frozenset({"_id", "id", "user_id", "created_at", "updated_at", "_parent_id",
                             "permissions", "class_name"})


def recordSize(fields: dict) -> int:
    """
    The bytes a record's fields count against C{record_bytes_per_user}:
    their stored JSON, UTF-8.
    """
    return len(dumpJson(fields).encode("utf-8"))


def dayOf(now: float) -> int:
    """
    The UTC day number of C{now} (the daily message quota's period).
    """
    return int(now // DAY)


def dailyQuotaExceeded(limit: int, now: float) -> QuotaExceeded:
    """
    The daily message quota's failure, retryable at the next UTC midnight.
    """
    return QuotaExceeded(f"Quota exceeded: at most {limit} stored messages per user a day"
                         " (UTC)", retryAfter=(dayOf(now) + 1) * DAY - now)
