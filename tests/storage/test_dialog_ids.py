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


def guessNext(objectId: str) -> str:
    """The attacker's guess: a MongoDB ObjectId's counter plus one."""
    return objectId[:18] + format((int(objectId[18:], 16) + 1) & 0xFFFFFF, "06x")


def test_nextDialogIdCannotBeGuessed(storage):
    """Seeing his own dialog's id does not tell an attacker the next dialog's id."""
    mine = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, occupantIds=[2])).id
    victims = [result(storage.dialogs.createDialog(DIALOG_GROUP, 3, occupantIds=[4])).id
               for _ in range(20)]
    assert guessNext(mine) != victims[0]
    assert all(isObjectId(i) and i == i.lower() for i in victims)
    # no bytes after the time are shared: nothing process-constant to learn
    assert len({i[8:18] for i in [mine, *victims]}) == 21


def test_nextMessageIdCannotBeGuessed(storage):
    """Server-minted message ids cannot be squatted by guessing the next one."""
    dialog = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, occupantIds=[2]))
    first = result(storage.messages.createMessage(dialog.id, 1, "a")).id
    second = result(storage.messages.createMessage(dialog.id, 2, "b")).id
    assert guessNext(first) != second and first[8:18] != second[8:18]


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
