"""
XEP-0045 rooms across cluster nodes (L{xmppchat.cluster.rooms}): one owner
node per room, other nodes forward; three nodes in one process.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from xmppchat.storage.interfaces import DIALOG_GROUP

MUC = "http://jabber.org/protocol/muc"


def join(node, session, to, sid="j1"):
    node.send(session, f"<presence to='{to}' id='{sid}'><x xmlns='{MUC}'><history maxstanzas='0'/></x></presence>")


def presences(transport):
    return [(e["from"], e.getAttribute("type")) for e in transport.pop() if e.name == "presence"]


def threeOccupants():
    """alice (node0), bob (node1), carol (node2) joined to one group dialog's room, in that order."""
    c = ClusterHarness()
    a, b, d = c.nodes
    dialog = a.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    room = f"1_{dialog.id}@muc.localhost"
    users = []
    for node, name, sid in ((a, "alice", "j1"), (b, "bob", "j2"), (d, "carol", "j3")):
        session, transport = node.connect(name, "r")
        users.append((node, session, transport, node.accountId(name)))
    c.pump()
    for node, session, transport, _ in users:
        transport.pop()
        join(node, session, f"{room}/{node.accountId(session.localpart)}")
        c.pump()
    return c, room, users


def test_occupantsOnThreeNodesSeeEachOther():
    """Joins from three nodes reach one room: each occupant gets the others' presence and its own, once."""
    c, room, users = threeOccupants()
    (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = users
    owners = {node.node.nodeId for node, *_ in users if room in node.node.rooms.owned}
    assert owners == {"node0"}
    assert [n.node.rooms.forwarded for n in (a, b, d)] == [0, 1, 1]
    assert sorted(presences(ta)) == [(f"{room}/{aid}", None), (f"{room}/{bid}", None),
                                     (f"{room}/{cid}", None)]
    # bob joined second: saw alice, himself, then carol arriving
    assert sorted(presences(tb)) == [(f"{room}/{aid}", None), (f"{room}/{bid}", None),
                                     (f"{room}/{cid}", None)]
    assert sorted(presences(td)) == [(f"{room}/{aid}", None), (f"{room}/{bid}", None),
                                     (f"{room}/{cid}", None)]
    assert len(a.host.modules["muc"].rooms[room].occupants) == 3
    assert not b.host.modules["muc"].rooms and not d.host.modules["muc"].rooms


def test_groupchatAcrossNodes():
    """A groupchat message from node2 reaches the occupants on node0 and node1 (and echoes to the sender)."""
    c, room, users = threeOccupants()
    (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = users
    for _, _, t, _ in users:
        t.pop()
    d.send(carol, f"<message to='{room}' type='groupchat' id='6b026913da64a53358000001'><body>hello</body></message>")
    c.pump()
    for transport in (ta, tb, td):
        messages = [e for e in transport.pop() if e.name == "message"]
        assert [(m["from"], str(m.body)) for m in messages] == [(f"{room}/{cid}", "hello")]


def test_remoteOccupantLeavesWhenSessionEnds():
    """An occupant on another node whose session ends (or who sends unavailable) leaves the owner's room."""
    c, room, users = threeOccupants()
    (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = users
    for _, _, t, _ in users:
        t.pop()
    d.host.endSession(carol)
    c.pump()
    assert (f"{room}/{cid}", "unavailable") in presences(ta)
    assert (f"{room}/{cid}", "unavailable") in presences(tb)
    b.send(bob, f"<presence to='{room}/{bid}' type='unavailable'/>")
    c.pump()
    assert (f"{room}/{bid}", "unavailable") in presences(ta)
    assert list(a.host.modules["muc"].rooms[room].occupants) == [str(aid)]


def test_ownerLostRoomMovesOn():
    """When the owner node dies its key expires; the next join makes another node the owner."""
    c, room, users = threeOccupants()
    (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = users
    a.node.redis.kill()
    a.node.heartbeat.stop()
    c.pump(5.0)
    assert b"xmppchat:localhost:room:" + room.encode() not in c.redis.data
    tb.pop()
    td.pop()
    join(b, bob, f"{room}/{bid}", sid="j4")
    c.pump()
    assert room in b.node.rooms.owned
    assert (f"{room}/{bid}", None) in presences(tb)
    join(d, carol, f"{room}/{cid}", sid="j5")
    c.pump()
    assert (f"{room}/{cid}", None) in presences(tb)
    assert len(b.host.modules["muc"].rooms[room].occupants) == 2


def test_ownershipRenewedAndReleased():
    """The owner renews its key while the room is open and deletes it once the room is idle."""
    c, room, users = threeOccupants()
    key = b"xmppchat:localhost:room:" + room.encode()
    c.pump(6.0)  # twice the expiry: renewed by the heartbeat
    assert c.redis.data.get(key) == b"node0"
    for node, session, _, _ in users:
        node.host.endSession(session)
    c.pump(8.0)
    assert key not in c.redis.data
    assert room not in c.nodes[0].node.rooms.owned
