"""
Tests for what is specific to the MongoDB backend: building it from the
configuration, failing clearly when the server is unreachable, the thread
pool, indexes, error translation and compare-and-set updates.  The storage
contract itself runs in L{tests.storage.test_contract}.
"""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import mongomock
import pytest
from pymongo.errors import AutoReconnect

from tests.storage.test_contract import CREDS, failure, result
from tests.storage.test_sqlite import ThreadReactor
from xmppchat.config import StorageConfig
from xmppchat.storage import openStorage
from xmppchat.storage.interfaces import AlreadyExists, NotFound, StorageError
from xmppchat.storage.mongo import COUNTERS, INDEXES, MongoStorage, _compareAndSet, redactUri


def mocked(**kwargs):
    storage = MongoStorage(client=mongomock.MongoClient(), database="t", synchronous=True, **kwargs)
    result(storage.start())
    return storage


def closedPort():
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openStorageMongo():
    """openStorage builds an unstarted MongoStorage from the storage configuration."""
    config = StorageConfig(backend="mongodb", mongodb_uri="mongodb://127.0.0.1:1/",
                           mongodb_database="chat", mongodb_pool_size=3, mongodb_timeout_ms=250)
    storage = openStorage(config)
    assert isinstance(storage, MongoStorage)
    assert (storage.uri, storage.database, storage.db.size, storage.db.timeoutMs) == (
        "mongodb://127.0.0.1:1/", "chat", 3, 250)
    assert storage.db.client is None
    assert result(storage.stop()) is None
    legacy = SimpleNamespace(backend="mongodb", mongodb_uri="mongodb://x", mongodb_database="d",
                             mongodb_pool_size=1)
    assert openStorage(legacy, synchronous=True).db.timeoutMs == 5000


def test_unreachableServerFailsToStart():
    """Starting against a server that does not answer fails quickly with a clear StorageError."""
    uri = f"mongodb://user:secret@127.0.0.1:{closedPort()}/?directConnection=true"
    storage = MongoStorage(uri, "chat", synchronous=True, timeoutMs=300)
    error = failure(storage.start(), StorageError)
    message = str(error)
    assert "cannot use MongoDB at mongodb://user:***@127.0.0.1" in message
    assert "secret" not in message and "'chat'" in message
    assert storage.db.client is None
    failure(storage.accounts.countAccounts(), StorageError)


def test_redactUri():
    """Passwords are hidden in URIs shown in messages; URIs without one are unchanged."""
    assert redactUri("mongodb://a:b@h:1/db") == "mongodb://a:***@h:1/db"
    assert redactUri("mongodb://h:1/db") == "mongodb://h:1/db"
    assert "s3cr3t" not in repr(MongoStorage("mongodb://u:s3cr3t@h/"))


def test_indexesCreatedAtStart():
    """Start creates every index, the unique ones unique."""
    storage = mocked()
    db = storage.db.db
    for collection, indexes in INDEXES.items():
        info = db[collection].index_information()
        assert len(info) == len(indexes) + 1, collection
    unique = {name for name, spec in db.accounts.index_information().items() if spec.get("unique")}
    assert {"localpart_1", "login_1", "email_1", "externalId_1"} <= unique
    assert sorted(d["_id"] for d in db.counters.find()) == sorted(COUNTERS)
    result(storage.stop())


def test_notStarted():
    """Calls before start, or after stop, fail with StorageError."""
    storage = MongoStorage(client=mongomock.MongoClient(), synchronous=True)
    failure(storage.accounts.getAccount(1), StorageError)
    result(storage.start())
    result(storage.stop())
    failure(storage.accounts.getAccount(1), StorageError)


def test_pymongoErrorsTranslated(monkeypatch):
    """A pymongo error inside a call reaches the caller as StorageError, duplicates as AlreadyExists."""
    storage = mocked()
    result(storage.accounts.createAccount("alice", CREDS, login="a"))
    error = failure(storage.accounts.createAccount("bob", CREDS, login="a"), AlreadyExists)
    assert "already exists" in str(error)

    def down(*args, **kwargs):
        raise AutoReconnect("connection reset")

    monkeypatch.setattr(storage.db.db.accounts, "find_one", down)
    error = failure(storage.accounts.getAccountByLocalpart("alice"), StorageError)
    assert "AutoReconnect" in str(error) and "connection reset" in str(error)
    result(storage.stop())


def test_compareAndSetRetries():
    """A compare-and-set update whose document changed meanwhile is recomputed on the new value."""
    collection = mongomock.MongoClient().db.c
    collection.insert_one({"_id": 1, "n": 0, "version": 0})
    calls = []

    def compute(doc):
        calls.append(doc["n"])
        if len(calls) == 1:
            collection.update_one({"_id": 1}, {"$inc": {"n": 10, "version": 1}})
        return {"n": doc["n"] + 1}

    doc = _compareAndSet(collection, {"_id": 1}, compute)
    assert calls == [0, 10]
    assert (doc["n"], doc["version"]) == (11, 2)
    with pytest.raises(NotFound):
        _compareAndSet(collection, {"_id": 2}, compute)


def test_compareAndSetGivesUp():
    """Endless interference ends in a StorageError instead of a livelock."""
    collection = mongomock.MongoClient().db.c
    collection.insert_one({"_id": 1, "version": 0})

    def compute(doc):
        collection.update_one({"_id": 1}, {"$inc": {"version": 1}})
        return {}

    with pytest.raises(StorageError):
        _compareAndSet(collection, {"_id": 1}, compute)


def test_threadedRunner():
    """Without synchronous, calls run on the worker pool and results come back through the reactor."""
    reactor = ThreadReactor()
    storage = MongoStorage(client=mongomock.MongoClient(), database="t", reactor=reactor, poolSize=2)
    reactor.wait(storage.start())
    assert len(reactor.triggers) == 1
    d = storage.accounts.createAccount("alice", CREDS)
    alice = reactor.wait(d)
    assert reactor.wait(storage.accounts.getAccountByLocalpart("alice")) == alice
    threadIds = set()
    reactor.wait(storage.db._call(lambda: threadIds.add(threading.get_ident())))
    assert threadIds and threading.get_ident() not in threadIds
    errors = []
    d = storage.accounts.createAccount("alice", CREDS)
    d.addErrback(lambda f: errors.append(f.trap(AlreadyExists)))
    reactor.wait(d)
    assert errors == [AlreadyExists]
    pool = storage.db.pool
    reactor.wait(storage.stop())
    assert storage.db.pool is None and pool.workers == 0
    assert reactor.triggers == {}
    failure(storage.accounts.countAccounts(), StorageError)


def test_threadedStartFailureStopsPool():
    """A failed threaded start stops the worker pool again."""
    reactor = ThreadReactor()
    storage = MongoStorage(f"mongodb://127.0.0.1:{closedPort()}/?directConnection=true", "x",
                           reactor=reactor, timeoutMs=200)
    with pytest.raises(StorageError):
        reactor.wait(storage.start())
    assert storage.db.pool is None and reactor.triggers == {}


def test_unusualProfileKeysRoundTrip():
    """Profile keys MongoDB cannot store as fields (dots, dollars, empty) still round-trip exactly."""
    storage = mocked()
    profile = {"a.b": 1, "$x": {"": [2**70]}, "ok": "yes"}
    account = result(storage.accounts.createAccount("alice", None, profile=profile))
    assert result(storage.accounts.getAccount(account.id)).profile == profile
    result(storage.stop())
