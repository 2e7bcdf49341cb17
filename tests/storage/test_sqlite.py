"""
Tests for what is specific to the SQLite backend: files, durability, schema
versions, locking, and the one-thread runner.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from types import SimpleNamespace

import pytest

from tests.storage.test_contract import CREDS, failure, result
from xmppchat.storage import openStorage
from xmppchat.storage.interfaces import AlreadyExists, RosterItem, StorageError, TokenRecord
from xmppchat.storage.sqlite import SCHEMA_VERSION, SQLiteStorage


def oldDatabase(path, version: int, *statements: str) -> None:
    """
    A SQLite file at schema C{version} holding what C{statements} insert,
    to test the migrations after it.
    """
    from xmppchat.storage.sqlite import MIGRATIONS

    connection = sqlite3.connect(path)
    for step in MIGRATIONS[:version]:
        for statement in step:
            connection.execute(statement)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def opened(path, **kwargs):
    storage = SQLiteStorage(str(path), synchronous=True, **kwargs)
    result(storage.start())
    return storage


def test_durableAcrossReopen(tmp_path):
    """Everything written to a file database is there after closing and reopening it."""
    path = tmp_path / "db.sqlite3"
    storage = opened(path)
    alice = result(storage.accounts.createAccount("alice", CREDS, login="al", profile={"a": [1]}))
    result(storage.tokens.addToken(TokenRecord("h", alice.id, 3, 1.0, 1e12, {"k": 1})))
    result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost", "Bob", ["G"], "both")))
    result(storage.offline.storeOffline("alice", "<message/>", 2.0, 10))
    result(storage.lastActivity.setLastActivity("alice", 3.0, "bye"))
    result(storage.stop())

    storage = opened(path)
    assert result(storage.accounts.getAccountByLocalpart("alice")) == alice
    assert result(storage.tokens.getToken("h", 0.0)) == TokenRecord("h", alice.id, 3, 1.0, 1e12, {"k": 1})
    assert result(storage.roster.getRoster("alice")) == [RosterItem("bob@localhost", "Bob", ["G"], "both")]
    assert [m.stanza for m in result(storage.offline.fetchOffline("alice"))] == ["<message/>"]
    assert result(storage.lastActivity.getLastActivity("alice")) == (3.0, "bye")
    result(storage.stop())


def test_idsNotReusedAfterReopen(tmp_path):
    """The highest deleted account id is not handed out again after a restart."""
    path = tmp_path / "db.sqlite3"
    storage = opened(path)
    result(storage.accounts.createAccount("a", None))
    second = result(storage.accounts.createAccount("b", None))
    result(storage.accounts.deleteAccount(second.id))
    result(storage.stop())
    storage = opened(path)
    assert result(storage.accounts.createAccount("c", None)).id == 3
    result(storage.stop())


def test_walModeAndSchemaVersion(tmp_path):
    """A file database is in WAL mode and records the schema version."""
    path = tmp_path / "db.sqlite3"
    result(opened(path).stop())
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    connection.close()


def test_newerSchemaRefused(tmp_path):
    """A database written by a newer schema version fails to start with StorageError."""
    path = tmp_path / "db.sqlite3"
    result(opened(path).stop())
    connection = sqlite3.connect(path)
    connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    connection.commit()
    connection.close()
    error = failure(SQLiteStorage(str(path), synchronous=True).start(), StorageError)
    assert "newer" in str(error)


def test_notADatabase(tmp_path):
    """A file that is not a database fails to start with StorageError."""
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    failure(SQLiteStorage(str(path), synchronous=True).start(), StorageError)


def test_parentDirectoryCreated(tmp_path):
    """Starting creates the database's missing parent directories."""
    path = tmp_path / "a" / "b" / "db.sqlite3"
    storage = opened(path)
    result(storage.stop())
    assert path.exists()


def test_notStarted():
    """Calls before start or after stop fail with StorageError; stopping twice is harmless."""
    storage = SQLiteStorage(":memory:", synchronous=True)
    failure(storage.accounts.countAccounts(), StorageError)
    result(storage.start())
    result(storage.stop())
    failure(storage.accounts.countAccounts(), StorageError)
    result(storage.stop())


def test_twoProcessesShareTheFile(tmp_path):
    """Two connections (server and admin CLI) see each other's committed writes."""
    path = tmp_path / "db.sqlite3"
    server, cli = opened(path), opened(path)
    result(cli.accounts.createAccount("alice", CREDS))
    assert result(server.accounts.getAccountByLocalpart("alice")) is not None
    result(server.accounts.createAccount("bob", CREDS))
    assert result(cli.accounts.countAccounts()) == 2
    failure(server.accounts.createAccount("alice", CREDS), AlreadyExists)
    result(server.stop())
    result(cli.stop())


def test_lockedDatabase(tmp_path):
    """A write that cannot get the lock within the busy timeout fails with StorageError."""
    path = tmp_path / "db.sqlite3"
    storage = opened(path, busyTimeout=50)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    error = failure(storage.accounts.createAccount("alice", CREDS), StorageError)
    assert "locked" in str(error)
    other.execute("ROLLBACK")
    other.close()
    result(storage.accounts.createAccount("alice", CREDS))
    result(storage.stop())


def test_failedTransactionRolledBack(tmp_path):
    """A bulk create that fails part-way leaves nothing behind."""
    storage = opened(tmp_path / "db.sqlite3")
    failure(storage.accounts.createAccounts([("a", None), ("b", {"bad": object()})]), TypeError)
    assert result(storage.accounts.countAccounts()) == 0
    result(storage.stop())


def test_migrationFromVersionOne(tmp_path):
    """A version-1 database is migrated in place: its accounts stay and the chat tables appear."""
    from xmppchat.storage.sqlite import MIGRATIONS

    path = tmp_path / "db.sqlite3"
    connection = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (1)")
    connection.execute("INSERT INTO accounts (localpart, created_at, updated_at) VALUES ('old', 1, 1)")
    connection.commit()
    connection.close()
    storage = opened(path)
    assert result(storage.accounts.getAccountByLocalpart("old")).id == 1
    dialog = result(storage.dialogs.createDialog(2, 1, [2]))
    result(storage.messages.createMessage(dialog.id, 2, "hi"))
    assert result(storage.messages.unreadCounts(1)) == {dialog.id: 1}
    result(storage.stop())
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    connection.close()


def test_openStorageSQLite(tmp_path):
    """openStorage builds an unstarted SQLite storage and creates its directory."""
    path = tmp_path / "data" / "x.sqlite3"
    storage = openStorage(SimpleNamespace(backend="sqlite", path=str(path)), synchronous=True)
    assert isinstance(storage, SQLiteStorage)
    assert path.parent.is_dir()
    result(storage.start())
    result(storage.stop())
    assert isinstance(openStorage(SimpleNamespace(backend="sqlite", path=":memory:")), SQLiteStorage)


def test_openStorageOthers():
    """openStorage refuses unknown backends."""
    with pytest.raises(ValueError):
        openStorage(SimpleNamespace(backend="redis", path=""))


class ThreadReactor:
    """
    Just enough reactor for L{threads.deferToThreadPool}: results come back
    through C{callFromThread} into a queue that L{wait} drains on the test's
    thread, as the reactor thread would.
    """

    def __init__(self):
        self.calls = queue.Queue()
        self.triggers = {}

    def callFromThread(self, f, *args, **kwargs):
        self.calls.put((f, args, kwargs))

    def seconds(self):
        return time.time()

    def addSystemEventTrigger(self, phase, event, f, *args):
        self.triggers[id(f)] = f
        return id(f)

    def removeSystemEventTrigger(self, trigger):
        del self.triggers[trigger]

    def wait(self, d, timeout=10.0):
        fired = threading.Event()
        d.addBoth(lambda r: (fired.set(), r)[1])
        deadline = time.monotonic() + timeout
        while not fired.is_set():
            f, args, kwargs = self.calls.get(timeout=max(0.0, deadline - time.monotonic()))
            f(*args, **kwargs)
        return result(d)


def test_threadedRunner(tmp_path):
    """Without synchronous, calls run on one worker thread and results come back through the reactor."""
    reactor = ThreadReactor()
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3"), reactor=reactor)
    reactor.wait(storage.start())
    assert len(reactor.triggers) == 2  # the writer's pool and the readers'
    d = storage.accounts.createAccount("alice", CREDS)
    assert not d.called
    alice = reactor.wait(d)
    assert reactor.wait(storage.accounts.getAccountByLocalpart("alice")) == alice
    error = []
    d = storage.accounts.createAccount("alice", CREDS)
    d.addErrback(lambda f: error.append(f.trap(AlreadyExists)))
    reactor.wait(d)
    assert error == [AlreadyExists]
    threadIds = set()
    d = storage.db._call(lambda: threadIds.add(threading.get_ident()))
    reactor.wait(d)
    assert threadIds and threading.get_ident() not in threadIds
    pool, readPool = storage.db.pool, storage.db.readers.pool
    assert readPool is not pool and readPool.max == 2
    reactor.wait(storage.stop())
    assert storage.db.pool is None and pool.workers == 0
    assert storage.db.readers.pool is None and readPool.workers == 0
    assert reactor.triggers == {}
    d = storage.accounts.countAccounts()
    failure(d, StorageError)


def test_threadedRunnerStartFailure(tmp_path):
    """A failed start stops the worker thread."""
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    reactor = ThreadReactor()
    storage = SQLiteStorage(str(path), reactor=reactor)
    d = storage.start()
    with pytest.raises(StorageError):
        reactor.wait(d)
    assert storage.db.pool is None
    assert reactor.triggers == {}
