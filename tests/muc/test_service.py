"""
Tests for the MUC component (xmppchat.muc.service): room addressing,
events, defaults and disco#info.
"""

from tests.helpers import HostHarness
from xmppchat.muc.service import parseRoom, roomJID
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC

DISCO = "http://jabber.org/protocol/disco#info"


def test_parseRoom():
    """Room localparts are <appId>_<24-hex dialog id>; anything else is not a room."""
    assert parseRoom("12_6B026913DA64A53358000000") == (12, "6b026913da64a53358000000")
    for bad in (None, "", "lobby", "1_xyz", "a_6b026913da64a53358000000", "1_6b026913da64a5335800000"):
        assert parseRoom(bad) is None
    assert roomJID(3, "ab" * 12, "muc.example") == f"3_{'ab' * 12}@muc.example"


def test_registeredAndUnloaded():
    """The muc module registers the component for muc_domain and removes it on unload."""
    h = HostHarness()
    assert "muc.localhost" in h.host.components
    h.host.unloadModules()
    assert "muc.localhost" not in h.host.components


def test_serviceAndRoomDisco():
    """disco#info answers the service and existing rooms (with MAM); private dialogs and unknown rooms are item-not-found."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"], name="Team")
    pair = h.addDialog(DIALOG_PRIVATE, "alice", ["carol"])
    alice, ta = h.connect("alice")
    for to in ("muc.localhost", f"1_{dialog.id}@muc.localhost", f"1_{pair.id}@muc.localhost"):
        h.send(alice, f"<iq type='get' to='{to}' id='d'><query xmlns='{DISCO}'/></iq>")
    service, room, private = ta.pop()
    assert service.query.identity["category"] == "conference"
    assert room["type"] == "result" and room.query.identity["name"] == "Team"
    features = {f["var"] for f in room.query.elements() if f.name == "feature"}
    assert {"http://jabber.org/protocol/muc", "urn:xmpp:mam:2", "muc_membersonly"} <= features
    assert private.error.firstChildElement().name == "item-not-found"


def test_defaults():
    """Unhandled IQs get service-unavailable, errors are never answered."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    h.send(alice, f"<iq type='get' to='1_{dialog.id}@muc.localhost' id='v'><query xmlns='jabber:iq:version'/></iq>")
    h.send(alice, f"<message to='1_{dialog.id}@muc.localhost/5' type='error' id='e'/>")
    [iq] = ta.pop()
    assert iq.error.firstChildElement().name == "service-unavailable"


def test_hiddenRoomInfoToStranger():
    """A stranger who knows a members-only dialog's id learns neither its name nor that it exists (issue 15 finding 11)."""
    h = HostHarness()
    secret = h.addDialog(DIALOG_GROUP, "alice", ["bob"], name="Layoffs 2027")
    lobby = h.addDialog(DIALOG_PUBLIC, "alice", [], name="Lobby")
    mallory, tm = h.connect("mallory")
    for query in ("disco#info", "disco#items"):
        for dialogId in (secret.id, "0" * 24):
            h.send(mallory, f"<iq type='get' to='1_{dialogId}@muc.localhost' id='{query}'>"
                            f"<query xmlns='http://jabber.org/protocol/{query}'/></iq>")
    replies = tm.pop()
    assert [r["type"] for r in replies] == ["error"] * 4
    assert {r.error.firstChildElement().name for r in replies} == {"item-not-found"}
    assert "Layoffs" not in "".join(r.toXml() for r in replies)
    assert replies[0].error.toXml() == replies[1].error.toXml()  # same as no room at all
    h.send(mallory, f"<iq type='get' to='1_{lobby.id}@muc.localhost' id='p'><query xmlns='{DISCO}'/></iq>")
    [public] = tm.pop()
    assert public.query.identity["name"] == "Lobby"
    assert "muc_public" in {f["var"] for f in public.query.elements() if f.name == "feature"}
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='get' to='1_{secret.id}@muc.localhost' id='m'><query xmlns='{DISCO}'/></iq>")
    [member] = tb.pop()
    assert member.query.identity["name"] == "Layoffs 2027"
    features = {f["var"] for f in member.query.elements() if f.name == "feature"}
    assert "muc_hidden" in features and "muc_public" not in features
