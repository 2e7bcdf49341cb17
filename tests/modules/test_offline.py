"""
Tests for offline storage and delivery (XEP-0160, XEP-0203).
"""

from tests.helpers import HostHarness, result
from xmppchat.storage.interfaces import DIALOG_GROUP


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def test_storedAndDeliveredWithDelay():
    """A message to an offline user is stored and delivered, in order, with a delay stamp at next login."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    for i in range(3):
        h.send(alice, f"<message to='bob@localhost' type='chat' id='m{i}'><body>hello {i}</body></message>")
    assert ta.pop() == []
    assert result(h.storage.offline.countOffline("bob")) == 3
    bob, tb = h.connect("bob", "b", available=False)
    h.send(bob, "<presence/>")
    messages = [e for e in tb.pop() if e.name == "message"]
    assert [str(m.body) for m in messages] == ["hello 0", "hello 1", "hello 2"]
    assert all(m.delay is not None and m.delay.uri == "urn:xmpp:delay" for m in messages)
    assert messages[0]["from"].startswith("alice@localhost/")
    assert result(h.storage.offline.countOffline("bob")) == 0


def test_chatStatesNotStored():
    """A chat-state-only message to an offline user is dropped, not stored (XEP-0085 §5.6)."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    assert result(h.storage.offline.countOffline("bob")) == 0
    assert ta.pop() == []


def test_quota():
    """Past the per-user limit the sender gets service-unavailable and nothing more is stored."""
    h = HostHarness(limits={"offline_messages_per_user": 2, "offline_share_per_sender": 100,
                            "ping_interval": 0})
    h.addUser("bob")
    alice, ta = h.connect("alice")
    for i in range(3):
        h.send(alice, f"<message to='bob@localhost' type='chat' id='q{i}'><body>{i}</body></message>")
    [err] = ta.pop()
    assert err["id"] == "q2" and err.error.firstChildElement().name == "service-unavailable"
    assert result(h.storage.offline.countOffline("bob")) == 2


def test_negativePriorityDoesNotReceive():
    """A resource with negative priority neither receives bare messages nor triggers offline delivery."""
    h = HostHarness()
    h.addUser("bob")
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence><priority>-5</priority></presence>")
    h.send(alice, "<message to='bob@localhost' type='chat'><body>x</body></message>")
    assert [e for e in tb.pop() if e.name == "message"] == []
    assert result(h.storage.offline.countOffline("bob")) == 1


def test_headlineNotStored():
    """Headline (system) messages to offline users are not stored."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, "<message to='bob@localhost' type='headline'><body>sys</body></message>")
    assert result(h.storage.offline.countOffline("bob")) == 0


# -- issue 15 finding 8: shares of the queue ----------------------------------------

FLOOD_LIMITS = {"offline_messages_per_user": 8, "ping_interval": 0, "message_rate": 0}


def groupchat(dialog, i):
    return (f"<message to='1_{dialog.id}@muc.localhost' type='groupchat' id='g{i}'><body>flood {i}</body>"
            f"<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>")


def dm(to, i):
    return f"<message to='{to}' type='chat' id='d{i}'><body>hello {i}</body></message>"


def test_groupFloodLeavesRoomForOtherSenders():
    """A flooder who puts the victim in a group and fills her queue by fan-out gets only his share; Alice's 1-1 message is still stored and delivered at login."""
    h = HostHarness(limits=FLOOD_LIMITS)
    h.addUser("victim")
    dialog = h.addDialog(DIALOG_GROUP, "mallory", ["victim"])
    mallory, tm = h.connect("mallory")
    for i in range(20):
        h.send(mallory, groupchat(dialog, i))
    assert all(e.name == "message" and e.getAttribute("type") == "groupchat" for e in tm.pop())
    assert result(h.storage.offline.countOffline("victim")) == 2  # 25 % of 8
    h.send(mallory, dm("victim@localhost", 0))
    [err] = tm.pop()
    assert err["id"] == "d0" and err.error.firstChildElement().name == "service-unavailable"
    assert "share" in str(err.error.text)
    alice, ta = h.connect("alice")
    h.send(alice, dm("victim@localhost", 1))
    assert ta.pop() == []
    victim, tv = h.connect("victim", available=False)
    h.send(victim, "<presence/>")
    bodies = [str(m.body) for m in tv.pop() if m.name == "message"]
    assert bodies == ["flood 0", "flood 1", "hello 1"]
    # the dropped copies are in the dialog's history, counted as unread
    assert h.unread("victim", dialog) == 20


def test_sybilFloodLeavesRoomForDirectMessages():
    """Many flooding accounts in one dialog, then in many dialogs, fill at most their dialog shares: 1-1 messages keep the rest."""
    h = HostHarness(limits=FLOOD_LIMITS)
    h.addUser("victim")
    flooders = [f"m{i}" for i in range(6)]
    shared = h.addDialog(DIALOG_GROUP, "m0", ["victim", *flooders])
    for name in flooders[:3]:
        session, _ = h.connect(name)
        for i in range(3):
            h.send(session, groupchat(shared, i))
    assert result(h.storage.offline.countOffline("victim")) == 2  # the dialog's 25 %
    for name in flooders[3:]:
        own = h.addDialog(DIALOG_GROUP, name, ["victim"])
        session, _ = h.connect(name)
        for i in range(3):
            h.send(session, groupchat(own, i))
    assert result(h.storage.offline.countOffline("victim")) == 4  # all dialogs: 50 %
    for name in ("alice", "bob"):
        session, transport = h.connect(name)
        for i in range(2):
            h.send(session, dm("victim@localhost", i))
        assert transport.pop() == []
    assert result(h.storage.offline.countOffline("victim")) == 8
