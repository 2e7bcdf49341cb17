"""
Real-client tests of dialog messaging: slixmpp clients talk to a real
xmppchat server over loopback -- dialog messages with extraParams (private
and group, without joining the room), markers persisting read state,
corrections (XEP-0308), retractions (XEP-0424) and MAM paging (XEP-0313).
Dialogs are created directly in the server's SQLite file.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_chat import client, nextEvent, within
from tests.e2e.test_slixmpp import TIMEOUT, run
from tests.helpers import result
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE
from xmppchat.storage.sqlite import SQLiteStorage


class Database:
    """The server's SQLite file, opened from the test process."""

    def __init__(self, path):
        self.storage = SQLiteStorage(str(path), synchronous=True)
        result(self.storage.start())

    def id(self, localpart):
        return result(self.storage.accounts.getAccountByLocalpart(localpart)).id

    def dialog(self, type, owner, occupants):
        return result(self.storage.dialogs.createDialog(
            type, self.id(owner), occupantIds=[self.id(o) for o in occupants]))

    def message(self, messageId):
        return result(self.storage.messages.getMessage(messageId))

    def unread(self, localpart, dialog):
        return result(self.storage.messages.unreadCounts(self.id(localpart), [dialog.id]))[dialog.id]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("dialogs"))
    for name in ("alice", "bob", "carol"):
        running.adduser(name, f"{name}-pw")
    yield running
    stopServer(running)


@pytest.fixture(scope="module")
def db(server):
    database = Database(server.directory / "data" / "db.sqlite3")
    yield database
    result(database.storage.stop())


def withParams(message, dialog, save=True, **extra):
    params = ET.Element("{jabber:client}extraParams")
    if save:
        ET.SubElement(params, "{jabber:client}save_to_history").text = "1"
    ET.SubElement(params, "{jabber:client}dialog_id").text = dialog.id
    for key, value in extra.items():
        ET.SubElement(params, "{jabber:client}" + key).text = value
    message.append(params)
    return message


def param(message, name):
    element = message.xml.find("{jabber:client}extraParams/{jabber:client}" + name)
    return None if element is None else element.text


async def eventually(check):
    for _ in range(100):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def ids(n, prefix="e2e"):
    tag = prefix.encode().hex().ljust(12, "0")[:12]
    return [f"6b0269{tag}{i:06x}" for i in range(n)]


def test_privateAndGroupMessages(server, db):
    """A 1-1 dialog message and a groupchat to the room JID (no join) arrive stamped and are stored."""
    private = db.dialog(DIALOG_PRIVATE, "alice", ["bob"])
    group = db.dialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    room = f"1_{group.id}@muc.localhost"
    mid, gid = ids(2, "p1")

    async def scenario():
        alice = client(server, "alice")
        bob = client(server, "bob")
        assert await alice.login() and await bob.login()
        message = alice.make_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
        message["id"] = mid
        withParams(message, private, note="custom").send()
        got = await within(bob.messages.get())
        assert got["id"] == mid and got["body"] == "hello bob" and got["from"] == alice.boundjid
        assert param(got, "dialog_id") == private.id and param(got, "date_sent").isdigit()
        sid = got.xml.find("{urn:xmpp:sid:0}stanza-id")
        assert sid.get("by") == "bob@localhost" and sid.get("id") == mid
        message = alice.make_message(mto=room, mbody="hello group", mtype="groupchat")
        message["id"] = gid
        withParams(message, group).send()
        got = await within(bob.messages.get())
        reflected = await within(alice.messages.get())
        for m in (got, reflected):
            assert m["type"] == "groupchat" and str(m["from"]) == f"{room}/{db.id('alice')}"
            assert m["body"] == "hello group"
        await alice.logout()
        await bob.logout()

    run(scenario())
    stored = db.message(mid)
    assert stored.body == "hello bob" and stored.custom == {"note": "custom"}
    assert db.message(gid).dialogId == group.id
    assert db.unread("carol", group) == 1


def test_markersPersist(server, db):
    """Bob's XEP-0333 displayed marker reaches alice and his unread count in the dialog drops to zero."""
    private = result(db.storage.dialogs.findPrivateDialog(db.id("alice"), db.id("bob"))) or \
        db.dialog(DIALOG_PRIVATE, "alice", ["bob"])
    first, second = ids(2, "m1")

    async def scenario():
        alice = client(server, "alice", "xep_0333")
        bob = client(server, "bob", "xep_0333")
        assert await alice.login() and await bob.login()
        for mid in (first, second):
            message = alice.make_message(mto="bob@localhost", mbody=mid, mtype="chat")
            message["id"] = mid
            withParams(message, private).send()
            await within(bob.messages.get())
        assert db.unread("bob", private) >= 2
        displayed = nextEvent(alice, "marker_displayed")
        bob.plugin["xep_0333"].send_marker(mto="alice@localhost", id=second, marker="displayed", mtype="chat")
        assert (await within(displayed))["displayed"]["id"] == second
        assert await eventually(lambda: db.unread("bob", private) == 0)
        assert db.id("bob") in db.message(first).readIds
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_correctionAndRetraction(server, db):
    """XEP-0308 corrects the stored body; XEP-0424 retraction deletes it; bob's attempt is refused."""
    group = db.dialog(DIALOG_GROUP, "alice", ["bob"])
    room = f"1_{group.id}@muc.localhost"
    mid, = ids(1, "c1")

    async def scenario():
        alice = client(server, "alice", "xep_0308", "xep_0424")
        bob = client(server, "bob", "xep_0308", "xep_0424")
        assert await alice.login() and await bob.login()
        message = alice.make_message(mto=room, mbody="tpyo", mtype="groupchat")
        message["id"] = mid
        withParams(message, group).send()
        await within(bob.messages.get())
        await within(alice.messages.get())
        correction = alice.plugin["xep_0308"].build_correction(mid, room, mbody="typo", mtype="groupchat")
        correction.send()
        got = await within(bob.messages.get())
        assert got["replace"]["id"] == mid and got["body"] == "typo"
        assert await eventually(lambda: db.message(mid).body == "typo" and db.message(mid).edited)
        await within(alice.messages.get())
        failed = nextEvent(bob, "message_error")
        bob.plugin["xep_0424"].send_retraction(room, mid, mtype="groupchat")
        assert (await within(failed))["error"]["condition"] == "forbidden"
        alice.plugin["xep_0424"].send_retraction(room, mid, mtype="groupchat")
        got = await within(bob.messages.get())
        assert got["retract"]["id"] == mid
        assert await eventually(lambda: db.message(mid) is None)
        await alice.logout()
        await bob.logout()

    run(scenario())
    assert db.unread("bob", group) == 0


def test_mamPaging(server, db):
    """MAM with RSM pages a group dialog's history in order, queried on the room JID."""
    group = db.dialog(DIALOG_GROUP, "alice", ["carol"])
    room = f"1_{group.id}@muc.localhost"
    sent = ids(5, "a1")

    async def scenario():
        alice = client(server, "alice")
        carol = client(server, "carol", "xep_0313", "xep_0059")
        assert await alice.login() and await carol.login()
        for i, mid in enumerate(sent):
            message = alice.make_message(mto=room, mbody=f"n{i}", mtype="groupchat")
            message["id"] = mid
            withParams(message, group).send()
            # wait for this very message: carol's queue may also hold others
            # (offline messages of earlier tests delivered at her login)
            while (await within(carol.messages.get()))["body"] != f"n{i}":
                pass
        mam = carol.plugin["xep_0313"]
        first = await mam.retrieve(jid=room, rsm={"max": 2}, timeout=TIMEOUT)
        got = [r["mam_result"]["id"] for r in first["mam"]["results"]]
        assert got == sent[:2]
        assert first.xml.find("{urn:xmpp:mam:2}fin").get("complete") == "false"
        last = first["mam_fin"]["rsm"]["last"]
        second = await mam.retrieve(jid=room, rsm={"max": 10, "after": last}, timeout=TIMEOUT)
        results = second["mam"]["results"]
        assert [r["mam_result"]["id"] for r in results] == sent[2:]
        assert results[0]["mam_result"]["forwarded"]["stanza"]["body"] == "n2"
        assert int(second["mam_fin"]["rsm"]["count"]) == 5
        assert second.xml.find("{urn:xmpp:mam:2}fin").get("complete") == "true"
        await alice.logout()
        await carol.logout()

    run(scenario())


def test_reactions(server, db):
    """XEP-0444 reactions from slixmpp are stored and pushed to the other occupants in both shapes."""
    group = db.dialog(DIALOG_GROUP, "alice", ["bob"])
    room = f"1_{group.id}@muc.localhost"
    pair = db.dialog(DIALOG_PRIVATE, "bob", ["carol"])
    gid, pid = ids(2, "r1")

    async def scenario():
        alice = client(server, "alice", "xep_0444")
        bob = client(server, "bob", "xep_0444")
        carol = client(server, "carol", "xep_0444")
        assert await alice.login() and await bob.login() and await carol.login()
        message = alice.make_message(mto=room, mbody="react to me", mtype="groupchat")
        message["id"] = gid
        withParams(message, group).send()
        await within(bob.messages.get())
        await within(alice.messages.get())
        reaction = bob.make_message(mto=room, mtype="groupchat")
        bob.plugin["xep_0444"].set_reactions(reaction, gid, ["👍"])
        reacted = nextEvent(alice, "reactions")
        reaction.send()
        pushed = await within(reacted)
        assert {r["value"] for r in pushed["reactions"]} == {"👍"} and pushed["reactions"]["id"] == gid
        sdk = pushed.xml.find("{https://connectycube.com/protocol/reactions}reactions")
        assert sdk.get("message_id") == gid and sdk.get("user_id") == str(db.id("bob"))
        message = bob.make_message(mto="carol@localhost", mbody="1-1", mtype="chat")
        message["id"] = pid
        withParams(message, pair).send()
        await within(carol.messages.get())
        reacted = nextEvent(bob, "reactions")
        carol.plugin["xep_0444"].send_reactions("bob@localhost", pid, ["🔥"])
        pushed = await within(reacted)
        assert pushed["from"].bare == "carol@localhost" and {r["value"] for r in pushed["reactions"]} == {"🔥"}
        for c in (alice, bob, carol):
            await c.logout()

    run(scenario())
    assert db.message(gid).reactions == {"👍": {db.id("bob")}}
    assert db.message(pid).reactions == {"🔥": {db.id("carol")}}
