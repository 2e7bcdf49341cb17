"""
The portable store contract (L{xmppchat.storage.portable}, issue 18 item
8): whole-store enumeration and verbatim loading, for every backend in
L{tests.storage.test_contract.FACTORIES}, and copies between any two of
them keep ids, times, per-user state, unread counts and visibility.
"""

from __future__ import annotations

import itertools

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import (DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC,
                                         AlreadyExists, Query)
from xmppchat.storage.portable.interface import DialogUserState


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param, Clock())
    yield storage
    result(storage.stop())


@pytest.fixture(params=list(itertools.product(BACKENDS, BACKENDS)), ids="->".join)
def pair(request):
    clock = Clock()
    clock.advance(1_700_000_000)
    source, target = openBackend(request.param[0], clock), openBackend(request.param[1], clock)
    yield source, target, clock
    result(source.stop())
    result(target.stop())


def _all(page, key, *args, start=None):
    """
    Every item of a paged listing C{page(*args, after, 2)}, pages of two.
    """
    out, after = [], start
    while True:
        items = result(page(*args, after, 2))
        out += items
        if len(items) < 2:
            return out
        after = key(items[-1])


def copy(source, target):
    """
    Copy accounts, dialogs with messages and states, blobs and records
    through the portable store, as an export/import does.
    """
    for account in result(source.accounts.listAccounts()):
        result(target.portable.loadAccount(account))
    port = source.portable
    for dialog in _all(port.dialogPage, lambda d: d.id):
        result(target.portable.loadDialog(dialog))
        messages = _all(port.messagePage, lambda m: m.order, dialog.id, start=0)
        # in batches of up to two, as an import does
        for start in range(0, len(messages), 2):
            result(target.portable.loadMessages(messages[start:start + 2]))
        for state in result(port.dialogStates(dialog.id)):
            result(target.portable.loadDialogState(dialog.id, state))
    for blob in _all(port.blobPage, lambda b: b.id, start=0):
        result(target.portable.loadBlob(blob))
    for className in result(port.recordClasses()):
        for record in _all(port.recordPage, lambda r: r.id, className):
            result(target.portable.loadRecord(record))


def populate(storage, clock):
    """
    Three users, a group dialog with per-user state, a private and a
    public dialog, blobs and records; returns the group dialog and its
    messages.
    """
    users = [result(storage.accounts.createAccount(name, {"version": 1}, login=name,
                                                   profile={"full_name": name.upper()}))
             for name in ("alice", "bob", "carol")]
    return populateChat(storage, clock, *users)


def populateChat(storage, clock, a, b, c):
    """
    L{populate}'s dialogs, messages, state, blobs and records for accounts
    C{a}, C{b} and C{c}.
    """
    clock.advance(10)
    group = result(storage.dialogs.createDialog(DIALOG_GROUP, a.id, [b.id, c.id], name="g",
                                                extensions={"topic": "x"}))
    messages = []
    for n in range(5):
        clock.advance(1)
        messages.append(result(storage.messages.createMessage(
            group.id, [a, b, c][n % 3].id, f"m{n}", attachments=[{"type": "image", "uid": "u"}],
            custom={"k": n})))
    result(storage.messages.editMessage(messages[1].id, "edited"))
    result(storage.messages.react(messages[2].id, b.id, add="👍"))
    result(storage.messages.markRead(group.id, b.id, messages[1].id))
    result(storage.messages.markDelivered(group.id, c.id, messages[3].id))
    result(storage.messages.deleteForUser([messages[4].id], c.id))
    result(storage.messages.clearHistory(group.id, a.id))
    result(storage.dialogs.setNotifications(group.id, b.id, False))
    private = result(storage.dialogs.createDialog(DIALOG_PRIVATE, a.id, [b.id]))
    result(storage.messages.createMessage(private.id, b.id, "hi"))
    result(storage.dialogs.setHidden(private.id, a.id))
    public = result(storage.dialogs.createDialog(DIALOG_PUBLIC, a.id, name="pub"))
    result(storage.dialogs.subscribe(public.id, c.id))
    result(storage.dialogs.subscribe(public.id, b.id))
    blob = result(storage.blobs.createBlob(a.id, "f.txt", "text/plain", public=True))
    result(storage.blobs.completeBlob(blob.id, 3))
    result(storage.blobs.createBlob(b.id, "g.bin", None))
    for n in range(3):
        result(storage.records.createRecord("Notes", a.id, {"n": n, "nested": {"x": [1, 2]}}))
    result(storage.records.createRecord("Other", b.id, {"z": True}, parentId="p" * 24))
    return group, messages


def test_isEmpty(storage):
    """A fresh store is empty; one account, dialog, blob or record makes it not."""
    assert result(storage.portable.isEmpty()) is True
    result(storage.records.createRecord("Notes", 1, {"n": 1}))
    assert result(storage.portable.isEmpty()) is False


def test_copyKeepsEverything(pair):
    """A copy through the portable store keeps ids, times, fields, per-user state and unread counts."""
    source, target, clock = pair
    group, messages = populate(source, clock)
    copy(source, target)
    assert result(target.accounts.listAccounts()) == result(source.accounts.listAccounts())
    everything = Query()
    sourceDialogs = result(source.dialogs.listDialogs(None, everything))
    assert result(target.dialogs.listDialogs(None, everything)) == sourceDialogs
    for userId in (1, 2, 3):
        assert result(target.dialogs.listDialogs(userId)) == result(source.dialogs.listDialogs(userId))
        assert (result(target.messages.unreadCounts(userId))
                == result(source.messages.unreadCounts(userId)))
        for dialog in sourceDialogs:
            expected = result(source.messages.listMessages(dialog.id, userId))
            got = result(target.messages.listMessages(dialog.id, userId))
            assert [m.id for m in got] == [m.id for m in expected]
            strip = lambda m: {**vars(m), "order": None}  # noqa: E731 - orders are the store's own
            assert [strip(m) for m in got] == [strip(m) for m in expected]
            assert (result(target.dialogs.getNotifications(dialog.id, userId))
                    == result(source.dialogs.getNotifications(dialog.id, userId)))
    public = [d for d in sourceDialogs if d.type == DIALOG_PUBLIC][0]
    assert result(target.dialogs.listSubscribers(public.id)) == [3, 2]
    for owner in (1, 2):
        assert result(target.blobs.listBlobs(owner)) == result(source.blobs.listBlobs(owner))
    for className in ("Notes", "Other"):
        assert (result(target.records.listRecords(className))
                == result(source.records.listRecords(className)))
    assert result(target.portable.recordClasses()) == ["Notes", "Other"]


def test_storeGoesOnAfterLoading(pair):
    """After a load, new accounts, blobs and messages get fresh ids and become the last message."""
    source, target, clock = pair
    group, messages = populate(source, clock)
    copy(source, target)
    assert result(target.accounts.createAccount("dave", None)).id == 4
    assert result(target.blobs.createBlob(1, "n", None)).id == 3
    clock.advance(5)
    new = result(target.messages.createMessage(group.id, 2, "after"))
    dialog = result(target.dialogs.getDialog(group.id))
    assert dialog.lastMessageId == new.id
    assert [m.id for m in result(target.messages.listMessages(group.id))][-2:] == [messages[-1].id, new.id]
    failure(target.portable.loadAccount(result(source.accounts.getAccount(1))), AlreadyExists)
    failure(target.portable.loadDialog(result(source.dialogs.getDialog(group.id))), AlreadyExists)


def test_statesNameMessagesById(storage):
    """dialogStates gives watermarks as the newest message ids they cover, subscribers first."""
    clock = Clock()
    group, messages = populate(storage, clock)
    states = {s.userId: s for s in result(storage.portable.dialogStates(group.id))}
    assert states[2].readMessageId == messages[1].id
    assert states[2].deliveredMessageId == messages[1].id
    assert states[2].notifications is False
    assert states[3].deliveredMessageId == messages[3].id and states[3].readMessageId is None
    assert states[3].hiddenMessageIds == [messages[4].id]
    assert states[1].clearedMessageId == messages[4].id


def test_loadStateIgnoresUnknownMessages(storage):
    """A state naming messages the store lacks loads with those watermarks at zero."""
    dialog = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2]))
    result(storage.messages.createMessage(dialog.id, 1, "x"))
    result(storage.portable.loadDialogState(dialog.id, DialogUserState(
        2, readMessageId="f" * 24, hiddenMessageIds=["e" * 24])))
    assert result(storage.messages.unreadCounts(2)) == {dialog.id: 1}


def test_pagesAreBounded(storage):
    """Each page holds at most limit items, after the given key."""
    for n in range(5):
        result(storage.dialogs.createDialog(DIALOG_GROUP, 1, [2], name=str(n)))
    ids = sorted(d.id for d in result(storage.dialogs.listDialogs(None)))
    assert [d.id for d in result(storage.portable.dialogPage(None, 3))] == ids[:3]
    assert [d.id for d in result(storage.portable.dialogPage(ids[2], 3))] == ids[3:]
