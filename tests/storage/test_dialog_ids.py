"""
Issue 15 findings 9 and 11 on every backend: dialog (and message) ids
an attacker cannot guess from one he saw, and L{IMessageStore.hasSent},
which tells whether a user took part in a dialog.
"""

from __future__ import annotations

import pytest

from tests.storage.test_contract import BACKENDS, openBackend, result
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, isObjectId


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param)
    yield storage
    result(storage.stop())


def guesses(objectId: str) -> set:
    """
    The attacker's guesses at the next id: a MongoDB ObjectId's counter
    (the last 3 bytes) plus one, or the 3 bytes after the time plus one
    with the rest kept.
    """
    def plusOne(hexCounter):
        return format((int(hexCounter, 16) + 1) & 0xFFFFFF, "06x")

    return {objectId[:18] + plusOne(objectId[18:]), objectId[:8] + plusOne(objectId[8:14]) + objectId[14:]}


def test_nextDialogIdCannotBeGuessed(storage):
    """Seeing his own dialog's id does not tell an attacker the next dialog's id."""
    mine = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, occupantIds=[2])).id
    victims = [result(storage.dialogs.createDialog(DIALOG_GROUP, 3, occupantIds=[4])).id
               for _ in range(20)]
    assert victims[0] not in guesses(mine)
    assert all(isObjectId(i) and i == i.lower() for i in victims)
    # the last 5 bytes are new each time: nothing process-constant to learn
    assert len({i[14:] for i in [mine, *victims]}) == 21
    assert victims == sorted(victims)  # still in creation order, like ObjectIds


def test_nextMessageIdCannotBeGuessed(storage):
    """Server-minted message ids cannot be squatted by guessing the next one."""
    dialog = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, occupantIds=[2]))
    first = result(storage.messages.createMessage(dialog.id, 1, "a")).id
    second = result(storage.messages.createMessage(dialog.id, 2, "b")).id
    assert second not in guesses(first) and first[14:] != second[14:]


def test_hasSent(storage):
    """A user took part in a dialog once he has a message in it, not because someone wrote to him."""
    pair = result(storage.dialogs.createDialog(DIALOG_PRIVATE, 1, occupantIds=[2]))
    group = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, occupantIds=[2, 3]))
    for _ in range(3):
        result(storage.messages.createMessage(pair.id, 1, "hi"))
    assert result(storage.messages.hasSent(2, [pair.id, group.id])) is False
    assert result(storage.messages.hasSent(1, [pair.id])) is True
    result(storage.messages.createMessage(group.id, 2, "hello"))
    assert result(storage.messages.hasSent(2, [pair.id])) is False
    assert result(storage.messages.hasSent(2, [pair.id, group.id])) is True
    assert result(storage.messages.hasSent(2, [])) is False
