"""
Per-user quotas over XMPP (issue 15 finding 15), on both backends: dialog
messages stored beyond the sender's daily quota, private dialogs and MUC
rooms (group dialogs) created beyond the dialog quota are refused with
C{resource-constraint} (RFC 6120 §8.3.3.18) and a readable text; nothing
is stored or delivered, and other users go on.
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import MID, MID2, chat, messages
from tests.muc.test_room import join, owner
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE

BOTH_BACKENDS = True
MID3 = "6b026913da64a53358000002"


def constraint(transport):
    [error] = transport.pop()
    assert error["type"] == "error"
    condition = error.error.firstChildElement()
    assert condition.name == "resource-constraint" and error.error["type"] == "wait"
    return str(error.error.text)


def test_dailyMessageQuota():
    """Mallory's third stored message of the day bounces with resource-constraint and reaches nobody."""
    h = HostHarness(quotas={"messages_per_user_per_day": 2})
    dialog = h.addDialog(DIALOG_PRIVATE, "mallory", ["bob"])
    mallory, tm = h.connect("mallory")
    bob, tb = h.connect("bob")
    h.send(mallory, chat("bob@localhost", dialog, mid=MID))
    h.send(mallory, chat("bob@localhost", dialog, mid=MID2))
    assert len(messages(tb)) == 2
    tm.pop()
    h.send(mallory, chat("bob@localhost", dialog, mid=MID3))
    assert "at most 2 stored messages per user a day" in constraint(tm)
    assert messages(tb) == [] and result(h.storage.messages.getMessage(MID3)) is None
    h.send(bob, chat("mallory@localhost", dialog, body="still here", mid=MID3))
    assert len(messages(tm)) == 1


def test_privateDialogQuota():
    """save_to_history to a new peer beyond the dialog quota makes no dialog: resource-constraint."""
    h = HostHarness(quotas={"dialogs_per_user": 1})
    h.addDialog(DIALOG_GROUP, "mallory", ["bob"], name="g")
    mallory, tm = h.connect("mallory")
    carol, tc = h.connect("carol")
    h.send(mallory, f"<message to='carol@localhost' type='chat' id='{MID}'><body>x</body>"
                    "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
                    "</extraParams></message>")
    assert "at most 1 dialogs" in constraint(tm)
    assert messages(tc) == []
    assert result(h.storage.dialogs.findPrivateDialog(h.accountId("mallory"), h.accountId("carol"))) is None


def test_roomDialogQuota():
    """Configuring a new MUC room (which makes a group dialog) beyond the quota is resource-constraint."""
    h = HostHarness(quotas={"dialogs_per_user": 1})
    h.addDialog(DIALOG_GROUP, "mallory", ["bob"], name="g")
    mallory, tm = h.connect("mallory")
    mid = h.accountId("mallory")
    join(h, mallory, f"spam@muc.localhost/{mid}")
    tm.pop()
    owner(h, mallory, "spam@muc.localhost", "<x xmlns='jabber:x:data' type='submit'/>")
    assert "at most 1 dialogs" in constraint(tm)
    assert len(result(h.storage.dialogs.listDialogs(mid))) == 1
