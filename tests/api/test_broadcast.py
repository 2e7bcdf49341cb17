"""
Tests for C{python -m xmppchat.admin create-broadcast}, the only way to
create broadcast (type 1) dialogs.
"""

from __future__ import annotations

import pytest

from tests.test_admin import CLI


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    return CLI(tmp_path, monkeypatch, capsys)


def test_createBroadcast(cli):
    """create-broadcast makes a type 1 dialog owned by the given account."""
    assert cli("adduser", "boss", stdin="secret-pw\n")[0] == 0
    assert cli("adduser", "reader", stdin="secret-pw\n")[0] == 0
    owner, reader = cli.account("boss"), cli.account("reader")
    code, out, err = cli("create-broadcast", "News", "--owner", str(owner.id),
                         "--occupants", str(reader.id))
    assert code == 0, err
    dialogId = out.split()[3]
    from xmppchat.admin import result
    from xmppchat.storage.sqlite import SQLiteStorage
    storage = SQLiteStorage(str(cli.db), synchronous=True)
    result(storage.start())
    try:
        dialog = result(storage.dialogs.getDialog(dialogId))
    finally:
        result(storage.stop())
    assert dialog.type == 1 and dialog.ownerId == owner.id and dialog.name == "News"
    assert reader.id in dialog.occupantIds


def test_createBroadcastUnknownOwner(cli):
    """An unknown owner or occupant is an error, exit status 1."""
    code, _, err = cli("create-broadcast", "News", "--owner", "42")
    assert code == 1 and "owner: unknown user ids: 42" in err
    cli("adduser", "boss", stdin="secret-pw\n")
    owner = cli.account("boss")
    code, _, err = cli("create-broadcast", "News", "--owner", str(owner.id), "--occupants", "x")
    assert code == 1 and "not an account id" in err
    code, _, err = cli("create-broadcast", "News", "--owner", str(owner.id), "--occupants", "99999")
    assert code == 1 and "occupants_ids: unknown user ids: 99999" in err
