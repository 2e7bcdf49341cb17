"""
Tests for XEP-0045 rooms (xmppchat.muc.room): join, leave, history,
affiliations, kick, room creation (instant and reserved), the ConnectyCube
compatibility switch, disco#items, errors and privacy in group dialogs.
"""

import time

import pytest

from tests.helpers import HostHarness, result
from xmppchat.dialogs.events import DialogEvent
from xmppchat.config import ConfigError, buildConfig
from xmppchat.muc.room import isoStamp
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PUBLIC, Query

MUC = "http://jabber.org/protocol/muc"
USER = "http://jabber.org/protocol/muc#user"
OWNER = "http://jabber.org/protocol/muc#owner"
ITEMS = "http://jabber.org/protocol/disco#items"


def room(dialog):
    return f"1_{dialog.id}@muc.localhost"


def join(h, session, to, history="<history maxstanzas='0'/>", sid="j1"):
    h.send(session, f"<presence to='{to}' id='{sid}'><x xmlns='{MUC}'>{history}</x></presence>")


def codes(presence):
    return {s["code"] for s in presence.x.elements() if s.name == "status"}


def compat(presence):
    """The text of <xmlns><code/></xmlns> in <x>, or None."""
    for child in presence.x.elements():
        if child.name == "xmlns":
            return str(child.code)
    return None


def presences(transport):
    return [e for e in transport.pop() if e.name == "presence"]


def group(to, body="hi", mid="6b026913da64a53358000001"):
    return (f"<message to='{to}' type='groupchat' id='{mid}'><body>{body}</body>"
            "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>")


def setUp(kind=DIALOG_GROUP, **fields):
    h = HostHarness()
    dialog = h.addDialog(kind, "alice", ["bob", "carol"], admins=["bob"], **fields)
    return h, dialog


def test_joinOrderAndSelfPresence():
    """The others' presences come first, the self-presence (110, 100, echoed id, compat code) last, then the subject."""
    h, dialog = setUp(description="Topic")
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    aid, bid = h.accountId("alice"), h.accountId("bob")
    join(h, alice, f"{room(dialog)}/{aid}")
    first = ta.pop()
    assert [e.name for e in first] == ["presence", "message"]
    assert codes(first[0]) >= {"110", "100"} and first[0]["id"] == "j1" and compat(first[0]) == "110"
    assert first[0].x.item["affiliation"] == "owner" and first[0].x.item["role"] == "moderator"
    assert str(first[1].subject) == "Topic" and first[1]["from"] == room(dialog)
    join(h, bob, f"{room(dialog)}/{bid}", sid="j2")
    got = tb.pop()
    assert [e.name for e in got] == ["presence", "presence", "message"]
    assert got[0]["from"] == f"{room(dialog)}/{aid}" and "110" not in codes(got[0])
    assert got[0].x.item["jid"] == alice.full  # members-only rooms are non-anonymous
    assert got[1]["from"] == f"{room(dialog)}/{bid}" and "110" in codes(got[1])
    assert got[1].x.item["affiliation"] == "admin"
    [seen] = presences(ta)
    assert seen["from"] == f"{room(dialog)}/{bid}" and seen.x.item["role"] == "moderator"
    assert compat(seen) is None


def test_nickRewrittenAndConflict():
    """Another nick is rewritten to the user id (210); a nick held by another user is a conflict."""
    h, dialog = setUp()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    aid = h.accountId("alice")
    join(h, alice, f"{room(dialog)}/Alice")
    [me] = presences(ta)
    assert me["from"] == f"{room(dialog)}/{aid}" and "210" in codes(me)
    join(h, bob, f"{room(dialog)}/{aid}")
    [error] = presences(tb)
    assert error["type"] == "error" and error.error.firstChildElement().name == "conflict"
    assert error.x.uri == MUC


def test_membersOnlyAndPublic():
    """A non-occupant gets registration-required in a group room; joining a public room subscribes."""
    h, dialog = setUp()
    dave, td = h.connect("dave")
    join(h, dave, f"{room(dialog)}/{h.accountId('dave')}")
    [error] = presences(td)
    assert error.error.firstChildElement().name == "registration-required" and error["id"] == "j1"
    public = h.addDialog(DIALOG_PUBLIC, "alice", [])
    join(h, dave, f"{room(public)}/{h.accountId('dave')}")
    [me] = presences(td)
    assert "110" in codes(me) and me.x.item["affiliation"] == "none" and "100" not in codes(me)
    assert h.accountId("dave") in result(h.storage.dialogs.listSubscribers(public.id))


def test_history():
    """History on join honours maxstanzas and maxchars, oldest first, with a delay from the room."""
    h, dialog = setUp()
    aid = h.accountId("alice")
    for n in range(4):
        result(h.storage.messages.createMessage(dialog.id, aid, f"m{n}", dateSent=1000 + n))
    bob, tb = h.connect("bob")
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}", "<history maxstanzas='2'/>")
    got = [e for e in tb.pop() if e.name == "message" and e.body is not None]
    assert [str(m.body) for m in got] == ["m2", "m3"]
    assert got[0].delay["from"] == room(dialog) and got[0]["from"] == f"{room(dialog)}/{aid}"
    carol, tc = h.connect("carol")
    join(h, carol, f"{room(dialog)}/{h.accountId('carol')}", "<history maxchars='0'/>")
    assert [e for e in tc.pop() if e.name == "message" and e.body is not None] == []
    h.clock.advance(time.time() + 100)  # the messages are now 100 s old
    dave, td = h.connect("carol", resource="two")
    join(h, dave, f"{room(dialog)}/{h.accountId('carol')}", "<history seconds='5'/>")
    assert [e for e in td.pop() if e.name == "message" and e.body is not None] == []


def test_isoStamp():
    """XEP-0082 date-times parse; garbage does not."""
    assert isoStamp("1970-01-01T00:01:40Z") == 100.0
    assert isoStamp("1970-01-01T00:01:40.123Z") == 100.0
    assert isoStamp("2020-02-29T12:00:00+00:00") == 1582977600.0
    assert isoStamp("yesterday") is None


def joinedPair(other="bob"):
    """A group room that alice and C{other} have joined: C{(h, dialog, alice, ta, other, to, aid, oid)}."""
    h, dialog = setUp()
    alice, ta = h.connect("alice")
    peer, tp = h.connect(other)
    aid, oid = h.accountId("alice"), h.accountId(other)
    join(h, alice, f"{room(dialog)}/{aid}")
    join(h, peer, f"{room(dialog)}/{oid}")
    ta.pop(), tp.pop()
    return h, dialog, alice, ta, peer, tp, aid, oid


def test_leaveAndSessionEnd():
    """Leaving sends unavailable to the others and a 110 (compat) self-presence; ending a session leaves too."""
    h, dialog, alice, ta, bob, tb, aid, bid = joinedPair()
    h.send(bob, f"<presence type='unavailable' to='{room(dialog)}/{bid}'/>")
    [mine] = presences(tb)
    assert mine["type"] == "unavailable" and "110" in codes(mine) and compat(mine) == "110"
    [theirs] = presences(ta)
    assert theirs["type"] == "unavailable" and theirs["from"] == f"{room(dialog)}/{bid}"
    join(h, bob, f"{room(dialog)}/{bid}")
    ta.pop()
    bob.stream.connectionLost()
    [gone] = presences(ta)
    assert gone["type"] == "unavailable" and gone["from"] == f"{room(dialog)}/{bid}"
    muc = h.host.modules["muc"]
    assert list(muc.rooms[room(dialog)].occupants) == [str(aid)]
    alice.stream.connectionLost()
    assert muc.rooms == {}


def test_oneCopyPerSession():
    """Joined and non-joined occupants' sessions get exactly one copy of a room message."""
    h, dialog = setUp()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}")
    tb.pop()
    h.send(alice, group(room(dialog)))
    for t in (ta, tb, tc):
        got = [e for e in t.pop() if e.name == "message"]
        assert len(got) == 1 and got[0]["from"] == f"{room(dialog)}/{h.accountId('alice')}"


def test_broadcastVisitors():
    """In a broadcast room others are visitors and get forbidden on messages; admins are moderators."""
    h, dialog = setUp(DIALOG_BROADCAST)
    carol, tc = h.connect("carol")
    join(h, carol, f"{room(dialog)}/{h.accountId('carol')}")
    [me] = presences(tc)
    assert me.x.item["role"] == "visitor" and me.x.item["affiliation"] == "member"
    h.send(carol, group(room(dialog)))
    [error] = tc.pop()
    assert error["type"] == "error" and error.error.firstChildElement().name == "forbidden"


def test_kickOnRemoval():
    """Removing an occupant kicks them: 307/321 to everybody, 110 and the compat 301 with the actor to the kicked."""
    h, dialog, alice, ta, carol, tc, aid, cid = joinedPair("carol")
    updated = result(h.storage.dialogs.updateDialog(dialog.id, pull={"occupants_ids": [cid]}))
    h.host.hooks.fire("rest-dialog-updated", DialogEvent(updated, aid, 1, [], [cid]))
    [kicked] = presences(tc)
    assert kicked["type"] == "unavailable" and codes(kicked) == {"110", "307", "321"}
    assert compat(kicked) == "301"
    direct = [c for c in kicked.elements() if c.name == "item"]
    assert direct and direct[0].actor["jid"] == "alice@localhost"
    [other] = presences(ta)
    assert codes(other) == {"307", "321"} and compat(other) is None
    assert list(h.host.modules["muc"].rooms[room(dialog)].occupants) == [str(aid)]
    join(h, carol, f"{room(dialog)}/{cid}")
    assert presences(tc)[0].error.firstChildElement().name == "registration-required"


def test_deletedDialogDestroysRoom():
    """Deleting the dialog destroys its room: unavailable with <destroy/> to each occupant."""
    h, dialog = setUp()
    bob, tb = h.connect("bob")
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}")
    tb.pop()
    h.host.hooks.fire("rest-dialog-updated", DialogEvent(dialog, h.accountId("alice"), 1, [], [], deleted=True))
    [gone] = presences(tb)
    assert gone["type"] == "unavailable" and gone.x.destroy is not None
    assert h.host.modules["muc"].rooms == {}


def test_compatOff():
    """With connectycube_compat off the presences are plain XEP-0045."""
    h = HostHarness(muc={"connectycube_compat": False})
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    join(h, alice, f"{room(dialog)}/{h.accountId('alice')}")
    [me] = presences(ta)
    assert "110" in codes(me) and compat(me) is None


def test_sdkJoinWithoutSubject():
    """With the switch on, an SDK join (id ending in :join) gets the self-presence but no subject message."""
    h, dialog = setUp(description="Topic")
    alice, ta = h.connect("alice")
    join(h, alice, f"{room(dialog)}/{h.accountId('alice')}", sid="0f1c:join")
    got = ta.pop()
    assert [e.name for e in got] == ["presence"] and got[0]["id"] == "0f1c:join" and compat(got[0]) == "110"


def owner(h, session, to, form):
    h.send(session, f"<iq type='set' id='cfg' to='{to}'><query xmlns='{OWNER}'>{form}</query></iq>")


def test_instantRoom():
    """Joining an unknown name creates a locked room (201); an empty submit makes it a group dialog."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    aid = h.accountId("alice")
    join(h, alice, f"team@muc.localhost/{aid}")
    [me] = presences(ta)
    assert codes(me) >= {"110", "201"} and me.x.item["affiliation"] == "owner"
    join(h, bob, f"team@muc.localhost/{h.accountId('bob')}")
    assert presences(tb)[0].error.firstChildElement().name == "item-not-found"
    h.send(alice, group("team@muc.localhost"))
    assert ta.pop()[0].error.firstChildElement().name == "item-not-found"
    owner(h, alice, "team@muc.localhost", "<x xmlns='jabber:x:data' type='submit'/>")
    got = ta.pop()
    assert got[0]["type"] == "result" and got[1].subject is not None
    [dialog] = result(h.storage.dialogs.listDialogs(aid, Query().where("extensions.muc_room", "eq", "team")))
    assert dialog.type == DIALOG_GROUP and dialog.name == "team" and dialog.ownerId == aid
    h.send(alice, group("team@muc.localhost", mid="6b026913da64a53358000009"))
    [echo] = ta.pop()
    assert echo["from"] == f"team@muc.localhost/{aid}" and str(echo.body) == "hi"


def test_reservedRoom():
    """The owner gets the configuration form and submits name, description, members-only and persistence."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    aid = h.accountId("alice")
    join(h, alice, f"design@muc.localhost/{aid}")
    ta.pop()
    h.send(alice, f"<iq type='get' id='f' to='design@muc.localhost'><query xmlns='{OWNER}'/></iq>")
    [form] = ta.pop()
    fields = {f["var"] for f in form.query.x.elements() if f.name == "field"}
    assert {"muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom",
            "muc#roomconfig_membersonly"} <= fields
    owner(h, alice, "design@muc.localhost", (
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"
        "<field var='muc#roomconfig_roomname'><value>Design</value></field>"
        "<field var='muc#roomconfig_roomdesc'><value>All things design</value></field>"
        "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
        "<field var='muc#roomconfig_membersonly'><value>1</value></field></x>"))
    got = ta.pop()
    assert got[0]["type"] == "result" and str(got[1].subject) == "All things design"
    [dialog] = result(h.storage.dialogs.listDialogs(aid))
    assert (dialog.name, dialog.description, dialog.type) == ("Design", "All things design", DIALOG_GROUP)
    assert dialog.extensions["muc_room"] == "design"
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='get' id='f' to='design@muc.localhost'><query xmlns='{OWNER}'/></iq>")
    assert tb.pop()[0].error.firstChildElement().name == "forbidden"


def test_cancelAndOwnerLeaving():
    """Cancelling the form or leaving a locked room destroys it; no dialog is made."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    aid = h.accountId("alice")
    join(h, alice, f"tmp@muc.localhost/{aid}")
    owner(h, alice, "tmp@muc.localhost", "<x xmlns='jabber:x:data' type='cancel'/>")
    join(h, alice, f"tmp2@muc.localhost/{aid}")
    h.send(alice, f"<presence type='unavailable' to='tmp2@muc.localhost/{aid}'/>")
    assert h.host.modules["muc"].rooms == {}
    assert result(h.storage.dialogs.listDialogs(aid)) == []


def test_lockedRoomTimesOut():
    """A room never configured is destroyed after locked_room_seconds."""
    h = HostHarness(muc={"locked_room_seconds": 30})
    alice, ta = h.connect("alice")
    join(h, alice, f"slow@muc.localhost/{h.accountId('alice')}")
    ta.pop()
    h.clock.advance(31)
    [gone] = presences(ta)
    assert gone["type"] == "unavailable" and gone.x.destroy is not None
    assert h.host.modules["muc"].rooms == {}


def test_discoItems():
    """disco#items of a room lists the online occupants as room/<userId>; to non-members a members-only room does not exist."""
    h, dialog = setUp()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    join(h, alice, f"{room(dialog)}/{h.accountId('alice')}")
    ta.pop()
    h.send(bob, f"<iq type='get' id='i:muc_disco_items' to='{room(dialog)}'><query xmlns='{ITEMS}'/></iq>")
    [items] = tb.pop()
    assert [i["jid"] for i in items.query.elements()] == [f"{room(dialog)}/{h.accountId('alice')}"]
    dave, td = h.connect("dave")
    h.send(dave, f"<iq type='get' id='i' to='{room(dialog)}'><query xmlns='{ITEMS}'/></iq>")
    assert td.pop()[0].error.firstChildElement().name == "item-not-found"
    h.send(dave, f"<iq type='get' id='s' to='muc.localhost'><query xmlns='{ITEMS}'/></iq>")
    assert list(td.pop()[0].query.elements()) == []
    h.send(bob, f"<iq type='get' id='s' to='muc.localhost'><query xmlns='{ITEMS}'/></iq>")
    assert [i["jid"] for i in tb.pop()[0].query.elements()] == [room(dialog)]


def block(h, session, jid):
    h.send(session, f"<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='{jid}'/></block></iq>")


def test_privacyInGroups():
    """A receiver who blocked the sender gets nothing from them (online or offline); others do; no error."""
    h, dialog = setUp()
    h.addUser("dave")
    result(h.storage.dialogs.updateDialog(dialog.id, push={"occupants_ids": [h.accountId("dave")]}))
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    dave, td = h.connect("dave")
    block(h, bob, "alice@localhost")
    block(h, dave, "alice@localhost")
    tb.pop(), td.pop()
    dave.stream.connectionLost()
    h.host.modules["privacy"].recent.clear()  # dave's lists must be loaded from storage again
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}")
    tb.pop()
    h.send(alice, group(room(dialog)))
    assert [e.name for e in ta.pop()] == ["message"]  # the reflection, no error
    assert [e for e in tb.pop() if e.name == "message"] == []
    assert len([e for e in tc.pop() if e.name == "message"]) == 1
    assert result(h.storage.offline.countOffline("dave")) == 0
    h.send(carol, group(room(dialog), mid="6b026913da64a53358000002"))
    assert len([e for e in tb.pop() if e.name == "message"]) == 1
    assert result(h.storage.offline.countOffline("dave")) == 1


def test_privacyInHistory():
    """History on join leaves out the messages of a blocked sender."""
    h, dialog = setUp()
    aid, cid = h.accountId("alice"), h.accountId("carol")
    result(h.storage.messages.createMessage(dialog.id, aid, "from alice", dateSent=1000))
    result(h.storage.messages.createMessage(dialog.id, cid, "from carol", dateSent=1001))
    bob, tb = h.connect("bob")
    block(h, bob, "alice@localhost")
    tb.pop()
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}", "<history maxstanzas='10'/>")
    assert [str(e.body) for e in tb.pop() if e.name == "message" and e.body is not None] == ["from carol"]


def test_joinWithoutNick():
    """Available presence to the bare room JID is jid-malformed; unavailable is ignored."""
    h, dialog = setUp()
    alice, ta = h.connect("alice")
    h.send(alice, f"<presence to='{room(dialog)}'><x xmlns='{MUC}'/></presence>")
    h.send(alice, f"<presence to='{room(dialog)}' type='unavailable'/>")
    [error] = ta.pop()
    assert error.error.firstChildElement().name == "jid-malformed"


def test_limits():
    """max_occupants and max_rooms_per_user refuse further joins."""
    h = HostHarness(muc={"max_occupants": 1, "max_rooms_per_user": 1})
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    other = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    join(h, alice, f"{room(dialog)}/{h.accountId('alice')}")
    join(h, bob, f"{room(dialog)}/{h.accountId('bob')}")
    assert presences(tb)[0].error.firstChildElement().name == "service-unavailable"
    join(h, alice, f"{room(other)}/{h.accountId('alice')}")
    assert [p for p in presences(ta) if p.getAttribute("type") == "error"][0].error.firstChildElement().name == (
        "resource-constraint")


def test_configValidation():
    """[muc] limits must be positive and the default history within the maximum; the switch is a bool."""
    assert buildConfig({}).muc.connectycube_compat is True
    with pytest.raises(ConfigError) as caught:
        buildConfig({"muc": {"max_rooms": 0, "default_history_stanzas": 99, "connectycube_compat": "yes"}})
    text = str(caught.value)
    assert "muc.connectycube_compat" in text
    with pytest.raises(ConfigError) as caught:
        buildConfig({"muc": {"max_rooms": 0, "default_history_stanzas": 99}})
    assert "muc.max_rooms" in str(caught.value) and "muc.default_history_stanzas" in str(caught.value)


def test_twoSessionsOneOccupant():
    """A second session of the same user joins the same occupant; the others see one presence, and it stays until both leave."""
    h, dialog, alice, ta, bob, tb, aid, bid = joinedPair()
    bob2, tb2 = h.connect("bob", resource="second")
    join(h, bob2, f"{room(dialog)}/{bid}")
    got = presences(tb2)
    assert [p["from"] for p in got] == [f"{room(dialog)}/{aid}", f"{room(dialog)}/{bid}"]
    assert presences(ta) == []
    h.send(alice, group(room(dialog)))
    assert len([e for e in tb2.pop() if e.name == "message"]) == 1
    assert len([e for e in tb.pop() if e.name == "message"]) == 1
    bob.stream.connectionLost()
    assert presences(ta) == []
    bob2.stream.connectionLost()
    assert presences(ta)[0]["type"] == "unavailable"


def test_historySinceAndCap():
    """<history since> leaves out older messages; without <history> the default count applies, capped by the maximum."""
    h = HostHarness(muc={"default_history_stanzas": 2, "max_history_stanzas": 3})
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    aid = h.accountId("alice")
    for n in range(5):
        result(h.storage.messages.createMessage(dialog.id, aid, f"m{n}", dateSent=1000 + n))
    bob, tb = h.connect("bob")
    h.send(bob, f"<presence to='{room(dialog)}/{h.accountId('bob')}'><x xmlns='{MUC}'/></presence>")
    assert [str(e.body) for e in tb.pop() if e.name == "message" and e.body is not None] == ["m3", "m4"]
    bob2, tb2 = h.connect("bob", resource="b2")
    join(h, bob2, f"{room(dialog)}/{h.accountId('bob')}", "<history maxstanzas='100'/>")
    assert len([e for e in tb2.pop() if e.name == "message" and e.body is not None]) == 3
    bob3, tb3 = h.connect("bob", resource="b3")
    join(h, bob3, f"{room(dialog)}/{h.accountId('bob')}", "<history since='2999-01-01T00:00:00Z'/>")
    assert [e for e in tb3.pop() if e.name == "message" and e.body is not None] == []


def test_attackMalformedHistoryCounts():
    """
    Security review finding 4: <history maxstanzas='²'/> (str.isdigit says
    yes, int says no) and other scripts' digits are not numbers: ignored,
    the join gets the default history; a huge count is the maximum.
    """
    h = HostHarness(muc={"default_history_stanzas": 2, "max_history_stanzas": 3})
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    aid = h.accountId("alice")
    for n in range(5):
        result(h.storage.messages.createMessage(dialog.id, aid, f"m{n}", dateSent=1000 + n))
    for resource, history, count in (("b1", "maxstanzas='²' maxchars='²' seconds='²'", 2),
                                     ("b2", "maxstanzas='٣'", 2),
                                     ("b3", "maxstanzas='99999999999999999999999'", 3)):
        bob, tb = h.connect("bob", resource=resource)
        join(h, bob, f"{room(dialog)}/{h.accountId('bob')}", f"<history {history}/>")
        got = tb.pop()
        assert not [e for e in got if e.getAttribute("type") == "error"]
        assert len([e for e in got if e.name == "message" and e.body is not None]) == count
