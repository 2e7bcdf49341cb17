"""
Real-client tests of XEP-0045 rooms: slixmpp clients with the xep_0045
plugin talk to a real xmppchat server over loopback (with the ConnectyCube
compatibility switch on, the default).  Users and dialogs are made over
REST; the clients log in as C{<id>-1} with their session token.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_chat import nextEvent, within
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import Client, run

MUC = "muc.localhost"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("muc"))
    yield running
    stopServer(running)


@pytest.fixture(scope="module")
def users(server):
    """Four REST users: name -> (session token, id)."""
    return restUsers(server, ("owner", "member", "third", "fourth"))


def restUsers(server, names, prefix="muc-"):
    """REST users C{<prefix><name>} made through C{server}: name -> (session token, id)."""
    status, body = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, body
    app = body["session"]["token"]
    out = {}
    for name in names:
        login, password = f"{prefix}{name}", f"{name}-pw-123"
        status, body = call(server, "POST", "/users.json", {"user": {"login": login, "password": password}},
                            token=app)
        assert status == 201, body
        status, body = call(server, "POST", "/session.json", {
            "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": login, "password": password}})
        assert status == 201, body
        out[name] = (body["session"]["token"], body["session"]["user_id"])
    return out


def mucClient(server, users, name):
    token, userId = users[name]
    c = Client(server, f"{userId}-1@localhost", token)
    c.register_plugin("xep_0045")
    c.register_plugin("xep_0004")
    c.register_plugin("xep_0191")
    c.userId = userId
    c.presences = []
    c.add_event_handler("groupchat_presence", lambda p: c.presences.append(p))
    return c


def groupDialog(server, users, occupants, name="Room"):
    token, _ = users["owner"]
    status, body = call(server, "POST", "/chat/Dialog.json", {
        "type": 2, "name": name, "occupants_ids": [users[o][1] for o in occupants]}, token=token)
    assert status == 201, body
    return body["_id"], f"1_{body['_id']}@{MUC}"


async def noMessage(c, seconds=1.0):
    """Nothing arrives in C{c.messages} for a while."""
    try:
        got = await asyncio.wait_for(c.messages.get(), seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"unexpected message {got}")


def statusCodes(presence):
    return set(presence["muc"]["status_codes"])


def test_joinMessageLeave(server, users):
    """Join (self-presence last, 110), a room message reaches joined and non-joined occupants once, leave."""
    _, room = groupDialog(server, users, ["member", "third"])

    async def scenario():
        owner, member, third = (mucClient(server, users, n) for n in ("owner", "member", "third"))
        for c in (owner, member, third):
            assert await c.login()
        muc = owner.plugin["xep_0045"]
        joined = await within(muc.join_muc_wait(room, str(owner.userId), maxstanzas=0))
        assert 110 in statusCodes(joined[0]) and joined[0]["muc"]["affiliation"] == "owner"
        member.presences.clear()
        joined = await within(member.plugin["xep_0045"].join_muc_wait(room, str(member.userId), maxstanzas=0))
        fromRoom = [p for p in member.presences if p["from"].bare == room]
        assert [str(p["from"].resource) for p in fromRoom] == [str(owner.userId), str(member.userId)]
        assert 110 in statusCodes(fromRoom[-1]) and 110 not in statusCodes(fromRoom[0])
        assert str(owner.userId) in {str(p["from"].resource) for p in joined[2]}
        online = nextEvent(owner, f"muc::{room}::got_offline")
        owner.send_message(mto=room, mbody="hello room", mtype="groupchat")
        for c in (owner, member, third):
            got = await within(c.messages.get())
            assert got["body"] == "hello room" and got["from"] == f"{room}/{owner.userId}"
        await noMessage(member, 0.5)
        member.plugin["xep_0045"].leave_muc(room, str(member.userId))
        gone = await within(online)
        assert gone["from"] == f"{room}/{member.userId}" and gone["type"] == "unavailable"
        for c in (owner, member, third):
            await c.logout()

    run(scenario())


def test_kickOverRest(server, users):
    """Removing a joined occupant over REST kicks them: unavailable with 307 to them and to the others."""
    dialogId, room = groupDialog(server, users, ["member", "third"])

    async def scenario():
        owner, third = mucClient(server, users, "owner"), mucClient(server, users, "third")
        assert await owner.login() and await third.login()
        await within(owner.plugin["xep_0045"].join_muc_wait(room, str(owner.userId), maxstanzas=0))
        await within(third.plugin["xep_0045"].join_muc_wait(room, str(third.userId), maxstanzas=0))
        kicked = nextEvent(third, f"muc::{room}::presence")
        seen = nextEvent(owner, f"muc::{room}::got_offline")
        status, body = call(server, "PUT", f"/chat/Dialog/{dialogId}.json",
                            {"pull_all": {"occupants_ids": [third.userId]}}, token=users["owner"][0])
        assert status == 200, body
        got = await within(kicked)
        assert got["type"] == "unavailable" and {307, 110} <= statusCodes(got)
        other = await within(seen)
        assert 307 in statusCodes(other) and other["from"] == f"{room}/{third.userId}"
        await owner.logout()
        await third.logout()

    run(scenario())


def test_instantAndReservedRooms(server, users):
    """Joining unknown names creates rooms (201); an instant and a reserved room become group dialogs over REST."""

    async def scenario():
        owner = mucClient(server, users, "owner")
        assert await owner.login()
        muc = owner.plugin["xep_0045"]
        instant, reserved = f"lobby@{MUC}", f"studio@{MUC}"
        joined = await within(muc.join_muc_wait(instant, str(owner.userId), maxstanzas=0))
        assert {110, 201} <= statusCodes(joined[0])
        await within(muc.set_room_config(instant, owner.plugin["xep_0004"].make_form(ftype="submit")))
        joined = await within(muc.join_muc_wait(reserved, str(owner.userId), maxstanzas=0))
        assert 201 in statusCodes(joined[0])
        form = await within(muc.get_room_config(reserved))
        values = {"muc#roomconfig_roomname": "Studio", "muc#roomconfig_roomdesc": "Recording",
                  "muc#roomconfig_persistentroom": True, "muc#roomconfig_membersonly": True}
        submit = owner.plugin["xep_0004"].make_form(ftype="submit")
        offered = {f["var"] for f in form.get_fields().values()}
        assert set(values) <= offered
        for var, value in values.items():
            submit.add_field(var=var, value=value)
        subject = nextEvent(owner, f"muc::{reserved}::groupchat_subject")
        await within(muc.set_room_config(reserved, submit))
        assert (await within(subject))["subject"] == "Recording"
        owner.send_message(mto=reserved, mbody="in the studio", mtype="groupchat")
        got = await within(owner.messages.get())
        while got["body"] != "in the studio":
            got = await within(owner.messages.get())
        assert got["from"] == f"{reserved}/{owner.userId}"
        await owner.logout()

    run(scenario())
    status, body = call(server, "GET", "/chat/Dialog.json", token=users["owner"][0])
    assert status == 200, body
    byName = {d["name"]: d for d in body["items"]}
    assert byName["lobby"]["type"] == 2 and byName["Studio"]["type"] == 2
    assert byName["Studio"]["description"] == "Recording"


def test_blockedSenderInGroup(server, users):
    """A receiver who blocked the sender gets nothing of theirs in a group; a third user does; no error."""
    _, room = groupDialog(server, users, ["member", "third", "fourth"])

    async def scenario():
        owner, member, third = (mucClient(server, users, n) for n in ("owner", "member", "third"))
        for c in (owner, member, third):
            assert await c.login()
        await within(member.plugin["xep_0191"].block([f"{owner.userId}-1@localhost"]))
        errors = []
        owner.add_event_handler("message_error", errors.append)
        owner.send_message(mto=room, mbody="from the owner", mtype="groupchat")
        got = await within(third.messages.get())
        assert got["body"] == "from the owner"
        reflected = await within(owner.messages.get())
        assert reflected["body"] == "from the owner"
        await noMessage(member)
        third.send_message(mto=room, mbody="from the third", mtype="groupchat")
        got = await within(member.messages.get())
        assert got["body"] == "from the third"
        assert errors == []
        await within(member.plugin["xep_0191"].unblock([f"{owner.userId}-1@localhost"]))
        for c in (owner, member, third):
            await c.logout()

    run(scenario())
