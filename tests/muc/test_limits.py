"""
Issue 15 finding 7 as the attack: a few accounts must not fill the
server-wide room table (L{xmppchat.muc.limits}).  Over its share an
account gets C{not-allowed} (XEP-0045 §10.1.1), over the opening rate
C{resource-constraint} of type wait; everybody else still opens and joins
rooms.
"""

from __future__ import annotations

import pytest

from tests.helpers import HostHarness
from tests.muc.test_room import join, owner, presences, room
from xmppchat.config import ConfigError, buildConfig
from xmppchat.storage.interfaces import DIALOG_GROUP

SUBMIT = "<x xmlns='jabber:x:data' type='submit'/>"


def harness(**muc):
    return HostHarness(muc={"rooms_opened_per_user": 3, "max_rooms": 10, **muc})


def error(transport):
    """The stanza error condition and text of the last error presence, or None."""
    errors = [p for p in presences(transport) if p.getAttribute("type") == "error"]
    if not errors:
        return None
    err = errors[-1].error
    return err.firstChildElement().name, err["type"], str(err.text)


def openRooms(h, session, transport, names):
    """Join (creating) each named room; the errors, None for each success."""
    out = []
    for name in names:
        join(h, session, f"{name}@muc.localhost/{session.account.id}")
        out.append(error(transport))
    return out


def test_accountOpeningRoomsBeyondItsShareIsRefused():
    """Rooms beyond rooms_opened_per_user get not-allowed with a text; another account still creates and joins."""
    h = harness()
    mallory, tm = h.connect("mallory")
    results = openRooms(h, mallory, tm, [f"spam{i}" for i in range(5)])
    assert results[:3] == [None] * 3
    condition, kind, text = results[3]
    assert (condition, kind) == ("not-allowed", "cancel") and "3 rooms" in text
    assert len(h.host.modules["muc"].rooms) == 3
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    assert openRooms(h, alice, ta, ["team"]) == [None]
    owner(h, alice, "team@muc.localhost", SUBMIT)
    assert ta.pop()[0]["type"] == "result"
    join(h, bob, f"{room(dialog)}/{bob.account.id}")
    join(h, alice, f"{room(dialog)}/{alice.account.id}")
    assert error(tb) is None and error(ta) is None


def test_twoFreeAccountsCannotFillTheTable():
    """With the default shares two accounts opening rooms as fast as they may leave room for everybody else."""
    h = HostHarness(muc={"max_rooms": 60})
    for name in ("mallory", "trudy"):
        for i in range(3):
            session, transport = h.connect(name)
            openRooms(h, session, transport, [f"{name}{i}-{n}" for n in range(10)])
    assert len(h.host.modules["muc"].rooms) <= 40
    alice, ta = h.connect("alice")
    assert openRooms(h, alice, ta, ["team"]) == [None]


def test_manySessionsShareTheAccountsShare():
    """Fifty sessions of one account do not multiply its share of the table."""
    h = harness()
    sessions = [h.connect("mallory") for _ in range(5)]
    refused = 0
    for i, (session, transport) in enumerate(sessions):
        refused += sum(r is not None for r in openRooms(h, session, transport, [f"s{i}a", f"s{i}b"]))
    assert len(h.host.modules["muc"].rooms) == 3 and refused == 7


def test_leavingFreesTheShare():
    """A room its opener left (and that closed) no longer counts."""
    h = harness()
    mallory, tm = h.connect("mallory")
    openRooms(h, mallory, tm, ["a", "b", "c"])
    h.send(mallory, f"<presence type='unavailable' to='a@muc.localhost/{mallory.account.id}'/>")
    assert openRooms(h, mallory, tm, ["d"]) == [None]


def test_dialogRoomsCountToo():
    """Opening the rooms of one's own group dialogs counts like creating rooms; joining an open room does not."""
    h = harness()
    dialogs = [h.addDialog(DIALOG_GROUP, "mallory", ["bob"]) for _ in range(4)]
    mallory, tm = h.connect("mallory")
    bob, tb = h.connect("bob")
    for dialog in dialogs[:3]:
        join(h, mallory, f"{room(dialog)}/{mallory.account.id}")
        assert error(tm) is None
    join(h, mallory, f"{room(dialogs[3])}/{mallory.account.id}")
    assert error(tm)[0] == "not-allowed"
    for dialog in dialogs[:3]:
        join(h, bob, f"{room(dialog)}/{bob.account.id}")
        assert error(tb) is None
    join(h, bob, f"{room(dialogs[3])}/{bob.account.id}")
    assert error(tb) is None


def test_openingRate():
    """Openings beyond room_openings_burst wait for room_openings_per_minute: resource-constraint, type wait."""
    h = harness(rooms_opened_per_user=100, room_openings_per_minute=2, room_openings_burst=2)
    mallory, tm = h.connect("mallory")
    results = openRooms(h, mallory, tm, ["a", "b", "c"])
    assert results[:2] == [None, None]
    condition, kind, text = results[2]
    assert (condition, kind) == ("resource-constraint", "wait") and "retry in 30 s" in text
    h.clock.advance(30)
    assert openRooms(h, mallory, tm, ["c"]) == [None]


def test_perAddressShare():
    """Accounts behind one address share rooms_opened_per_ip; other addresses are not affected."""
    h = HostHarness(muc={"rooms_opened_per_ip": 4}, limits={"exempt_loopback": False})
    sessions = []
    for name in ("m1", "m2", "m3"):
        session, transport = h.connect(name)
        transport.peer = "192.0.2.7"
        sessions.append((session, transport))
    results = []
    for i, (session, transport) in enumerate(sessions):
        results += openRooms(h, session, transport, [f"{i}a", f"{i}b"])
    assert sum(r is None for r in results) == 4
    assert results[4][0] == "not-allowed" and "address" in results[4][2]
    alice, ta = h.connect("alice")
    ta.peer = "198.51.100.1"
    assert openRooms(h, alice, ta, ["mine"]) == [None]


def test_configKeys():
    """The new [muc] keys have defaults and must be positive."""
    muc = buildConfig({}).muc
    assert (muc.rooms_opened_per_user, muc.rooms_opened_per_ip, muc.room_openings_per_minute,
            muc.room_openings_burst) == (20, 100, 10, 20)
    with pytest.raises(ConfigError) as caught:
        buildConfig({"muc": {"rooms_opened_per_user": 0, "room_openings_burst": -1}})
    assert "muc.rooms_opened_per_user" in str(caught.value) and "muc.room_openings_burst" in str(caught.value)
