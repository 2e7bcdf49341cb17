"""
The embedded storage backend: stdlib C{sqlite3}, one file under the data
directory (or C{:memory:} for tests).

Threading model (issue 15 finding 3: one user's query must not stall
everyone's storage):
  - B{the writer}: one connection on a dedicated thread (a L{ThreadPool}
    of exactly one thread, started and stopped with the storage) runs
    every write transaction, so writes are serialised and never block the
    reactor;
  - B{the readers}: C{readConnections} more connections (C{[storage]
    read_connections}, 2 by default), each read transaction taking an idle
    one on a pool of as many threads.  WAL lets them read beside the
    writer and each other, so a slow read delays neither logins nor
    message writes nor other reads while a reader is free.  They are
    C{query_only}.  A C{:memory:} database exists only on its own
    connection: there reads run on the writer, as they do with
    C{read_connections = 0};
  - B{a time limit on reads}: a progress handler aborts a read
    transaction after C{queryTimeoutMs} (C{[storage] query_timeout_ms})
    with L{QueryTimeout}, which the REST layer answers with 503 and
    C{Retry-After}; the REST layer also bounds what a query may ask for
    (L{xmppchat.api.json.QueryLimits}).  Writes are never cut.
Calls go through L{threads.deferToThreadPool}, so statements never block
the reactor.  With C{synchronous=True} every call runs inline on the same
connections and returns an already-fired Deferred: tests use
C{successResultOf} and the admin CLI needs no reactor.

The database is in WAL mode with a busy timeout, so the admin CLI can write
while the server runs.  Each public method is one transaction (writes take
the write lock up front with C{BEGIN IMMEDIATE}); C{sqlite3} errors are
translated to L{StorageError}/L{AlreadyExists} (statements too large to
prepare to L{InvalidQuery}) inside the worker thread.  JSON columns hold
credentials, profiles and roster groups.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import time
from types import SimpleNamespace

from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.storage import common
from xmppchat.storage.common import (
    QUERY_TIMEOUT_MS,
    ACCOUNT_SCHEMA,
    DIALOG_SCHEMA,
    MESSAGE_SCHEMA,
    RECORD_SCHEMA,
    isNumber,
    prepareQuery,
)
from xmppchat.storage.pep.sqlite import SCHEMA as PEP_SCHEMA
from xmppchat.storage.pep.sqlite import SQLitePEPStore
from xmppchat.storage.portable.sqlite import SQLitePortableStore
from xmppchat.storage.settings.sqlite import SQLiteSettingStore
from xmppchat.storage.unlocks.sqlite import SCHEMA as UNLOCK_SCHEMA
from xmppchat.storage.unlocks.sqlite import SQLiteUnlockStore
from xmppchat.storage.uploads.sqlite import SCHEMA as UPLOAD_SCHEMA
from xmppchat.storage.uploads.sqlite import SQLiteUploadSlotStore
from xmppchat.storage.userxml.sqlite import SCHEMA as USER_XML_SCHEMA
from xmppchat.storage.userxml.sqlite import SQLiteUserXMLStore, deleteUserXML
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_PUBLIC,
    ID_PLACEHOLDER,
    Account,
    AlreadyExists,
    Blob,
    Dialog,
    Message,
    NotFound,
    OfflineMessage,
    PrivacyRecord,
    InvalidQuery,
    QueryTimeout,
    Record,
    RosterItem,
    StorageError,
    TokenRecord,
    newObjectId,
)

SCHEMA_VERSION = 15

# MIGRATIONS[n] brings a database from version n to n + 1; MIGRATIONS[0]
# creates the first schema.  Append, never edit, once released.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            localpart TEXT NOT NULL UNIQUE,
            login TEXT UNIQUE,
            email TEXT UNIQUE,
            external_id TEXT UNIQUE,
            credentials TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            profile TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE IF NOT EXISTS tokens (
            token_hash TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL,
            app_id INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            credentials TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS tokens_by_account ON tokens (account_id, expires_at)",
        "CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at)",
        """CREATE TABLE IF NOT EXISTS offline (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            localpart TEXT NOT NULL,
            stanza TEXT NOT NULL,
            stamp REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS offline_by_localpart ON offline (localpart, id)",
        """CREATE TABLE IF NOT EXISTS roster (
            localpart TEXT NOT NULL,
            jid TEXT NOT NULL,
            name TEXT,
            groups TEXT NOT NULL DEFAULT '[]',
            subscription TEXT NOT NULL DEFAULT 'none',
            ask TEXT,
            pending_in INTEGER NOT NULL DEFAULT 0,
            hidden INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (localpart, jid)
        )""",
        """CREATE TABLE IF NOT EXISTS last_activity (
            localpart TEXT PRIMARY KEY,
            stamp REAL NOT NULL,
            status TEXT
        )""",
    ],
    # 1 -> 2: dialogs, messages, blobs, custom records.
    [
        """CREATE TABLE dialogs (
            id TEXT PRIMARY KEY,
            type INTEGER NOT NULL,
            owner_id INTEGER NOT NULL,
            occupants TEXT NOT NULL DEFAULT '[]',
            admins TEXT NOT NULL DEFAULT '[]',
            pinned TEXT NOT NULL DEFAULT '[]',
            name TEXT,
            photo TEXT,
            description TEXT,
            extensions TEXT NOT NULL DEFAULT '{}',
            permissions TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_message TEXT,
            last_message_date_sent INTEGER,
            last_message_id TEXT,
            last_message_user_id INTEGER,
            private_key TEXT UNIQUE
        )""",
        "CREATE INDEX dialogs_by_creation ON dialogs (created_at, id)",
        # The occupants of every dialog, mirrored from dialogs.occupants:
        # a user's dialogs by index.
        """CREATE TABLE dialog_occupants (
            user_id INTEGER NOT NULL,
            dialog_id TEXT NOT NULL,
            PRIMARY KEY (user_id, dialog_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX dialog_occupants_by_dialog ON dialog_occupants (dialog_id)",
        # Per-(dialog, user) state: watermarks on messages.ord, history
        # cut-off, hidden flag, notifications, public subscription.
        """CREATE TABLE dialog_users (
            dialog_id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            read_order INTEGER NOT NULL DEFAULT 0,
            delivered_order INTEGER NOT NULL DEFAULT 0,
            cleared_order INTEGER NOT NULL DEFAULT 0,
            hidden INTEGER NOT NULL DEFAULT 0,
            notifications INTEGER NOT NULL DEFAULT 1,
            subscribed INTEGER,
            PRIMARY KEY (dialog_id, user_id)
        )""",
        "CREATE INDEX dialog_users_by_user ON dialog_users (user_id, dialog_id)",
        "CREATE INDEX dialog_users_subscribed ON dialog_users (dialog_id, subscribed)",
        """CREATE TABLE messages (
            ord INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            dialog_id TEXT NOT NULL,
            sender_id INTEGER NOT NULL,
            recipient_id INTEGER,
            body TEXT,
            body_folded TEXT,
            date_sent INTEGER NOT NULL,
            attachments TEXT NOT NULL DEFAULT '[]',
            custom TEXT NOT NULL DEFAULT '{}',
            edited INTEGER NOT NULL DEFAULT 0,
            reactions TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX messages_by_dialog ON messages (dialog_id, ord)",
        "CREATE INDEX messages_by_date ON messages (dialog_id, date_sent, ord)",
        """CREATE TABLE message_hidden (
            user_id INTEGER NOT NULL,
            message_ord INTEGER NOT NULL,
            PRIMARY KEY (user_id, message_ord)
        ) WITHOUT ROWID""",
        "CREATE INDEX message_hidden_by_message ON message_hidden (message_ord)",
        """CREATE TABLE blobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            uid TEXT NOT NULL UNIQUE,
            owner_id INTEGER NOT NULL,
            name TEXT,
            content_type TEXT,
            size INTEGER,
            public INTEGER NOT NULL DEFAULT 0,
            completed INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX blobs_by_owner ON blobs (owner_id, id)",
        """CREATE TABLE records (
            class_name TEXT NOT NULL,
            id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            parent_id TEXT,
            fields TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (class_name, id)
        )""",
        "CREATE INDEX records_by_creation ON records (class_name, created_at, id)",
    ],
    [
        # 2 -> 3: XEP-0016 privacy lists, one row per list (items as JSON,
        # rowid order = creation order) and each user's default list.
        """CREATE TABLE IF NOT EXISTS privacy_lists (
            localpart TEXT NOT NULL,
            name TEXT NOT NULL,
            items TEXT NOT NULL,
            PRIMARY KEY (localpart, name)
        )""",
        """CREATE TABLE IF NOT EXISTS privacy_default (
            localpart TEXT PRIMARY KEY,
            name TEXT NOT NULL
        )""",
    ],
    [
        # 3 -> 4: per-user quotas (issue 15 finding 15): each record's size,
        # usage by owner from indexes, incomplete blobs by age, and each
        # user's stored messages of the current day.
        "ALTER TABLE records ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
        "UPDATE records SET size = length(CAST(fields AS BLOB))",
        "CREATE INDEX records_by_user ON records (user_id, size)",
        "CREATE INDEX dialogs_by_owner ON dialogs (owner_id)",
        "CREATE INDEX blobs_incomplete ON blobs (completed, created_at)",
        """CREATE TABLE message_days (
            user_id INTEGER PRIMARY KEY,
            day INTEGER NOT NULL,
            count INTEGER NOT NULL
        )""",
    ],
    [
        # 4 -> 5, issue 15 findings 1 and 4: JWT-created accounts are marked (those
        # made before the mark are the ones with an external id and neither
        # login nor e-mail: a password signup needs one of them), and
        # logged-out JWTs are remembered until they expire.
        "ALTER TABLE accounts ADD COLUMN jwt INTEGER NOT NULL DEFAULT 0",
        "UPDATE accounts SET jwt = 1 WHERE external_id IS NOT NULL AND login IS NULL"
        " AND email IS NULL",
        """CREATE TABLE IF NOT EXISTS revoked_tokens (
            token_hash TEXT PRIMARY KEY,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS revoked_tokens_by_expiry ON revoked_tokens (expires_at)",
    ],
    # 5 -> 6: admin unlock requests (storage/unlocks, issue 15 finding 5)
    UNLOCK_SCHEMA,
    [
        # 6 -> 7 (issue 15 findings 8, 9): who sent each offline message and
        # for which dialog, counted by index for the per-sender and
        # per-dialog shares of the queue; a dialog's messages by sender
        # (has a user taken part in a dialog?).
        "ALTER TABLE offline ADD COLUMN sender TEXT",
        "ALTER TABLE offline ADD COLUMN dialog_id TEXT",
        "CREATE INDEX IF NOT EXISTS offline_by_sender ON offline (localpart, sender)",
        "CREATE INDEX IF NOT EXISTS offline_by_dialog ON offline (localpart, dialog_id)",
        "CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (dialog_id, sender_id)",
    ],
    [
        # 7 -> 8 (issue 17 item 5): broadcast dialogs are in every user's
        # list (by type), and the dialog extension fields the
        # administrator configured are remembered, so a field removed from
        # the config is removed from every dialog at the next start.
        "CREATE INDEX IF NOT EXISTS dialogs_by_type ON dialogs (type)",
        """CREATE TABLE IF NOT EXISTS settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
    ],
    # 8 -> 9: PEP nodes and items (storage/pep, issue 16 item 1)
    PEP_SCHEMA,
    # 9 -> 10: XEP-0363 upload slots (storage/uploads, issue 16 item 4)
    UPLOAD_SCHEMA,
    [
        # 10 -> 11 (issue 16 item 6): roster versioning (RFC 6121 §2.6), one
        # counter per user, advanced in the transaction of each roster write.
        """CREATE TABLE IF NOT EXISTS roster_version (
            localpart TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        )""",
    ],
    # 11 -> 12 (issue 16 items 2, 3): vCards and private XML (storage/userxml)
    USER_XML_SCHEMA,
    # 12 -> 13 (issue 16, XEP-0313): a stock client's archived message kept verbatim
    ["ALTER TABLE messages ADD COLUMN stanza TEXT"],
    # 13 -> 14 (issue 19, Moderation): accounts the administrator blocked
    ["ALTER TABLE accounts ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0"],
    # 14 -> 15 (review 19 B2): the admin's dialog list, the latest change
    # first, and a user's dialogs (owned or occupied) by index
    ["CREATE INDEX IF NOT EXISTS dialogs_by_update ON dialogs (updated_at)",
     "CREATE INDEX IF NOT EXISTS dialogs_by_owner ON dialogs (owner_id)"],
]

assert len(MIGRATIONS) == SCHEMA_VERSION

BUSY_TIMEOUT_MS = 5000
READ_CONNECTIONS = 2
# SQLite VM instructions between two looks at the read deadline.
_PROGRESS_STEPS = 1000
# Errors of statements too large to prepare: the query's fault (InvalidQuery).
_TOO_LARGE = ("too many SQL variables", "Expression tree is too large", "parser stack overflow",
              "too many terms")
_CHUNK = 500

# Column of the accounts table -> the Account field it holds.
_ACCOUNT_COLUMNS = {
    "id": "id",
    "localpart": "localpart",
    "login": "login",
    "email": "email",
    "external_id": "externalId",
}
_ACCOUNT_SELECT = (
    "SELECT id, localpart, login, email, external_id, credentials, created_at, updated_at, profile,"
    " jwt, blocked FROM accounts"
)
_TOKEN_SELECT = "SELECT token_hash, account_id, app_id, created_at, expires_at, credentials FROM tokens"
_ROSTER_SELECT = "SELECT jid, name, groups, subscription, ask, pending_in, hidden FROM roster"


_dumps = common.dumpJson
_loads = common.loadJson


def _account(row) -> Account | None:
    if row is None:
        return None
    return Account(id=row[0], localpart=row[1], login=row[2], email=row[3], externalId=row[4],
                   credentials=_loads(row[5]), createdAt=row[6], updatedAt=row[7],
                   profile=_loads(row[8]) or {}, jwt=bool(row[9]),
                   blocked=bool(row[10]))


def _token(row) -> TokenRecord | None:
    if row is None:
        return None
    return TokenRecord(tokenHash=row[0], accountId=row[1], appId=row[2], createdAt=row[3],
                       expiresAt=row[4], credentials=_loads(row[5]))


def _rosterItem(row) -> RosterItem | None:
    if row is None:
        return None
    return RosterItem(jid=row[0], name=row[1], groups=_loads(row[2]) or [], subscription=row[3],
                      ask=row[4], pendingIn=bool(row[5]), hidden=bool(row[6]))


def _duplicate(error: sqlite3.IntegrityError) -> AlreadyExists:
    """
    An L{AlreadyExists} naming the field of a failed UNIQUE constraint
    (C{"UNIQUE constraint failed: accounts.login"}).
    """
    message = str(error)
    prefix = "UNIQUE constraint failed: "
    if message.startswith(prefix):
        names = []
        for column in message[len(prefix):].split(", "):
            column = column.rpartition(".")[2]
            names.append(_ACCOUNT_COLUMNS.get(column, column))
        return AlreadyExists(f"{', '.join(names)} already exists")
    return AlreadyExists(message)


def _execute(connection, sql, values) -> None:
    connection.execute(sql, values)


def _upsertRosterItem(connection, sql, values, first) -> str:
    values = list(values)
    values[3] = _dumps(values[3])
    connection.execute(sql, values)
    return _advanceRosterVersion(connection, values[0], first)


def _advanceRosterVersion(connection, localpart, first) -> str:
    """
    RFC 6121 §2.6: the next roster version of C{localpart}, in the
    transaction of the change (C{first} when there was none).
    """
    return str(connection.execute(
        "INSERT INTO roster_version (localpart, version) VALUES (?, ?) ON CONFLICT (localpart)"
        " DO UPDATE SET version = version + 1 RETURNING version", (localpart, first)).fetchone()[0])


def _removeRosterItem(connection, localpart, jid, first) -> str | None:
    if connection.execute("DELETE FROM roster WHERE localpart = ? AND jid = ?",
                          (localpart, jid)).rowcount == 0:
        return None
    return _advanceRosterVersion(connection, localpart, first)


def _rosterVersion(connection, localpart) -> str:
    row = connection.execute("SELECT version FROM roster_version WHERE localpart = ?",
                             (localpart,)).fetchone()
    return "0" if row is None else str(row[0])


def _marks(values) -> str:
    return ", ".join("?" * len(values))


def _byIds(connection, select, column, ids, convert) -> dict:
    """
    C{{id: object}} for the rows of C{select} whose C{column} is one of
    C{ids}, in chunks that fit in one statement.
    """
    found = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        found += [convert(row) for row in connection.execute(
            f"{select} WHERE {column} IN ({_marks(chunk)})", chunk)]
    return common.byId(found)


# -- queries ----------------------------------------------------------------------
#
# A resolved query field becomes a target: ("col", sql) for a column, or
# ("json", column, path) for the values held at a JSON path (a scalar or a
# list): conditions on those hold when any element satisfies them.

_COMPARISONS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _typeGuard(value) -> str:
    if isinstance(value, bool):
        return "type IN ('true', 'false')"
    if isNumber(value):
        return "type IN ('integer', 'real')"
    return "type = 'text'"


def _columnCondition(expr, op, value, params) -> str:
    if op == "eq":
        if value is None:
            return f"{expr} IS NULL"
        params.append(value)
        return f"{expr} = ?"
    if op == "ne":
        if value is None:
            return f"{expr} IS NOT NULL"
        params.append(value)
        return f"({expr} IS NULL OR {expr} != ?)"
    if op in _COMPARISONS:
        params.append(value)
        return f"{expr} {_COMPARISONS[op]} ?"
    if op in ("in", "or"):
        if not value:
            return "0"
        params.extend(value)
        return f"{expr} IN ({_marks(value)})"
    if op == "nin":
        if not value:
            return "1"
        params.extend(value)
        return f"({expr} IS NULL OR {expr} NOT IN ({_marks(value)}))"
    if op == "all":
        if not value:
            return "0"
        params.extend(value)
        return "(" + " AND ".join(f"{expr} = ?" for _ in value) + ")"
    if op == "ctn":
        params.append(value)
        return f"(typeof({expr}) = 'text' AND instr({expr}, ?) > 0)"
    # start_with
    params.extend([value, value])
    return f"(typeof({expr}) = 'text' AND substr({expr}, 1, length(?)) = ?)"


def _anyOf(values, params) -> str:
    """
    A json_each row whose value is one of C{values}, each compared with
    its own type: one C{IN} list per type (a flat, indexed lookup per
    element instead of one C{OR} term per value, whose depth SQLite caps
    at 1000 and whose cost grows with every value: issue 15 findings 3, 14).
    """
    groups: dict[str, list] = {}
    for value in values:
        groups.setdefault(_typeGuard(value), []).append(value)
    terms = []
    for guard, group in groups.items():
        params.extend(group)
        terms.append(f"({guard} AND value IN ({_marks(group)}))")
    return "(" + " OR ".join(terms) + ")"


def _jsonCondition(column, path, op, value, params) -> str:
    def exists(predicate, values=()):
        # The type test runs once per row, not once per element (it parses
        # the whole JSON text each time).
        params.extend([path, path, *values])
        return (f"(json_type({column}, ?) != 'object' AND EXISTS (SELECT 1 FROM"
                f" json_each({column}, ?) WHERE {predicate}))")

    if value is None:
        params.extend([path, path])
        test = f"(json_type({column}, ?) IS NULL OR json_type({column}, ?) = 'null')"
        return test if op == "eq" else f"NOT {test}"
    if op == "eq":
        return exists(f"value = ? AND {_typeGuard(value)}", [value])
    if op == "ne":
        return "NOT " + exists(f"value = ? AND {_typeGuard(value)}", [value])
    if op in _COMPARISONS:
        return exists(f"value {_COMPARISONS[op]} ? AND {_typeGuard(value)}", [value])
    if op in ("in", "or", "nin"):
        if not value:
            return "1" if op == "nin" else "0"
        inner: list = []
        predicate = _anyOf(value, inner)
        test = exists(predicate, inner)
        return f"NOT {test}" if op == "nin" else test
    if op == "all":
        if not value:
            return "0"
        return "(" + " AND ".join(_jsonCondition(column, path, "eq", v, params) for v in value) + ")"
    if op == "ctn":
        return exists("type = 'text' AND instr(value, ?) > 0", [value])
    return exists("type = 'text' AND substr(value, 1, length(?)) = ?", [value, value])


def _condition(target, op, value, params) -> str:
    if target[0] == "col":
        return _columnCondition(target[1], op, value, params)
    return _jsonCondition(target[1], target[2], op, value, params)


def _jsonPath(key: str) -> str:
    return f'$."{key}"'


def _extensionValue(column: str, key: str) -> str:
    """
    The SQL of a dialog extension's value (always a string): the very
    expression of its index (L{SQLiteDialogStore.configureExtensions}), so
    filters on a configured field use the index.  C{key} passed
    L{common.checkKey} (letters, digits, "_", "-"): safe to inline.
    """
    return f"json_extract({column}, '{_jsonPath(key)}')"


class _Translator:
    """
    Turns a L{Query} into SQL for one table.

    @param columns: fixed wire name -> column (list fields hold JSON arrays).
    @param dynamic: the JSON column holding the other keys.
    @param natural: the ORDER BY tie-break (natural order).
    """

    def __init__(self, schema, columns: dict, dynamic: str | None, natural: str,
                 scalarDynamic: bool = False, members: dict | None = None):
        self.schema = schema
        self.columns = columns
        self.dynamic = dynamic
        self.natural = natural
        # the dynamic keys hold scalars only (dialog extensions): compared
        # as one indexable expression instead of a json_each scan
        self.scalarDynamic = scalarDynamic
        # list field -> the SQL of the rows' keys whose list holds the
        # (integer) values "?..." (a mirror table instead of a json_each scan)
        self.members = members or {}

    def target(self, resolved):
        if resolved.fixed is not None:
            column = self.columns[resolved.fixed]
            return ("json", column, "$") if resolved.isList else ("col", column)
        if self.scalarDynamic:
            return ("col", _extensionValue(self.dynamic, resolved.key))
        return ("json", self.dynamic, _jsonPath(resolved.key))

    def where(self, query) -> tuple[str, list, object]:
        """
        C{(sql, params, query)}: the conditions (C{"1"} for none).
        """
        query, resolved, anyOf = prepareQuery(query, self.schema)
        params: list = []
        conditions = [self._condition(f, params) for f in resolved if f[1] != "or"]
        for disjunction in ([f for f in resolved if f[1] == "or"], anyOf):
            if disjunction:
                conditions.append("(" + " OR ".join(self._condition(f, params)
                                                    for f in disjunction) + ")")
        return " AND ".join(conditions) or "1", params, query

    def _condition(self, resolved, params) -> str:
        field, op, value = resolved
        values = value if isinstance(value, list) else [value]
        if (field.fixed in self.members and op in ("eq", "in", "or") and values
                and all(type(v) is int for v in values)):
            # "holds one of these ids" (review 19 B2: the admin's user= filter)
            params.extend(values)
            return self.members[field.fixed].replace("?...", _marks(values))
        return _condition(self.target(field), op, value, params)

    def orderBy(self, query) -> str:
        if query.sort is None:
            return self.natural
        target = self.target(self.schema.resolve(query.sort))
        expr = target[1] if target[0] == "col" else f"json_extract({target[1]}, '{target[2]}')"
        return f"{expr} {'DESC' if query.descending else 'ASC'}, {self.natural}"

    @staticmethod
    def page(query) -> str:
        limit = -1 if query.limit is None else query.limit
        return f" LIMIT {int(limit)} OFFSET {int(query.skip)}"


_ACCOUNTS = _Translator(ACCOUNT_SCHEMA, {
    "id": "id", "localpart": "localpart", "login": "login", "email": "email",
    "externalId": "external_id", "created_at": "created_at", "updated_at": "updated_at"},
    "profile", "id")
_DIALOGS = _Translator(DIALOG_SCHEMA, {
    "_id": "d.id", "type": "d.type", "name": "d.name", "photo": "d.photo",
    "description": "d.description", "user_id": "d.owner_id", "occupants_ids": "d.occupants",
    "admins_ids": "d.admins", "pinned_messages_ids": "d.pinned", "created_at": "d.created_at",
    "updated_at": "d.updated_at", "last_message": "d.last_message",
    "last_message_date_sent": "d.last_message_date_sent", "last_message_id": "d.last_message_id",
    "last_message_user_id": "d.last_message_user_id"}, "d.extensions", "d.created_at, d.id",
    scalarDynamic=True, members={
        "occupants_ids": "d.id IN (SELECT dialog_id FROM dialog_occupants WHERE user_id IN (?...))"})
_MESSAGES = _Translator(MESSAGE_SCHEMA, {
    "_id": "m.id", "chat_dialog_id": "m.dialog_id", "sender_id": "m.sender_id",
    "recipient_id": "m.recipient_id", "date_sent": "m.date_sent", "message": "m.body",
    "created_at": "m.created_at", "updated_at": "m.updated_at"}, "m.custom", "m.ord")
_RECORDS = _Translator(RECORD_SCHEMA, {
    "_id": "id", "user_id": "user_id", "_parent_id": "parent_id", "created_at": "created_at",
    "updated_at": "updated_at"}, "fields", "created_at, id")


class _Deadline:
    """
    A progress handler that aborts the statement (returns true) once
    C{seconds} have passed; C{expired} says whether it did.
    """

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.expired = False

    def __call__(self) -> bool:
        if time.monotonic() > self.end:
            self.expired = True
        return self.expired


class _Database(common.Worker):
    """
    The writer connection on its one-thread pool (or inline when
    C{synchronous}), and the L{_Readers} that serve read transactions.
    """

    log = Logger()

    def __init__(self, path: str, reactor=None, synchronous: bool = False,
                 busyTimeout: int = BUSY_TIMEOUT_MS, readConnections: int = READ_CONNECTIONS,
                 queryTimeoutMs: int = QUERY_TIMEOUT_MS):
        common.Worker.__init__(self, reactor, synchronous, 1, "xmppchat-sqlite")
        self.path = path
        self.busyTimeout = busyTimeout
        self.queryTimeoutMs = queryTimeoutMs
        self.connection: sqlite3.Connection | None = None
        # A :memory: database is private to its connection: reads share the writer's.
        self.readers = (_Readers(self, readConnections)
                        if readConnections > 0 and path != ":memory:" else None)

    def run(self, write: bool, f, *args) -> defer.Deferred:
        """
        Run C{f(connection, *args)} as one transaction: a write on the
        writer, taking the database's write lock at once; a read on an idle
        read connection (the writer's without readers), aborted after
        C{queryTimeoutMs} with L{QueryTimeout}.
        """
        if not write and self.readers is not None:
            return self.readers.run(f, *args)
        return self._call(self._onWriter, write, f, *args)

    def _onWriter(self, write, f, *args):
        return self._transaction(self.connection, write, f, *args)

    def _transaction(self, connection, write, f, *args):
        if connection is None:
            raise StorageError("storage is not started")
        deadline = None if write or not self.queryTimeoutMs else _Deadline(self.queryTimeoutMs / 1000)
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                if deadline is not None:
                    connection.set_progress_handler(deadline, _PROGRESS_STEPS)
                try:
                    result = f(connection, *args)
                finally:
                    if deadline is not None:
                        connection.set_progress_handler(None, 0)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result
        except sqlite3.IntegrityError as e:
            raise _duplicate(e) from None
        except sqlite3.Error as e:
            if deadline is not None and deadline.expired:
                raise QueryTimeout(f"the query ran longer than {self.queryTimeoutMs} ms"
                                   " and was aborted") from None
            if str(e).startswith(_TOO_LARGE):
                raise InvalidQuery(f"the query is too large: {e}") from None
            raise StorageError(f"{self.path}: {type(e).__name__}: {e}") from None

    def _open(self) -> sqlite3.Connection:
        """
        A new connection to C{path}, autocommit, with the busy timeout.
        """
        try:
            connection = sqlite3.connect(self.path, timeout=self.busyTimeout / 1000,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: cannot open: {e}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busyTimeout)}")
        except sqlite3.Error as e:
            connection.close()
            raise StorageError(f"{self.path}: {type(e).__name__}: {e}") from None
        return connection

    def _connect(self) -> None:
        if self.connection is not None:
            return
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create {parent}: {e.strerror}") from None
        connection = self._open()
        try:
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode = WAL")
            # An acknowledged write must survive a power failure.
            connection.execute("PRAGMA synchronous = FULL")
            self.connection = connection
            self._transaction(connection, True, self._migrate)
        except BaseException as e:
            self.connection = None
            connection.close()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"{self.path}: {type(e).__name__}: {e}") from None
            raise

    def start(self) -> defer.Deferred:
        """
        Open the writer (creating and migrating the database), then the
        readers; if they fail, the writer is stopped again.
        """
        d = common.Worker.start(self)
        if self.readers is not None:
            d.addCallback(lambda _: self.readers.start())
            d.addErrback(lambda failure: common.Worker.stop(self).addBoth(lambda _: failure))
        return d

    def stop(self) -> defer.Deferred:
        if self.readers is None:
            return common.Worker.stop(self)
        d = self.readers.stop()
        d.addBoth(lambda _: common.Worker.stop(self))
        return d

    def _migrate(self, connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] or 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: database schema version {version} is newer than this"
                f" xmppchat supports ({SCHEMA_VERSION})")
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            if version:
                self.log.info("Migrated {path} from schema {old} to {new}",
                              path=self.path, old=version, new=SCHEMA_VERSION)

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error as e:
                raise StorageError(f"{self.path}: cannot close: {e}") from None


class _Readers(common.Worker):
    """
    The read connections: C{count} of them on as many threads (inline when
    C{synchronous}); a call takes an idle one, so reads never wait for the
    writer or for each other's long queries (WAL lets readers run beside
    the writer).  They are C{query_only}: a read transaction cannot write.
    """

    def __init__(self, db: _Database, count: int):
        common.Worker.__init__(self, db.reactor, db.synchronous, count, "xmppchat-sqlite-read")
        self.db = db
        self.count = count
        self.connections: list[sqlite3.Connection] = []
        self.idle: queue.SimpleQueue = queue.SimpleQueue()

    def run(self, f, *args) -> defer.Deferred:
        return self._call(self._read, f, *args)

    def _read(self, f, *args):
        if not self.connections:
            raise StorageError("storage is not started")
        connection = self.idle.get()
        try:
            return self.db._transaction(connection, False, f, *args)
        finally:
            self.idle.put(connection)

    def _connect(self) -> None:
        try:
            while len(self.connections) < self.count:
                connection = self.db._open()
                self.connections.append(connection)
                connection.execute("PRAGMA query_only = ON")
                self.idle.put(connection)
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        connections, self.connections = self.connections, []
        self.idle = queue.SimpleQueue()
        for connection in connections:
            connection.close()


_Store = common.Store


class SQLiteAccountStore(common.AccountLookups, _Store):
    """
    L{IAccountStore} on the C{accounts} table.
    """

    def createAccount(self, localpart, credentials, login=None, email=None, externalId=None,
                      profile=None, accountId=None, jwt=False):
        common.checkAccountArguments(localpart, accountId)
        now = self._now()
        values = (accountId, localpart, login, email, externalId, credentials, now, now,
                  profile or {}, int(bool(jwt)))
        return self.db.run(True, self._create, values)

    @staticmethod
    def _create(connection, values):
        values = list(values)
        localpart = values[1]
        if ID_PLACEHOLDER in localpart:
            # A placeholder no real localpart can equal (a NUL byte), then the
            # real one once the id is known, in the same transaction.
            values[1] = "\0" + os.urandom(8).hex()
        values[5] = _dumps(values[5])
        values[8] = _dumps(values[8])
        cursor = connection.execute(
            "INSERT INTO accounts (id, localpart, login, email, external_id, credentials,"
            " created_at, updated_at, profile, jwt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        accountId = cursor.lastrowid
        if values[1] != localpart:
            connection.execute("UPDATE accounts SET localpart = ? WHERE id = ?",
                               (common.fillLocalpart(localpart, accountId), accountId))
        return _account(connection.execute(_ACCOUNT_SELECT + " WHERE id = ?",
                                           (accountId,)).fetchone())

    def createAccounts(self, entries):
        rows = common.bulkEntries(entries)
        return self.db.run(True, self._createMany, rows, self._now())

    @staticmethod
    def _createMany(connection, rows, now):
        created = 0
        skipped = []
        insert = ("INSERT OR IGNORE INTO accounts (localpart, credentials, created_at, updated_at,"
                  " profile) VALUES (?, ?, ?, ?, '{}')")
        for localpart, credentials in rows:
            if connection.execute(insert, (localpart, _dumps(credentials), now, now)).rowcount == 1:
                created += 1
            else:
                skipped.append(localpart)
        return created, skipped

    def _getBy(self, field, value):
        column = _ACCOUNTS.columns[field]
        return self.db.run(False, lambda c: _account(
            c.execute(f"{_ACCOUNT_SELECT} WHERE {column} = ?", (value,)).fetchone()))

    def getAccounts(self, accountIds):
        return self.db.run(False, _byIds, _ACCOUNT_SELECT, "id", list(accountIds), _account)

    def findAccounts(self, query):
        where, params, query = _ACCOUNTS.where(query)
        sql = f"{_ACCOUNT_SELECT} WHERE {where} ORDER BY {_ACCOUNTS.orderBy(query)}{_ACCOUNTS.page(query)}"
        return self.db.run(False, lambda c: [_account(row) for row in c.execute(sql, params)])

    def updateAccount(self, accountId, **fields):
        common.checkAccountFields(fields)
        columns = {"login": "login", "email": "email", "externalId": "external_id",
                   "credentials": "credentials", "profile": "profile", "blocked": "blocked"}
        assignments = ["updated_at = ?"]
        values: list = [self._now()]
        for name, value in fields.items():
            assignments.append(f"{columns[name]} = ?")
            values.append(value)
        values.append(accountId)
        sql = f"UPDATE accounts SET {', '.join(assignments)} WHERE id = ?"

        def update(connection):
            for i, name in enumerate(fields, 1):
                if name == "profile":
                    values[i] = _dumps(values[i] or {})
                elif name == "credentials":
                    values[i] = _dumps(values[i])
                elif name == "blocked":
                    values[i] = int(bool(values[i]))
            if connection.execute(sql, values).rowcount == 0:
                raise NotFound(f"no account {accountId}")
            return _account(connection.execute(_ACCOUNT_SELECT + " WHERE id = ?",
                                               (accountId,)).fetchone())

        return self.db.run(True, update)

    def deleteAccount(self, accountId):
        def delete(connection):
            row = connection.execute("SELECT localpart FROM accounts WHERE id = ?",
                                     (accountId,)).fetchone()
            if row is None:
                return False
            localpart = row[0]
            connection.execute("DELETE FROM tokens WHERE account_id = ?", (accountId,))
            for table in ("roster", "roster_version", "offline", "last_activity"):
                connection.execute(f"DELETE FROM {table} WHERE localpart = ?", (localpart,))
            _deletePrivacy(connection, localpart)
            deleteUserXML(connection, localpart)
            connection.execute("DELETE FROM accounts WHERE id = ?", (accountId,))
            return True

        return self.db.run(True, delete)

    def listAccounts(self, offset=0, limit=None):
        limit = -1 if limit is None else limit
        return self.db.run(False, lambda c: [
            _account(row) for row in c.execute(
                _ACCOUNT_SELECT + " ORDER BY id LIMIT ? OFFSET ?", (limit, offset))])

    def countAccounts(self, query=None):
        where, params, _ = _ACCOUNTS.where(query)
        return self.db.run(False, lambda c: c.execute(
            f"SELECT count(*) FROM accounts WHERE {where}", params).fetchone()[0])


class SQLiteTokenStore(_Store):
    """
    L{ITokenStore} on the C{tokens} table.
    """

    def addToken(self, token):
        def add(connection):
            values = (token.tokenHash, token.accountId, token.appId, token.createdAt,
                      token.expiresAt, _dumps(token.credentials))
            if connection.execute("SELECT 1 FROM accounts WHERE id = ?",
                                  (token.accountId,)).fetchone() is None:
                raise NotFound(f"no account {token.accountId}")
            try:
                connection.execute(
                    "INSERT INTO tokens (token_hash, account_id, app_id, created_at, expires_at,"
                    " credentials) VALUES (?, ?, ?, ?, ?, ?)", values)
            except sqlite3.IntegrityError:
                raise AlreadyExists("token already exists") from None

        return self.db.run(True, add)

    def getToken(self, tokenHash, now=None):
        now = self._now(now)
        return self.db.run(False, lambda c: _token(c.execute(
            _TOKEN_SELECT + " WHERE token_hash = ? AND expires_at > ?", (tokenHash, now)).fetchone()))

    def liveTokens(self, accountId, now=None):
        now = self._now(now)
        return self.db.run(False, lambda c: [_token(row) for row in c.execute(
            _TOKEN_SELECT + " WHERE account_id = ? AND expires_at > ? ORDER BY created_at, rowid",
            (accountId, now))])

    def deleteToken(self, tokenHash):
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM tokens WHERE token_hash = ?", (tokenHash,)).rowcount > 0)

    def deleteJWTTokens(self):
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM tokens WHERE account_id IN (SELECT id FROM accounts WHERE jwt = 1)").rowcount)

    def deleteAccountTokens(self, accountId, keep=None):
        def delete(connection):
            hashes = [row[0] for row in connection.execute(
                "SELECT token_hash FROM tokens WHERE account_id = ? AND token_hash IS NOT ?",
                (accountId, keep))]
            connection.execute("DELETE FROM tokens WHERE account_id = ? AND token_hash IS NOT ?",
                               (accountId, keep))
            return hashes

        return self.db.run(True, delete)

    def liveTokenHashes(self, tokenHashes, now=None):
        now = self._now(now)
        hashes = list(tokenHashes)

        def live(connection):
            found = set()
            for start in range(0, len(hashes), _CHUNK):
                chunk = hashes[start:start + _CHUNK]
                found.update(row[0] for row in connection.execute(
                    f"SELECT token_hash FROM tokens WHERE token_hash IN ({_marks(chunk)})"
                    " AND expires_at > ?", [*chunk, now]))
            return found

        return self.db.run(False, live)

    def revokeToken(self, tokenHash, expiresAt):
        def revoke(connection):
            connection.execute("DELETE FROM tokens WHERE token_hash = ?", (tokenHash,))
            connection.execute("INSERT OR REPLACE INTO revoked_tokens (token_hash, expires_at)"
                               " VALUES (?, ?)", (tokenHash, expiresAt))

        return self.db.run(True, revoke)

    def isRevoked(self, tokenHash, now=None):
        now = self._now(now)
        return self.db.run(False, lambda c: c.execute(
            "SELECT 1 FROM revoked_tokens WHERE token_hash = ? AND expires_at > ?",
            (tokenHash, now)).fetchone() is not None)

    def purgeExpired(self, now=None):
        now = self._now(now)

        def purge(connection):
            connection.execute("DELETE FROM revoked_tokens WHERE expires_at <= ?", (now,))
            return connection.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount

        return self.db.run(True, purge)


class SQLiteOfflineStore(_Store):
    """
    L{IOfflineStore} on the C{offline} table.
    """

    @staticmethod
    def _storeOne(connection, localpart, stanza, stamp, limit, shares):
        def count(column, value):
            sql = "SELECT count(*) FROM offline WHERE localpart = ?"
            params = [localpart]
            if value is common.ANY_DIALOG:
                sql += " AND dialog_id IS NOT NULL"
            elif column is not None:
                sql += f" AND {column} = ?"
                params.append(value)
            return connection.execute(sql, params).fetchone()[0]

        common.checkOfflineQuota(limit, shares, count)
        return connection.execute(
            "INSERT INTO offline (localpart, stanza, stamp, sender, dialog_id) VALUES (?, ?, ?, ?, ?)",
            (localpart, stanza, stamp, shares and shares.sender, shares and shares.dialogId)).lastrowid

    def storeOffline(self, localpart, stanza, stamp, limit, shares=None):
        return self.db.run(True, lambda c: self._storeOne(c, localpart, stanza, stamp, limit, shares))

    def storeOfflineMany(self, entries, stamp, limit, shares=None):
        return self.db.run(True, lambda c: common.storeEach(
            entries, lambda localpart, stanza: self._storeOne(c, localpart, stanza, stamp, limit, shares)))

    def countOffline(self, localpart):
        return self.db.run(False, lambda c: c.execute(
            "SELECT count(*) FROM offline WHERE localpart = ?", (localpart,)).fetchone()[0])

    def countAllOffline(self):
        return self.db.run(False, lambda c: c.execute("SELECT count(*) FROM offline").fetchone()[0])

    def largestOfflineQueues(self, limit):
        return self.db.run(False, lambda c: [tuple(row) for row in c.execute(
            "SELECT localpart, count(*) AS n FROM offline GROUP BY localpart"
            " ORDER BY n DESC, localpart LIMIT ?", (limit,))])

    def fetchOffline(self, localpart):
        return self.db.run(False, lambda c: [
            OfflineMessage(id=row[0], localpart=localpart, stanza=row[1], stamp=row[2])
            for row in c.execute("SELECT id, stanza, stamp FROM offline WHERE localpart = ?"
                                 " ORDER BY id", (localpart,))])

    def deleteOffline(self, localpart, ids):
        ids = list(ids)

        def delete(connection):
            deleted = 0
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                deleted += connection.execute(
                    f"DELETE FROM offline WHERE localpart = ? AND id IN ({_marks(chunk)})",
                    [localpart, *chunk]).rowcount
            return deleted

        return self.db.run(True, delete)


class SQLiteRosterStore(_Store):
    """
    L{IRosterStore} on the C{roster} table.
    """

    def getRoster(self, localpart):
        return self.db.run(False, lambda c: [_rosterItem(row) for row in c.execute(
            _ROSTER_SELECT + " WHERE localpart = ? ORDER BY jid", (localpart,))])

    def getRosterItem(self, localpart, jid):
        return self.db.run(False, lambda c: _rosterItem(c.execute(
            _ROSTER_SELECT + " WHERE localpart = ? AND jid = ?", (localpart, jid)).fetchone()))

    def setRosterItem(self, localpart, item):
        common.checkRosterItem(item)
        values = (localpart, item.jid, item.name, list(item.groups), item.subscription,
                  item.ask, int(bool(item.pendingIn)), int(bool(item.hidden)))
        return self.db.run(True, _upsertRosterItem,
            "INSERT INTO roster (localpart, jid, name, groups, subscription, ask, pending_in,"
            " hidden) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (localpart, jid) DO UPDATE SET"
            " name = excluded.name, groups = excluded.groups,"
            " subscription = excluded.subscription, ask = excluded.ask,"
            " pending_in = excluded.pending_in, hidden = excluded.hidden", values,
            common.firstRosterVersion(self._now()))

    def removeRosterItem(self, localpart, jid):
        return self.db.run(True, _removeRosterItem, localpart, jid,
                           common.firstRosterVersion(self._now()))

    def getRosterVersion(self, localpart):
        return self.db.run(False, _rosterVersion, localpart)


class SQLiteLastActivityStore(_Store):
    """
    L{ILastActivityStore} on the C{last_activity} table.
    """

    def setLastActivity(self, localpart, stamp, status):
        return self.db.run(True, _execute,
            "INSERT INTO last_activity (localpart, stamp, status) VALUES (?, ?, ?)"
            " ON CONFLICT (localpart) DO UPDATE SET stamp = excluded.stamp,"
            " status = excluded.status", (localpart, stamp, status))

    def getLastActivity(self, localpart):
        def get(connection):
            row = connection.execute("SELECT stamp, status FROM last_activity WHERE localpart = ?",
                                     (localpart,)).fetchone()
            return None if row is None else (row[0], row[1])

        return self.db.run(False, get)


_DIALOG_SELECT = (
    "SELECT d.id, d.type, d.owner_id, d.occupants, d.admins, d.pinned, d.name, d.photo,"
    " d.description, d.extensions, d.permissions, d.created_at, d.updated_at, d.last_message,"
    " d.last_message_date_sent, d.last_message_id, d.last_message_user_id FROM dialogs d"
)
_MESSAGE_SELECT = (
    "SELECT m.ord, m.id, m.dialog_id, m.sender_id, m.recipient_id, m.body, m.date_sent,"
    " m.attachments, m.custom, m.edited, m.reactions, m.created_at, m.updated_at, m.stanza FROM messages m"
)
_BLOB_SELECT = ("SELECT id, uid, owner_id, name, content_type, size, public, completed,"
                " created_at, updated_at FROM blobs")
_RECORD_SELECT = "SELECT class_name, id, user_id, fields, parent_id, created_at, updated_at FROM records"
# The name prefix of the index of each configured dialog extension field.
_EXTENSION_INDEX = "dialogs_ext_"
# The dialogs a user sees: occupied, subscribed or broadcast (every user's,
# issue 17 item 5), and not hidden.
_USER_DIALOGS = (
    "(d.id IN (SELECT dialog_id FROM dialog_occupants WHERE user_id = ?)"
    " OR d.id IN (SELECT dialog_id FROM dialog_users WHERE user_id = ? AND subscribed IS NOT NULL)"
    f" OR d.type = {DIALOG_BROADCAST})"
    " AND d.id NOT IN (SELECT dialog_id FROM dialog_users WHERE user_id = ? AND hidden = 1)"
)
# Messages a user may see in a dialog (parameters: user, user).
_VISIBLE = (
    " AND m.ord > coalesce((SELECT cleared_order FROM dialog_users u WHERE u.dialog_id = m.dialog_id"
    " AND u.user_id = ?), 0)"
    " AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ? AND h.message_ord = m.ord)"
)


def _dialog(row) -> Dialog | None:
    if row is None:
        return None
    return Dialog(id=row[0], type=row[1], ownerId=row[2], occupantIds=json.loads(row[3]),
                  adminIds=json.loads(row[4]), pinnedMessageIds=json.loads(row[5]), name=row[6],
                  photo=row[7], description=row[8], extensions=json.loads(row[9]),
                  permissions=json.loads(row[10]), createdAt=row[11], updatedAt=row[12],
                  lastMessage=row[13], lastMessageDateSent=row[14], lastMessageId=row[15],
                  lastMessageUserId=row[16])


def _reactions(text: str) -> dict:
    return {emoji: set(users) for emoji, users in json.loads(text).items()}


def _dumpReactions(reactions: dict) -> str:
    return _dumps({emoji: sorted(users) for emoji, users in reactions.items()})


def _messages(connection, rows) -> list[Message]:
    """
    Messages from rows, with C{readIds}/C{deliveredIds} derived from the
    watermarks of their dialogs.
    """
    marks: dict[str, list] = {}
    out = []
    for row in rows:
        dialogId = row[2]
        if dialogId not in marks:
            marks[dialogId] = connection.execute(
                "SELECT user_id, read_order, delivered_order FROM dialog_users"
                " WHERE dialog_id = ? AND (read_order > 0 OR delivered_order > 0)",
                (dialogId,)).fetchall()
        readIds, deliveredIds = common.derivedIds(row[3], row[0], marks[dialogId])
        out.append(Message(order=row[0], id=row[1], dialogId=dialogId, senderId=row[3],
                           recipientId=row[4], body=row[5], dateSent=row[6],
                           attachments=json.loads(row[7]), custom=json.loads(row[8]),
                           edited=bool(row[9]), reactions=_reactions(row[10]),
                           createdAt=row[11], updatedAt=row[12], readIds=readIds,
                           deliveredIds=deliveredIds, stanza=row[13]))
    return out


def _getDialog(connection, dialogId) -> Dialog | None:
    return _dialog(connection.execute(_DIALOG_SELECT + " WHERE d.id = ?", (dialogId,)).fetchone())


def _requireDialog(connection, dialogId) -> Dialog:
    dialog = _getDialog(connection, dialogId)
    if dialog is None:
        raise NotFound(f"no dialog {dialogId}")
    return dialog


def _userState(connection, dialogId, userId, **values) -> None:
    """
    Create the (dialog, user) state row if needed and set C{values}.
    """
    connection.execute("INSERT OR IGNORE INTO dialog_users (dialog_id, user_id) VALUES (?, ?)",
                       (dialogId, userId))
    if values:
        assignments = ", ".join(f"{name} = ?" for name in values)
        connection.execute(f"UPDATE dialog_users SET {assignments} WHERE dialog_id = ? AND user_id = ?",
                           (*values.values(), dialogId, userId))


class SQLiteDialogStore(_Store):
    """
    L{IDialogStore} on the C{dialogs}, C{dialog_occupants} and
    C{dialog_users} tables.
    """

    def createDialog(self, type, ownerId, occupantIds=(), adminIds=(), name=None, photo=None,
                     description=None, extensions=None, permissions=None, dialogId=None,
                     limit=None):
        occupants, admins, extensions, permissions, key = common.newDialogValues(
            type, ownerId, occupantIds, adminIds, name, photo, description, extensions,
            permissions, dialogId)
        now = self._now()
        dialogId = dialogId or newObjectId(now)

        def create(connection):
            connection.execute(
                "INSERT INTO dialogs (id, type, owner_id, occupants, admins, name, photo,"
                " description, extensions, permissions, created_at, updated_at, private_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dialogId, type, ownerId, _dumps(occupants), _dumps(admins), name, photo,
                 description, _dumps(extensions), _dumps(permissions), now, now, key))
            if limit is not None:
                owned = connection.execute("SELECT count(*) FROM dialogs WHERE owner_id = ?",
                                           (ownerId,)).fetchone()[0]
                common.requireRoom(owned - 1, 1, limit, "dialogs")
            connection.executemany(
                "INSERT INTO dialog_occupants (user_id, dialog_id) VALUES (?, ?)",
                [(user, dialogId) for user in occupants])
            return _getDialog(connection, dialogId)

        return self.db.run(True, create)

    def getDialog(self, dialogId):
        return self.db.run(False, _getDialog, dialogId)

    def getDialogs(self, dialogIds):
        return self.db.run(False, _byIds, _DIALOG_SELECT, "d.id", list(dialogIds), _dialog)

    def findPrivateDialog(self, userA, userB):
        if userA == userB:
            return defer.succeed(None)
        key = common.privateKey([userA, userB])
        return self.db.run(False, lambda c: _dialog(c.execute(
            _DIALOG_SELECT + " WHERE d.private_key = ?", (key,)).fetchone()))

    def updateDialog(self, dialogId, push=None, pull=None, **fields):
        now = self._now()

        def update(connection):
            dialog = _requireDialog(connection, dialogId)
            changes, pushed, pulled = common.dialogChanges(dialog.type, push, pull, fields)
            if "extensions" in changes:
                row = connection.execute("SELECT value FROM settings WHERE name = ?",
                                         (common.EXTENSIONS_SETTING,)).fetchone()
                changes["extensions"] = common.writtenExtensions(
                    changes["extensions"], dialog.extensions, json.loads(row[0]) if row else None)
            columns = {"occupants_ids": ("occupants", dialog.occupantIds),
                       "admins_ids": ("admins", dialog.adminIds),
                       "pinned_messages_ids": ("pinned", dialog.pinnedMessageIds)}
            assignments = {"updated_at": now}
            for name, value in changes.items():
                assignments[name] = _dumps(value) if name in ("extensions", "permissions") else value
            for name, (column, current) in columns.items():
                if name in pushed or name in pulled:
                    new = common.applyPushPull(current, pushed.get(name, []), pulled.get(name, []),
                                               ordered=name == "pinned_messages_ids")
                    assignments[column] = _dumps(new)
                    if name == "occupants_ids":
                        self._syncOccupants(connection, dialogId, current, new)
            sql = ", ".join(f"{name} = ?" for name in assignments)
            connection.execute(f"UPDATE dialogs SET {sql} WHERE id = ?",
                               (*assignments.values(), dialogId))
            return _getDialog(connection, dialogId)

        return self.db.run(True, update)

    @staticmethod
    def _syncOccupants(connection, dialogId, old, new) -> None:
        old, new = set(old), set(new)
        connection.executemany("DELETE FROM dialog_occupants WHERE user_id = ? AND dialog_id = ?",
                               [(user, dialogId) for user in old - new])
        connection.executemany("INSERT INTO dialog_occupants (user_id, dialog_id) VALUES (?, ?)",
                               [(user, dialogId) for user in new - old])

    def deleteDialog(self, dialogId):
        def delete(connection):
            if connection.execute("DELETE FROM dialogs WHERE id = ?", (dialogId,)).rowcount == 0:
                return False
            connection.execute("DELETE FROM message_hidden WHERE message_ord IN"
                               " (SELECT ord FROM messages WHERE dialog_id = ?)", (dialogId,))
            for table in ("messages", "dialog_occupants", "dialog_users"):
                connection.execute(f"DELETE FROM {table} WHERE dialog_id = ?", (dialogId,))
            return True

        return self.db.run(True, delete)

    @staticmethod
    def _listing(userId, query):
        where, params, query = _DIALOGS.where(query)
        if userId is not None:
            where = f"{_USER_DIALOGS} AND {where}"
            params = [userId, userId, userId, *params]
        return where, params, query

    def listDialogs(self, userId, query=None):
        where, params, query = self._listing(userId, query)
        sql = f"{_DIALOG_SELECT} WHERE {where} ORDER BY {_DIALOGS.orderBy(query)}{_DIALOGS.page(query)}"
        return self.db.run(False, lambda c: [_dialog(row) for row in c.execute(sql, params)])

    def countDialogs(self, userId, query=None):
        where, params, _ = self._listing(userId, query)
        return self.db.run(False, lambda c: c.execute(
            f"SELECT count(*) FROM dialogs d WHERE {where}", params).fetchone()[0])

    def configureExtensions(self, fields, keep=()):
        fields, kept = common.extensionKeys(fields, keep)

        def configure(connection):
            indexes = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dialogs'")
                if row[0].startswith(_EXTENSION_INDEX)}
            wanted = {_EXTENSION_INDEX + key: key for key in fields}
            for name in sorted(indexes - set(wanted)):
                connection.execute(f'DROP INDEX "{name}"')
            for name, key in wanted.items():
                connection.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON dialogs'
                                   f" ({_extensionValue('extensions', key)})")
            marker = _dumps(kept)
            row = connection.execute("SELECT value FROM settings WHERE name = ?",
                                     (common.EXTENSIONS_SETTING,)).fetchone()
            if row is not None and row[0] == marker:
                return 0
            removed = common.extensionsRemoved(json.loads(row[0]) if row else None, kept)
            changed = connection.execute(
                "UPDATE dialogs SET extensions = (SELECT coalesce(json_group_object(key, value), '{}')"
                f" FROM json_each(dialogs.extensions) WHERE key NOT IN ({_marks(removed)}))"
                " WHERE EXISTS (SELECT 1 FROM json_each(dialogs.extensions)"
                f" WHERE key IN ({_marks(removed)}))", removed + removed).rowcount if removed else 0
            connection.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)",
                               (common.EXTENSIONS_SETTING, marker))
            return changed

        return self.db.run(True, configure)

    def setHidden(self, dialogId, userId, hidden=True):
        def hide(connection):
            _requireDialog(connection, dialogId)
            _userState(connection, dialogId, userId, hidden=int(bool(hidden)))

        return self.db.run(True, hide)

    def subscribe(self, dialogId, userId):
        def subscribe(connection):
            dialog = _requireDialog(connection, dialogId)
            if dialog.type != DIALOG_PUBLIC:
                raise ValueError("only public dialogs take subscriptions")
            _userState(connection, dialogId, userId)
            return connection.execute(
                "UPDATE dialog_users SET subscribed = (SELECT coalesce(max(subscribed), 0) + 1"
                " FROM dialog_users WHERE dialog_id = ?) WHERE dialog_id = ? AND user_id = ?"
                " AND subscribed IS NULL", (dialogId, dialogId, userId)).rowcount > 0

        return self.db.run(True, subscribe)

    def unsubscribe(self, dialogId, userId):
        return self.db.run(True, lambda c: c.execute(
            "UPDATE dialog_users SET subscribed = NULL WHERE dialog_id = ? AND user_id = ?"
            " AND subscribed IS NOT NULL", (dialogId, userId)).rowcount > 0)

    def listSubscribers(self, dialogId, skip=0, limit=None):
        skip, limit = common.pageBounds(skip, limit)
        return self.db.run(False, lambda c: [row[0] for row in c.execute(
            "SELECT user_id FROM dialog_users WHERE dialog_id = ? AND subscribed IS NOT NULL"
            " ORDER BY subscribed LIMIT ? OFFSET ?",
            (dialogId, -1 if limit is None else limit, skip))])

    def countSubscribers(self, dialogId):
        return self.db.run(False, lambda c: c.execute(
            "SELECT count(*) FROM dialog_users WHERE dialog_id = ? AND subscribed IS NOT NULL",
            (dialogId,)).fetchone()[0])

    def setNotifications(self, dialogId, userId, enabled):
        def set_(connection):
            _requireDialog(connection, dialogId)
            _userState(connection, dialogId, userId, notifications=int(bool(enabled)))

        return self.db.run(True, set_)

    def getNotifications(self, dialogId, userId):
        def get(connection):
            row = connection.execute(
                "SELECT notifications FROM dialog_users WHERE dialog_id = ? AND user_id = ?",
                (dialogId, userId)).fetchone()
            return True if row is None else bool(row[0])

        return self.db.run(False, get)


def _countMessageOfDay(connection, userId: int, limit: int, now: float) -> None:
    """
    Count one more stored message of C{userId} today (UTC), or fail with
    L{QuotaExceeded} when that would exceed C{limit} (the transaction then
    rolls back the message too).
    """
    day = common.dayOf(now)
    row = connection.execute("SELECT day, count FROM message_days WHERE user_id = ?",
                             (userId,)).fetchone()
    count = row[1] if row is not None and row[0] == day else 0
    if count >= limit:
        raise common.dailyQuotaExceeded(limit, now)
    connection.execute("INSERT OR REPLACE INTO message_days (user_id, day, count) VALUES (?, ?, ?)",
                       (userId, day, count + 1))


class SQLiteMessageStore(_Store):
    """
    L{IMessageStore} on the C{messages} and C{message_hidden} tables, with
    watermarks in C{dialog_users}.
    """

    def createMessage(self, dialogId, senderId, body, dateSent=None, messageId=None,
                      recipientId=None, attachments=None, custom=None, dailyLimit=None, stanza=None):
        now = self._now()
        dateSent, attachments, custom = common.newMessageValues(
            messageId, senderId, recipientId, body, dateSent, attachments, custom, now)
        messageId = messageId or newObjectId(now)

        def create(connection):
            _requireDialog(connection, dialogId)
            try:
                order = connection.execute(
                    "INSERT INTO messages (id, dialog_id, sender_id, recipient_id, body,"
                    " body_folded, date_sent, attachments, custom, created_at, updated_at, stanza)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (messageId, dialogId, senderId, recipientId, body, common.fold(body), dateSent,
                     _dumps(attachments), _dumps(custom), now, now, stanza)).lastrowid
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"message {messageId} already exists") from None
            if dailyLimit is not None:
                _countMessageOfDay(connection, senderId, dailyLimit, now)
            connection.execute(
                "UPDATE dialogs SET last_message = ?, last_message_date_sent = ?,"
                " last_message_id = ?, last_message_user_id = ?, updated_at = ? WHERE id = ?",
                (body, dateSent, messageId, senderId, now, dialogId))
            connection.execute("UPDATE dialog_users SET hidden = 0 WHERE dialog_id = ? AND hidden = 1",
                               (dialogId,))
            return _messages(connection, connection.execute(
                _MESSAGE_SELECT + " WHERE m.ord = ?", (order,)))[0]

        return self.db.run(True, create)

    def hasSent(self, senderId, dialogIds):
        dialogIds = list(dialogIds)

        def sent(connection):
            for start in range(0, len(dialogIds), _CHUNK):
                chunk = dialogIds[start:start + _CHUNK]
                if connection.execute(f"SELECT 1 FROM messages WHERE dialog_id IN ({_marks(chunk)})"
                                      " AND sender_id = ? LIMIT 1", [*chunk, senderId]).fetchone():
                    return True
            return False

        return self.db.run(False, sent)

    def getMessage(self, messageId, userId=None):
        sql = _MESSAGE_SELECT + " WHERE m.id = ?"
        params: list = [messageId]
        if userId is not None:
            sql += _VISIBLE
            params += [userId, userId]
        return self.db.run(False, lambda c: (_messages(c, c.execute(sql, params)) or [None])[0])

    @staticmethod
    def _listing(dialogId, userId, query):
        where, params, query = _MESSAGES.where(query)
        ids = common.dialogIdList(dialogId)
        where = f"m.dialog_id IN ({_marks(ids)}) AND {where}"
        params = [*ids, *params]
        if userId is not None:
            where += _VISIBLE
            params += [userId, userId]
        return where, params, query

    def listMessages(self, dialogId, userId=None, query=None):
        where, params, query = self._listing(dialogId, userId, query)
        sql = (f"{_MESSAGE_SELECT} WHERE {where} ORDER BY {_MESSAGES.orderBy(query)}"
               f"{_MESSAGES.page(query)}")
        return self.db.run(False, lambda c: _messages(c, c.execute(sql, params).fetchall()))

    def countMessages(self, dialogId, userId=None, query=None):
        where, params, _ = self._listing(dialogId, userId, query)
        return self.db.run(False, lambda c: c.execute(
            f"SELECT count(*) FROM messages m WHERE {where}", params).fetchone()[0])

    @staticmethod
    def _require(connection, messageId):
        row = connection.execute(_MESSAGE_SELECT + " WHERE m.id = ?", (messageId,)).fetchone()
        if row is None:
            raise NotFound(f"no message {messageId}")
        return row

    def editMessage(self, messageId, body=None, attachments=None, custom=None):
        attachments, custom = common.editValues(body, attachments, custom)
        now = self._now()

        def edit(connection):
            row = self._require(connection, messageId)
            connection.execute(
                "UPDATE messages SET body = ?, body_folded = ?, attachments = ?, custom = ?,"
                " edited = 1, updated_at = ? WHERE ord = ?",
                (body, common.fold(body),
                 row[7] if attachments is None else _dumps(attachments),
                 row[8] if custom is None else _dumps(custom), now, row[0]))
            connection.execute("UPDATE dialogs SET last_message = ? WHERE id = ? AND last_message_id = ?",
                               (body, row[2], messageId))
            return _messages(connection, connection.execute(
                _MESSAGE_SELECT + " WHERE m.ord = ?", (row[0],)))[0]

        return self.db.run(True, edit)

    def react(self, messageId, userId, add=None, remove=None):
        common.applyReaction({}, userId, add, remove)

        def react(connection):
            row = self._require(connection, messageId)
            reactions = common.applyReaction(_reactions(row[10]), userId, add, remove)
            connection.execute("UPDATE messages SET reactions = ? WHERE ord = ?",
                               (_dumpReactions(reactions), row[0]))
            return reactions

        return self.db.run(True, react)

    def deleteForUser(self, messageIds, userId):
        ids = list(messageIds)

        def delete(connection):
            found = []
            for messageId in ids:
                row = connection.execute("SELECT ord FROM messages WHERE id = ?",
                                         (messageId,)).fetchone()
                if row is not None:
                    connection.execute(
                        "INSERT OR IGNORE INTO message_hidden (user_id, message_ord) VALUES (?, ?)",
                        (userId, row[0]))
                    found.append(messageId)
            return found

        return self.db.run(True, delete)

    def deleteMessages(self, messageIds):
        ids = list(messageIds)

        def delete(connection):
            found = []
            dialogs = set()
            for messageId in ids:
                row = connection.execute("SELECT ord, dialog_id FROM messages WHERE id = ?",
                                         (messageId,)).fetchone()
                if row is None:
                    continue
                connection.execute("DELETE FROM messages WHERE ord = ?", (row[0],))
                connection.execute("DELETE FROM message_hidden WHERE message_ord = ?", (row[0],))
                found.append(messageId)
                dialogs.add(row[1])
            for dialogId in dialogs:
                self._recomputeLast(connection, dialogId)
            return found

        return self.db.run(True, delete)

    @staticmethod
    def _recomputeLast(connection, dialogId) -> None:
        row = connection.execute(
            "SELECT body, date_sent, id, sender_id FROM messages WHERE dialog_id = ?"
            " ORDER BY ord DESC LIMIT 1", (dialogId,)).fetchone()
        connection.execute(
            "UPDATE dialogs SET last_message = ?, last_message_date_sent = ?, last_message_id = ?,"
            " last_message_user_id = ? WHERE id = ?", (*(row or (None,) * 4), dialogId))

    def _mark(self, column, dialogId, userId, messageId):
        def mark(connection):
            _requireDialog(connection, dialogId)
            if messageId is None:
                order = connection.execute("SELECT coalesce(max(ord), 0) FROM messages"
                                           " WHERE dialog_id = ?", (dialogId,)).fetchone()[0]
            else:
                row = connection.execute("SELECT ord FROM messages WHERE id = ? AND dialog_id = ?",
                                         (messageId, dialogId)).fetchone()
                if row is None:
                    raise NotFound(f"no message {messageId} in dialog {dialogId}")
                order = row[0]
            _userState(connection, dialogId, userId)
            if column == "read_order":
                # Reading implies delivery.
                connection.execute(
                    "UPDATE dialog_users SET delivered_order = ? WHERE dialog_id = ?"
                    " AND user_id = ? AND delivered_order < ?", (order, dialogId, userId, order))
            return connection.execute(
                f"UPDATE dialog_users SET {column} = ? WHERE dialog_id = ? AND user_id = ?"
                f" AND {column} < ?", (order, dialogId, userId, order)).rowcount > 0

        return self.db.run(True, mark)

    def markRead(self, dialogId, userId, messageId=None):
        return self._mark("read_order", dialogId, userId, messageId)

    def markDelivered(self, dialogId, userId, messageId=None):
        return self._mark("delivered_order", dialogId, userId, messageId)

    def unreadCounts(self, userId, dialogIds=None):
        ids = None if dialogIds is None else list(dict.fromkeys(dialogIds))

        def count(connection):
            dialogs = ids
            if dialogs is None:
                dialogs = [row[0] for row in connection.execute(
                    f"SELECT d.id FROM dialogs d WHERE {_USER_DIALOGS}", (userId, userId, userId))]
            counts = {}
            for dialogId in dialogs:
                counts[dialogId] = connection.execute(
                    "SELECT count(*) FROM messages m WHERE m.dialog_id = ? AND m.ord > coalesce("
                    "(SELECT max(read_order, cleared_order) FROM dialog_users u"
                    " WHERE u.dialog_id = ? AND u.user_id = ?), 0) AND m.sender_id != ?"
                    " AND NOT EXISTS (SELECT 1 FROM message_hidden h WHERE h.user_id = ?"
                    " AND h.message_ord = m.ord)",
                    (dialogId, dialogId, userId, userId, userId)).fetchone()[0]
            return counts

        return self.db.run(False, count)

    def clearHistory(self, dialogId, userId):
        def clear(connection):
            _requireDialog(connection, dialogId)
            order = connection.execute("SELECT coalesce(max(ord), 0) FROM messages"
                                       " WHERE dialog_id = ?", (dialogId,)).fetchone()[0]
            _userState(connection, dialogId, userId, cleared_order=order)

        return self.db.run(True, clear)

    def searchMessages(self, dialogIds, text, userId=None, dateFrom=None, dateTo=None, limit=100):
        ids, limit = common.searchArguments(dialogIds, text, limit)
        if not ids:
            return defer.succeed([])
        sql = (f"{_MESSAGE_SELECT} WHERE m.dialog_id IN ({_marks(ids)})"
               " AND instr(m.body_folded, ?) > 0")
        params: list = [*ids, common.fold(text)]
        if dateFrom is not None:
            sql += " AND m.date_sent >= ?"
            params.append(dateFrom)
        if dateTo is not None:
            sql += " AND m.date_sent <= ?"
            params.append(dateTo)
        if userId is not None:
            sql += _VISIBLE
            params += [userId, userId]
        sql += f" ORDER BY m.date_sent DESC, m.ord DESC LIMIT {-1 if limit is None else int(limit)}"
        return self.db.run(False, lambda c: _messages(c, c.execute(sql, params).fetchall()))


def _blob(row) -> Blob | None:
    if row is None:
        return None
    return Blob(id=row[0], uid=row[1], ownerId=row[2], name=row[3], contentType=row[4],
                size=row[5], public=bool(row[6]), completed=bool(row[7]), createdAt=row[8],
                updatedAt=row[9])


class SQLiteBlobStore(_Store):
    """
    L{IBlobStore} on the C{blobs} table.
    """

    def createBlob(self, ownerId, name, contentType, public=False, limit=None):
        common.checkId(ownerId, "owner id")
        now = self._now()

        def create(connection):
            if limit is not None:
                common.requireRoom(_blobUsage(connection, ownerId)[0], 1, limit, "files")
            blobId = connection.execute(
                "INSERT INTO blobs (uid, owner_id, name, content_type, public, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (common.newBlobUid(), ownerId, name, contentType, int(bool(public)), now,
                 now)).lastrowid
            return _blob(connection.execute(_BLOB_SELECT + " WHERE id = ?", (blobId,)).fetchone())

        return self.db.run(True, create)

    def getBlob(self, blobId):
        return self.db.run(False, lambda c: _blob(c.execute(
            _BLOB_SELECT + " WHERE id = ?", (blobId,)).fetchone()))

    def getBlobByUid(self, uid):
        return self.db.run(False, lambda c: _blob(c.execute(
            _BLOB_SELECT + " WHERE uid = ?", (uid,)).fetchone()))

    def updateBlob(self, blobId, **fields):
        fields = common.checkBlobFields(fields)
        columns = {"name": "name", "contentType": "content_type", "size": "size",
                   "public": "public", "completed": "completed"}
        assignments = {"updated_at": self._now()}
        for name, value in fields.items():
            assignments[columns[name]] = int(value) if isinstance(value, bool) else value

        def update(connection):
            sql = ", ".join(f"{name} = ?" for name in assignments)
            if connection.execute(f"UPDATE blobs SET {sql} WHERE id = ?",
                                  (*assignments.values(), blobId)).rowcount == 0:
                raise NotFound(f"no blob {blobId}")
            return _blob(connection.execute(_BLOB_SELECT + " WHERE id = ?", (blobId,)).fetchone())

        return self.db.run(True, update)

    def completeBlob(self, blobId, size):
        return self.updateBlob(blobId, size=size, completed=True)

    def reserveBlobBytes(self, blobId, size, limit=None):
        common.checkId(size, "size")

        def reserve(connection):
            blob = _blob(connection.execute(_BLOB_SELECT + " WHERE id = ?", (blobId,)).fetchone())
            if blob is None:
                raise NotFound(f"no blob {blobId}")
            if limit is not None:
                used = _blobUsage(connection, blob.ownerId)[1] - (blob.size or 0)
                common.requireRoom(used, size, limit, "bytes of files")
            connection.execute("UPDATE blobs SET size = ?, updated_at = ? WHERE id = ?",
                               (size, self._now(), blobId))
            return _blob(connection.execute(_BLOB_SELECT + " WHERE id = ?", (blobId,)).fetchone())

        return self.db.run(True, reserve)

    def blobUsage(self, ownerId):
        return self.db.run(False, _blobUsage, ownerId)

    def deleteIncompleteBlobs(self, createdBefore, limit=500):
        def sweep(connection):
            stale = [_blob(row) for row in connection.execute(
                _BLOB_SELECT + " WHERE completed = 0 AND created_at < ? ORDER BY created_at LIMIT ?",
                (createdBefore, limit))]
            connection.executemany("DELETE FROM blobs WHERE id = ?", [(b.id,) for b in stale])
            return stale

        return self.db.run(True, sweep)

    def deleteBlob(self, blobId):
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM blobs WHERE id = ?", (blobId,)).rowcount > 0)

    def listBlobs(self, ownerId, skip=0, limit=None):
        skip, limit = common.pageBounds(skip, limit)
        return self.db.run(False, lambda c: [_blob(row) for row in c.execute(
            _BLOB_SELECT + " WHERE owner_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (ownerId, -1 if limit is None else limit, skip))])

    def countBlobs(self, ownerId):
        return self.db.run(False, lambda c: c.execute(
            "SELECT count(*) FROM blobs WHERE owner_id = ?", (ownerId,)).fetchone()[0])


def _usage(connection, table: str, ownerColumn: str, ownerId) -> tuple[int, int]:
    """
    C{(count, bytes)} of one user's rows of C{table} (quotas, by index).
    """
    count, size = connection.execute(
        f"SELECT count(*), total(size) FROM {table} WHERE {ownerColumn} = ?", (ownerId,)).fetchone()
    return count, int(size)


def _blobUsage(connection, ownerId) -> tuple[int, int]:
    return _usage(connection, "blobs", "owner_id", ownerId)


def _recordUsage(connection, userId) -> tuple[int, int]:
    return _usage(connection, "records", "user_id", userId)


def _record(row) -> Record | None:
    if row is None:
        return None
    return Record(className=row[0], id=row[1], userId=row[2], fields=json.loads(row[3]),
                  parentId=row[4], createdAt=row[5], updatedAt=row[6])


class SQLiteRecordStore(_Store):
    """
    L{IRecordStore} on the C{records} table.
    """

    def createRecord(self, className, userId, fields, parentId=None, recordId=None, limit=None,
                     byteLimit=None):
        fields = common.newRecordValues(className, userId, fields, recordId)
        now = self._now()
        recordId = recordId or newObjectId(now)
        text = _dumps(fields)
        size = common.recordSize(fields)

        def create(connection):
            try:
                connection.execute(
                    "INSERT INTO records (class_name, id, user_id, parent_id, fields, size,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (className, recordId, userId, parentId, text, size, now, now))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"record {recordId} already exists") from None
            if limit is not None or byteLimit is not None:
                count, used = _recordUsage(connection, userId)
                common.requireRoom(count - 1, 1, limit, "records")
                common.requireRoom(used - size, size, byteLimit, "bytes of records")
            return self._get(connection, className, recordId)

        return self.db.run(True, create)

    @staticmethod
    def _get(connection, className, recordId):
        return _record(connection.execute(_RECORD_SELECT + " WHERE class_name = ? AND id = ?",
                                          (className, recordId)).fetchone())

    def getRecord(self, className, recordId):
        return self.db.run(False, self._get, className, recordId)

    def listRecords(self, className, query=None):
        where, params, query = _RECORDS.where(query)
        sql = (f"{_RECORD_SELECT} WHERE class_name = ? AND {where} ORDER BY"
               f" {_RECORDS.orderBy(query)}{_RECORDS.page(query)}")
        return self.db.run(False, lambda c: [_record(row) for row in c.execute(
            sql, [className, *params])])

    def countRecords(self, className, query=None):
        where, params, _ = _RECORDS.where(query)
        return self.db.run(False, lambda c: c.execute(
            f"SELECT count(*) FROM records WHERE class_name = ? AND {where}",
            [className, *params]).fetchone()[0])

    def updateRecord(self, className, recordId, set=None, unset=(), byteLimit=None):
        common.updatedFields({}, set, ())
        unset = list(unset)
        now = self._now()

        def update(connection):
            record = self._get(connection, className, recordId)
            if record is None:
                raise NotFound(f"no {className} record {recordId}")
            fields = common.updatedFields(record.fields, set, unset)
            size = common.recordSize(fields)
            if byteLimit is not None:
                old = common.recordSize(record.fields)
                if size > old:
                    used = _recordUsage(connection, record.userId)[1]
                    common.requireRoom(used, size - old, byteLimit, "bytes of records")
            connection.execute(
                "UPDATE records SET fields = ?, size = ?, updated_at = ? WHERE class_name = ?"
                " AND id = ?", (_dumps(fields), size, now, className, recordId))
            return self._get(connection, className, recordId)

        return self.db.run(True, update)

    def recordUsage(self, userId):
        return self.db.run(False, _recordUsage, userId)

    def deleteRecord(self, className, recordId):
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM records WHERE class_name = ? AND id = ?",
            (className, recordId)).rowcount > 0)


# -- privacy lists (XEP-0016 / XEP-0191) ------------------------------------


def _deletePrivacy(connection, localpart) -> None:
    """
    Delete a user's privacy lists (account deletion).
    """
    for table in ("privacy_lists", "privacy_default"):
        connection.execute(f"DELETE FROM {table} WHERE localpart = ?", (localpart,))


class SQLitePrivacyStore(_Store):
    """
    L{IPrivacyStore} on the C{privacy_lists} table (one row per list, its
    items as JSON; rowid order is creation order) and C{privacy_default}.
    """

    def getPrivacy(self, localpart):
        def get(connection):
            record = PrivacyRecord()
            for name, items in connection.execute(
                    "SELECT name, items FROM privacy_lists WHERE localpart = ? ORDER BY rowid",
                    (localpart,)):
                record.lists[name] = _loads(items)
            row = connection.execute("SELECT name FROM privacy_default WHERE localpart = ?",
                                     (localpart,)).fetchone()
            record.default = row[0] if row is not None else None
            return record

        return self.db.run(False, get)

    def setPrivacyList(self, localpart, name, items):
        return self.db.run(True, _execute,
            "INSERT INTO privacy_lists (localpart, name, items) VALUES (?, ?, ?)"
            " ON CONFLICT (localpart, name) DO UPDATE SET items = excluded.items",
            (localpart, name, _dumps(list(items))))

    def deletePrivacyList(self, localpart, name):
        def delete(connection):
            connection.execute("DELETE FROM privacy_default WHERE localpart = ? AND name = ?",
                               (localpart, name))
            return connection.execute("DELETE FROM privacy_lists WHERE localpart = ? AND name = ?",
                                      (localpart, name)).rowcount > 0

        return self.db.run(True, delete)

    def setDefaultPrivacyList(self, localpart, name):
        def setDefault(connection):
            if name is None:
                connection.execute("DELETE FROM privacy_default WHERE localpart = ?", (localpart,))
                return
            if connection.execute("SELECT 1 FROM privacy_lists WHERE localpart = ? AND name = ?",
                                  (localpart, name)).fetchone() is None:
                raise NotFound(f"{localpart} has no privacy list {name!r}")
            connection.execute(
                "INSERT INTO privacy_default (localpart, name) VALUES (?, ?)"
                " ON CONFLICT (localpart) DO UPDATE SET name = excluded.name", (localpart, name))

        return self.db.run(True, setDefault)


class _PortableStore(SQLitePortableStore):
    # this module's row readers, for export and import (storage/portable)
    rows = SimpleNamespace(
        dialog=_dialog, DIALOG_SELECT=_DIALOG_SELECT, messages=_messages,
        MESSAGE_SELECT=_MESSAGE_SELECT, blob=_blob, BLOB_SELECT=_BLOB_SELECT, record=_record,
        RECORD_SELECT=_RECORD_SELECT, dumpReactions=_dumpReactions)


class SQLiteStorage(common.WorkerStorage):
    """
    L{Storage} on one SQLite database.

    @param path: a file name (its directory is created on start) or
        C{":memory:"}.
    @param reactor: used to run the worker thread's results back into the
        reactor and as the clock for timestamps; defaults to the global
        reactor (and C{time.time} for timestamps).
    @param synchronous: run every call inline and return fired Deferreds
        (tests, the admin CLI).
    @param readConnections: connections (and threads) for reads; 0 reads
        on the writer.  A C{:memory:} database always does.
    @param queryTimeoutMs: a read transaction running longer is aborted
        with L{QueryTimeout} (0: never).
    """

    STORES = {
        "accounts": SQLiteAccountStore,
        "tokens": SQLiteTokenStore,
        "offline": SQLiteOfflineStore,
        "roster": SQLiteRosterStore,
        "lastActivity": SQLiteLastActivityStore,
        "dialogs": SQLiteDialogStore,
        "messages": SQLiteMessageStore,
        "blobs": SQLiteBlobStore,
        "records": SQLiteRecordStore,
        "privacy": SQLitePrivacyStore,
        "unlocks": SQLiteUnlockStore,
        "settings": SQLiteSettingStore,
        "pep": SQLitePEPStore,
        "uploads": SQLiteUploadSlotStore,
        "userXML": SQLiteUserXMLStore,
        "portable": _PortableStore,
    }

    def __init__(self, path: str, reactor=None, synchronous: bool = False,
                 busyTimeout: int = BUSY_TIMEOUT_MS, readConnections: int = READ_CONNECTIONS,
                 queryTimeoutMs: int = QUERY_TIMEOUT_MS):
        self.path = path
        self._attachStores(_Database(path, reactor, synchronous, busyTimeout, readConnections,
                                     queryTimeoutMs), reactor)

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path!r}>"


__all__ = ["SQLiteStorage", "SCHEMA_VERSION", "READ_CONNECTIONS"]
