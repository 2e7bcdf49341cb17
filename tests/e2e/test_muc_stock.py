"""
Real-client tests of XEP-0045 as stock clients use it (issue 16 item 5):
slixmpp clients (xep_0045) against a real xmppchat server over loopback.
Rooms made by joining a new name keep the asked nicks and are open by
default; affiliation lists round trip and members-only admission
follows them; the room configuration round trip changes behaviour; the
owner destroys a room; dialog rooms keep numeric nicks.
"""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError, PresenceError

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_chat import within
from tests.e2e.test_muc import MUC, groupDialog, mucClient, restUsers, statusCodes
from tests.e2e.test_slixmpp import run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("mucstock"))
    yield running
    stopServer(running)


@pytest.fixture(scope="module")
def users(server):
    return restUsers(server, ("owner", "member", "third"), prefix="stock-")


async def instant(client, room, nick):
    """Join C{room} as C{nick} and make it an instant room (§10.1.2)."""
    muc = client.plugin["xep_0045"]
    joined = await within(muc.join_muc_wait(room, nick, maxstanzas=0))
    assert 201 in statusCodes(joined[0])
    await within(muc.set_room_config(room, client.plugin["xep_0004"].make_form(ftype="submit")))
    return joined


def withOwner(server, users, guest, room, body, disco=False):
    """
    Run C{await body(owner, guest)} with both logged in (clients of the
    users named) and C{room} made an instant room by the owner ("Boss").
    """

    async def scenario():
        owner, other = mucClient(server, users, "owner"), mucClient(server, users, guest)
        if disco:
            owner.register_plugin("xep_0030")
        assert await owner.login() and await other.login()
        await instant(owner, room, "Boss")
        await body(owner, other)
        await owner.logout()
        await other.logout()

    run(scenario())


def bare(users, name):
    return f"{users[name][1]}-1@localhost"


def test_instantRoomSecondUserOwnNick(server, users):
    """An instant room is open: a second user joins with his own nick, both see the nicks, the nick changes, self-ping answers."""

    room = f"open-lobby@{MUC}"

    async def body(owner, member):
        joined = await within(member.plugin["xep_0045"].join_muc_wait(room, "Mimi", maxstanzas=0))
        me = joined[0]
        assert me["from"] == f"{room}/Mimi" and 110 in statusCodes(me) and 210 not in statusCodes(me)
        assert "Boss" in {p["from"].resource for p in joined[2]}
        assert set(member.plugin["xep_0045"].get_roster(room)) == {"Boss", "Mimi"}
        member.send_message(mto=room, mbody="hi from Mimi", mtype="groupchat")
        got = await within(owner.messages.get())
        while got["body"] != "hi from Mimi":
            got = await within(owner.messages.get())
        assert got["from"] == f"{room}/Mimi"
        assert await within(member.plugin["xep_0045"].set_self_nick(room, "Mia")) == "Mia"
        member.register_plugin("xep_0199")  # XEP-0410 self-ping, as Conversations sends it
        await within(member.plugin["xep_0199"].send_ping(f"{room}/Mia", timeout=10))
        with pytest.raises(IqError) as gone:
            await within(member.plugin["xep_0199"].send_ping(f"{room}/Mimi", timeout=10))
        assert gone.value.condition == "item-not-found"

    withOwner(server, users, "member", room, body)


def test_affiliationListsAndMembersOnly(server, users):
    """Member and admin lists are set and read back; a members-only room refuses a non-member, then admits him."""

    room = f"closed-club@{MUC}"

    async def body(owner, third):
        muc = owner.plugin["xep_0045"]
        form = owner.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="muc#roomconfig_membersonly", value=True)
        await within(muc.set_room_config(room, form))
        with pytest.raises(PresenceError) as refused:
            await within(third.plugin["xep_0045"].join_muc_wait(room, "Trio", maxstanzas=0))
        assert refused.value.condition == "registration-required"
        await within(muc.set_affiliation(room, "member", jid=bare(users, "third")))
        await within(muc.set_affiliation(room, "admin", jid=bare(users, "member")))
        members = await within(muc.get_affiliation_list(room, "member"))
        admins = await within(muc.get_affiliation_list(room, "admin"))
        assert [str(j) for j in members] == [bare(users, "third")]
        assert [str(j) for j in admins] == [bare(users, "member")]
        joined = await within(third.plugin["xep_0045"].join_muc_wait(room, "Trio", maxstanzas=0))
        assert joined[0]["muc"]["affiliation"] == "member" and joined[0]["from"].resource == "Trio"

    withOwner(server, users, "third", room, body)


def test_configRoundTrip(server, users):
    """Submitted settings read back from the form, show in disco#info and take effect (moderated: visitors)."""

    room = f"config-room@{MUC}"

    async def body(owner, third):
        muc = owner.plugin["xep_0045"]
        values = {"muc#roomconfig_roomname": "Config Room", "muc#roomconfig_roomdesc": "About config",
                  "muc#roomconfig_moderatedroom": True, "muc#roomconfig_whois": "anyone",
                  "muc#roomconfig_maxusers": "10", "muc#roomconfig_publicroom": False}
        form = owner.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in values.items():
            form.add_field(var=var, value=value)
        await within(muc.set_room_config(room, form))
        again = (await within(muc.get_room_config(room))).get_values()
        for var, value in values.items():
            assert again[var] == value, (var, again[var])
        info = await within(owner.plugin["xep_0030"].get_info(jid=room))
        features = set(info["disco_info"]["features"])
        assert {"muc_moderated", "muc_nonanonymous", "muc_hidden", "muc_open"} <= features
        joined = await within(third.plugin["xep_0045"].join_muc_wait(room, "Trio", maxstanzas=0))
        assert joined[0]["muc"]["role"] == "visitor"

    withOwner(server, users, "third", room, body, disco=True)


def test_destroy(server, users):
    """The owner destroys a room; the occupant gets the destroy notice with the reason and venue."""

    room = f"doomed@{MUC}"

    async def body(owner, member):
        await within(member.plugin["xep_0045"].join_muc_wait(room, "Mimi", maxstanzas=0))
        with pytest.raises(IqError) as refused:
            await within(member.plugin["xep_0045"].destroy(room, "not mine"))
        assert refused.value.condition == "forbidden"
        member.presences.clear()
        await within(owner.plugin["xep_0045"].destroy(room, "Moved on", altroom=f"elsewhere@{MUC}"))
        for _ in range(50):
            gone = [p for p in member.presences if p["type"] == "unavailable"]
            if gone:
                break
            await __import__("asyncio").sleep(0.1)
        destroy = gone[0].xml.find("{http://jabber.org/protocol/muc#user}x/"
                                   "{http://jabber.org/protocol/muc#user}destroy")
        assert destroy is not None and destroy.get("jid") == f"elsewhere@{MUC}"
        assert destroy.findtext("{http://jabber.org/protocol/muc#user}reason") == "Moved on"

    withOwner(server, users, "member", room, body)


def test_dialogRoomKeepsNumericNicks(server, users):
    """A ConnectyCube dialog room still gives the account id as the nick (210), whatever was asked."""

    async def scenario():
        _, room = groupDialog(server, users, ["member"], name="SDK room")
        member = mucClient(server, users, "member")
        assert await member.login()
        joined = await within(member.plugin["xep_0045"].join_muc_wait(room, "Fancy", maxstanzas=0))
        assert joined[0]["from"].resource == str(member.userId) and 210 in statusCodes(joined[0])
        await member.logout()

    run(scenario())


def test_nonOccupantAndAccountIdNickRefused(server, users):
    """
    Review finding 1: in a room made by joining, a user who is not in it sends
    a groupchat message (not-acceptable, §7.4) and then tries to join with the
    owner's account id as his nick, the address a departed sender shows under
    (conflict).
    """

    room = f"guarded@{MUC}"

    async def body(owner, third):
        errors = asyncio.Queue()
        third.add_event_handler("message_error", errors.put_nowait)
        third.send_message(mto=room, mbody="not joined", mtype="groupchat")
        error = await within(errors.get())
        assert error["error"]["condition"] == "not-acceptable"
        with pytest.raises(PresenceError) as refused:
            await within(third.plugin["xep_0045"].join_muc_wait(room, str(users["owner"][1]), maxstanzas=0))
        assert refused.value.condition == "conflict"
        joined = await within(third.plugin["xep_0045"].join_muc_wait(room, str(users["third"][1]), maxstanzas=0))
        assert joined[0]["from"].resource == str(users["third"][1])

    withOwner(server, users, "third", room, body)
