"""
Issue 17 items 3 and 4 across the cluster: a privacy setting changed
through the REST service of one node applies at once to the user's
sessions on another node (the C{account} directory event makes every node
reload the account and fire C{account-updated}), to the rooms another node
owns (their cached copy of the sender's account), and to the status
streaming subscriptions held on another node.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from tests.cluster.test_revocation import REST, restOn
from tests.helpers import sentMessages as messages
from xmppchat.storage.interfaces import DIALOG_GROUP

COMPOSING = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
NS_SS = "https://connectycube.com/protocol/status_streaming"


def setPrivacy(api, token, userId, **settings):
    r = api.put(f"/users/{userId}.json", {"user": {"privacy_settings": settings}}, token=token)
    assert r.status == 200, r


def test_typingOffOnNodeAAppliesOnNodeB():
    """Typing turned off through node0's REST stops alice's chat states from her session on node1."""
    cluster = ClusterHarness(count=2, rest=REST)
    a, b = cluster.nodes
    api = restOn(cluster, a)
    token, aliceId = api.user("alice")
    _, bobId = api.user("bob")
    alice, _ = b.connect(f"{aliceId}-1", "phone")
    _, tb = a.connect(f"{bobId}-1", "desk")
    cluster.pump()
    typing = f"<message to='{bobId}-1@localhost' type='chat'>{COMPOSING}</message>"
    b.send(alice, typing)
    cluster.pump()
    assert len(messages(tb)) == 1
    setPrivacy(api, token, aliceId, typing_indicators={"enabled": False})
    cluster.pump()
    b.send(alice, typing)
    cluster.pump()
    assert messages(tb) == []


def test_roomOwnedElsewhereTakesTheNewSetting():
    """A dialog room owned by node0 drops alice's typing from node1 once she turns it off through node1's REST."""
    cluster = ClusterHarness(count=2, rest=REST)
    a, b = cluster.nodes
    api = restOn(cluster, b)
    token, aliceId = api.user("alice")
    _, bobId = api.user("bob")
    dialog = a.addDialog(DIALOG_GROUP, f"{aliceId}-1", [f"{bobId}-1"])
    room = f"1_{dialog.id}@muc.localhost"
    bob, tb = a.connect(f"{bobId}-1", "desk")
    alice, _ = b.connect(f"{aliceId}-1", "phone")
    cluster.pump()
    a.send(bob, f"<message to='{room}' type='groupchat'>{COMPOSING}</message>")  # node0 owns the room
    cluster.pump()
    b.send(alice, f"<message to='{room}' type='groupchat'>{COMPOSING}</message>")
    cluster.pump()
    assert room in a.node.rooms.owned and len(messages(tb)) == 1
    setPrivacy(api, token, aliceId, typing_indicators={"enabled": False})
    cluster.pump()
    b.send(alice, f"<message to='{room}' type='groupchat'>{COMPOSING}</message>")
    cluster.pump()
    assert messages(tb) == []


def test_statusSubscriptionOnOtherNodeDropped():
    """carol, a stranger on node0, watches bob (last seen: everyone); bob's 'contacts' through node1's REST drops her there."""
    cluster = ClusterHarness(count=2, rest=REST)
    a, b = cluster.nodes
    api = restOn(cluster, b)
    token, bobId = api.user("bob")
    api.user("carol")
    setPrivacy(api, token, bobId, last_seen={"visibility": "everyone"})
    carol, tc = a.connect("carol", "r")
    cluster.pump()
    a.send(carol, f"<iq type='set' id='s1'><subscribe xmlns='{NS_SS}' user_jid='{bobId}-1@localhost'/></iq>")
    assert [e["type"] for e in tc.pop()] == ["result"]
    setPrivacy(api, token, bobId, last_seen={"visibility": "contacts"})
    cluster.pump()
    assert a.host.modules["last"].watchers == {}
    a.connect(f"{bobId}-1", "desk")
    cluster.pump()
    assert [e for e in tc.pop() if e.name == "iq"] == []
