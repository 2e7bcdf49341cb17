"""
Tests for message deletion in dialogs: XEP-0424 retraction and the SDK's
urn:xmpp:message-delete:0 (xmppchat.modules.retraction).
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import MID, MID2, chat, group, messages, private, room, stanza
from xmppchat.storage.interfaces import DIALOG_GROUP

DEL = "6b026913da64a533580000d1"


def remove(to, dialog, original=MID, kind="chat", payload=None):
    return stanza(to, kind, DEL, dialog, payload or f"<remove xmlns='urn:xmpp:message-delete:0' id='{original}'/>")


def test_sdkDeleteRemovesFromHistory():
    """The sender's <remove/> deletes the message for everyone, recomputes last_message and reaches bob."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog, body="first", mid=MID))
    h.send(alice, chat("bob@localhost", dialog, body="second", mid=MID2))
    tb.pop()
    h.send(alice, remove("bob@localhost", dialog, original=MID2))
    [got] = messages(tb)
    assert got.remove["id"] == MID2
    assert result(h.storage.messages.getMessage(MID2)) is None
    assert result(h.storage.dialogs.getDialog(dialog.id)).lastMessage == "first"
    assert h.unread("bob", dialog) == 1


def test_retractByOtherForbidden():
    """A XEP-0424 retraction by someone other than the sender is refused and the message stays."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, group(dialog))
    tb.pop()
    h.send(bob, remove(room(dialog), dialog, kind="groupchat",
                       payload=f"<retract xmlns='urn:xmpp:message-retract:1' id='{MID}'/>"))
    [err] = tb.pop()
    assert err.error.firstChildElement().name == "forbidden" and err.error["code"] == "403"
    assert result(h.storage.messages.getMessage(MID)) is not None


def test_groupRetractionRouted():
    """The sender's XEP-0424 retraction (v1 and fasten v0) deletes the group message and reaches the occupants."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, group(dialog, mid=MID))
    h.send(alice, group(dialog, mid=MID2))
    tb.pop()
    h.send(alice, remove(room(dialog), dialog, kind="groupchat",
                         payload=f"<retract xmlns='urn:xmpp:message-retract:1' id='{MID}'/>"))
    h.send(alice, remove(room(dialog), dialog, kind="groupchat",
                         payload=f"<apply-to xmlns='urn:xmpp:fasten:0' id='{MID2}'>"
                                 "<retract xmlns='urn:xmpp:message-retract:0'/></apply-to>"))
    assert len(messages(tb)) == 2
    assert result(h.storage.messages.getMessage(MID)) is None
    assert result(h.storage.messages.getMessage(MID2)) is None
    assert h.unread("bob", dialog) == 0
