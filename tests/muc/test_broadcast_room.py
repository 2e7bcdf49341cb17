"""
Issue 17 item 5 over XMPP: a broadcast dialog's room is open to every user
of the application, read-only (XEP-0045 visitors, §5.1), semi-anonymous
and moderated; a group dialog's room stays members-only.
"""

from __future__ import annotations

from tests.helpers import HostHarness, result
from tests.muc.test_room import group, join, presences, room
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP

INFO = "http://jabber.org/protocol/disco#info"


def test_anyUserJoinsBroadcastAsVisitor():
    """A user who is not an occupant joins a broadcast room (was registration-required) as a visitor."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_BROADCAST, "alice", admins=["bob"])
    result(h.storage.messages.createMessage(dialog.id, h.accountId("alice"), "news", dateSent=1000))
    alice, ta = h.connect("alice")
    join(h, alice, f"{room(dialog)}/{h.accountId('alice')}")
    ta.pop()
    dave, td = h.connect("dave")
    join(h, dave, f"{room(dialog)}/{h.accountId('dave')}", "<history maxstanzas='5'/>")
    got = td.pop()
    [me] = [e for e in got if e.name == "presence" and e["from"].endswith(f"/{h.accountId('dave')}")]
    assert me.getAttribute("type") is None, me.toXml()
    assert me.x.item["role"] == "visitor" and me.x.item["affiliation"] == "none"
    assert [str(m.body) for m in got if m.name == "message" and m.body is not None] == ["news"]
    [owner] = [e for e in got if e.name == "presence" and e is not me]
    assert owner.x.item.getAttribute("jid") is None  # semi-anonymous: JIDs to moderators only
    [seen] = presences(ta)
    assert seen.x.item["jid"] == dave.full  # the owner, a moderator, sees it


def test_visitorMayNotPost():
    """A visitor's groupchat message is forbidden and reaches nobody; the admin's goes out."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_BROADCAST, "alice", admins=["bob"])
    dave, td = h.connect("dave")
    join(h, dave, f"{room(dialog)}/{h.accountId('dave')}")
    td.pop()
    h.send(dave, group(room(dialog), "spam"))
    [error] = td.pop()
    assert error["type"] == "error" and error.error.firstChildElement().name == "forbidden"
    assert result(h.storage.messages.countMessages(dialog.id)) == 0
    bob, tb = h.connect("bob")
    h.send(bob, group(room(dialog), "official", mid="6b026913da64a53358000002"))
    assert [str(m.body) for m in td.pop() if m.name == "message"] == ["official"]


def test_broadcastRoomInfo():
    """disco#info of a broadcast room answers every user: open, public, semi-anonymous, moderated."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_BROADCAST, "alice", name="News")
    dave, td = h.connect("dave")
    h.send(dave, f"<iq type='get' id='i1' to='{room(dialog)}'><query xmlns='{INFO}'/></iq>")
    [reply] = td.pop()
    assert reply["type"] == "result", reply.toXml()
    features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
    assert {"muc_open", "muc_public", "muc_semianonymous", "muc_moderated"} <= features


def test_groupRoomStaysMembersOnly():
    """A group dialog's room still refuses a user who is not an occupant."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    dave, td = h.connect("dave")
    join(h, dave, f"{room(dialog)}/{h.accountId('dave')}")
    assert presences(td)[0].error.firstChildElement().name == "registration-required"
