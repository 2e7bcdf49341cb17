"""
Tests for XEP-0308 corrections in dialogs (xmppchat.modules.correction).
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import MID, chat, group, messages, private, room, stanza
from xmppchat.storage.interfaces import DIALOG_GROUP

EDIT = "6b026913da64a533580000e1"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def edit(to, dialog, body="edited", original=MID, kind="chat", last="true"):
    return stanza(to, kind, EDIT, dialog, f"<body>{body}</body>"
                  f"<replace xmlns='urn:xmpp:message-correct:0' id='{original}' last='{last}'/>")


def test_privateEditUpdatesHistory():
    """The sender's edit replaces the stored body, marks it edited, updates last_message, reaches bob, and leaves unread alone."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog, body="typo"))
    tb.pop()
    h.send(alice, edit("bob@localhost", dialog))
    [got] = messages(tb)
    assert got.replace["id"] == MID and str(got.body) == "edited"
    stored = result(h.storage.messages.getMessage(MID))
    assert stored.body == "edited" and stored.edited
    assert result(h.storage.dialogs.getDialog(dialog.id)).lastMessage == "edited"
    assert result(h.storage.messages.getMessage(EDIT)) is None
    assert h.unread("bob", dialog) == 1


def test_editByOtherForbidden():
    """Only the original sender may edit: bob's edit of alice's message gets forbidden and changes nothing."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog, body="mine"))
    h.send(bob, edit("alice@localhost", dialog, body="hacked"))
    [err] = tb.pop()[-1:]
    assert err["type"] == "error" and err.error.firstChildElement().name == "forbidden"
    assert result(h.storage.messages.getMessage(MID)).body == "mine"
    assert [m for m in messages(ta) if m.replace is not None] == []


def test_groupEditRoutedToOccupants():
    """A group edit goes to every occupant from room/senderId and changes the stored body."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, group(dialog, body="v1"))
    tb.pop(), ta.pop()
    h.send(alice, edit(room(dialog), dialog, body="v2", kind="groupchat"))
    [got] = messages(tb)
    assert got["from"] == f"{room(dialog)}/{h.accountId('alice')}" and got.replace["id"] == MID
    assert result(h.storage.messages.getMessage(MID)).body == "v2"
    assert h.unread("bob", dialog) == 1 and h.unread("carol", dialog) == 1
    assert result(h.storage.offline.countOffline("carol")) == 2  # the message and its edit


def test_removedMemberCannotEdit():
    """A member removed from a group can no longer edit his old messages over XMPP (issue 15 item 13; REST refuses too)."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    bob, tb = h.connect("bob")
    h.send(bob, group(dialog, body="v1"))
    tb.pop()
    result(h.storage.dialogs.updateDialog(dialog.id, pull={"occupants_ids": [h.accountId("bob")]}))
    h.send(bob, edit(room(dialog), dialog, body="v2", kind="groupchat"))
    [err] = tb.pop()[-1:]
    assert err["type"] == "error" and err.error.firstChildElement().name == "forbidden"
    assert result(h.storage.messages.getMessage(MID)).body == "v1"
