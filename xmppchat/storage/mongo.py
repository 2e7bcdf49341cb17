"""
The production storage backend: MongoDB through pymongo.

pymongo is blocking, so every call runs on a bounded L{ThreadPool}
(C{mongodb_pool_size} threads, started and stopped with the storage)
through L{threads.deferToThreadPool}; with C{synchronous=True} calls run
inline (tests on mongomock, the admin CLI).  pymongo exceptions are
translated to L{StorageError}/L{AlreadyExists} inside the worker thread, so
nothing pymongo-specific leaves this file.  Finders and their counts carry
C{maxTimeMS} (C{[storage] query_timeout_ms}); the server's
C{ExecutionTimeout} becomes L{QueryTimeout} (issue 15 finding 3).  Indexes are created at start,
after a ping with a short server-selection timeout: a server that cannot
reach MongoDB fails to start with a clear error.

Atomicity without multi-document transactions (so a standalone server
works): ids and order keys come from atomic counters (C{counters}
collection, C{$inc}); every document change is one atomic update; changes
computed from a document's current value (dialog push/pull, record
updates) are compare-and-set on a C{version} field, retried on conflict.
An operation that touches two documents (a new message and its dialog's
C{last_message}) does them in order, the message first.

Free-form JSON (credentials, profiles, attachments, custom fields, record
fields) is stored as exact JSON text, so any key or number round-trips; the
part of it that finders can address (valid keys, BSON-encodable values) is
also stored as a sub-document for queries.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, ExecutionTimeout, PyMongoError
from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.storage import common
from xmppchat.storage.common import (
    ACCOUNT_SCHEMA,
    DIALOG_SCHEMA,
    MESSAGE_SCHEMA,
    RECORD_SCHEMA,
    prepareQuery,
)
from xmppchat.storage.pep.mongo import INDEXES as PEP_INDEXES
from xmppchat.storage.pep.mongo import MongoPEPStore
from xmppchat.storage.portable.mongo import MongoPortableStore
from xmppchat.storage.settings.mongo import MongoSettingStore
from xmppchat.storage.unlocks.mongo import INDEXES as UNLOCK_INDEXES
from xmppchat.storage.unlocks.mongo import MongoUnlockStore
from xmppchat.storage.uploads.mongo import INDEXES as UPLOAD_INDEXES
from xmppchat.storage.uploads.mongo import MongoUploadSlotStore
from xmppchat.storage.userxml.mongo import INDEXES as USER_XML_INDEXES
from xmppchat.storage.userxml.mongo import MongoUserXMLStore, deleteUserXML
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_PUBLIC,
    Account,
    AlreadyExists,
    Blob,
    Dialog,
    Message,
    NotFound,
    OfflineMessage,
    PrivacyRecord,
    QueryTimeout,
    QuotaExceeded,
    Query,
    Record,
    RosterItem,
    StorageError,
    TokenRecord,
    newObjectId,
)

SERVER_SELECTION_TIMEOUT_MS = 5000
_CAS_ATTEMPTS = 20
_CHUNK = 1000
_INT64 = 2**63


_dumps = common.dumpJson
_loads = common.loadJson


def _encodable(value) -> bool:
    """
    Whether C{value} can be stored and queried as BSON as it is.
    """
    if value is None or isinstance(value, (str, bool, float)):
        return True
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k and "." not in k and not k.startswith("$")
                   and "\0" not in k and _encodable(v) for k, v in value.items())
    return False


def _queryable(values: dict | None) -> dict:
    """
    The entries of a JSON object that finders can address.
    """
    out = {}
    for key, value in (values or {}).items():
        try:
            common.checkKey(key)
        except ValueError:
            continue
        if _encodable(value):
            out[key] = value
    return out


def redactUri(uri: str) -> str:
    """
    C{uri} without its password, for error messages.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<invalid uri>"
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


# -- queries ----------------------------------------------------------------------


def literalPattern(text: str) -> str:
    """
    A regular expression matching C{text} literally: C{re.escape}, and a
    NUL written as C{\\x00} (MongoDB refuses a pattern with an embedded NUL
    byte; PCRE reads the escape as that character).
    """
    return re.escape(text).replace("\x00", "\\x00")


class _Translator:
    """
    Turns a L{Query} into a MongoDB filter and sort for one collection.

    @param paths: fixed wire name -> document path.
    @param dynamic: the sub-document holding the other keys.
    @param natural: the sort tie-break (natural order).
    """

    def __init__(self, schema, paths: dict, dynamic: str, natural: list):
        self.schema = schema
        self.paths = paths
        self.dynamic = dynamic
        self.natural = natural

    def path(self, resolved) -> str:
        if resolved.fixed is not None:
            return self.paths[resolved.fixed]
        return f"{self.dynamic}.{resolved.key}"

    @staticmethod
    def condition(path, op, value) -> dict:
        if op == "eq":
            return {path: value}
        if op in ("ne", "lt", "lte", "gt", "gte", "in", "nin"):
            return {path: {f"${op}": value}}
        if op == "or":
            return {path: {"$in": value}}
        if op == "all":
            # {"$all": []} matches nothing on MongoDB (everything on mongomock).
            return {path: {"$all": value}} if value else {"_id": {"$in": []}}
        pattern = literalPattern(value)
        return {path: {"$regex": pattern if op == "ctn" else "^" + pattern}}

    def filter(self, query, *base) -> tuple[dict, object]:
        """
        C{(filter, query)}: the query's conditions and C{base} conditions.
        """
        query, resolved, anyOf = prepareQuery(query, self.schema)
        conditions = [b for b in base if b]
        conditions += [self.condition(self.path(f), op, v) for f, op, v in resolved if op != "or"]
        for disjunction in ([f for f in resolved if f[1] == "or"], anyOf):
            if disjunction:
                conditions.append({"$or": [self.condition(self.path(f), op, v)
                                           for f, op, v in disjunction]})
        if not conditions:
            return {}, query
        return (conditions[0] if len(conditions) == 1 else {"$and": conditions}), query

    def sort(self, query) -> list:
        if query.sort is None:
            return list(self.natural)
        path = self.path(self.schema.resolve(query.sort))
        return [(path, pymongo.DESCENDING if query.descending else pymongo.ASCENDING), *self.natural]

    def find(self, collection, filter_, query, timeoutMs: int):
        """
        The documents of a finder, the server aborting it after
        C{timeoutMs} (C{maxTimeMS}; 0: no limit).
        """
        if query.limit == 0:
            return []
        cursor = collection.find(filter_).sort(self.sort(query)).skip(query.skip)
        if query.limit is not None:
            cursor = cursor.limit(query.limit)
        if timeoutMs:
            cursor = cursor.max_time_ms(timeoutMs)
        return list(cursor)

    @staticmethod
    def count(collection, filter_, timeoutMs: int) -> int:
        """
        C{count_documents}, aborted after C{timeoutMs} like L{find}.
        """
        return collection.count_documents(filter_, **({"maxTimeMS": timeoutMs} if timeoutMs else {}))


_ASC = pymongo.ASCENDING
_ACCOUNTS = _Translator(ACCOUNT_SCHEMA, {
    "id": "_id", "localpart": "localpart", "login": "login", "email": "email",
    "externalId": "externalId", "created_at": "created_at", "updated_at": "updated_at"},
    "profile", [("_id", _ASC)])
_DIALOGS = _Translator(DIALOG_SCHEMA, {name: name for name in DIALOG_SCHEMA.fixed} | {"_id": "_id"},
                       "extensions", [("created_at", _ASC), ("_id", _ASC)])
_MESSAGES = _Translator(MESSAGE_SCHEMA, {
    "_id": "_id", "chat_dialog_id": "dialog_id", "sender_id": "sender_id",
    "recipient_id": "recipient_id", "date_sent": "date_sent", "message": "body",
    "created_at": "created_at", "updated_at": "updated_at"}, "custom", [("ord", _ASC)])
_RECORDS = _Translator(RECORD_SCHEMA, {
    "_id": "rid", "user_id": "user_id", "_parent_id": "parent_id", "created_at": "created_at",
    "updated_at": "updated_at"}, "fields", [("created_at", _ASC), ("rid", _ASC)])

COUNTERS = ("accounts", "tokens", "offline", "messages", "subscriptions", "blobs")

# collection -> [(keys, options)]
INDEXES = {
    "accounts": [("localpart", {"unique": True}),
                 ("login", {"unique": True, "sparse": True}),
                 ("email", {"unique": True, "sparse": True}),
                 ("externalId", {"unique": True, "sparse": True})],
    "tokens": [([("account_id", _ASC), ("expires_at", _ASC)], {}), ("expires_at", {})],
    "revoked_tokens": [("expires_at", {})],
    "offline": [([("localpart", _ASC), ("_id", _ASC)], {}),
                ([("localpart", _ASC), ("sender", _ASC)], {}),
                ([("localpart", _ASC), ("dialog_id", _ASC)], {})],
    "roster": [([("localpart", _ASC), ("jid", _ASC)], {"unique": True})],
    "dialogs": [("occupants_ids", {}), ("private_key", {"unique": True, "sparse": True}),
                ([("created_at", _ASC), ("_id", _ASC)], {}), ("user_id", {}), ("type", {}),
                ("updated_at", {})],  # the admin's dialog list (review 19 B2)
    "dialog_users": [([("dialog_id", _ASC), ("user_id", _ASC)], {"unique": True}),
                     ([("user_id", _ASC), ("hidden", _ASC)], {}),
                     ([("user_id", _ASC), ("subscribed", _ASC)], {}),
                     ([("dialog_id", _ASC), ("subscribed", _ASC)], {})],
    "messages": [("ord", {"unique": True}), ([("dialog_id", _ASC), ("ord", _ASC)], {}),
                 ([("dialog_id", _ASC), ("sender_id", _ASC)], {}),
                 ([("dialog_id", _ASC), ("date_sent", _ASC), ("ord", _ASC)], {})],
    "blobs": [("uid", {"unique": True}), ([("owner_id", _ASC), ("_id", _ASC)], {}),
              ([("completed", _ASC), ("created_at", _ASC)], {})],
    "records": [([("class_name", _ASC), ("rid", _ASC)], {"unique": True}),
                ([("class_name", _ASC), ("created_at", _ASC), ("rid", _ASC)], {}),
                ([("user_id", _ASC), ("size", _ASC)], {})],
    **UNLOCK_INDEXES,
    **PEP_INDEXES,
    **UPLOAD_INDEXES,
    **USER_XML_INDEXES,
}


# -- the connection -----------------------------------------------------------------


# The settings document marking that the documents of older versions got
# the fields the new code expects (once, like SQLite's migrations; new
# documents always carry them, so the scans below would find nothing again).
_BACKFILLED = "backfilled_issue15"


def _backfill(db) -> None:
    """
    Records stored before the quotas (issue 15 finding 15) get their size;
    accounts from before the JWT mark (finding 1) with an external id and
    neither login nor e-mail were made by a JWT (a password signup needs one
    of them) and get the mark.
    """
    for doc in db.records.find({"size": {"$exists": False}}, {"fields_json": 1}):
        db.records.update_one({"_id": doc["_id"]},
                              {"$set": {"size": len(doc["fields_json"].encode("utf-8"))}})
    db.accounts.update_many({"jwt": {"$exists": False}, "externalId": {"$exists": True},
                             "login": {"$exists": False}, "email": {"$exists": False}},
                            {"$set": {"jwt": True}})


class _Database(common.Worker):
    """
    The client, the database and the way calls reach them.
    """

    log = Logger()

    def __init__(self, uri, name, poolSize, reactor, synchronous, client, timeoutMs,
                 queryTimeoutMs):
        common.Worker.__init__(self, reactor, synchronous, poolSize, "xmppchat-mongodb")
        self.uri = uri
        self.name = name
        self.timeoutMs = timeoutMs
        self.queryTimeoutMs = queryTimeoutMs
        self.client = client
        self._ownClient = client is None
        self.db = None

    def run(self, f, *args) -> defer.Deferred:
        """
        Run C{f(db, *args)} on a worker, pymongo errors translated.
        """
        return self._call(self._translated, f, *args)

    def _translated(self, f, *args):
        db = self.db
        if db is None:
            raise StorageError("storage is not started")
        try:
            return f(db, *args)
        except DuplicateKeyError as e:
            raise AlreadyExists(_duplicateMessage(e)) from None
        except ExecutionTimeout:
            # maxTimeMS expired (issue 15 finding 3).
            raise QueryTimeout(f"the query ran longer than {self.queryTimeoutMs} ms"
                               " and was aborted") from None
        except PyMongoError as e:
            raise StorageError(f"MongoDB: {type(e).__name__}: {e}") from None

    def _connect(self) -> None:
        where = redactUri(self.uri)
        try:
            if self.client is None:
                self.client = pymongo.MongoClient(
                    self.uri, serverSelectionTimeoutMS=self.timeoutMs,
                    connectTimeoutMS=self.timeoutMs, maxPoolSize=max(self.size, 1),
                    tz_aware=False)
            self.client.admin.command("ping")
            db = self.client[self.name]
            for collection, indexes in INDEXES.items():
                for keys, options in indexes:
                    db[collection].create_index(keys, **options)
            for name in COUNTERS:
                # Created up front, so concurrent first uses never race to insert.
                db.counters.update_one({"_id": name}, {"$setOnInsert": {"seq": 0}}, upsert=True)
            if db.settings.find_one({"_id": _BACKFILLED}) is None:
                _backfill(db)
                db.settings.replace_one({"_id": _BACKFILLED}, {"_id": _BACKFILLED}, upsert=True)
        except (PyMongoError, ValueError, TypeError) as e:
            self._dropClient()
            raise StorageError(f"cannot use MongoDB at {where} (database {self.name!r}):"
                               f" {type(e).__name__}: {e}") from None
        self.db = db

    def _dropClient(self) -> None:
        if self._ownClient and self.client is not None:
            client, self.client = self.client, None
            client.close()

    def _close(self) -> None:
        self.db = None
        try:
            self._dropClient()
        except PyMongoError as e:
            raise StorageError(f"MongoDB: cannot close: {e}") from None


def _duplicateMessage(error: DuplicateKeyError) -> str:
    details = error.details or {}
    pattern = details.get("keyPattern") or details.get("keyValue")
    if isinstance(pattern, dict) and pattern:
        return f"{', '.join(pattern)} already exists"
    return "already exists"


def _byIds(collection, ids, convert) -> dict:
    """
    C{{id: object}} for the documents whose C{_id} is one of C{ids}.
    """
    found = []
    for start in range(0, len(ids), _CHUNK):
        found += [convert(doc) for doc in collection.find({"_id": {"$in": ids[start:start + _CHUNK]}})]
    return common.byId(found)


def _next(db, name: str, count: int = 1) -> int:
    """
    Reserve C{count} values of the counter C{name}; returns the last one.
    """
    doc = db.counters.find_one_and_update({"_id": name}, {"$inc": {"seq": count}}, upsert=True,
                                          return_document=ReturnDocument.AFTER)
    return doc["seq"]


def _compareAndSet(collection, filter_, compute) -> dict:
    """
    Apply C{compute(doc) -> $set dict} atomically to the document matching
    C{filter_}: retried while another writer changed it in between.  Raises
    L{NotFound}; returns the new document.
    """
    for _ in range(_CAS_ATTEMPTS):
        doc = collection.find_one(filter_)
        if doc is None:
            raise NotFound("not found")
        changes = compute(doc)
        version = doc.get("version", 0)
        done = collection.find_one_and_update(
            {**filter_, "version": version}, {"$set": changes, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER)
        if done is not None:
            return done
    raise StorageError("MongoDB: too many concurrent updates of one document")


_Store = common.Store


# -- accounts, tokens, offline, roster, last activity ------------------------------


def _accountDoc(accountId, localpart, login, email, externalId, credentials, profile, now,
                jwt=False):
    doc = {"_id": accountId, "localpart": localpart, "credentials": _dumps(credentials),
           "created_at": now, "updated_at": now, "jwt": bool(jwt)}
    for name, value in (("login", login), ("email", email), ("externalId", externalId)):
        if value is not None:
            doc[name] = value
    doc.update(_profileFields(profile))
    return doc


def _profileFields(profile) -> dict:
    profile = profile or {}
    return {"profile_json": _dumps(profile), "profile": _queryable(profile)}


def _account(doc) -> Account | None:
    if doc is None:
        return None
    return Account(id=doc["_id"], localpart=doc["localpart"], login=doc.get("login"),
                   email=doc.get("email"), externalId=doc.get("externalId"),
                   credentials=_loads(doc.get("credentials")), createdAt=doc["created_at"],
                   updatedAt=doc["updated_at"], profile=_loads(doc.get("profile_json")) or {},
                   jwt=bool(doc.get("jwt")), blocked=bool(doc.get("blocked")))



class MongoAccountStore(common.AccountLookups, _Store):
    """
    L{IAccountStore} on the C{accounts} collection (C{_id} is the id).
    """

    def createAccount(self, localpart, credentials, login=None, email=None, externalId=None,
                      profile=None, accountId=None, jwt=False):
        common.checkAccountArguments(localpart, accountId)
        now = self._now()

        def create(db):
            if accountId is None:
                newId = _next(db, "accounts")
            else:
                newId = accountId
            doc = _accountDoc(newId, common.fillLocalpart(localpart, newId), login, email,
                              externalId, credentials, profile, now, jwt)
            db.accounts.insert_one(doc)
            if accountId is not None:
                db.counters.update_one({"_id": "accounts"}, {"$max": {"seq": accountId}},
                                       upsert=True)
            return _account(doc)

        return self.db.run(create)

    def createAccounts(self, entries):
        rows = common.bulkEntries(entries)
        now = self._now()

        def create(db):
            existing = set()
            names = [lp for lp, _ in rows]
            for start in range(0, len(names), _CHUNK):
                chunk = names[start:start + _CHUNK]
                existing.update(d["localpart"] for d in db.accounts.find(
                    {"localpart": {"$in": chunk}}, {"localpart": 1}))
            skipped, fresh = [], []
            for localpart, credentials in rows:
                if localpart in existing:
                    skipped.append(localpart)
                else:
                    existing.add(localpart)
                    fresh.append((localpart, credentials))
            if not fresh:
                return 0, skipped
            last = _next(db, "accounts", len(fresh))
            docs = [_accountDoc(last - len(fresh) + 1 + i, lp, None, None, None, creds, {}, now)
                    for i, (lp, creds) in enumerate(fresh)]
            try:
                db.accounts.insert_many(docs, ordered=False)
            except BulkWriteError as e:
                # Created concurrently by someone else in the meantime.
                lost = [docs[err["index"]]["localpart"] for err in e.details.get("writeErrors", [])]
                return len(docs) - len(lost), skipped + lost
            return len(docs), skipped

        return self.db.run(create)

    def _getBy(self, field, value):
        path = _ACCOUNTS.paths[field]
        return self.db.run(lambda db: _account(db.accounts.find_one({path: value})))

    def getAccounts(self, accountIds):
        return self.db.run(lambda db: _byIds(db.accounts, list(accountIds), _account))

    def updateAccount(self, accountId, **fields):
        common.checkAccountFields(fields)
        changes: dict = {"updated_at": self._now()}
        removed = {}
        for name, value in fields.items():
            if name == "profile":
                changes.update(_profileFields(value))
            elif name == "credentials":
                changes["credentials"] = _dumps(value)
            elif name == "blocked":
                changes["blocked"] = bool(value)
            elif value is None:
                removed[name] = ""
            else:
                changes[name] = value

        def update(db):
            update = {"$set": changes}
            if removed:
                update["$unset"] = removed
            doc = db.accounts.find_one_and_update({"_id": accountId}, update,
                                                  return_document=ReturnDocument.AFTER)
            if doc is None:
                raise NotFound(f"no account {accountId}")
            return _account(doc)

        return self.db.run(update)

    def deleteAccount(self, accountId):
        def delete(db):
            doc = db.accounts.find_one({"_id": accountId}, {"localpart": 1})
            if doc is None:
                return False
            localpart = doc["localpart"]
            db.tokens.delete_many({"account_id": accountId})
            for name in ("roster", "offline"):
                db[name].delete_many({"localpart": localpart})
            db.last_activity.delete_one({"_id": localpart})
            db.privacy.delete_one({"_id": localpart})
            db.roster_versions.delete_one({"_id": localpart})
            deleteUserXML(db, localpart)
            db.accounts.delete_one({"_id": accountId})
            return True

        return self.db.run(delete)

    def listAccounts(self, offset=0, limit=None):
        return self.findAccounts(Query(skip=offset, limit=limit))

    def findAccounts(self, query):
        filter_, query = _ACCOUNTS.filter(query)
        return self.db.run(lambda db: [_account(d) for d in _ACCOUNTS.find(
            db.accounts, filter_, query, self.db.queryTimeoutMs)])

    def countAccounts(self, query=None):
        filter_, _ = _ACCOUNTS.filter(query)
        return self.db.run(lambda db: _ACCOUNTS.count(db.accounts, filter_, self.db.queryTimeoutMs))


def _token(doc) -> TokenRecord | None:
    if doc is None:
        return None
    return TokenRecord(tokenHash=doc["_id"], accountId=doc["account_id"], appId=doc.get("app_id"),
                       createdAt=doc["created_at"], expiresAt=doc["expires_at"],
                       credentials=_loads(doc.get("credentials")))


class MongoTokenStore(_Store):
    """
    L{ITokenStore} on the C{tokens} collection (C{_id} is the hash).
    """

    def addToken(self, token):
        def add(db):
            if db.accounts.find_one({"_id": token.accountId}, {"_id": 1}) is None:
                raise NotFound(f"no account {token.accountId}")
            doc = {"_id": token.tokenHash, "account_id": token.accountId, "app_id": token.appId,
                   "created_at": token.createdAt, "expires_at": token.expiresAt,
                   "credentials": _dumps(token.credentials), "seq": _next(db, "tokens")}
            try:
                db.tokens.insert_one(doc)
            except DuplicateKeyError:
                raise AlreadyExists("token already exists") from None

        return self.db.run(add)

    def getToken(self, tokenHash, now=None):
        now = self._now(now)
        return self.db.run(lambda db: _token(db.tokens.find_one(
            {"_id": tokenHash, "expires_at": {"$gt": now}})))

    def liveTokens(self, accountId, now=None):
        now = self._now(now)
        return self.db.run(lambda db: [_token(d) for d in db.tokens.find(
            {"account_id": accountId, "expires_at": {"$gt": now}}).sort(
            [("created_at", _ASC), ("seq", _ASC)])])

    def deleteToken(self, tokenHash):
        return self.db.run(lambda db: db.tokens.delete_one({"_id": tokenHash}).deleted_count > 0)

    def deleteJWTTokens(self):
        def delete(db):
            # the JWT accounts' ids a batch at a time: memory stays bounded
            deleted, after = 0, None
            while True:
                query = {"jwt": True} if after is None else {"jwt": True, "_id": {"$gt": after}}
                ids = [d["_id"] for d in db.accounts.find(query, {"_id": 1}).sort("_id", 1).limit(_CHUNK)]
                if not ids:
                    return deleted
                deleted += db.tokens.delete_many({"account_id": {"$in": ids}}).deleted_count
                after = ids[-1]

        return self.db.run(delete)

    def deleteAccountTokens(self, accountId, keep=None):
        def delete(db):
            filter_ = {"account_id": accountId, "_id": {"$ne": keep}}
            hashes = [d["_id"] for d in db.tokens.find(filter_, {"_id": 1})]
            db.tokens.delete_many({"_id": {"$in": hashes}})
            return hashes

        return self.db.run(delete)

    def liveTokenHashes(self, tokenHashes, now=None):
        now = self._now(now)
        hashes = list(tokenHashes)

        def live(db):
            found = set()
            for start in range(0, len(hashes), _CHUNK):
                found.update(d["_id"] for d in db.tokens.find(
                    {"_id": {"$in": hashes[start:start + _CHUNK]}, "expires_at": {"$gt": now}},
                    {"_id": 1}))
            return found

        return self.db.run(live)

    def revokeToken(self, tokenHash, expiresAt):
        def revoke(db):
            db.tokens.delete_one({"_id": tokenHash})
            db.revoked_tokens.replace_one({"_id": tokenHash}, {"expires_at": expiresAt},
                                          upsert=True)

        return self.db.run(revoke)

    def isRevoked(self, tokenHash, now=None):
        now = self._now(now)
        return self.db.run(lambda db: db.revoked_tokens.find_one(
            {"_id": tokenHash, "expires_at": {"$gt": now}}, {"_id": 1}) is not None)

    def purgeExpired(self, now=None):
        now = self._now(now)

        def purge(db):
            db.revoked_tokens.delete_many({"expires_at": {"$lte": now}})
            return db.tokens.delete_many({"expires_at": {"$lte": now}}).deleted_count

        return self.db.run(purge)


class MongoOfflineStore(_Store):
    """
    L{IOfflineStore} on the C{offline} collection (C{_id} from a counter).
    The quota is checked before the insert: concurrent stores for one user
    may overshoot it by the number of worker threads.
    """

    @staticmethod
    def _storeOne(db, localpart, stanza, stamp, limit, shares):
        def count(field, value):
            query = {"localpart": localpart}
            if field is not None:
                query[field] = {"$ne": None} if value is common.ANY_DIALOG else value
            return db.offline.count_documents(query)

        common.checkOfflineQuota(limit, shares, count)
        messageId = _next(db, "offline")
        db.offline.insert_one({"_id": messageId, "localpart": localpart, "stanza": stanza,
                               "stamp": stamp, "sender": shares and shares.sender,
                               "dialog_id": shares and shares.dialogId})
        return messageId

    def storeOffline(self, localpart, stanza, stamp, limit, shares=None):
        return self.db.run(lambda db: self._storeOne(db, localpart, stanza, stamp, limit, shares))

    def storeOfflineMany(self, entries, stamp, limit, shares=None):
        return self.db.run(lambda db: common.storeEach(
            entries, lambda localpart, stanza: self._storeOne(db, localpart, stanza, stamp, limit, shares)))

    def countOffline(self, localpart):
        return self.db.run(lambda db: db.offline.count_documents({"localpart": localpart}))

    def countAllOffline(self):
        return self.db.run(lambda db: db.offline.estimated_document_count())

    def largestOfflineQueues(self, limit):
        return self.db.run(lambda db: [(d["_id"], d["n"]) for d in db.offline.aggregate(
            [{"$group": {"_id": "$localpart", "n": {"$sum": 1}}},
             {"$sort": {"n": -1, "_id": 1}}, {"$limit": limit}],
            **({"maxTimeMS": self.db.queryTimeoutMs} if self.db.queryTimeoutMs else {}))])

    def fetchOffline(self, localpart):
        return self.db.run(lambda db: [
            OfflineMessage(id=d["_id"], localpart=localpart, stanza=d["stanza"], stamp=d["stamp"])
            for d in db.offline.find({"localpart": localpart}).sort("_id", _ASC)])

    def deleteOffline(self, localpart, ids):
        ids = list(ids)

        def delete(db):
            deleted = 0
            for start in range(0, len(ids), _CHUNK):
                deleted += db.offline.delete_many(
                    {"localpart": localpart, "_id": {"$in": ids[start:start + _CHUNK]}}).deleted_count
            return deleted

        return self.db.run(delete)


def _rosterItem(doc) -> RosterItem | None:
    if doc is None:
        return None
    return RosterItem(jid=doc["jid"], name=doc.get("name"), groups=list(doc.get("groups", [])),
                      subscription=doc["subscription"], ask=doc.get("ask"),
                      pendingIn=doc["pending_in"], hidden=doc["hidden"])


class MongoRosterStore(_Store):
    """
    L{IRosterStore} on the C{roster} collection.
    """

    def getRoster(self, localpart):
        return self.db.run(lambda db: [_rosterItem(d) for d in db.roster.find(
            {"localpart": localpart}).sort("jid", _ASC)])

    def getRosterItem(self, localpart, jid):
        return self.db.run(lambda db: _rosterItem(db.roster.find_one(
            {"localpart": localpart, "jid": jid})))

    def setRosterItem(self, localpart, item):
        common.checkRosterItem(item)
        doc = {"localpart": localpart, "jid": item.jid, "name": item.name,
               "groups": list(item.groups), "subscription": item.subscription, "ask": item.ask,
               "pending_in": bool(item.pendingIn), "hidden": bool(item.hidden)}
        first = common.firstRosterVersion(self._now())

        def write(db):
            db.roster.replace_one({"localpart": localpart, "jid": item.jid}, doc, upsert=True)
            return _advanceRosterVersion(db, localpart, first)

        return self.db.run(write)

    def removeRosterItem(self, localpart, jid):
        first = common.firstRosterVersion(self._now())

        def remove(db):
            if db.roster.delete_one({"localpart": localpart, "jid": jid}).deleted_count == 0:
                return None
            return _advanceRosterVersion(db, localpart, first)

        return self.db.run(remove)

    def getRosterVersion(self, localpart):
        def read(db):
            doc = db.roster_versions.find_one({"_id": localpart})
            return "0" if doc is None else str(doc["version"])

        return self.db.run(read)


def _advanceRosterVersion(db, localpart, first) -> str:
    """
    RFC 6121 §2.6: the next roster version of C{localpart} (an atomic
    C{$inc} of its C{roster_versions} document, C{first} when there is
    none), after the item was written: without a transaction, a reader
    (version first, then items) may see a change before its version, which
    costs the client one full roster, never a missed change.
    """
    for _ in range(_CAS_ATTEMPTS):
        doc = db.roster_versions.find_one_and_update(
            {"_id": localpart}, {"$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
        if doc is not None:
            return str(doc["version"])
        try:
            db.roster_versions.insert_one({"_id": localpart, "version": first})
            return str(first)
        except DuplicateKeyError:
            continue  # created meanwhile: advance it
    raise StorageError(f"the roster version of {localpart} keeps changing")


class MongoLastActivityStore(_Store):
    """
    L{ILastActivityStore} on the C{last_activity} collection.
    """

    def setLastActivity(self, localpart, stamp, status):
        return self.db.run(lambda db: db.last_activity.replace_one(
            {"_id": localpart}, {"stamp": stamp, "status": status}, upsert=True) and None)

    def getLastActivity(self, localpart):
        def get(db):
            doc = db.last_activity.find_one({"_id": localpart})
            return None if doc is None else (doc["stamp"], doc.get("status"))

        return self.db.run(get)


# -- dialogs ------------------------------------------------------------------------


def _dialog(doc) -> Dialog | None:
    if doc is None:
        return None
    return Dialog(id=doc["_id"], type=doc["type"], ownerId=doc["user_id"],
                  occupantIds=list(doc["occupants_ids"]), adminIds=list(doc["admins_ids"]),
                  pinnedMessageIds=list(doc["pinned_messages_ids"]), name=doc.get("name"),
                  photo=doc.get("photo"), description=doc.get("description"),
                  extensions=dict(doc.get("extensions") or {}),
                  permissions=dict(doc.get("permissions") or {}), createdAt=doc["created_at"],
                  updatedAt=doc["updated_at"], lastMessage=doc.get("last_message"),
                  lastMessageDateSent=doc.get("last_message_date_sent"),
                  lastMessageId=doc.get("last_message_id"),
                  lastMessageUserId=doc.get("last_message_user_id"))


def _stateId(dialogId, userId) -> str:
    return f"{dialogId}:{userId}"


_STATE_DEFAULTS = {"read_order": 0, "delivered_order": 0, "cleared_order": 0, "hidden": False,
                   "notifications": True, "subscribed": None}


def _setState(db, dialogId, userId, set_=None, max_=None):
    """
    Create the (dialog, user) state document if needed and update it;
    returns the pymongo update result.
    """
    set_ = set_ or {}
    max_ = max_ or {}
    onInsert = {k: v for k, v in _STATE_DEFAULTS.items() if k not in set_ and k not in max_}
    onInsert.update(dialog_id=dialogId, user_id=userId)
    update = {"$setOnInsert": onInsert}
    if set_:
        update["$set"] = set_
    if max_:
        update["$max"] = max_
    return db.dialog_users.update_one({"_id": _stateId(dialogId, userId)}, update, upsert=True)


def _state(db, dialogId, userId) -> dict:
    return db.dialog_users.find_one({"_id": _stateId(dialogId, userId)}) or _STATE_DEFAULTS


def _requireDialog(db, dialogId) -> dict:
    doc = db.dialogs.find_one({"_id": dialogId})
    if doc is None:
        raise NotFound(f"no dialog {dialogId}")
    return doc


# The name prefix of the index of each configured dialog extension field.
_EXTENSION_INDEX = "extensions_"


def _userDialogsFilter(db, userId) -> dict:
    subscribed = [d["dialog_id"] for d in db.dialog_users.find(
        {"user_id": userId, "subscribed": {"$ne": None}}, {"dialog_id": 1})]
    hidden = [d["dialog_id"] for d in db.dialog_users.find(
        {"user_id": userId, "hidden": True}, {"dialog_id": 1})]
    # Broadcast dialogs are every user's (issue 17 item 5).
    condition = {"$or": [{"occupants_ids": userId}, {"_id": {"$in": subscribed}},
                         {"type": DIALOG_BROADCAST}]}
    if hidden:
        condition = {"$and": [condition, {"_id": {"$nin": hidden}}]}
    return condition


class MongoDialogStore(_Store):
    """
    L{IDialogStore} on the C{dialogs} and C{dialog_users} collections.
    """

    def createDialog(self, type, ownerId, occupantIds=(), adminIds=(), name=None, photo=None,
                     description=None, extensions=None, permissions=None, dialogId=None,
                     limit=None):
        occupants, admins, extensions, permissions, key = common.newDialogValues(
            type, ownerId, occupantIds, adminIds, name, photo, description, extensions,
            permissions, dialogId)
        now = self._now()
        doc = {"_id": dialogId or newObjectId(now), "type": type, "user_id": ownerId,
               "occupants_ids": occupants, "admins_ids": admins, "pinned_messages_ids": [],
               "name": name, "photo": photo, "description": description,
               "extensions": extensions, "permissions": permissions, "created_at": now,
               "updated_at": now, "last_message": None, "last_message_date_sent": None,
               "last_message_id": None, "last_message_user_id": None, "last_message_order": 0,
               "version": 0}
        if key is not None:
            doc["private_key"] = key

        def create(db):
            if limit is not None:
                common.requireRoom(db.dialogs.count_documents({"user_id": ownerId}), 1, limit,
                                   "dialogs")
            db.dialogs.insert_one(doc)
            return _dialog(doc)

        return self.db.run(create)

    def getDialog(self, dialogId):
        return self.db.run(lambda db: _dialog(db.dialogs.find_one({"_id": dialogId})))

    def getDialogs(self, dialogIds):
        return self.db.run(lambda db: _byIds(db.dialogs, list(dialogIds), _dialog))

    def findPrivateDialog(self, userA, userB):
        if userA == userB:
            return defer.succeed(None)
        key = common.privateKey([userA, userB])
        return self.db.run(lambda db: _dialog(db.dialogs.find_one({"private_key": key})))

    def updateDialog(self, dialogId, push=None, pull=None, **fields):
        now = self._now()

        kept = []  # the extension keys kept, read in update()

        def compute(doc):
            changes, pushed, pulled = common.dialogChanges(doc["type"], push, pull, fields)
            if "extensions" in changes:
                changes["extensions"] = common.writtenExtensions(changes["extensions"],
                                                                 doc.get("extensions"), kept[0])
            changes["updated_at"] = now
            for name in ("occupants_ids", "admins_ids", "pinned_messages_ids"):
                if name in pushed or name in pulled:
                    changes[name] = common.applyPushPull(
                        doc[name], pushed.get(name, []), pulled.get(name, []),
                        ordered=name == "pinned_messages_ids")
            return changes

        def update(db):
            if "extensions" in fields:
                marker = db.settings.find_one({"_id": common.EXTENSIONS_SETTING})
                kept.append(marker and marker.get("value"))
            try:
                return _dialog(_compareAndSet(db.dialogs, {"_id": dialogId}, compute))
            except NotFound:
                raise NotFound(f"no dialog {dialogId}") from None

        return self.db.run(update)

    def deleteDialog(self, dialogId):
        def delete(db):
            if db.dialogs.delete_one({"_id": dialogId}).deleted_count == 0:
                return False
            db.messages.delete_many({"dialog_id": dialogId})
            db.dialog_users.delete_many({"dialog_id": dialogId})
            return True

        return self.db.run(delete)

    def listDialogs(self, userId, query=None):
        prepareQuery(query, DIALOG_SCHEMA)

        def list_(db):
            base = None if userId is None else _userDialogsFilter(db, userId)
            filter_, prepared = _DIALOGS.filter(query, base)
            return [_dialog(d) for d in _DIALOGS.find(db.dialogs, filter_, prepared,
                                                      self.db.queryTimeoutMs)]

        return self.db.run(list_)

    def countDialogs(self, userId, query=None):
        prepareQuery(query, DIALOG_SCHEMA)

        def count(db):
            base = None if userId is None else _userDialogsFilter(db, userId)
            return _DIALOGS.count(db.dialogs, _DIALOGS.filter(query, base)[0], self.db.queryTimeoutMs)

        return self.db.run(count)

    def configureExtensions(self, fields, keep=()):
        fields, kept = common.extensionKeys(fields, keep)

        def configure(db):
            wanted = {_EXTENSION_INDEX + key: key for key in fields}
            for name in db.dialogs.index_information():
                if name.startswith(_EXTENSION_INDEX) and name not in wanted:
                    db.dialogs.drop_index(name)
            for name, key in wanted.items():
                db.dialogs.create_index(f"extensions.{key}", name=name)
            marker = db.settings.find_one({"_id": common.EXTENSIONS_SETTING})
            if marker is not None and marker.get("value") == kept:
                return 0
            removed = common.extensionsRemoved(marker and marker.get("value"), kept)
            changed = db.dialogs.update_many(
                {"$or": [{f"extensions.{key}": {"$exists": True}} for key in removed]},
                {"$unset": {f"extensions.{key}": "" for key in removed}}).modified_count if removed else 0
            db.settings.replace_one({"_id": common.EXTENSIONS_SETTING}, {"value": kept}, upsert=True)
            return changed

        return self.db.run(configure)

    def setHidden(self, dialogId, userId, hidden=True):
        def hide(db):
            _requireDialog(db, dialogId)
            _setState(db, dialogId, userId, {"hidden": bool(hidden)})

        return self.db.run(hide)

    def subscribe(self, dialogId, userId):
        def subscribe(db):
            if _requireDialog(db, dialogId)["type"] != DIALOG_PUBLIC:
                raise ValueError("only public dialogs take subscriptions")
            _setState(db, dialogId, userId)
            seq = _next(db, "subscriptions")
            return db.dialog_users.update_one(
                {"_id": _stateId(dialogId, userId), "subscribed": None},
                {"$set": {"subscribed": seq}}).modified_count > 0

        return self.db.run(subscribe)

    def unsubscribe(self, dialogId, userId):
        return self.db.run(lambda db: db.dialog_users.update_one(
            {"_id": _stateId(dialogId, userId), "subscribed": {"$ne": None}},
            {"$set": {"subscribed": None}}).modified_count > 0)

    def listSubscribers(self, dialogId, skip=0, limit=None):
        skip, limit = common.pageBounds(skip, limit)
        if limit == 0:
            return defer.succeed([])

        def list_(db):
            cursor = db.dialog_users.find({"dialog_id": dialogId, "subscribed": {"$ne": None}}).sort(
                "subscribed", _ASC).skip(skip)
            if limit is not None:
                cursor = cursor.limit(limit)
            return [d["user_id"] for d in cursor]

        return self.db.run(list_)

    def countSubscribers(self, dialogId):
        return self.db.run(lambda db: db.dialog_users.count_documents(
            {"dialog_id": dialogId, "subscribed": {"$ne": None}}))

    def setNotifications(self, dialogId, userId, enabled):
        def set_(db):
            _requireDialog(db, dialogId)
            _setState(db, dialogId, userId, {"notifications": bool(enabled)})

        return self.db.run(set_)

    def getNotifications(self, dialogId, userId):
        return self.db.run(lambda db: bool(_state(db, dialogId, userId)["notifications"]))


# -- messages -----------------------------------------------------------------------


def _messages(db, docs) -> list[Message]:
    marks: dict[str, list] = {}
    out = []
    for doc in docs:
        dialogId = doc["dialog_id"]
        if dialogId not in marks:
            marks[dialogId] = [
                (d["user_id"], d["read_order"], d["delivered_order"])
                for d in db.dialog_users.find({"dialog_id": dialogId, "$or": [
                    {"read_order": {"$gt": 0}}, {"delivered_order": {"$gt": 0}}]})]
        readIds, deliveredIds = common.derivedIds(doc["sender_id"], doc["ord"], marks[dialogId])
        reactions: dict = {}
        for entry in doc.get("reactions", []):
            reactions.setdefault(entry["e"], set()).add(entry["u"])
        out.append(Message(id=doc["_id"], dialogId=dialogId, senderId=doc["sender_id"],
                           order=doc["ord"], dateSent=doc["date_sent"], body=doc.get("body"),
                           recipientId=doc.get("recipient_id"),
                           attachments=_loads(doc["attachments"]), custom=_loads(doc["custom_json"]),
                           edited=doc["edited"], reactions=reactions, createdAt=doc["created_at"],
                           updatedAt=doc["updated_at"], readIds=readIds,
                           deliveredIds=deliveredIds, stanza=doc.get("stanza")))
    return out


def _visible(db, dialogId, userId) -> dict:
    """
    The conditions for messages of one dialog that a user may see.
    """
    cut = _state(db, dialogId, userId)["cleared_order"]
    return {"dialog_id": dialogId, "hidden_for": {"$ne": userId}, "ord": {"$gt": cut}}


def _visibleIn(db, dialogIds: list, userId) -> dict:
    """
    The conditions for messages of several dialogs that a user may see:
    one read of the user's history cut-offs, then one indexed C{$in}
    (XEP-0313 account archive queries).
    """
    if userId is None:
        return {"dialog_id": {"$in": dialogIds}}
    cuts = {doc["_id"].rpartition(":")[0]: doc["cleared_order"] for doc in db.dialog_users.find(
        {"_id": {"$in": [_stateId(d, userId) for d in dialogIds]}, "cleared_order": {"$gt": 0}})}
    branches = [{"dialog_id": {"$in": [d for d in dialogIds if d not in cuts]}}]
    branches += [{"dialog_id": d, "ord": {"$gt": cut}} for d, cut in cuts.items()]
    return {"$or": branches, "hidden_for": {"$ne": userId}}


def _latest(db, dialogId):
    return db.messages.find_one({"dialog_id": dialogId}, sort=[("ord", pymongo.DESCENDING)])


def _customFields(custom) -> dict:
    return {"custom_json": _dumps(custom), "custom": _queryable(custom)}


def _countMessageOfDay(db, userId: int, limit: int, now: float) -> None:
    """
    Count one more stored message of C{userId} today (UTC) in
    C{message_days} (one document per user), or fail with L{QuotaExceeded}.
    Each step is one atomic document update, so parallel messages never
    overshoot: below the limit today, a new day, or the first message.
    """
    day = common.dayOf(now)
    if db.message_days.update_one({"_id": userId, "day": day, "n": {"$lt": limit}},
                                  {"$inc": {"n": 1}}).modified_count:
        return
    if db.message_days.update_one({"_id": userId, "day": {"$ne": day}},
                                  {"$set": {"day": day, "n": 1}}).modified_count:
        return
    try:
        db.message_days.insert_one({"_id": userId, "day": day, "n": 1})
    except DuplicateKeyError:
        raise common.dailyQuotaExceeded(limit, now) from None


class MongoMessageStore(_Store):
    """
    L{IMessageStore} on the C{messages} collection; watermarks and history
    cut-offs live in C{dialog_users}, per-user deletions in the message's
    C{hidden_for} list, reactions as C{{e: emoji, u: user}} entries.
    """

    def createMessage(self, dialogId, senderId, body, dateSent=None, messageId=None,
                      recipientId=None, attachments=None, custom=None, dailyLimit=None, stanza=None):
        now = self._now()
        dateSent, attachments, custom = common.newMessageValues(
            messageId, senderId, recipientId, body, dateSent, attachments, custom, now)
        messageId = messageId or newObjectId(now)

        def create(db):
            _requireDialog(db, dialogId)
            order = _next(db, "messages")
            doc = {"_id": messageId, "ord": order, "dialog_id": dialogId, "sender_id": senderId,
                   "recipient_id": recipientId, "body": body, "body_folded": common.fold(body),
                   "date_sent": dateSent, "attachments": _dumps(attachments), "edited": False,
                   "reactions": [], "hidden_for": [], "created_at": now, "updated_at": now,
                   "stanza": stanza, **_customFields(custom)}
            try:
                db.messages.insert_one(doc)
            except DuplicateKeyError:
                raise AlreadyExists(f"message {messageId} already exists") from None
            if dailyLimit is not None:
                try:
                    _countMessageOfDay(db, senderId, dailyLimit, now)
                except QuotaExceeded:
                    db.messages.delete_one({"_id": messageId})
                    raise
            db.dialogs.update_one(
                {"_id": dialogId, "last_message_order": {"$lt": order}},
                {"$set": {"last_message": body, "last_message_date_sent": dateSent,
                          "last_message_id": messageId, "last_message_user_id": senderId,
                          "last_message_order": order, "updated_at": now}})
            db.dialog_users.update_many({"dialog_id": dialogId, "hidden": True},
                                        {"$set": {"hidden": False}})
            return _messages(db, [doc])[0]

        return self.db.run(create)

    def hasSent(self, senderId, dialogIds):
        dialogIds = list(dialogIds)
        return self.db.run(lambda db: any(
            db.messages.find_one({"dialog_id": {"$in": dialogIds[start:start + _CHUNK]},
                                  "sender_id": senderId}, {"_id": 1}) is not None
            for start in range(0, len(dialogIds), _CHUNK)))

    def getMessage(self, messageId, userId=None):
        def get(db):
            doc = db.messages.find_one({"_id": messageId})
            if doc is None:
                return None
            if userId is not None and (userId in doc.get("hidden_for", []) or doc["ord"] <= _state(
                    db, doc["dialog_id"], userId)["cleared_order"]):
                return None
            return _messages(db, [doc])[0]

        return self.db.run(get)

    def _filter(self, db, dialogId, userId, query):
        ids = common.dialogIdList(dialogId)
        if len(ids) == 1:
            base = {"dialog_id": ids[0]} if userId is None else _visible(db, ids[0], userId)
        else:
            base = _visibleIn(db, ids, userId)
        return _MESSAGES.filter(query, base)

    def listMessages(self, dialogId, userId=None, query=None):
        prepareQuery(query, MESSAGE_SCHEMA)

        def list_(db):
            filter_, prepared = self._filter(db, dialogId, userId, query)
            return _messages(db, _MESSAGES.find(db.messages, filter_, prepared,
                                                self.db.queryTimeoutMs))

        return self.db.run(list_)

    def countMessages(self, dialogId, userId=None, query=None):
        prepareQuery(query, MESSAGE_SCHEMA)
        return self.db.run(lambda db: _MESSAGES.count(
            db.messages, self._filter(db, dialogId, userId, query)[0], self.db.queryTimeoutMs))

    def editMessage(self, messageId, body=None, attachments=None, custom=None):
        attachments, custom = common.editValues(body, attachments, custom)
        changes = {"body": body, "body_folded": common.fold(body), "edited": True,
                   "updated_at": self._now()}
        if attachments is not None:
            changes["attachments"] = _dumps(attachments)
        if custom is not None:
            changes.update(_customFields(custom))

        def edit(db):
            doc = db.messages.find_one_and_update({"_id": messageId}, {"$set": changes},
                                                  return_document=ReturnDocument.AFTER)
            if doc is None:
                raise NotFound(f"no message {messageId}")
            db.dialogs.update_one({"_id": doc["dialog_id"], "last_message_id": messageId},
                                  {"$set": {"last_message": body}})
            return _messages(db, [doc])[0]

        return self.db.run(edit)

    def react(self, messageId, userId, add=None, remove=None):
        common.applyReaction({}, userId, add, remove)

        def react(db):
            if remove is not None:
                db.messages.update_one({"_id": messageId},
                                       {"$pull": {"reactions": {"e": remove, "u": userId}}})
            if add is not None:
                db.messages.update_one({"_id": messageId},
                                       {"$addToSet": {"reactions": {"e": add, "u": userId}}})
            doc = db.messages.find_one({"_id": messageId}, {"reactions": 1})
            if doc is None:
                raise NotFound(f"no message {messageId}")
            reactions: dict = {}
            for entry in doc.get("reactions", []):
                reactions.setdefault(entry["e"], set()).add(entry["u"])
            return reactions

        return self.db.run(react)

    @staticmethod
    def _existing(db, ids) -> list[dict]:
        found = {}
        for start in range(0, len(ids), _CHUNK):
            for doc in db.messages.find({"_id": {"$in": ids[start:start + _CHUNK]}},
                                        {"dialog_id": 1}):
                found[doc["_id"]] = doc
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def deleteForUser(self, messageIds, userId):
        ids = list(messageIds)

        def delete(db):
            docs = self._existing(db, ids)
            found = [d["_id"] for d in docs]
            if found:
                db.messages.update_many({"_id": {"$in": found}},
                                        {"$addToSet": {"hidden_for": userId}})
            return found

        return self.db.run(delete)

    def deleteMessages(self, messageIds):
        ids = list(messageIds)

        def delete(db):
            docs = self._existing(db, ids)
            found = [d["_id"] for d in docs]
            if not found:
                return []
            db.messages.delete_many({"_id": {"$in": found}})
            for dialogId in dict.fromkeys(d["dialog_id"] for d in docs):
                latest = _latest(db, dialogId)
                last = {"last_message": None, "last_message_date_sent": None,
                        "last_message_id": None, "last_message_user_id": None}
                if latest is not None:
                    last = {"last_message": latest.get("body"),
                            "last_message_date_sent": latest["date_sent"],
                            "last_message_id": latest["_id"],
                            "last_message_user_id": latest["sender_id"]}
                # Only when the deleted message was the last one: a message
                # created meanwhile has already taken its place.
                db.dialogs.update_one({"_id": dialogId, "last_message_id": {"$in": found}},
                                      {"$set": last})
            return found

        return self.db.run(delete)

    def _mark(self, fields, dialogId, userId, messageId):
        def mark(db):
            _requireDialog(db, dialogId)
            if messageId is None:
                latest = _latest(db, dialogId)
                order = 0 if latest is None else latest["ord"]
            else:
                doc = db.messages.find_one({"_id": messageId, "dialog_id": dialogId}, {"ord": 1})
                if doc is None:
                    raise NotFound(f"no message {messageId} in dialog {dialogId}")
                order = doc["ord"]
            before = _state(db, dialogId, userId)[fields[0]]
            _setState(db, dialogId, userId, max_={name: order for name in fields})
            return order > before

        return self.db.run(mark)

    def markRead(self, dialogId, userId, messageId=None):
        return self._mark(("read_order", "delivered_order"), dialogId, userId, messageId)

    def markDelivered(self, dialogId, userId, messageId=None):
        return self._mark(("delivered_order",), dialogId, userId, messageId)

    def unreadCounts(self, userId, dialogIds=None):
        ids = None if dialogIds is None else list(dict.fromkeys(dialogIds))

        def count(db):
            dialogs = ids
            if dialogs is None:
                dialogs = [d["_id"] for d in db.dialogs.find(_userDialogsFilter(db, userId), {"_id": 1})]
            counts = {}
            for dialogId in dialogs:
                state = _state(db, dialogId, userId)
                cut = max(state["read_order"], state["cleared_order"])
                counts[dialogId] = db.messages.count_documents(
                    {"dialog_id": dialogId, "ord": {"$gt": cut}, "sender_id": {"$ne": userId},
                     "hidden_for": {"$ne": userId}})
            return counts

        return self.db.run(count)

    def clearHistory(self, dialogId, userId):
        def clear(db):
            _requireDialog(db, dialogId)
            latest = _latest(db, dialogId)
            _setState(db, dialogId, userId, max_={"cleared_order": 0 if latest is None else latest["ord"]})

        return self.db.run(clear)

    def searchMessages(self, dialogIds, text, userId=None, dateFrom=None, dateTo=None, limit=100):
        ids, limit = common.searchArguments(dialogIds, text, limit)
        if not ids or limit == 0:
            return defer.succeed([])

        def search(db):
            conditions = [{"body_folded": {"$regex": literalPattern(common.fold(text))}}]
            if userId is None:
                conditions.append({"dialog_id": {"$in": ids}})
            else:
                conditions.append({"$or": [_visible(db, d, userId) for d in ids]})
            dates = {}
            if dateFrom is not None:
                dates["$gte"] = dateFrom
            if dateTo is not None:
                dates["$lte"] = dateTo
            if dates:
                conditions.append({"date_sent": dates})
            cursor = db.messages.find({"$and": conditions}).sort(
                [("date_sent", pymongo.DESCENDING), ("ord", pymongo.DESCENDING)])
            if limit is not None:
                cursor = cursor.limit(limit)
            if self.db.queryTimeoutMs:
                cursor = cursor.max_time_ms(self.db.queryTimeoutMs)
            return _messages(db, list(cursor))

        return self.db.run(search)


# -- blobs and records ----------------------------------------------------------------


def _blob(doc) -> Blob | None:
    if doc is None:
        return None
    return Blob(id=doc["_id"], uid=doc["uid"], ownerId=doc["owner_id"], name=doc.get("name"),
                contentType=doc.get("content_type"), size=doc.get("size"), public=doc["public"],
                completed=doc["completed"], createdAt=doc["created_at"], updatedAt=doc["updated_at"])


class MongoBlobStore(_Store):
    """
    L{IBlobStore} on the C{blobs} collection (C{_id} from a counter).
    """

    def createBlob(self, ownerId, name, contentType, public=False, limit=None):
        common.checkId(ownerId, "owner id")
        now = self._now()

        def create(db):
            doc = {"_id": _next(db, "blobs"), "uid": common.newBlobUid(), "owner_id": ownerId,
                   "name": name, "content_type": contentType, "size": None,
                   "public": bool(public), "completed": False, "created_at": now,
                   "updated_at": now}
            db.blobs.insert_one(doc)
            if limit is not None:
                # counted with the new blob in place (see createRecord)
                count = db.blobs.count_documents({"owner_id": ownerId})
                if count > limit:
                    db.blobs.delete_one({"_id": doc["_id"]})
                    common.requireRoom(count - 1, 1, limit, "files")
            return _blob(doc)

        return self.db.run(create)

    def getBlob(self, blobId):
        return self.db.run(lambda db: _blob(db.blobs.find_one({"_id": blobId})))

    def getBlobByUid(self, uid):
        return self.db.run(lambda db: _blob(db.blobs.find_one({"uid": uid})))

    def updateBlob(self, blobId, **fields):
        fields = common.checkBlobFields(fields)
        names = {"contentType": "content_type"}
        changes = {names.get(k, k): v for k, v in fields.items()}
        changes["updated_at"] = self._now()

        def update(db):
            doc = db.blobs.find_one_and_update({"_id": blobId}, {"$set": changes},
                                               return_document=ReturnDocument.AFTER)
            if doc is None:
                raise NotFound(f"no blob {blobId}")
            return _blob(doc)

        return self.db.run(update)

    def completeBlob(self, blobId, size):
        return self.updateBlob(blobId, size=size, completed=True)

    def reserveBlobBytes(self, blobId, size, limit=None):
        common.checkId(size, "size")
        now = self._now()

        def reserve(db):
            before = db.blobs.find_one_and_update({"_id": blobId},
                                                  {"$set": {"size": size, "updated_at": now}})
            if before is None:
                raise NotFound(f"no blob {blobId}")
            if limit is not None:
                # counted with the new size in place (see createRecord)
                used = _usage(db.blobs, {"owner_id": before["owner_id"]})[1]
                if used > limit:
                    db.blobs.update_one({"_id": blobId, "size": size},
                                        {"$set": {"size": before["size"]}})
                    common.requireRoom(used - size, size, limit, "bytes of files")
            return _blob({**before, "size": size, "updated_at": now})

        return self.db.run(reserve)

    def blobUsage(self, ownerId):
        return self.db.run(lambda db: _usage(db.blobs, {"owner_id": ownerId}))

    def deleteIncompleteBlobs(self, createdBefore, limit=500):
        def sweep(db):
            stale = db.blobs.find({"completed": False, "created_at": {"$lt": createdBefore}}).sort(
                "created_at", _ASC).limit(limit)
            return [_blob(doc) for doc in list(stale)
                    if db.blobs.delete_one({"_id": doc["_id"], "completed": False}).deleted_count]

        return self.db.run(sweep)

    def deleteBlob(self, blobId):
        return self.db.run(lambda db: db.blobs.delete_one({"_id": blobId}).deleted_count > 0)

    def listBlobs(self, ownerId, skip=0, limit=None):
        skip, limit = common.pageBounds(skip, limit)
        if limit == 0:
            return defer.succeed([])

        def list_(db):
            cursor = db.blobs.find({"owner_id": ownerId}).sort("_id", _ASC).skip(skip)
            if limit is not None:
                cursor = cursor.limit(limit)
            return [_blob(d) for d in cursor]

        return self.db.run(list_)

    def countBlobs(self, ownerId):
        return self.db.run(lambda db: db.blobs.count_documents({"owner_id": ownerId}))


def _usage(collection, filter_) -> tuple[int, int]:
    """
    C{(count, total size)} of the documents matching C{filter_}.
    """
    total = list(collection.aggregate([{"$match": filter_},
                                       {"$group": {"_id": None, "n": {"$sum": 1},
                                                   "size": {"$sum": "$size"}}}]))
    return (total[0]["n"], int(total[0]["size"] or 0)) if total else (0, 0)


def _record(doc) -> Record | None:
    if doc is None:
        return None
    return Record(className=doc["class_name"], id=doc["rid"], userId=doc["user_id"],
                  fields=_loads(doc["fields_json"]), parentId=doc.get("parent_id"),
                  createdAt=doc["created_at"], updatedAt=doc["updated_at"])


def _recordFields(fields) -> dict:
    return {"fields_json": _dumps(fields), "fields": _queryable(fields),
            "size": common.recordSize(fields)}


class MongoRecordStore(_Store):
    """
    L{IRecordStore} on the C{records} collection, unique by
    C{(class_name, rid)}.
    """

    def createRecord(self, className, userId, fields, parentId=None, recordId=None, limit=None,
                     byteLimit=None):
        fields = common.newRecordValues(className, userId, fields, recordId)
        now = self._now()
        doc = {"class_name": className, "rid": recordId or newObjectId(now), "user_id": userId,
               "parent_id": parentId, "created_at": now, "updated_at": now, "version": 0,
               **_recordFields(fields)}

        def create(db):
            try:
                db.records.insert_one(doc)
            except DuplicateKeyError:
                raise AlreadyExists(f"record {doc['rid']} already exists") from None
            if limit is not None or byteLimit is not None:
                # counted with the new record in place, so parallel creations
                # see each other: at the edge both may fail, never both pass
                count, used = _usage(db.records, {"user_id": userId})
                try:
                    common.requireRoom(count - 1, 1, limit, "records")
                    common.requireRoom(used - doc["size"], doc["size"], byteLimit, "bytes of records")
                except QuotaExceeded:
                    db.records.delete_one({"_id": doc["_id"]})
                    raise
            return _record(doc)

        return self.db.run(create)

    def getRecord(self, className, recordId):
        return self.db.run(lambda db: _record(db.records.find_one(
            {"class_name": className, "rid": recordId})))

    def listRecords(self, className, query=None):
        filter_, query = _RECORDS.filter(query, {"class_name": className})
        return self.db.run(lambda db: [_record(d) for d in _RECORDS.find(
            db.records, filter_, query, self.db.queryTimeoutMs)])

    def countRecords(self, className, query=None):
        filter_, _ = _RECORDS.filter(query, {"class_name": className})
        return self.db.run(lambda db: _RECORDS.count(db.records, filter_, self.db.queryTimeoutMs))

    def updateRecord(self, className, recordId, set=None, unset=(), byteLimit=None):
        common.updatedFields({}, set, ())
        unset = list(unset)
        now = self._now()

        def compute(doc):
            fields = common.updatedFields(_loads(doc["fields_json"]), set, unset)
            return {**_recordFields(fields), "updated_at": now}

        def update(db):
            if byteLimit is not None:
                doc = db.records.find_one({"class_name": className, "rid": recordId})
                if doc is not None:
                    old = len(doc["fields_json"].encode("utf-8"))  # its stored JSON (recordSize)
                    grow = compute(doc)["size"] - old
                    if grow > 0:
                        used = _usage(db.records, {"user_id": doc["user_id"]})[1]
                        common.requireRoom(used, grow, byteLimit, "bytes of records")
            try:
                return _record(_compareAndSet(db.records, {"class_name": className, "rid": recordId},
                                              compute))
            except NotFound:
                raise NotFound(f"no {className} record {recordId}") from None

        return self.db.run(update)

    def recordUsage(self, userId):
        return self.db.run(lambda db: _usage(db.records, {"user_id": userId}))

    def deleteRecord(self, className, recordId):
        return self.db.run(lambda db: db.records.delete_one(
            {"class_name": className, "rid": recordId}).deleted_count > 0)


# -- privacy lists ----------------------------------------------------------------


class MongoPrivacyStore(_Store):
    """
    L{IPrivacyStore} on the C{privacy} collection: one document per user,
    C{{_id: localpart, default: name, lists: [{name, items}]}}, the lists in
    creation order, so every change is a single-document update.
    """

    def getPrivacy(self, localpart):
        def get(db):
            doc = db.privacy.find_one({"_id": localpart})
            record = PrivacyRecord()
            if doc is not None:
                record.default = doc.get("default")
                record.lists = {entry["name"]: entry["items"] for entry in doc.get("lists", ())}
            return record

        return self.db.run(get)

    def setPrivacyList(self, localpart, name, items):
        items = list(items)

        def set_(db):
            for _ in range(_CAS_ATTEMPTS):
                if db.privacy.update_one({"_id": localpart, "lists.name": name},
                                         {"$set": {"lists.$.items": items}}).matched_count:
                    return
                try:
                    db.privacy.update_one({"_id": localpart, "lists.name": {"$ne": name}},
                                          {"$push": {"lists": {"name": name, "items": items}}},
                                          upsert=True)
                    return
                except DuplicateKeyError:
                    continue  # created concurrently: replace it on the next turn
            raise StorageError("MongoDB: too many concurrent updates of one document")

        return self.db.run(set_)

    def deletePrivacyList(self, localpart, name):
        def delete(db):
            db.privacy.update_one({"_id": localpart, "default": name}, {"$unset": {"default": ""}})
            return db.privacy.update_one(
                {"_id": localpart}, {"$pull": {"lists": {"name": name}}}).modified_count > 0

        return self.db.run(delete)

    def setDefaultPrivacyList(self, localpart, name):
        def setDefault(db):
            if name is None:
                db.privacy.update_one({"_id": localpart}, {"$unset": {"default": ""}})
                return
            if not db.privacy.update_one({"_id": localpart, "lists.name": name},
                                         {"$set": {"default": name}}).matched_count:
                raise NotFound(f"{localpart} has no privacy list {name!r}")

        return self.db.run(setDefault)



class _PortableStore(MongoPortableStore):
    # this module's document readers and writers, for export and import (storage/portable)
    rows = SimpleNamespace(
        dialog=_dialog, messages=_messages, blob=_blob, record=_record, accountDoc=_accountDoc,
        customFields=_customFields, recordFields=_recordFields, next=_next, stateId=_stateId)


class MongoStorage(common.WorkerStorage):
    """
    L{Storage} on one MongoDB database.

    @param uri: the C{mongodb://} URI (ignored when C{client} is given).
    @param database: the database name.
    @param poolSize: worker threads (and pymongo connections).
    @param client: an already built client (tests pass a mongomock one);
        C{None} to connect to C{uri} at start.
    @param synchronous: run every call inline and return fired Deferreds.
    @param timeoutMs: server selection and connect timeout.
    @param queryTimeoutMs: the C{maxTimeMS} of finders and counts (0:
        none); an expired one fails with L{QueryTimeout}.
    """

    STORES = {
        "accounts": MongoAccountStore,
        "tokens": MongoTokenStore,
        "offline": MongoOfflineStore,
        "roster": MongoRosterStore,
        "lastActivity": MongoLastActivityStore,
        "dialogs": MongoDialogStore,
        "messages": MongoMessageStore,
        "blobs": MongoBlobStore,
        "records": MongoRecordStore,
        "privacy": MongoPrivacyStore,
        "unlocks": MongoUnlockStore,
        "settings": MongoSettingStore,
        "pep": MongoPEPStore,
        "uploads": MongoUploadSlotStore,
        "userXML": MongoUserXMLStore,
        "portable": _PortableStore,
    }

    def __init__(self, uri: str = "mongodb://127.0.0.1:27017", database: str = "xmppchat",
                 poolSize: int = 8, reactor=None, synchronous: bool = False, client=None,
                 timeoutMs: int = SERVER_SELECTION_TIMEOUT_MS,
                 queryTimeoutMs: int = common.QUERY_TIMEOUT_MS):
        self.uri = uri
        self.database = database
        self._attachStores(_Database(uri, database, poolSize, reactor, synchronous, client, timeoutMs,
                                     queryTimeoutMs), reactor)

    def __repr__(self) -> str:
        return f"<MongoStorage {redactUri(self.uri)} {self.database!r}>"


__all__ = ["MongoStorage", "redactUri", "SERVER_SELECTION_TIMEOUT_MS", "INDEXES"]
