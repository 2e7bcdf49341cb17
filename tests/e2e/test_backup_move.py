"""
Backup and migration with live servers (issue 18 item 8): real slixmpp
and REST traffic on a SQLite server, an online C{admin backup} while it
runs, then C{admin export} -> import into MongoDB (mongomock) -> export ->
C{admin import} into a fresh SQLite store; a new live server on that
store, and another on the restored backup, serve the same users: they log
in with their old passwords (SCRAM and PLAIN), find their roster, get the
offline message, and fetch the same history over MAM and REST with the
same unread counts.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import mongomock

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_mam import archive, chats, login
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import TIMEOUT, Client, run
from xmppchat import portable
from xmppchat.admin import result
from xmppchat.config import loadConfig
from xmppchat.storage.mongo import MongoStorage
from xmppchat.storage.sqlite import SQLiteStorage

USERS = ["mv-alice", "mv-bob", "mv-carol"]
ROSTER = ("<query xmlns='jabber:iq:roster'><item jid='mv-bob@localhost' name='Bob'>"
          "<group>Friends</group></item></query>")


def restSession(server, login_, password):
    status, body = call(server, "POST", "/session.json", {
        "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": login_, "password": password}})
    assert status == 201, body
    return body["session"]["token"]


def restTraffic(server) -> str:
    """
    Two REST users, a group dialog and two messages from the first;
    returns the dialog id.
    """
    status, body = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    app = body["session"]["token"]
    ids = []
    for name in ("mvrest1", "mvrest2"):
        status, body = call(server, "POST", "/users.json",
                            {"user": {"login": name, "password": f"{name}-pw-1"}}, token=app)
        assert status == 201, body
        ids.append(body["user"]["id"])
    token = restSession(server, "mvrest1", "mvrest1-pw-1")
    status, dialog = call(server, "POST", "/chat/Dialog.json",
                          {"type": 2, "name": "moving", "occupants_ids": str(ids[1])}, token=token)
    assert status == 201, dialog
    for body in ("rest one", "rest two"):
        status, message = call(server, "POST", "/chat/Message.json",
                               {"chat_dialog_id": dialog["_id"], "message": body}, token=token)
        assert status == 201, message
    return dialog["_id"]


def restView(server, dialogId):
    """
    What the second REST user sees: the dialog's unread count and bodies.
    """
    token = restSession(server, "mvrest2", "mvrest2-pw-1")
    status, dialogs = call(server, "GET", "/chat/Dialog.json", token=token)
    assert status == 200, dialogs
    unread = {d["_id"]: d["unread_messages_count"] for d in dialogs["items"]}[dialogId]
    status, listed = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0",
                          token=token)
    assert status == 200, listed
    return unread, [m["message"] for m in listed["items"]]


async def xmppTraffic(server):
    alice = await login(server, "mv-alice")
    bob = await login(server, "mv-bob")
    for i in range(4):
        sender, peer = (alice, "mv-bob") if i % 2 == 0 else (bob, "mv-alice")
        sender.send_message(mto=f"{peer}@localhost", mbody=f"chat {i}", mtype="chat")
        await asyncio.sleep(0.3)
    alice.send_message(mto="mv-carol@localhost", mbody="while you were out", mtype="chat")
    reply = await alice.make_iq_set(ET.fromstring(ROSTER)).send(timeout=TIMEOUT)
    assert reply["type"] == "result"
    await asyncio.sleep(0.5)
    ids, bodies, _ = await archive(alice)
    await alice.logout()
    await bob.logout()
    return ids, bodies


async def xmppView(server):
    """
    Alice logs in with SCRAM, bob with PLAIN; carol gets her offline
    message; alice's roster and archive.
    """
    alice = await login(server, "mv-alice")
    plain = Client(server, "mv-bob@localhost", "mv-bob-pw", "PLAIN")
    assert await plain.login()
    carol = await login(server, "mv-carol")
    await asyncio.sleep(1)
    offline = [m.findtext("{jabber:client}body") for m in chats(carol, "while")]
    roster = await alice.make_iq_get(queryxmlns="jabber:iq:roster").send(timeout=TIMEOUT)
    item = roster.xml.find("{jabber:iq:roster}query/{jabber:iq:roster}item[@jid='mv-bob@localhost']")
    ids, bodies, _ = await archive(alice)
    wrong = Client(server, "mv-alice@localhost", "not-the-password")
    assert not await wrong.login()
    for client in (alice, plain, carol):
        await client.logout()
    return offline, (item.get("name"), item.findtext("{jabber:iq:roster}group")), (ids, bodies)


def mongoHop(tmp_path, archive_):
    """
    Import the archive into a MongoDB (mongomock) store and export it
    again; returns the new archive.
    """
    (tmp_path / "mongo").mkdir()
    config = tmp_path / "mongo" / "xmppchat.toml"
    config.write_text(f'[server]\ndomain = "localhost"\ndata_dir = "{tmp_path / "mongo"}"\n'
                      '[storage]\nbackend = "mongodb"\n')
    config = loadConfig(str(config))
    storage = MongoStorage(client=mongomock.MongoClient(), database="moved", synchronous=True)
    result(storage.start())
    try:
        portable.importArchive(storage, config, str(archive_))
        again = tmp_path / "from-mongo.tar.gz"
        portable.export(storage, config, str(again))
    finally:
        result(storage.stop())
    return again


def prepared(directory, command, archive_):
    """
    A server directory whose database was made by C{admin import} or
    C{admin restore} of C{archive_}, with the config startServer will use.
    """
    import subprocess
    import sys

    from tests.e2e.conftest import _env

    (directory / "data").mkdir(parents=True)
    if command == "import":
        # an empty database already there: the admin CLI does not create one unasked
        storage = SQLiteStorage(str(directory / "data" / "db.sqlite3"), synchronous=True)
        result(storage.start())
        result(storage.stop())
    config = directory / "load.toml"
    config.write_text(f'[server]\ndomain = "localhost"\ndata_dir = "{directory / "data"}"\n'
                      '[storage]\nbackend = "sqlite"\npath = "db.sqlite3"\n'
                      f'[[rest.apps]]\napplication_id = 1\nauth_key = "{REST_AUTH_KEY}"\n')
    done = subprocess.run([sys.executable, "-m", "xmppchat.admin", "--config", str(config), command,
                           str(archive_)], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return directory


def test_moveSQLiteToMongoAndBackAndRestore(tmp_path):
    """Users, rosters, offline messages, MAM and REST history survive export/import via MongoDB and backup/restore."""
    (tmp_path / "a").mkdir()
    source = startServer(tmp_path / "a")
    try:
        source.addusers(USERS)
        ids, bodies = run(xmppTraffic(source))
        assert bodies == ["chat 0", "chat 1", "chat 2", "chat 3", "while you were out"]
        dialogId = restTraffic(source)
        expectedRest = restView(source, dialogId)
        assert expectedRest == (2, ["rest one", "rest two"])
        backup = tmp_path / "online.tar.gz"
        done = source.admin("backup", str(backup))
        assert done.returncode == 0, done.stderr
    finally:
        stopServer(source)
    exported = tmp_path / "export.tar.gz"
    done = source.admin("export", str(exported))
    assert done.returncode == 0, done.stderr
    moved = mongoHop(tmp_path, exported)
    for directory, command, archive_ in ((tmp_path / "b", "import", moved),
                                         (tmp_path / "c", "restore", backup)):
        server = startServer(prepared(directory, command, archive_))
        try:
            offline, rosterItem, history = run(xmppView(server))
            assert offline == ["while you were out"]
            assert rosterItem == ("Bob", "Friends")
            assert history == (ids, bodies)
            assert restView(server, dialogId) == expectedRest
        finally:
            stopServer(server)
