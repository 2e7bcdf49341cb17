"""
Tests for XEP-0045 as stock clients use it (issue 16 item 5): rooms made
by joining a new name keep the asked nicks and are open by default; the
muc#roomconfig round trip with its behaviour; muc#admin lists and
changes (kick, ban, voice, members, admins), for rooms made the XMPP way
and for dialog rooms (the REST rules); destroy; XEP-0410 self-ping; the
affiliations kept in storage across a restart (both backends).
"""

from tests.helpers import HeldRead, HostHarness, result
from xmppchat.host import Host
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PUBLIC, DIALOG_SERVER_EXTENSIONS, Query

BOTH_BACKENDS = True

MUC = "http://jabber.org/protocol/muc"
OWNER = "http://jabber.org/protocol/muc#owner"
ADMIN = "http://jabber.org/protocol/muc#admin"
ROOM = "team@muc.localhost"


def codes(presence):
    return {s["code"] for s in presence.x.elements() if s.name == "status"} if presence.x else set()


def presences(transport):
    return [e for e in transport.pop() if e.name == "presence"]


def reply(transport):
    """The IQ (or error) among what C{transport} got (dialog notices may come with it)."""
    [got] = [e for e in transport.pop() if e.name == "iq" or e.getAttribute("type") == "error"]
    return got


def errorOf(stanza):
    return stanza.error.firstChildElement().name if stanza.error is not None else None


def join(h, session, nick, room=ROOM, password=None, sid="j1"):
    secret = f"<password>{password}</password>" if password is not None else ""
    h.send(session, f"<presence to='{room}/{nick}' id='{sid}'><x xmlns='{MUC}'>"
                    f"<history maxstanzas='0'/>{secret}</x></presence>")


def iq(h, session, kind, ns, payload="", to=ROOM, iqId="q"):
    h.send(session, f"<iq type='{kind}' id='{iqId}' to='{to}'><query xmlns='{ns}'>{payload}</query></iq>")


def form(**values):
    fields = "".join(f"<field var='muc#roomconfig_{k}'><value>{v}</value></field>" for k, v in values.items())
    return (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
            f"<value>http://jabber.org/protocol/muc#roomconfig</value></field>{fields}</x>")


def formValues(reply):
    return {f["var"]: str(f.value) if f.value is not None else "" for f in reply.query.x.elements()
            if f.name == "field"}


def instantRoom(h, **muc):
    """Alice makes the instant room ROOM as 'Alice'; returns (alice, ta)."""
    alice, ta = h.connect("alice")
    join(h, alice, "Alice")
    [me] = presences(ta)
    assert codes(me) >= {"110", "201"}
    iq(h, alice, "set", OWNER, "<x xmlns='jabber:x:data' type='submit'/>")
    assert reply(ta)["type"] == "result"
    return alice, ta


def withBob(h):
    """L{instantRoom} with bob joined as 'Bobby' (what both got drained): (alice, ta, bob, tb)."""
    alice, ta = instantRoom(h)
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby")
    tb.pop(), ta.pop()
    return alice, ta, bob, tb


def test_instantRoomOpenWithOwnNicks(harnessBackend):
    """A second user joins an instant room with the nick he asked for; both see the nicks, no 210."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby")
    got = presences(tb)
    assert [p["from"] for p in got] == [f"{ROOM}/Alice", f"{ROOM}/Bobby"]
    assert "110" in codes(got[1]) and "210" not in codes(got[1])
    assert got[1].x.item["affiliation"] == "none" and got[1].x.item["role"] == "participant"
    [seen] = presences(ta)
    assert seen["from"] == f"{ROOM}/Bobby"
    assert seen.x.item["jid"] == bob.full  # the owner is a moderator: semi-anonymous rooms show him JIDs
    [dialog] = result(h.storage.dialogs.listDialogs(None, Query().where("extensions.muc_room", "eq", "team")))
    assert dialog.type == DIALOG_GROUP and dialog.extensions["muc_membersonly"] == "0"
    h.send(bob, f"<message to='{ROOM}' type='groupchat' id='m1'><body>hello</body></message>")
    [message] = [e for e in ta.pop() if e.name == "message"]
    assert message["from"] == f"{ROOM}/Bobby" and str(message.body) == "hello"


def test_nickConflictAndChange(harnessBackend):
    """A nick held by another user is a conflict; a nick change sends 303 with the new nick, then the new presence."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    bob, tb = h.connect("bob")
    join(h, bob, "Alice")
    [error] = presences(tb)
    assert error["type"] == "error" and errorOf(error) == "conflict"
    join(h, bob, "Bobby")
    tb.pop(), ta.pop()
    h.send(bob, f"<presence to='{ROOM}/Robert'/>")
    gone, back = presences(ta)
    assert gone["type"] == "unavailable" and gone["from"] == f"{ROOM}/Bobby"
    assert "303" in codes(gone) and gone.x.item["nick"] == "Robert"
    assert back["from"] == f"{ROOM}/Robert" and back.getAttribute("type") is None
    mine = presences(tb)
    assert "110" in codes(mine[0]) and "303" in codes(mine[0]) and mine[-1]["from"] == f"{ROOM}/Robert"
    h.send(bob, f"<presence to='{ROOM}/Alice'/>")
    [error] = presences(tb)
    assert errorOf(error) == "conflict"
    assert set(h.host.modules["muc"].rooms[ROOM].occupants) == {"Alice", "Robert"}


def test_nonOccupantGroupchatRefused(harnessBackend):
    """Review finding 1: a user who left sends a groupchat message anyway: §7.4 not-acceptable, nobody gets it."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(bob, f"<presence to='{ROOM}/Bobby' type='unavailable'/>")
    tb.pop(), ta.pop()
    h.send(bob, f"<message to='{ROOM}' type='groupchat' id='m2'><body>not joined</body></message>")
    assert errorOf(reply(tb)) == "not-acceptable"
    assert [e for e in ta.pop() if e.name == "message"] == []


def test_nickOfAnotherAccountIdRefused(harnessBackend):
    """
    Review finding 1: carol joins (or renames herself) as bob's account id, the
    address bob's history shows under once he left: a conflict; her own id is fine.
    """
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(bob, f"<message to='{ROOM}' type='groupchat' id='m1'><body>from bob</body>"
                "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>")
    h.send(bob, f"<presence to='{ROOM}/Bobby' type='unavailable'/>")
    bobId, carolId = h.accountId("bob"), None
    carol, tc = h.connect("carol")
    carolId = h.accountId("carol")
    join(h, carol, str(bobId))
    [error] = presences(tc)
    assert error["type"] == "error" and errorOf(error) == "conflict"
    join(h, carol, "Carol")
    tc.pop()
    h.send(carol, f"<presence to='{ROOM}/{bobId}'/>")
    [error] = presences(tc)
    assert errorOf(error) == "conflict"
    h.send(carol, f"<presence to='{ROOM}/{carolId}'/>")
    assert presences(tc)[-1]["from"] == f"{ROOM}/{carolId}"
    dave, td = h.connect("dave")
    h.send(dave, f"<presence to='{ROOM}/Dave'><x xmlns='{MUC}'><history maxstanzas='20'/></x></presence>")
    history = [e for e in td.pop() if e.name == "message" and e.body is not None]
    assert [m["from"] for m in history] == [f"{ROOM}/{bobId}"]
    assert f"{bobId}" not in h.host.modules["muc"].rooms[ROOM].occupants


def test_bannedCannotRejoinThroughStaleDiscoInfo(harnessBackend):
    """
    Review finding 4b: bob asks for the room's disco#info; while its dialog is
    being read alice bans him; the stale dialog the read returns must not become
    the live room's, so bob's rejoin is still forbidden.
    """
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    read = HeldRead(h.storage.dialogs, "getDialog")
    h.send(bob, f"<iq type='get' id='i' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    assert read.called
    iq(h, alice, "set", ADMIN, f"<item affiliation='outcast' jid='{bob.bare}'/>")
    assert reply(ta)["type"] == "result"
    read.release()
    assert [e for e in tb.pop() if e.getAttribute("id") == "i"][0]["type"] == "result"
    join(h, bob, "Bobby")
    assert errorOf(presences(tb)[0]) == "forbidden"


def test_defaultMembersOnlyOption(harnessBackend):
    """With [muc] room_default_members_only, an instant room refuses a non-member (registration-required)."""
    h = HostHarness(muc={"room_default_members_only": True})
    instantRoom(h)
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby")
    [error] = presences(tb)
    assert errorOf(error) == "registration-required"


def test_configRoundTripAndBehaviour(harnessBackend):
    """Submitted settings read back from the form and take effect: members-only, password, max users, whois, moderated."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    iq(h, alice, "set", OWNER, form(roomname="Team", roomdesc="Plans", membersonly="1", moderatedroom="1",
                                     passwordprotectedroom="1", roomsecret="s3cret", maxusers="2",
                                     whois="anyone", publicroom="0"))
    got = ta.pop()
    assert got[0]["type"] == "result", got[0].toXml()
    iq(h, alice, "get", OWNER)
    values = formValues(reply(ta))
    assert values["muc#roomconfig_roomname"] == "Team" and values["muc#roomconfig_roomdesc"] == "Plans"
    assert values["muc#roomconfig_membersonly"] == "1" and values["muc#roomconfig_moderatedroom"] == "1"
    assert values["muc#roomconfig_roomsecret"] == "s3cret" and values["muc#roomconfig_maxusers"] == "2"
    assert values["muc#roomconfig_whois"] == "anyone" and values["muc#roomconfig_publicroom"] == "0"
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby", password="s3cret")
    assert errorOf(presences(tb)[0]) == "registration-required"
    iq(h, alice, "set", ADMIN, f"<item affiliation='member' jid='{bob.bare}'/>")
    assert reply(ta)["type"] == "result"
    join(h, bob, "Bobby")
    assert errorOf(presences(tb)[0]) == "not-authorized"
    join(h, bob, "Bobby", password="s3cret")
    mine = presences(tb)[-1]
    assert "100" in codes(mine) and mine.x.item["affiliation"] == "member"
    h.send(bob, f"<presence to='{ROOM}/Bobby'><show>away</show></presence>")
    tb.pop()
    carol, tc = h.connect("carol")
    iq(h, alice, "set", ADMIN, f"<item affiliation='member' jid='{carol.bare}'/>")
    ta.pop()
    join(h, carol, "Carol", password="s3cret")
    assert errorOf(presences(tc)[0]) == "service-unavailable"  # max users 2
    tb.pop()
    h.send(bob, f"<iq type='get' id='i' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    [info] = [e for e in tb.pop() if e.name == "iq"]
    features = {f["var"] for f in info.query.elements() if f.name == "feature"}
    assert {"muc_membersonly", "muc_moderated", "muc_passwordprotected", "muc_nonanonymous", "muc_hidden"} <= features
    iq(h, alice, "set", OWNER, form(membersonly="0", moderatedroom="0", passwordprotectedroom="0"))
    ta.pop()
    iq(h, alice, "get", OWNER)
    values = formValues(reply(ta))
    assert values["muc#roomconfig_membersonly"] == "0" and values["muc#roomconfig_roomsecret"] == ""


def test_membersOnlyKicksNonMembers(harnessBackend):
    """§10.2: making an open room members-only lets its non-members go with status 322."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    iq(h, alice, "set", OWNER, form(membersonly="1"))
    [gone] = presences(tb)
    assert gone["type"] == "unavailable" and {"110", "322"} <= codes(gone)
    assert "322" in codes(presences(ta)[0])


def test_badConfigRefused(harnessBackend):
    """A bad value or a password flag without a password is refused, never a silent success."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    iq(h, alice, "set", OWNER, form(maxusers="lots"))
    assert errorOf(reply(ta)) == "not-acceptable"
    iq(h, alice, "set", OWNER, form(passwordprotectedroom="1"))
    assert errorOf(reply(ta)) == "not-acceptable"
    iq(h, alice, "set", OWNER, form(whois="everybody"))
    assert errorOf(reply(ta)) == "not-acceptable"


def test_dialogRoomConfigFollowsDialog(harnessBackend):
    """A dialog room takes its name but refuses a members-only change (not-acceptable); REST keeps the type."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"], name="Group")
    alice, ta = h.connect("alice")
    to = f"1_{dialog.id}@muc.localhost"
    iq(h, alice, "set", OWNER, form(membersonly="0"), to=to)
    assert errorOf(reply(ta)) == "not-acceptable"
    iq(h, alice, "set", OWNER, form(roomname="Renamed", membersonly="1"), to=to)
    assert reply(ta)["type"] == "result"
    assert result(h.storage.dialogs.getDialog(dialog.id)).name == "Renamed"


def test_affiliationListsAndBan(harnessBackend):
    """Member and admin lists set and read back; a ban kicks with 301 and refuses the rejoin; none lifts it."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    iq(h, alice, "set", ADMIN, f"<item affiliation='member' jid='{bob.bare}'/>"
                               f"<item affiliation='admin' jid='{carol.bare}'/>")
    assert reply(ta)["type"] == "result"
    iq(h, alice, "get", ADMIN, "<item affiliation='member'/>")
    got = reply(ta)
    assert [(i["jid"], i["affiliation"]) for i in got.query.elements()] == [(bob.bare, "member")]
    iq(h, alice, "get", ADMIN, "<item affiliation='admin'/>")
    assert [i["jid"] for i in reply(ta).query.elements()] == [carol.bare]
    iq(h, alice, "get", ADMIN, "<item affiliation='owner'/>")
    assert [i["jid"] for i in reply(ta).query.elements()] == [alice.bare]
    join(h, bob, "Bobby")
    tb.pop(), ta.pop()
    iq(h, bob, "get", ADMIN, "<item affiliation='member'/>")
    assert errorOf(reply(tb)) == "forbidden"
    iq(h, carol, "set", ADMIN, f"<item affiliation='outcast' jid='{bob.bare}'><reason>spam</reason></item>")
    assert reply(tc)["type"] == "result"
    [kicked] = presences(tb)
    assert kicked["type"] == "unavailable" and {"110", "301"} <= codes(kicked)
    assert str(kicked.x.item.reason) == "spam"
    [seen] = presences(ta)
    assert "301" in codes(seen) and seen["from"] == f"{ROOM}/Bobby"
    join(h, bob, "Bobby")
    assert errorOf(presences(tb)[0]) == "forbidden"
    iq(h, alice, "get", ADMIN, "<item affiliation='outcast'/>")
    assert [i["jid"] for i in reply(ta).query.elements()] == [bob.bare]
    iq(h, alice, "set", ADMIN, f"<item affiliation='none' jid='{bob.bare}'/>")
    ta.pop()
    join(h, bob, "Bobby")
    assert presences(tb)[-1].getAttribute("type") is None
    iq(h, carol, "set", ADMIN, f"<item affiliation='owner' jid='{carol.bare}'/>")
    assert errorOf(reply(tc)) == "not-allowed"


def test_kickAndVoice(harnessBackend):
    """A moderator kicks (307) and, in a moderated room, gives voice; a visitor's message is refused."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    iq(h, alice, "set", OWNER, form(moderatedroom="1"))
    got = ta.pop()
    assert got[0]["type"] == "result" and got[-1].name == "message"
    assert [c["code"] for c in got[-1].x.elements()] == ["104"]  # §10.2.1
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby")
    assert presences(tb)[-1].x.item["role"] == "visitor"
    ta.pop()
    h.send(bob, f"<message to='{ROOM}' type='groupchat' id='m'><body>hi</body></message>")
    assert errorOf(reply(tb)) == "forbidden"
    iq(h, alice, "set", ADMIN, "<item nick='Bobby' role='participant'/>")
    assert [e.name for e in ta.pop()] == ["presence", "iq"]
    assert presences(tb)[-1].x.item["role"] == "participant"
    iq(h, bob, "set", ADMIN, "<item nick='Alice' role='none'/>")
    assert errorOf(reply(tb)) == "forbidden"
    iq(h, alice, "set", ADMIN, "<item nick='Bobby' role='none'><reason>out</reason></item>")
    [kicked] = presences(tb)
    assert {"110", "307"} <= codes(kicked) and str(kicked.x.item.reason) == "out"
    assert "Bobby" not in h.host.modules["muc"].rooms[ROOM].occupants


def test_subjectChange(harnessBackend):
    """A moderator's subject goes to every occupant and becomes the dialog's description; a participant's is refused."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(alice, f"<message to='{ROOM}' type='groupchat'><subject>News</subject></message>")
    [subject] = [e for e in tb.pop() if e.name == "message"]
    assert subject["from"] == f"{ROOM}/Alice" and str(subject.subject) == "News"
    h.send(bob, f"<message to='{ROOM}' type='groupchat'><subject>Mine</subject></message>")
    assert errorOf(reply(tb)) == "forbidden"
    [dialog] = result(h.storage.dialogs.listDialogs(None, Query().where("extensions.muc_room", "eq", "team")))
    assert dialog.description == "News"


def test_blockedOccupantsSubjectNotDelivered(harnessBackend):
    """XEP-0191: an occupant who blocked the moderator gets neither his presence nor his subject change."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(bob, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>")
    tb.pop()
    h.send(alice, f"<message to='{ROOM}' type='groupchat'><subject>Hidden</subject></message>")
    assert [e for e in tb.pop() if e.name == "message"] == []
    h.send(alice, f"<presence to='{ROOM}/Alicia'/>")
    assert [p for p in presences(tb) if p["from"].startswith(ROOM)] == []


def test_privateMessages(harnessBackend):
    """§7.5: an occupant's chat to room/nick reaches that occupant from the sender's nick; others are refused."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(bob, f"<message to='{ROOM}/Alice' type='chat' id='pm'><body>psst</body></message>")
    [pm] = [e for e in ta.pop() if e.name == "message"]
    assert pm["from"] == f"{ROOM}/Bobby" and pm["to"] == alice.full and str(pm.body) == "psst"
    assert pm.x is not None and pm.x.uri == "http://jabber.org/protocol/muc#user"
    h.send(bob, f"<message to='{ROOM}/Nobody' type='chat' id='pm'><body>?</body></message>")
    assert errorOf(reply(tb)) == "item-not-found"
    carol, tc = h.connect("carol")
    h.send(carol, f"<message to='{ROOM}/Alice' type='chat' id='pm'><body>hi</body></message>")
    assert errorOf(reply(tc)) == "not-acceptable"
    assert [e for e in ta.pop() if e.name == "message"] == []


def test_destroy(harnessBackend):
    """The owner destroys a room: occupants get <destroy> with venue and reason; the dialog is gone; others are refused."""
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    h.send(bob, f"<iq type='set' id='d' to='{ROOM}'><query xmlns='{OWNER}'><destroy/></query></iq>")
    assert errorOf(reply(tb)) == "forbidden"
    h.send(alice, f"<iq type='set' id='d' to='{ROOM}'><query xmlns='{OWNER}'>"
                  "<destroy jid='new@muc.localhost'><reason>Moved</reason></destroy></query></iq>")
    [gone] = presences(tb)
    assert gone["type"] == "unavailable" and gone.x.destroy["jid"] == "new@muc.localhost"
    assert str(gone.x.destroy.reason) == "Moved"
    assert [e.name for e in ta.pop()] == ["presence", "iq"]
    assert result(h.storage.dialogs.listDialogs(None, Query().where("extensions.muc_room", "eq", "team"))) == []
    assert ROOM not in h.host.modules["muc"].rooms


def test_dialogRoomAffiliationsFollowRestRules(harnessBackend):
    """In a dialog room, member/admin map onto occupants/admins with REST's rules; a ban list is refused; nicks stay numeric."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"], admins=["bob"], name="Group")
    to = f"1_{dialog.id}@muc.localhost"
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    join(h, bob, "Bobby", room=to)
    [me] = presences(tb)
    assert me["from"] == f"{to}/{h.accountId('bob')}" and "210" in codes(me)
    iq(h, bob, "set", ADMIN, f"<item affiliation='member' jid='{carol.bare}'/>", to=to)
    assert reply(tb)["type"] == "result"
    assert h.accountId("carol") in result(h.storage.dialogs.getDialog(dialog.id)).occupantIds
    iq(h, bob, "set", ADMIN, f"<item affiliation='admin' jid='{carol.bare}'/>", to=to)
    assert errorOf(reply(tb)) == "forbidden"  # only the owner names admins (REST)
    iq(h, alice, "set", ADMIN, f"<item affiliation='outcast' jid='{carol.bare}'/>", to=to)
    assert errorOf(reply(ta)) == "not-allowed"
    iq(h, alice, "set", ADMIN, f"<item affiliation='none' jid='{bob.bare}'/>", to=to)
    assert reply(ta)["type"] == "result"
    [kicked] = presences(tb)
    assert kicked["type"] == "unavailable" and "321" in codes(kicked)
    assert result(h.storage.dialogs.getDialog(dialog.id)).adminIds == []


def test_publicDialogRoomHasNoMembers(harnessBackend):
    """Making someone a member of a public dialog's room is refused with the REST rule's text."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_PUBLIC, "alice", [], name="Lobby")
    alice, ta = h.connect("alice")
    h.accountId("bob")
    iq(h, alice, "set", ADMIN, "<item affiliation='member' jid='bob@localhost'/>",
       to=f"1_{dialog.id}@muc.localhost")
    assert errorOf(reply(ta)) == "not-allowed"


def test_legacyPublicNamedRoom(harnessBackend):
    """A room made by joining before issue 16 (a public dialog) shows members-only 0 and refuses 1 (not-acceptable)."""
    h = HostHarness()
    h.addDialog(DIALOG_PUBLIC, "alice", [], name="old", extensions={"muc_room": "old"})
    alice, ta = h.connect("alice")
    iq(h, alice, "get", OWNER, to="old@muc.localhost")
    assert formValues(reply(ta))["muc#roomconfig_membersonly"] == "0"
    iq(h, alice, "set", OWNER, form(membersonly="1"), to="old@muc.localhost")
    assert errorOf(reply(ta)) == "not-acceptable"


def test_selfPing(harnessBackend):
    """XEP-0410: a ping to one's own occupant JID is a result while joined, not-acceptable otherwise; an unknown nick is item-not-found."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    h.send(alice, f"<iq type='get' id='p' to='{ROOM}/Alice'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert reply(ta)["type"] == "result"
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='get' id='p' to='{ROOM}/Bobby'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert errorOf(reply(tb)) == "not-acceptable"
    h.send(alice, f"<iq type='get' id='p' to='{ROOM}/Nobody'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert errorOf(reply(ta)) == "item-not-found"


def test_affiliationsSurviveRestart(harnessBackend):
    """Members, admins, outcasts and settings of a persistent room are read back by a restarted server."""
    h = HostHarness()
    alice, ta = instantRoom(h)
    for name in ("bob", "carol", "dave"):
        h.accountId(name)
    iq(h, alice, "set", ADMIN, "<item affiliation='member' jid='bob@localhost'/>"
       "<item affiliation='admin' jid='carol@localhost'/><item affiliation='outcast' jid='dave@localhost'/>")
    iq(h, alice, "set", OWNER, form(membersonly="1"))
    ta.pop()
    # what a real start does to extension keys (xmppchat.storage.startStorage): the room's are kept
    result(h.storage.dialogs.configureExtensions(h.config.dialogs.extension_fields, DIALOG_SERVER_EXTENSIONS))
    h.host = Host(h.config, h.storage, h.clock)
    h.host.loadModules(None)
    alice, ta = h.connect("alice")
    for affiliation, expected in (("member", "bob"), ("admin", "carol"), ("outcast", "dave")):
        iq(h, alice, "get", ADMIN, f"<item affiliation='{affiliation}'/>")
        got = reply(ta)
        assert [i["jid"] for i in got.query.elements()] == [f"{expected}@localhost"], got.toXml()
    iq(h, alice, "get", OWNER)
    assert formValues(reply(ta))["muc#roomconfig_membersonly"] == "1"


def test_attackReasonsForNonOccupantsNotKept():
    """
    Security review finding 1: an owner bans and unbans many users who are
    not in the room, each with a 200 KB reason.  The service keeps none of
    it, and the reason an occupant is kicked with is cut to MAX_REASON.
    """
    h = HostHarness()
    alice, ta, bob, tb = withBob(h)
    big = "x" * 200000
    for i in range(20):
        h.accountId(f"u{i}")
        for affiliation in ("member", "none"):
            iq(h, alice, "set", ADMIN, f"<item affiliation='{affiliation}' jid='u{i}@localhost'>"
                                       f"<reason>{big}</reason></item>")
            assert reply(ta)["type"] == "result"
    muc = h.host.modules["muc"]
    assert not getattr(muc, "reasons", None)
    from xmppchat.muc.admin import MAX_REASON

    iq(h, alice, "set", ADMIN, f"<item affiliation='outcast' jid='{bob.bare}'><reason>{big}</reason></item>")
    [kicked] = presences(tb)
    assert {"110", "301"} <= codes(kicked) and str(kicked.x.item.reason) == "x" * MAX_REASON
    assert not getattr(muc, "reasons", None)


def test_attackMalformedMaxUsers(harnessBackend):
    """
    Security review finding 4: muc#roomconfig_maxusers '²' (str.isdigit
    says yes, int says no), other scripts' digits or a huge number are
    not-acceptable, not an internal-server-error.
    """
    h = HostHarness()
    alice, ta = instantRoom(h)
    for value in ("²", "٣", "99999999999999999999999"):
        iq(h, alice, "set", OWNER, form(maxusers=value))
        assert errorOf(reply(ta)) == "not-acceptable"
    iq(h, alice, "set", OWNER, form(maxusers="7"))
    assert reply(ta)["type"] == "result"


def test_attackPrivateMessagesKeepPrivacySettings(harnessBackend):
    """
    Security review finding 5: alice hides typing and read receipts; her
    chat states and read markers sent as room private messages (§7.5) do
    not reach bob, as for direct messages; what else is in the message
    still does.  A client-made XEP-0359 <stanza-id/> is not relayed.
    """
    h = HostHarness()
    account = h.addUser("alice")
    result(h.storage.accounts.updateAccount(account.id, profile={"privacy_settings": {
        "typing_indicators": {"enabled": False}, "read_receipts": {"enabled": False}}}))
    alice, ta, bob, tb = withBob(h)
    states = "http://jabber.org/protocol/chatstates"
    markers = "urn:xmpp:chat-markers:0"
    h.send(alice, f"<message to='{ROOM}/Bobby' type='chat'><composing xmlns='{states}'/></message>")
    h.send(alice, f"<message to='{ROOM}/Bobby' type='chat'><displayed xmlns='{markers}' id='m1'/></message>")
    assert tb.pop() == []
    h.send(alice, f"<message to='{ROOM}/Bobby' type='chat'><body>hi</body><active xmlns='{states}'/>"
                  f"<displayed xmlns='{markers}' id='m1'/>"
                  f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='forged'/></message>")
    [got] = tb.pop()
    assert str(got.body) == "hi" and got["from"] == f"{ROOM}/Alice"
    assert {(c.uri, c.name) for c in got.elements()} == {("jabber:client", "body"),
                                                         ("http://jabber.org/protocol/muc#user", "x")}
    h.send(bob, f"<message to='{ROOM}/Alice' type='chat'><composing xmlns='{states}'/></message>")
    [got] = ta.pop()
    assert got.composing is not None
