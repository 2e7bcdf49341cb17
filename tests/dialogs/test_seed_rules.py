"""
The seed's who-may rules of L{xmppchat.dialogs.rules} as tables (issue 17
item 5): who changes admins and who may be one, per dialog type; who
discovers and joins a dialog's room.  REST and XMPP ask these
(tests/api/test_seed.py, tests/muc/test_broadcast_room.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from xmppchat.dialogs import rules
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC

OWNER, ADMIN, OCCUPANT, STRANGER = 1, 2, 3, 9
ROLES = {"owner": OWNER, "admin": ADMIN, "occupant": OCCUPANT, "stranger": STRANGER}


def dialog(dialogType):
    return SimpleNamespace(type=dialogType, ownerId=OWNER, adminIds=[ADMIN],
                           occupantIds=[OWNER, ADMIN, OCCUPANT], permissions={})


# (type) -> (roles that change admins, admins must be occupants, roles that see/join the room)
TABLE = {
    DIALOG_PRIVATE: ((), True, ("owner", "admin", "occupant")),
    DIALOG_GROUP: (("owner",), True, ("owner", "admin", "occupant")),
    DIALOG_PUBLIC: (("owner",), False, ("owner", "admin", "occupant", "stranger")),
    DIALOG_BROADCAST: (("owner",), False, ("owner", "admin", "occupant", "stranger")),
}
CASES = [(t, role) for t in TABLE for role in ROLES]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_adminsAndRooms(case):
    """canSetAdmins, adminsNeedOccupancy and seesRoom give the table's answers."""
    dialogType, role = case
    setters, needOccupancy, joiners = TABLE[dialogType]
    d = dialog(dialogType)
    assert rules.canSetAdmins(d, ROLES[role]) is (role in setters)
    assert rules.adminsNeedOccupancy(dialogType) is needOccupancy
    assert rules.seesRoom(d, ROLES[role]) is (role in joiners)


def test_maxAdmins():
    """At most five admins (ConnectyCube), on group, public and broadcast dialogs."""
    from xmppchat.dialogs.service import MAX_ADMINS

    assert MAX_ADMINS == 5
    assert set(rules.ADMIN_TYPES) == {DIALOG_GROUP, DIALOG_PUBLIC, DIALOG_BROADCAST}
