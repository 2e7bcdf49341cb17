"""
The embedded storage backend: stdlib C{sqlite3}, one file under the data
directory (or C{:memory:} for tests).

One connection does all the work.  In production it lives on a dedicated
worker thread (a L{ThreadPool} of exactly one thread, started and stopped
with the storage) and calls go through L{threads.deferToThreadPool}, so
statements never block the reactor and never run concurrently.  With
C{synchronous=True} every call runs inline and returns an already-fired
Deferred: tests use C{successResultOf} and the admin CLI needs no reactor.

The database is in WAL mode with a busy timeout, so the admin CLI can write
while the server runs.  Each public method is one transaction (writes take
the write lock up front with C{BEGIN IMMEDIATE}); C{sqlite3} errors are
translated to L{StorageError}/L{AlreadyExists} inside the worker thread.
JSON columns hold credentials, profiles and roster groups.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from xmppchat.storage.interfaces import (
    ACCOUNT_FIELDS,
    SUBSCRIPTIONS,
    Account,
    AlreadyExists,
    NotFound,
    OfflineMessage,
    QuotaExceeded,
    RosterItem,
    Storage,
    StorageError,
    TokenRecord,
)

SCHEMA_VERSION = 1

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
]

assert len(MIGRATIONS) == SCHEMA_VERSION

BUSY_TIMEOUT_MS = 5000
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
    "SELECT id, localpart, login, email, external_id, credentials, created_at, updated_at, profile"
    " FROM accounts"
)
_TOKEN_SELECT = "SELECT token_hash, account_id, app_id, created_at, expires_at, credentials FROM tokens"
_ROSTER_SELECT = "SELECT jid, name, groups, subscription, ask, pending_in, hidden FROM roster"


def _dumps(value) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | None):
    return None if text is None else json.loads(text)


def _account(row) -> Account | None:
    if row is None:
        return None
    return Account(id=row[0], localpart=row[1], login=row[2], email=row[3], externalId=row[4],
                   credentials=_loads(row[5]), createdAt=row[6], updatedAt=row[7],
                   profile=_loads(row[8]) or {})


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


def _upsertRosterItem(connection, sql, values) -> None:
    values = list(values)
    values[3] = _dumps(values[3])
    connection.execute(sql, values)


def _checkId(accountId) -> None:
    if isinstance(accountId, bool) or not isinstance(accountId, int):
        raise TypeError(f"account id must be an int, not {type(accountId).__name__}")


class _Database:
    """
    The single connection and the way calls reach it: inline
    (C{synchronous}) or on a one-thread pool.
    """

    log = Logger()

    def __init__(self, path: str, reactor=None, synchronous: bool = False,
                 busyTimeout: int = BUSY_TIMEOUT_MS):
        self.path = path
        self.reactor = reactor
        self.synchronous = synchronous
        self.busyTimeout = busyTimeout
        self.connection: sqlite3.Connection | None = None
        self.pool: ThreadPool | None = None
        self._shutdownTrigger = None

    # -- running calls --------------------------------------------------

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

    def run(self, write: bool, f, *args) -> defer.Deferred:
        """
        Run C{f(connection, *args)} as one transaction; a write transaction
        takes the database's write lock at once.
        """
        return self._call(self._transaction, write, f, *args)

    def _transaction(self, write, f, *args):
        connection = self.connection
        if connection is None:
            raise StorageError("storage is not started")
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = f(connection, *args)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result
        except sqlite3.IntegrityError as e:
            raise _duplicate(e) from None
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {type(e).__name__}: {e}") from None

    # -- life cycle -----------------------------------------------------

    def start(self) -> defer.Deferred:
        if self.synchronous:
            return self._call(self._connect)
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        self.pool = ThreadPool(1, 1, name="xmppchat-sqlite")
        self.pool.start()
        self._shutdownTrigger = self.reactor.addSystemEventTrigger(
            "during", "shutdown", self._stopPool)
        d = self._call(self._connect)
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

    def stop(self) -> defer.Deferred:
        if not self.synchronous and self.pool is None:
            return defer.succeed(None)
        d = self._call(self._close)
        if not self.synchronous:
            d.addBoth(self._closed)
        return d

    def _closed(self, result):
        self._stopPool()
        return result

    def _connect(self) -> None:
        if self.connection is not None:
            return
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create {parent}: {e.strerror}") from None
        try:
            connection = sqlite3.connect(self.path, timeout=self.busyTimeout / 1000,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: cannot open: {e}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self.busyTimeout)}")
            if self.path != ":memory:":
                connection.execute("PRAGMA journal_mode = WAL")
            # An acknowledged write must survive a power failure.
            connection.execute("PRAGMA synchronous = FULL")
            self.connection = connection
            self._transaction(True, self._migrate)
        except BaseException as e:
            self.connection = None
            connection.close()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"{self.path}: {type(e).__name__}: {e}") from None
            raise

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


class _Store:
    def __init__(self, db: _Database, clock):
        self.db = db
        self._clock = clock

    def _now(self, now: float | None = None) -> float:
        return self._clock() if now is None else now


class SQLiteAccountStore(_Store):
    """
    L{IAccountStore} on the C{accounts} table.
    """

    def createAccount(self, localpart, credentials, login=None, email=None, externalId=None,
                      profile=None, accountId=None):
        if not isinstance(localpart, str) or not localpart:
            return defer.fail(ValueError("localpart must be a non-empty string"))
        if accountId is not None:
            try:
                _checkId(accountId)
            except TypeError:
                return defer.fail()
            if accountId < 1:
                return defer.fail(ValueError("account id must be positive"))
        now = self._now()
        values = (accountId, localpart, login, email, externalId, credentials, now, now,
                  profile or {})
        return self.db.run(True, self._create, values)

    @staticmethod
    def _create(connection, values):
        values = list(values)
        values[5] = _dumps(values[5])
        values[8] = _dumps(values[8])
        cursor = connection.execute(
            "INSERT INTO accounts (id, localpart, login, email, external_id, credentials,"
            " created_at, updated_at, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        return _account(connection.execute(_ACCOUNT_SELECT + " WHERE id = ?",
                                           (cursor.lastrowid,)).fetchone())

    def createAccounts(self, entries):
        rows = []
        for localpart, credentials in entries:
            if not isinstance(localpart, str) or not localpart:
                return defer.fail(ValueError(f"invalid localpart {localpart!r}"))
            rows.append((localpart, credentials))
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

    def _getBy(self, column, value):
        return self.db.run(False, lambda c: _account(
            c.execute(f"{_ACCOUNT_SELECT} WHERE {column} = ?", (value,)).fetchone()))

    def getAccount(self, accountId):
        return self._getBy("id", accountId)

    def getAccountByLocalpart(self, localpart):
        return self._getBy("localpart", localpart)

    def getAccountByLogin(self, login):
        return self._getBy("login", login)

    def setCredentials(self, accountId, credentials):
        d = self.updateAccount(accountId, credentials=credentials)
        d.addCallback(lambda _: None)
        return d

    def updateAccount(self, accountId, **fields):
        unknown = set(fields) - set(ACCOUNT_FIELDS)
        if unknown:
            return defer.fail(ValueError(f"cannot update {', '.join(sorted(unknown))}"))
        columns = {"login": "login", "email": "email", "externalId": "external_id",
                   "credentials": "credentials", "profile": "profile"}
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
            for table in ("roster", "offline", "last_activity"):
                connection.execute(f"DELETE FROM {table} WHERE localpart = ?", (localpart,))
            _deletePrivacy(connection, localpart)
            connection.execute("DELETE FROM accounts WHERE id = ?", (accountId,))
            return True

        return self.db.run(True, delete)

    def listAccounts(self, offset=0, limit=None):
        limit = -1 if limit is None else limit
        return self.db.run(False, lambda c: [
            _account(row) for row in c.execute(
                _ACCOUNT_SELECT + " ORDER BY id LIMIT ? OFFSET ?", (limit, offset))])

    def countAccounts(self):
        return self.db.run(False, lambda c: c.execute("SELECT count(*) FROM accounts").fetchone()[0])


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

    def purgeExpired(self, now=None):
        now = self._now(now)
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM tokens WHERE expires_at <= ?", (now,)).rowcount)


class SQLiteOfflineStore(_Store):
    """
    L{IOfflineStore} on the C{offline} table.
    """

    def storeOffline(self, localpart, stanza, stamp, limit):
        def store(connection):
            if limit is not None:
                count = connection.execute("SELECT count(*) FROM offline WHERE localpart = ?",
                                           (localpart,)).fetchone()[0]
                if count >= limit:
                    raise QuotaExceeded(f"{localpart} has {count} offline messages (limit {limit})")
            return connection.execute(
                "INSERT INTO offline (localpart, stanza, stamp) VALUES (?, ?, ?)",
                (localpart, stanza, stamp)).lastrowid

        return self.db.run(True, store)

    def countOffline(self, localpart):
        return self.db.run(False, lambda c: c.execute(
            "SELECT count(*) FROM offline WHERE localpart = ?", (localpart,)).fetchone()[0])

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
                marks = ", ".join("?" * len(chunk))
                deleted += connection.execute(
                    f"DELETE FROM offline WHERE localpart = ? AND id IN ({marks})",
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
        if item.subscription not in SUBSCRIPTIONS:
            return defer.fail(ValueError(f"invalid subscription {item.subscription!r}"))
        if item.ask not in (None, "subscribe"):
            return defer.fail(ValueError(f"invalid ask {item.ask!r}"))
        values = (localpart, item.jid, item.name, list(item.groups), item.subscription,
                  item.ask, int(bool(item.pendingIn)), int(bool(item.hidden)))
        return self.db.run(True, _upsertRosterItem,
            "INSERT INTO roster (localpart, jid, name, groups, subscription, ask, pending_in,"
            " hidden) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (localpart, jid) DO UPDATE SET"
            " name = excluded.name, groups = excluded.groups,"
            " subscription = excluded.subscription, ask = excluded.ask,"
            " pending_in = excluded.pending_in, hidden = excluded.hidden", values)

    def removeRosterItem(self, localpart, jid):
        return self.db.run(True, lambda c: c.execute(
            "DELETE FROM roster WHERE localpart = ? AND jid = ?", (localpart, jid)).rowcount > 0)


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


class SQLiteStorage(Storage):
    """
    L{Storage} on one SQLite database.

    @param path: a file name (its directory is created on start) or
        C{":memory:"}.
    @param reactor: used to run the worker thread's results back into the
        reactor and as the clock for timestamps; defaults to the global
        reactor (and C{time.time} for timestamps).
    @param synchronous: run every call inline and return fired Deferreds
        (tests, the admin CLI).
    """

    def __init__(self, path: str, reactor=None, synchronous: bool = False,
                 busyTimeout: int = BUSY_TIMEOUT_MS):
        self.path = path
        self.db = _Database(path, reactor, synchronous, busyTimeout)
        clock = reactor.seconds if reactor is not None else time.time
        self.accounts = SQLiteAccountStore(self.db, clock)
        self.tokens = SQLiteTokenStore(self.db, clock)
        self.offline = SQLiteOfflineStore(self.db, clock)
        self.roster = SQLiteRosterStore(self.db, clock)
        self.lastActivity = SQLiteLastActivityStore(self.db, clock)
        self.privacy = SQLitePrivacyStore(self.db, clock)

    def start(self) -> defer.Deferred:
        return self.db.start()

    def stop(self) -> defer.Deferred:
        return self.db.stop()

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path!r}>"


__all__ = ["SQLiteStorage", "SCHEMA_VERSION"]


# -- privacy lists (XEP-0016 / XEP-0191) ------------------------------------

from xmppchat.storage.interfaces import PrivacyRecord  # noqa: E402

_PRIVACY_SCHEMA = (
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
)


def _deletePrivacy(connection, localpart) -> None:
    """
    Delete a user's privacy lists (account deletion); the tables exist only
    once the privacy store has been used.
    """
    for table in ("privacy_lists", "privacy_default"):
        if connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (table,)).fetchone() is not None:
            connection.execute(f"DELETE FROM {table} WHERE localpart = ?", (localpart,))


class SQLitePrivacyStore(_Store):
    """
    L{IPrivacyStore} on the C{privacy_lists} table (one row per list, its
    items as JSON; rowid order is creation order) and C{privacy_default}.

    The two tables are created on first use with C{CREATE TABLE IF NOT
    EXISTS}, so this store needs no schema migration of its own.
    """

    def __init__(self, db: _Database, clock):
        _Store.__init__(self, db, clock)
        self._schemaReady = False

    def _run(self, write, f, *args):
        if self._schemaReady:
            return self.db.run(write, f, *args)
        d = self.db.run(True, self._createSchema)
        d.addCallback(lambda _: self.db.run(write, f, *args))
        return d

    def _createSchema(self, connection):
        for statement in _PRIVACY_SCHEMA:
            connection.execute(statement)
        self._schemaReady = True

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

        return self._run(False, get)

    def setPrivacyList(self, localpart, name, items):
        return self._run(True, _execute,
            "INSERT INTO privacy_lists (localpart, name, items) VALUES (?, ?, ?)"
            " ON CONFLICT (localpart, name) DO UPDATE SET items = excluded.items",
            (localpart, name, _dumps(list(items))))

    def deletePrivacyList(self, localpart, name):
        def delete(connection):
            connection.execute("DELETE FROM privacy_default WHERE localpart = ? AND name = ?",
                               (localpart, name))
            return connection.execute("DELETE FROM privacy_lists WHERE localpart = ? AND name = ?",
                                      (localpart, name)).rowcount > 0

        return self._run(True, delete)

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

        return self._run(True, setDefault)
