"""
Issue 15 finding 3 in the storage backends: SQLite reads on their own
connections and threads beside the writer, a time limit on read
transactions (progress handler) and on MongoDB finders (C{maxTimeMS}),
both failing with L{QueryTimeout}; large operand lists on both backends.
"""

from __future__ import annotations

import threading
import time

import mongomock
import pytest
from pymongo.errors import ExecutionTimeout

from tests.storage.test_contract import CREDS, FACTORIES, failure, result
from tests.storage.test_sqlite import ThreadReactor
from xmppchat.storage.interfaces import InvalidQuery, Query, QueryTimeout, StorageError
from xmppchat.storage.mongo import MongoStorage
from xmppchat.storage.sqlite import SQLiteStorage

# A statement that never ends by itself.
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
MILLION = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000)"
           " SELECT count(*) FROM r")


def test_readsAndWritesBesideASlowRead(tmp_path):
    """While one read holds a read connection, a write and another read complete on their own threads."""
    reactor = ThreadReactor()
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3"), reactor=reactor)
    reactor.wait(storage.start())
    reactor.wait(storage.accounts.createAccount("alice", CREDS))
    release, holding = threading.Event(), threading.Event()

    def slow(connection):
        connection.execute("SELECT count(*) FROM accounts").fetchone()
        holding.set()
        assert release.wait(10)
        return "slow done"

    blocked = storage.db.run(False, slow)
    try:
        assert holding.wait(5)
        started = time.monotonic()
        assert reactor.wait(storage.accounts.createAccount("bob", CREDS), timeout=3).localpart == "bob"
        assert reactor.wait(storage.accounts.getAccountByLocalpart("bob"), timeout=3) is not None
        assert time.monotonic() - started < 3
        assert not blocked.called
    finally:
        release.set()
    assert reactor.wait(blocked) == "slow done"
    reactor.wait(storage.stop())


@pytest.mark.parametrize("path,readers", [("file", 2), ("file", 0), (":memory:", 2)])
def test_slowReadCut(tmp_path, path, readers):
    """A read transaction past query_timeout_ms is aborted with QueryTimeout; the connection serves the next read."""
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3") if path == "file" else path,
                            synchronous=True, readConnections=readers, queryTimeoutMs=100)
    result(storage.start())
    result(storage.accounts.createAccount("alice", CREDS))
    started = time.monotonic()
    error = failure(storage.db.run(False, lambda c: c.execute(FOREVER).fetchone()), QueryTimeout)
    assert 0.1 <= time.monotonic() - started < 5
    assert "ran longer than 100 ms" in str(error)
    for _ in range(3):  # every read connection is still usable
        assert result(storage.accounts.getAccountByLocalpart("alice")) is not None
    result(storage.stop())


def test_writesNeverCut(tmp_path):
    """The time limit applies to reads only: a long write transaction commits."""
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3"), synchronous=True, queryTimeoutMs=1)
    result(storage.start())
    assert result(storage.db.run(True, lambda c: c.execute(MILLION).fetchone()[0])) == 1000000
    result(storage.stop())


def test_noTimeLimitWhenZero(tmp_path):
    """query_timeout_ms = 0 lets a read run as long as it takes."""
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3"), synchronous=True, queryTimeoutMs=0)
    result(storage.start())
    assert result(storage.db.run(False, lambda c: c.execute(MILLION).fetchone()[0])) == 1000000
    result(storage.stop())


def test_readConnectionsCannotWrite(tmp_path):
    """A read transaction runs on a query_only connection: it cannot write."""
    storage = SQLiteStorage(str(tmp_path / "db.sqlite3"), synchronous=True)
    result(storage.start())
    failure(storage.db.run(False, lambda c: c.execute(
        "INSERT INTO last_activity (localpart, stamp) VALUES ('x', 1)")), StorageError)
    assert result(storage.lastActivity.getLastActivity("x")) is None
    result(storage.stop())


def test_oversizedStatementIsInvalidQuery():
    """A query SQLite cannot prepare (expression too deep) is an InvalidQuery, not a storage failure."""
    storage = SQLiteStorage(":memory:", synchronous=True)
    result(storage.start())
    failure(storage.records.listRecords("C", Query().where("f", "all", list(range(2000)))),
            InvalidQuery)
    result(storage.stop())


@pytest.mark.parametrize("backend", FACTORIES)
@pytest.mark.parametrize("op,expected", [("in", 1), ("nin", 1), ("or", 1)])
def test_longOperandListsOnListFields(backend, op, expected):
    """[in]/[nin]/[or] with 5000 values on a list field answer right on every backend (SQLite failed beyond ~330)."""
    storage = FACTORIES[backend](None)
    result(storage.start())
    result(storage.records.createRecord("C", 1, {"f": [3, "x", True]}))
    result(storage.records.createRecord("C", 1, {"f": [7.5, "y"]}))
    wanted = [*range(10, 5000), "x"] if op != "nin" else [*range(10, 5000), "x", True]
    found = result(storage.records.listRecords("C", Query().where("f", op, wanted)))
    assert len(found) == expected
    assert found[0].fields["f"] == ([3, "x", True] if op != "nin" else [7.5, "y"])
    assert result(storage.records.countRecords("C", Query().where("f", "in", [3.0, "3"]))) == 1
    assert result(storage.records.countRecords("C", Query().where("f", "in", [2, "y"]))) == 1
    result(storage.stop())


def test_mongoFindersCarryMaxTimeMS(monkeypatch):
    """Finders and counts send maxTimeMS = query_timeout_ms; an ExecutionTimeout is a QueryTimeout."""
    storage = MongoStorage(client=mongomock.MongoClient(), database="t", synchronous=True,
                           queryTimeoutMs=750)
    result(storage.start())
    sent = []
    original = mongomock.collection.Collection.count_documents

    def count(collection, filter_, **kwargs):
        sent.append(("count", kwargs.get("maxTimeMS")))
        return original(collection, filter_)

    def maxTime(cursor, ms):
        if ms is not None:
            sent.append(("find", ms))
        return cursor

    monkeypatch.setattr(mongomock.collection.Collection, "count_documents", count)
    monkeypatch.setattr(mongomock.collection.Cursor, "max_time_ms", maxTime)
    result(storage.records.listRecords("C", Query()))
    result(storage.records.countRecords("C", Query()))
    result(storage.accounts.findAccounts(Query()))
    result(storage.accounts.countAccounts(Query()))
    result(storage.dialogs.listDialogs(1, Query()))
    result(storage.messages.countMessages("0" * 24, 1, Query()))
    assert set(sent) == {("find", 750), ("count", 750)} and len(sent) >= 5

    def expired(cursor, ms):
        raise ExecutionTimeout("operation exceeded time limit", 50)

    monkeypatch.setattr(mongomock.collection.Cursor, "max_time_ms", expired)
    error = failure(storage.records.listRecords("C", Query()), QueryTimeout)
    assert "ran longer than 750 ms" in str(error)
    result(storage.stop())
