"""
Issue 17 item 5 on every backend: broadcast dialogs in every user's list,
and L{IDialogStore.configureExtensions} (configured extension fields
indexed, a field removed from the configuration removed from every dialog,
keys never configured and the server's own kept).
"""

from __future__ import annotations

import pytest

from tests.storage.test_contract import BACKENDS, openBackend, result
from xmppchat.storage import startStorage
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_GROUP,
    DIALOG_PUBLIC,
    DIALOG_SERVER_EXTENSIONS,
    Query,
)
from xmppchat.storage.sqlite import SQLiteStorage


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param)
    yield storage
    result(storage.stop())


def names(dialogs):
    return sorted(d.name for d in dialogs)


def test_broadcastInEveryList(storage):
    """listDialogs and countDialogs give every user the broadcast dialogs, unless hidden."""
    dialogs = storage.dialogs
    result(dialogs.createDialog(DIALOG_GROUP, 1, [2], name="group"))
    news = result(dialogs.createDialog(DIALOG_BROADCAST, 1, name="news"))
    assert names(result(dialogs.listDialogs(3))) == ["news"]
    assert result(dialogs.countDialogs(3)) == 1
    assert names(result(dialogs.listDialogs(2))) == ["group", "news"]
    result(dialogs.setHidden(news.id, 3, True))
    assert result(dialogs.listDialogs(3)) == [] and result(dialogs.countDialogs(3)) == 0
    assert result(storage.messages.unreadCounts(2)) == {d.id: 0 for d in result(dialogs.listDialogs(2))}


def test_configureExtensionsRemovesOnlyUnconfigured(storage):
    """A field removed from the configuration goes from every dialog; keys never configured (data from
    before the setting) and the server's own keys are never lost."""
    dialogs = storage.dialogs
    a = result(dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={
        "category": "x", "old": "1", "muc_room": "team", "muc_persistent": "0"}))
    b = result(dialogs.createDialog(DIALOG_GROUP, 1, name="b", extensions={"old": "2"}))
    c = result(dialogs.createDialog(DIALOG_GROUP, 1, name="c"))
    # the first configuration (an upgrade) removes nothing
    assert result(dialogs.configureExtensions(["category"], DIALOG_SERVER_EXTENSIONS)) == 0
    assert result(dialogs.getDialog(a.id)).extensions == {
        "category": "x", "old": "1", "muc_room": "team", "muc_persistent": "0"}
    assert result(dialogs.getDialog(b.id)).extensions == {"old": "2"}
    assert result(dialogs.getDialog(c.id)).extensions == {}
    # the field removed from the configuration is removed everywhere, the rest stays
    assert result(dialogs.configureExtensions([], DIALOG_SERVER_EXTENSIONS)) == 1
    assert result(dialogs.getDialog(a.id)).extensions == {"old": "1", "muc_room": "team",
                                                          "muc_persistent": "0"}
    assert result(dialogs.getDialog(b.id)).extensions == {"old": "2"}


def test_configureExtensionsOnlyWhenChanged(storage):
    """The same configuration again changes nothing (no pass over the dialogs at each start); adding a
    field removes nothing."""
    dialogs = storage.dialogs
    assert result(dialogs.configureExtensions(["category"], DIALOG_SERVER_EXTENSIONS)) == 0
    d = result(dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={"junk": "1", "category": "y"}))
    assert result(dialogs.configureExtensions(["category"], DIALOG_SERVER_EXTENSIONS)) == 0
    assert result(dialogs.configureExtensions(["category", "city"], DIALOG_SERVER_EXTENSIONS)) == 0
    assert result(dialogs.getDialog(d.id)).extensions == {"junk": "1", "category": "y"}
    assert result(dialogs.configureExtensions(["city"], DIALOG_SERVER_EXTENSIONS)) == 1
    assert result(dialogs.getDialog(d.id)).extensions == {"junk": "1"}


def test_staleUpdateDoesNotBringARemovedFieldBack(storage):
    """Review 19 A6: an update whose extensions were merged from the dialog as read before a field was
    removed (and stripped) writes the configured fields only; keys never configured stay as stored."""
    dialogs = storage.dialogs
    result(dialogs.configureExtensions(["topic", "color"], DIALOG_SERVER_EXTENSIONS))
    d = result(dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={
        "topic": "t", "color": "red", "muc_room": "team"}))
    read = result(dialogs.getDialog(d.id))  # a PUT reads the dialog ...
    result(dialogs.configureExtensions(["topic"], DIALOG_SERVER_EXTENSIONS))  # ... "color" removed
    stale = {**read.extensions, "topic": "new", "legacy": "x"}
    updated = result(dialogs.updateDialog(d.id, extensions=stale))  # ... and writes its merged dict
    assert updated.extensions == {"topic": "new", "muc_room": "team"}
    assert result(dialogs.getDialog(d.id)).extensions == {"topic": "new", "muc_room": "team"}


def test_configuredFieldsIndexed(storage):
    """Each configured field has an index (used by the SQLite planner); a removed field's index goes."""
    dialogs = storage.dialogs
    result(dialogs.configureExtensions(["category", "city"]))
    result(dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={"category": "x"}))
    query = Query().where("extensions.category", "eq", "x")
    assert names(result(dialogs.listDialogs(None, query))) == ["a"]
    if isinstance(storage, SQLiteStorage):
        indexes = {row[0] for row in storage.db.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dialogs'")}
        plan = storage.db.connection.execute(
            "EXPLAIN QUERY PLAN SELECT d.id FROM dialogs d WHERE"
            " json_extract(d.extensions, '$.\"category\"') = ?", ("x",)).fetchall()
        assert "dialogs_ext_category" in str(plan)
    else:
        indexes = set(storage.db.db.dialogs.index_information())
    assert {i for i in indexes if "ext" in i} == {f"{p}{f}" for f in ("category", "city") for p in (
        ["dialogs_ext_"] if isinstance(storage, SQLiteStorage) else ["extensions_"])}
    result(dialogs.configureExtensions(["city"]))
    if isinstance(storage, SQLiteStorage):
        indexes = {row[0] for row in storage.db.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dialogs'")}
    else:
        indexes = set(storage.db.db.dialogs.index_information())
    assert not any(i.endswith("category") for i in indexes)


def test_adminListByIndex(storage):
    """
    Review 19 B2: the admin's dialog list (any dialog, the latest change
    first, of a user: owned or occupied) reads indexes on both backends:
    SQLite's plan scans dialogs_by_update, and finds a user's dialogs by
    dialogs_by_owner and the dialog_occupants table (no json_each over
    every row); MongoDB has an updated_at index.
    """
    dialogs = storage.dialogs
    owned = result(dialogs.createDialog(DIALOG_PUBLIC, 7, name="owned"))
    result(dialogs.createDialog(DIALOG_GROUP, 8, occupantIds=[8, 7], name="occupied"))
    result(dialogs.createDialog(DIALOG_GROUP, 8, occupantIds=[8, 9], name="other"))
    result(dialogs.updateDialog(owned.id, name="owned!"))
    mine = Query(sort="updated_at", descending=True).where("user_id", "or", [7]).where(
        "occupants_ids", "or", [7])
    assert names(result(dialogs.listDialogs(None, mine))) == ["occupied", "owned!"]
    assert result(dialogs.countDialogs(None, mine)) == 2
    everyone = Query(sort="updated_at", descending=True)
    assert result(dialogs.listDialogs(None, everyone))[0].name == "owned!"
    if not isinstance(storage, SQLiteStorage):
        assert "updated_at_1" in storage.db.db.dialogs.index_information()
        return
    from xmppchat.storage.sqlite import _DIALOGS

    def plan(query):
        where, params, query = dialogs._listing(None, query)
        return str(storage.db.connection.execute(
            f"EXPLAIN QUERY PLAN SELECT d.id FROM dialogs d WHERE {where} ORDER BY"
            f" {_DIALOGS.orderBy(query)}{_DIALOGS.page(query)}", params).fetchall())

    assert "SCAN d USING INDEX dialogs_by_update" in plan(everyone)
    users = plan(mine)
    assert "dialogs_by_owner" in users and "SEARCH dialog_occupants" in users, users
    assert "json_each" not in users and "SCAN d" not in users, users


@pytest.fixture(params=["sqlite", "mongomock"])
def reopen(request, tmp_path):
    """
    A function opening, again and again, one storage that outlives each
    opening (an SQLite file, one mongomock client): a restart.
    """
    import mongomock

    from xmppchat.storage.mongo import MongoStorage

    client = mongomock.MongoClient()

    def fresh():
        if request.param == "sqlite":
            return SQLiteStorage(str(tmp_path / "db.sqlite3"), synchronous=True)
        return MongoStorage(client=client, database="restart", synchronous=True)

    return fresh


def test_startStorageAppliesTheConfig(reopen):
    """Each start (startStorage, both processes') applies [dialogs] extension_fields to stored dialogs."""
    from tests.helpers import makeConfig

    fresh = reopen
    storage = fresh()
    result(startStorage(storage, makeConfig(dialogs={"extension_fields": ["topic", "gone"]})))
    d = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={
        "topic": "t", "gone": "g"}))
    result(storage.stop())
    storage = fresh()
    result(startStorage(storage, makeConfig(dialogs={"extension_fields": ["topic"]})))
    try:
        assert result(storage.dialogs.getDialog(d.id)).extensions == {"topic": "t"}
    finally:
        result(storage.stop())
