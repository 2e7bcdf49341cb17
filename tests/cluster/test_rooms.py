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


def threeOccupants(drained=False):
    """alice (node0), bob (node1), carol (node2) joined to one group dialog's room, in that order
    (with C{drained}, what the clients got so far is discarded)."""
    c = ClusterHarness()
    a, b, d = c.nodes
    dialog = a.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    room = f"1_{dialog.id}@muc.localhost"
    users = []
    for node, name in ((a, "alice"), (b, "bob"), (d, "carol")):
        session, transport = node.connect(name, "r")
        users.append((node, session, transport, node.accountId(name)))
    c.pump()
    for node, session, transport, _ in users:
        transport.pop()
        join(node, session, f"{room}/{node.accountId(session.localpart)}")
        c.pump()
    for _, _, transport, _ in users if drained else ():
        transport.pop()
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


def failover():
    """L{threeOccupants}, drained, unpacked: C{(cluster, room, alice, bob, carol)}."""
    c, room, users = threeOccupants(drained=True)
    return (c, room, *users)


def killOwner(c, node):
    """node dies (kill -9): no clean leave, its Redis connections just drop."""
    node.node.redis.kill()
    node.node.heartbeat.stop()


def stanzas(transport, name):
    return [e for e in transport.pop() if e.name == name]


def test_ownerLostOccupantsRestored():
    """Owner node0 dies: one survivor takes the room and rebuilds bob and carol silently (one self-presence each)."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    killOwner(c, a)
    c.pump(5.0)  # past the expiry: the survivors notice through the heartbeat
    owners = [n for n in (b, d) if room in n.node.rooms.owned]
    assert len(owners) == 1
    owner = owners[0]
    assert c.redis.data[b"xmppchat:localhost:room:" + room.encode()] == owner.node.nodeId.encode()
    occupants = owner.host.modules["muc"].rooms[room].occupants
    assert sorted(occupants) == sorted([str(bid), str(cid)])  # alice died with node0
    assert owner.node.rooms.restored == 2
    for transport, uid in ((tb, bid), (td, cid)):
        got = stanzas(transport, "presence")
        assert [(p["from"], p.getAttribute("type")) for p in got] == [(f"{room}/{uid}", None)]
        assert "110" in [s["code"] for s in got[0].x.elements() if s.name == "status"]
    # the other node now knows the new owner
    other = d if owner is b else b
    assert other.node.rooms.knownOwner(room) == owner.node.nodeId
    d.send(carol, f"<message to='{room}' type='groupchat' id='6b026913da64a53358000002'><body>still here</body></message>")
    c.pump()
    for transport in (tb, td):
        assert [(m["from"], str(m.body)) for m in stanzas(transport, "message")] == [
            (f"{room}/{cid}", "still here")]


def test_occupantsLostWithOwnerAnnounced():
    """Once every survivor had time to re-register, alice (gone with node0) is announced as left, once."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    assert b.node.rooms.rosters[room] == {str(aid), str(bid), str(cid)}
    killOwner(c, a)
    c.pump(5.0)
    for transport in (tb, td):
        transport.pop()
    c.pump(5.0)
    for transport in (tb, td):
        assert presences(transport) == [(f"{room}/{aid}", "unavailable")]
    c.pump(5.0)
    assert not presences(tb) and not presences(td)


def test_restoredRoomShowsOccupantsToNewJoiner():
    """After failover a user joining on another node gets the restored occupants' presences."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    killOwner(c, a)
    c.pump(5.0)
    alice2, ta2 = b.connect("alice", "r2")
    c.pump()
    ta2.pop()
    join(b, alice2, f"{room}/{aid}", sid="j9")
    c.pump()
    assert sorted(presences(ta2)) == [(f"{room}/{aid}", None), (f"{room}/{bid}", None),
                                      (f"{room}/{cid}", None)]


def test_messageDuringFailoverGetsError():
    """A groupchat sent to the dead owner bounces with recipient-unavailable (wait) and starts the failover."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    killOwner(c, a)
    d.send(carol, f"<message to='{room}' type='groupchat' id='m-lost'><body>lost?</body></message>")
    c.pump()
    errors = [m for m in stanzas(td, "message") if m.getAttribute("type") == "error"]
    assert [(m["id"], m["from"]) for m in errors] == [("m-lost", room)]
    error = errors[0].error
    assert error["type"] == "wait"
    assert [e.name for e in error.elements()][0] == "recipient-unavailable"
    assert not stanzas(tb, "message")
    # no heartbeat needed: the empty channel made node2 take over at once
    c.pump(0.5)
    assert room in d.node.rooms.owned
    d.send(carol, f"<message to='{room}' type='groupchat' id='6b026913da64a53358000003'><body>again</body></message>")
    c.pump()
    assert [str(m.body) for m in stanzas(tb, "message")] == ["again"]


def test_ownerLostTwoNodesOneOwner():
    """Both survivors notice the loss at once: one wins the takeover, the other re-registers with it."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    killOwner(c, a)
    c.pump(0.1)
    b.node.bus.nodeLost("node0")
    d.node.bus.nodeLost("node0")
    c.pump(1.0)
    owned = [n.node.nodeId for n in (b, d) if room in n.node.rooms.owned]
    assert len(owned) == 1
    owner = b if owned == ["node1"] else d
    assert sorted(owner.host.modules["muc"].rooms[room].occupants) == sorted([str(bid), str(cid)])
    assert not (d if owner is b else b).host.modules["muc"].rooms


def test_occupantOnLostNonOwnerLeaves():
    """A node with an occupant dies (the owner lives): the occupant leaves the room with unavailable presence."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    killOwner(c, d)
    c.pump(5.0)
    assert (f"{room}/{cid}", "unavailable") in presences(ta)
    assert sorted(a.host.modules["muc"].rooms[room].occupants) == sorted([str(aid), str(bid)])


def test_restDialogUpdateReachesOwnersRoom():
    """A REST dialog change on node1 (carol removed) kicks carol from the room owned by node0."""
    from xmppchat.dialogs.events import DialogEvent
    from tests.helpers import result

    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    dialogId = room.split("_", 1)[1].split("@")[0]
    updated = result(c.storage.dialogs.updateDialog(dialogId, pull={"occupants_ids": [cid]}, name="renamed"))
    b.host.hooks.fire("rest-dialog-updated", DialogEvent(updated, aid, 1, [], [cid]))
    c.pump()
    kicked = [p for p in stanzas(td, "presence") if p.getAttribute("type") == "unavailable"]
    assert [p["from"] for p in kicked] == [f"{room}/{cid}"]
    codes = {s["code"] for s in kicked[0].x.elements() if s.name == "status"}
    assert {"307", "321", "110"} <= codes
    assert (f"{room}/{cid}", "unavailable") in presences(tb)
    owned = a.host.modules["muc"].rooms[room]
    assert owned.dialog.name == "renamed"
    assert sorted(owned.occupants) == sorted([str(aid), str(bid)])
    # carol's node forgot her room record (the owner said she left)
    assert carol.full not in d.node.rooms.joined


def test_handOverAfterSplit():
    """An owner that finds another live node holding its room's key hands the room over, occupants kept."""
    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    c.redis.data[b"xmppchat:localhost:room:" + room.encode()] = b"node1"
    c.pump(1.5)  # node0's heartbeat renews
    assert room not in a.node.rooms.owned and room in b.node.rooms.owned
    assert sorted(b.host.modules["muc"].rooms[room].occupants) == sorted([str(aid), str(bid), str(cid)])
    assert room not in a.host.modules["muc"].rooms
    # node2 still has node0 cached: node0 passes the room's stanzas on to node1
    td.pop()
    d.send(carol, f"<iq type='get' id='i1' to='{room}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    c.pump()
    [reply] = stanzas(td, "iq")
    assert reply["type"] == "result"
    assert sorted(i["jid"] for i in reply.query.elements()) == sorted(f"{room}/{u}" for u in (aid, bid, cid))
    assert room not in a.host.modules["muc"].rooms


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


def test_restDialogDeleteDestroysOwnersRoom():
    """A dialog deleted over REST on node2 destroys its room on node0: every occupant gets <destroy/>."""
    from tests.helpers import result
    from xmppchat.dialogs.events import DialogEvent

    c, room, (a, alice, ta, aid), (b, bob, tb, bid), (d, carol, td, cid) = failover()
    dialogId = room.split("_", 1)[1].split("@")[0]
    dialog = result(c.storage.dialogs.getDialog(dialogId))
    result(c.storage.dialogs.deleteDialog(dialogId))
    d.host.hooks.fire("rest-dialog-updated", DialogEvent(dialog, aid, 1, [], [], deleted=True))
    c.pump()
    for transport in (ta, tb, td):
        destroyed = [p for p in stanzas(transport, "presence") if p.x.destroy is not None]
        assert len(destroyed) == 1 and destroyed[0].getAttribute("type") == "unavailable"
    assert room not in a.host.modules["muc"].rooms


def test_openInstantRoomAcrossNodes():
    """Issue 16 item 5: an instant room made on node0 is open; bob on node1 joins with his own nick, talks
    and changes nick; after node0 dies bob is restored under his chosen nick."""
    c = ClusterHarness()
    a, b, d = c.nodes
    alice, ta = a.connect("alice", "r")
    bob, tb = b.connect("bob", "r")
    c.pump()
    ta.pop(), tb.pop()
    room = "lobby@muc.localhost"
    join(a, alice, f"{room}/Alice")
    c.pump()
    a.send(alice, f"<iq type='set' id='c' to='{room}'><query xmlns='{MUC}#owner'>"
                  "<x xmlns='jabber:x:data' type='submit'/></query></iq>")
    c.pump()
    ta.pop()
    join(b, bob, f"{room}/Bobby")
    c.pump()
    assert presences(tb) == [(f"{room}/Alice", None), (f"{room}/Bobby", None)]
    assert presences(ta) == [(f"{room}/Bobby", None)]
    b.send(bob, f"<message to='{room}' type='groupchat' id='6b026913da64a53358000003'><body>hey</body></message>")
    c.pump()
    assert [(m["from"], str(m.body)) for m in stanzas(ta, "message")] == [(f"{room}/Bobby", "hey")]
    tb.pop()
    b.send(bob, f"<presence to='{room}/Robert'/>")
    c.pump()
    assert presences(ta) == [(f"{room}/Bobby", "unavailable"), (f"{room}/Robert", None)]
    tb.pop()
    carol, td = d.connect("carol", "r")
    join(d, carol, f"{room}/Carla")
    c.pump()
    td.pop(), tb.pop()
    killOwner(c, a)
    c.pump(5.0)
    owner = [n for n in (b, d) if room in n.node.rooms.owned][0]
    assert sorted(owner.host.modules["muc"].rooms[room].occupants) == ["Carla", "Robert"]
    assert [p["from"] for p in stanzas(tb, "presence")][:1] == [f"{room}/Robert"]
