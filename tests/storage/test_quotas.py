"""
Per-user quotas in the stores (issue 15 finding 15), on every backend of
the contract suite: a user filling his blobs, blob bytes, records, record
bytes, owned dialogs or stored messages of the day is refused with
L{QuotaExceeded} while other users are not, and deleting frees room.
Stale incomplete uploads are swept.
"""

from __future__ import annotations

import pytest

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, AlreadyExists, QuotaExceeded
from twisted.internet.task import Clock

DAY = 86400


@pytest.fixture(params=BACKENDS)
def setup(request):
    clock = Clock()
    clock.advance(1_700_000_000)
    storage = openBackend(request.param, clock)
    yield storage, clock
    result(storage.stop())


def test_blobCount(setup):
    """The attacker's 4th blob (incomplete ones count) is refused at a quota of 3; bob's is not."""
    storage, _ = setup
    blobs = [result(storage.blobs.createBlob(1, "f", "text/plain", limit=3)) for _ in range(3)]
    error = failure(storage.blobs.createBlob(1, "f", "text/plain", limit=3), QuotaExceeded)
    assert "at most 3 files" in str(error) and error.retryAfter is None
    assert result(storage.blobs.blobUsage(1)) == (3, 0)
    result(storage.blobs.createBlob(2, "f", "text/plain", limit=3))
    result(storage.blobs.deleteBlob(blobs[0].id))
    result(storage.blobs.createBlob(1, "f", "text/plain", limit=3))
    assert result(storage.blobs.countBlobs(1)) == 3


def test_blobBytes(setup):
    """Reserved upload sizes count against the owner's bytes; re-uploading one replaces its size."""
    storage, _ = setup
    a = result(storage.blobs.createBlob(1, "a", None))
    b = result(storage.blobs.createBlob(1, "b", None))
    assert result(storage.blobs.reserveBlobBytes(a.id, 600, 1000)).size == 600
    failure(storage.blobs.reserveBlobBytes(b.id, 401, 1000), QuotaExceeded)
    assert result(storage.blobs.getBlob(b.id)).size is None
    result(storage.blobs.reserveBlobBytes(a.id, 900, 1000))  # its own 600 are replaced
    result(storage.blobs.completeBlob(a.id, 900))
    failure(storage.blobs.reserveBlobBytes(b.id, 101, 1000), QuotaExceeded)
    result(storage.blobs.reserveBlobBytes(b.id, 100, 1000))
    assert result(storage.blobs.blobUsage(1)) == (2, 1000)
    other = result(storage.blobs.createBlob(2, "c", None))
    result(storage.blobs.reserveBlobBytes(other.id, 1000, 1000))
    assert result(storage.blobs.blobUsage(1)) == (2, 1000)


def test_deleteIncompleteBlobs(setup):
    """Only blobs still incomplete and created before the cut-off are deleted, in batches."""
    storage, clock = setup
    old = [result(storage.blobs.createBlob(1, f"old{i}", None)) for i in range(3)]
    done = result(storage.blobs.createBlob(1, "done", None))
    result(storage.blobs.completeBlob(done.id, 5))
    clock.advance(100)
    fresh = result(storage.blobs.createBlob(1, "fresh", None))
    cutoff = clock.seconds() - 50
    first = result(storage.blobs.deleteIncompleteBlobs(cutoff, 2))
    second = result(storage.blobs.deleteIncompleteBlobs(cutoff, 2))
    assert sorted(b.uid for b in first + second) == sorted(b.uid for b in old)
    assert result(storage.blobs.deleteIncompleteBlobs(cutoff)) == []
    assert {b.id for b in result(storage.blobs.listBlobs(1))} == {done.id, fresh.id}


def test_recordCount(setup):
    """The records of all classes count; the one beyond the quota is not stored."""
    storage, _ = setup
    result(storage.records.createRecord("A", 1, {"x": 1}, limit=2))
    result(storage.records.createRecord("B", 1, {"x": 1}, limit=2))
    failure(storage.records.createRecord("A", 1, {"x": 1}, limit=2), QuotaExceeded)
    assert result(storage.records.recordUsage(1))[0] == 2
    result(storage.records.createRecord("A", 2, {"x": 1}, limit=2))


def test_recordBytes(setup):
    """Record bytes are the fields' JSON; creating or growing beyond the quota is refused, shrinking is not."""
    storage, _ = setup
    record = result(storage.records.createRecord("A", 1, {"t": "x" * 40}, byteLimit=100))
    assert result(storage.records.recordUsage(1)) == (1, 48)  # {"t":"x...x"}
    failure(storage.records.createRecord("A", 1, {"t": "x" * 45}, byteLimit=100), QuotaExceeded)
    result(storage.records.createRecord("A", 1, {"t": "x" * 44}, byteLimit=100))
    assert result(storage.records.recordUsage(1)) == (2, 100)
    failure(storage.records.updateRecord("A", record.id, set={"t": "x" * 41}, byteLimit=100),
            QuotaExceeded)
    assert result(storage.records.getRecord("A", record.id)).fields == {"t": "x" * 40}
    result(storage.records.updateRecord("A", record.id, set={"t": "y"}, byteLimit=100))
    assert result(storage.records.recordUsage(1)) == (2, 61)
    result(storage.records.createRecord("A", 2, {"t": "x" * 90}, byteLimit=100))


def test_recordTakenIdBeforeQuota(setup):
    """A taken record id is AlreadyExists even at the quota."""
    storage, _ = setup
    record = result(storage.records.createRecord("A", 1, {}, limit=1))
    failure(storage.records.createRecord("A", 1, {}, recordId=record.id, limit=1), AlreadyExists)


def test_dialogCount(setup):
    """Owned dialogs of every type count; dialogs others own do not."""
    storage, _ = setup
    result(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], name="g", limit=2))
    result(storage.dialogs.createDialog(DIALOG_PRIVATE, 1, [3], limit=2))
    result(storage.dialogs.createDialog(DIALOG_GROUP, 2, [1], name="h", limit=2))
    failure(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], name="g", limit=2), QuotaExceeded)
    failure(storage.dialogs.createDialog(DIALOG_PRIVATE, 1, [4], limit=2), QuotaExceeded)
    assert result(storage.dialogs.countDialogs(None)) == 3
    result(storage.dialogs.createDialog(DIALOG_GROUP, 2, [1], name="h", limit=2))


def test_messagesPerDay(setup):
    """The sender's third stored message of the day fails with retryAfter to midnight; the next day works."""
    storage, clock = setup
    dialog = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], name="g"))
    first = result(storage.messages.createMessage(dialog.id, 1, "a", dailyLimit=2))
    result(storage.messages.createMessage(dialog.id, 1, "b", dailyLimit=2))
    # a re-sent id is AlreadyExists and does not count
    failure(storage.messages.createMessage(dialog.id, 1, "a", messageId=first.id, dailyLimit=2),
            AlreadyExists)
    error = failure(storage.messages.createMessage(dialog.id, 1, "c", dailyLimit=2), QuotaExceeded)
    assert 0 < error.retryAfter <= DAY
    assert error.retryAfter == pytest.approx(DAY - clock.seconds() % DAY)
    assert result(storage.messages.countMessages(dialog.id)) == 2
    result(storage.messages.createMessage(dialog.id, 2, "from bob", dailyLimit=2))
    clock.advance(error.retryAfter)
    result(storage.messages.createMessage(dialog.id, 1, "d", dailyLimit=2))
    result(storage.messages.createMessage(dialog.id, 1, "e", dailyLimit=2))
    failure(storage.messages.createMessage(dialog.id, 1, "f", dailyLimit=2), QuotaExceeded)


def test_messagesWithoutLimit(setup):
    """Without a daily limit nothing is counted or refused."""
    storage, _ = setup
    dialog = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], name="g"))
    for i in range(5):
        result(storage.messages.createMessage(dialog.id, 1, str(i)))
    result(storage.messages.createMessage(dialog.id, 1, "x", dailyLimit=1))


def test_sqliteMigrationCountsExistingRecords(tmp_path):
    """A version-3 database gets its records' sizes on migration, so old records count against the quota."""
    from tests.storage.test_sqlite import oldDatabase
    from xmppchat.storage.sqlite import SQLiteStorage

    path = tmp_path / "db.sqlite3"
    oldDatabase(path, 3, "INSERT INTO records (class_name, id, user_id, fields, created_at, updated_at)"
                         " VALUES ('A', 'aaaaaaaaaaaaaaaaaaaaaaaa', 1, '{\"t\":\"é\"}', 1, 1)")
    storage = SQLiteStorage(str(path), synchronous=True)
    result(storage.start())
    assert result(storage.records.recordUsage(1)) == (1, 10)
    failure(storage.records.createRecord("A", 1, {}, limit=1), QuotaExceeded)
    result(storage.stop())


def test_mongoStartSizesOldRecords():
    """Records stored on MongoDB before the quotas get their size when the storage starts."""
    import mongomock

    from xmppchat.storage.mongo import MongoStorage

    client = mongomock.MongoClient()
    client["old"].records.insert_one({"class_name": "A", "rid": "a" * 24, "user_id": 1,
                                      "fields_json": '{"t":"é"}', "fields": {"t": "é"},
                                      "created_at": 1.0, "updated_at": 1.0, "version": 0})
    storage = MongoStorage(client=client, database="old", synchronous=True)
    result(storage.start())
    assert result(storage.records.recordUsage(1)) == (1, 10)
    result(storage.stop())
