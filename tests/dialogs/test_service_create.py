"""
L{DialogService.create}, C{remove} and C{leave} (issue 17 item 1): the
rules of creating, deleting and leaving a dialog, raised as domain errors
and announced through the service's C{fire} (C{rest-dialog-updated}).
"""

from __future__ import annotations

import pytest

from tests.dialogs.test_events import setUp
from tests.helpers import result
from xmppchat.dialogs.errors import Forbidden, Invalid
from xmppchat.dialogs.service import MAX_ADMINS, DialogService
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC


def service():
    h, _, users, _, _ = setUp(DIALOG_GROUP)
    fired = []
    svc = DialogService(h.storage, h.config.quotas, lambda name, event: fired.append((name, event)))
    return h, svc, users["alice"][1], users["bob"][1], fired


def failure(d):
    errors = []
    d.addErrback(lambda f: errors.append(f.value))
    return errors[0]


def test_createRules():
    h, svc, alice, bob, fired = service()
    for dialogType, error in ((DIALOG_BROADCAST, Forbidden), (7, Invalid)):
        assert isinstance(failure(svc.create(alice, dialogType, [bob], [], {"name": "x"})), error)
    e = failure(svc.create(alice, DIALOG_GROUP, [bob], [], {}))
    assert isinstance(e, Invalid) and (e.field, e.text) == ("name", "can't be blank")
    e = failure(svc.create(alice, DIALOG_PRIVATE, [bob], [bob], {}))
    assert (e.field, e.text) == ("admins_ids", "private dialogs have no admins")
    e = failure(svc.create(alice, DIALOG_GROUP, [bob], [999999], {"name": "x"}))
    assert (e.field, e.text) == ("admins_ids", "admins must be occupants")
    e = failure(svc.create(alice, DIALOG_PUBLIC, [], [bob] * (MAX_ADMINS + 1), {"name": "x"}))
    assert (e.field, e.text) == ("admins_ids", f"at most {MAX_ADMINS} admins")
    assert fired == []
    dialog, created = result(svc.create(alice, DIALOG_PUBLIC, [bob], [bob], {"name": "pub"}, 1))
    assert created and dialog.occupantIds == [] and dialog.adminIds == [bob]
    [(name, event)] = fired
    assert name == "rest-dialog-updated" and event.created and event.appId == 1


def test_privateCreatedOnce():
    h, svc, alice, bob, fired = service()
    first, created = result(svc.create(alice, DIALOG_PRIVATE, [bob], [], {}))
    again, createdAgain = result(svc.create(alice, DIALOG_PRIVATE, [bob], [], {}))
    assert created and not createdAgain and again.id == first.id and len(fired) == 1


@pytest.mark.parametrize("dialogType", [DIALOG_GROUP, DIALOG_PRIVATE])
def test_removeAndLeave(dialogType):
    h, svc, alice, bob, fired = service()
    dialog, _ = result(svc.create(alice, dialogType, [bob], [], {"name": "x"}))
    assert isinstance(failure(svc.remove(bob, dialog)), Forbidden)
    result(svc.leave(bob, dialog))
    after = result(h.storage.dialogs.getDialog(dialog.id))
    assert (bob in after.occupantIds) == (dialog.type == DIALOG_PRIVATE)
    assert len(fired) == (2 if dialogType == DIALOG_GROUP else 1)
    if dialogType == DIALOG_GROUP:
        assert isinstance(failure(svc.leave(bob, after)), Forbidden)
    result(svc.remove(alice, after))
    assert result(h.storage.dialogs.getDialog(dialog.id)) is None and fired[-1][1].deleted


def test_createBroadcast():
    """The administrator's broadcast dialog: named, known owner and admins (any users), outside the quota, announced."""
    h, svc, alice, bob, fired = service()
    h.config.quotas.dialogs_per_user = 2  # alice owns "team" and "mine": no room for a third
    result(svc.create(alice, DIALOG_GROUP, [bob], [], {"name": "mine"}))
    assert isinstance(failure(svc.create(alice, DIALOG_GROUP, [bob], [], {"name": "x"})), Exception)
    fired.clear()
    e = failure(svc.createBroadcast(999999, [], [], {"name": "news"}))
    assert isinstance(e, Invalid) and e.field == "owner"
    e = failure(svc.createBroadcast(alice, [], [999999], {"name": "news"}))
    assert (e.field, e.text) == ("admins_ids", "unknown user ids: 999999")
    e = failure(svc.createBroadcast(alice, [], [], {"name": ""}))
    assert (e.field, e.text) == ("name", "can't be blank")
    e = failure(svc.createBroadcast(alice, [], [bob] * (MAX_ADMINS + 1), {"name": "news"}))
    assert e.field == "admins_ids"
    assert fired == []
    dialog = result(svc.createBroadcast(alice, [], [bob], {"name": "news", "photo": "p.png"}, 1))
    stored = result(h.storage.dialogs.getDialog(dialog.id))
    assert (stored.type, stored.ownerId, stored.adminIds, stored.name, stored.photo) == (
        DIALOG_BROADCAST, alice, [bob], "news", "p.png")
    [(name, event)] = fired
    assert name == "rest-dialog-updated" and event.created and event.dialog.id == dialog.id
