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


def typing(cluster, node, session, to, kind="chat"):
    """C{session} (on C{node}) sends a standalone composing notification to C{to}."""
    node.send(session, f"<message to='{to}' type='{kind}'>{COMPOSING}</message>")
    cluster.pump()


def aliceAndBob(restNode):
    """Two nodes, the REST API of C{nodes[restNode]}, and REST users alice and bob."""
    cluster = ClusterHarness(count=2, rest=REST)
    api = restOn(cluster, cluster.nodes[restNode])
    token, aliceId = api.user("alice")
    _, bobId = api.user("bob")
    return cluster, api, token, aliceId, bobId


def test_typingOffOnNodeAAppliesOnNodeB():
    """Typing turned off through node0's REST stops alice's chat states from her session on node1."""
    cluster, api, token, aliceId, bobId = aliceAndBob(0)
    a, b = cluster.nodes
    alice, _ = b.connect(f"{aliceId}-1", "phone")
    _, tb = a.connect(f"{bobId}-1", "desk")
    cluster.pump()
    typing(cluster, b, alice, f"{bobId}-1@localhost")
    assert len(messages(tb)) == 1
    setPrivacy(api, token, aliceId, typing_indicators={"enabled": False})
    cluster.pump()
    typing(cluster, b, alice, f"{bobId}-1@localhost")
    assert messages(tb) == []


def test_roomOwnedElsewhereTakesTheNewSetting():
    """A dialog room owned by node0 drops alice's typing from node1 once she turns it off through node1's REST."""
    cluster, api, token, aliceId, bobId = aliceAndBob(1)
    a, b = cluster.nodes
    dialog = a.addDialog(DIALOG_GROUP, f"{aliceId}-1", [f"{bobId}-1"])
    room = f"1_{dialog.id}@muc.localhost"
    bob, tb = a.connect(f"{bobId}-1", "desk")
    alice, _ = b.connect(f"{aliceId}-1", "phone")
    cluster.pump()
    typing(cluster, a, bob, room, "groupchat")  # node0 owns the room
    typing(cluster, b, alice, room, "groupchat")
    assert room in a.node.rooms.owned and len(messages(tb)) == 1
    setPrivacy(api, token, aliceId, typing_indicators={"enabled": False})
    cluster.pump()
    typing(cluster, b, alice, room, "groupchat")
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
