"""
Issue 17 item 5 against a real server over loopback: plain HTTP to the
REST port and a raw XMPP client.  A broadcast dialog (made with the admin
CLI) is in every user's list, its history readable, its room joinable as
a visitor, and only its owner posts; the configured extension fields are
kept and filter the list, and a field removed from the config is gone
from every dialog after a restart.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.rawclient import NS_CLIENT, RawClient
from tests.e2e.test_consent import errorOf, waitFor
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import run

PASSWORD = "seed-pw-1"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
FIELDS = '\n[dialogs]\nextension_fields = ["topic", "city"]\n'


def signup(server, name):
    status, answer = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, answer
    status, answer = call(server, "POST", "/users.json",
                          {"user": {"login": name, "password": PASSWORD}}, token=answer["session"]["token"])
    assert status == 201, answer
    return answer["user"]["id"], login(server, name)


def login(server, name):
    status, answer = call(server, "POST", "/session.json", {
        "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": name, "password": PASSWORD}})
    assert status == 201, answer
    return answer["session"]["token"]


@pytest.fixture(scope="module")
def seedServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("seed"), extra=FIELDS)
    running.users = {name: signup(running, name) for name in ("owner", "reader")}
    done = running.admin("create-broadcast", "News", "--owner", str(running.users["owner"][0]))
    assert done.returncode == 0, done.stderr
    running.broadcast = done.stdout.split()[3]
    yield running
    stopServer(running)


def test_broadcastOverREST(seedServer):
    """Every user lists the broadcast and reads its history; only the owner posts (403 for the others)."""
    server, dialog = seedServer, seedServer.broadcast
    ownerToken, readerToken = server.users["owner"][1], server.users["reader"][1]
    status, answer = call(server, "GET", "/chat/Dialog.json?type=1", token=readerToken)
    assert status == 200 and [d["_id"] for d in answer["items"]] == [dialog], answer
    status, answer = call(server, "POST", "/chat/Message.json",
                          {"chat_dialog_id": dialog, "message": "hello all"}, token=ownerToken)
    assert status == 201, answer
    status, answer = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialog}", token=readerToken)
    assert status == 200 and [m["message"] for m in answer["items"]] == ["hello all"], answer
    status, answer = call(server, "POST", "/chat/Message.json",
                          {"chat_dialog_id": dialog, "message": "me too"}, token=readerToken)
    assert status == 403, answer


def test_broadcastRoomOverXMPP(seedServer):
    """A reader joins the broadcast room as a visitor (was registration-required); its message is forbidden."""
    server = seedServer
    readerId = server.users["reader"][0]
    room = f"1_{server.broadcast}@muc.localhost"

    async def scenario():
        client = RawClient(server)
        await client.login(f"{readerId}-1", PASSWORD)
        try:
            client.send(f"<presence to='{room}/{readerId}' id='j1'><x xmlns='{NS_MUC}'>"
                        "<history maxstanzas='0'/></x></presence>")
            me = await waitFor(client, lambda s: s.tag == f"{{{NS_CLIENT}}}presence"
                               and s.get("from") == f"{room}/{readerId}" or s.get("type") == "error")
            assert me.get("type") is None, errorOf(me)
            item = me.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
            assert item.get("role") == "visitor"
            client.send(f"<message to='{room}' type='groupchat' id='m1'><body>spam</body></message>")
            error = await waitFor(client, lambda s: s.tag == f"{{{NS_CLIENT}}}message" and s.get("id") == "m1")
            assert error.get("type") == "error" and errorOf(error) == "forbidden"
        finally:
            await client.close()

    run(scenario())


def test_extensionFieldsAndRestart(seedServer):
    """Only configured extension fields are stored and filter the list; a field dropped from the config is gone after a restart."""
    server = seedServer
    ownerToken, readerId = server.users["owner"][1], server.users["reader"][0]
    status, answer = call(server, "POST", "/chat/Dialog.json", {
        "type": 2, "name": "club", "occupants_ids": str(readerId),
        "extensions": {"topic": "chess", "city": "Oslo", "color": "red"}}, token=ownerToken)
    assert status == 201 and answer["extensions"] == {"topic": "chess", "city": "Oslo"}, answer
    dialog = answer["_id"]
    status, answer = call(server, "GET", "/chat/Dialog.json?topic=chess&city[in]=Oslo,Bergen",
                          token=ownerToken)
    assert status == 200 and [d["_id"] for d in answer["items"]] == [dialog], answer
    stopServer(server)
    (server.directory / "data" / "ports.json").unlink(missing_ok=True)
    restarted = startServer(server.directory, extra='\n[dialogs]\nextension_fields = ["topic"]\n')
    server.process, server.ports = restarted.process, restarted.ports
    status, answer = call(server, "GET", f"/chat/Dialog/{dialog}.json", token=login(server, "owner"))
    assert status == 200 and answer["extensions"] == {"topic": "chess"}, answer
    status, answer = call(server, "GET", "/chat/Dialog.json?topic=chess", token=login(server, "owner"))
    assert status == 200 and [d["_id"] for d in answer["items"]] == [dialog], answer
    status, answer = call(server, "GET", "/chat/Dialog.json?city=Oslo", token=login(server, "owner"))
    assert status == 400, answer  # no longer a field
