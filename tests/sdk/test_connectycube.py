"""
The real ConnectyCube JS SDK (6.1.2, C{package.json}) against a real
xmppchat server on loopback: sessions, signup, login, users, dialogs,
messages, reactions, the blob upload/download sequence and custom data, through the
SDK's own REST client (C{rest_flow.cjs}).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY, startServer, stopServer
from tests.sdk.conftest import runNode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("sdk-server"),
                          extra='\n[dialogs]\nextension_fields = ["topic"]\n')
    # a broadcast dialog, which only the admin CLI creates (issue 17 item 5)
    running.adduser("herald", "herald-pw")
    accounts = dict(line.split("\t")[::-1] for line in running.admin("list").stdout.splitlines())
    done = running.admin("create-broadcast", "News", "--owner", accounts["herald@localhost"])
    assert done.returncode == 0, done.stderr
    running.broadcast = done.stdout.split()[3]
    yield running
    stopServer(running)


def test_restFlow(sdk, server):
    """createSession, signup, login, users, dialogs, messages and blobs work from the real SDK."""
    out = runNode("rest_flow.cjs", {"apiUrl": f"http://127.0.0.1:{server.ports['rest']}",
                                    "appId": REST_APP_ID, "authKey": REST_AUTH_KEY}, timeout=90)
    assert "error" not in out, out
    assert out["done"] is True
    assert len(out["appSession"]["token"]) == 40 and out["appSession"]["user_id"] == 0
    alice, bob = out["signup"]["alice"], out["signup"]["bob"]
    assert alice["user_tags"] == "sdk,test"
    assert out["login"]["id"] == alice["id"], out["login"]
    assert out["session"]["user_id"] == alice["id"]
    assert out["userUpdate"]["full_name"] == "Alice SDK"
    assert sorted(u["id"] for u in out["getV2"]["items"]) == sorted([alice["id"], bob["id"]])

    dialog = out["dialogCreate"]
    assert dialog["type"] == 2 and dialog["occupants_ids"] == sorted([alice["id"], bob["id"]])
    assert dialog["xmpp_room_jid"] == f"1_{dialog['_id']}@muc.localhost"
    assert dialog["extensions"] == {"topic": "tests"}
    assert out["privateSame"] is True
    assert dialog["_id"] in [d["_id"] for d in out["dialogList"]["items"]]
    assert out["dialogList"]["total_entries"] == 2
    assert [d["_id"] for d in out["dialogsByTopic"]["items"]] == [dialog["_id"]]
    assert [d["_id"] for d in out["dialogsByExtensions"]["items"]] == [dialog["_id"]]
    assert [d["_id"] for d in out["broadcasts"]["items"]] == [server.broadcast]
    assert out["dialogUpdate"]["name"] == "Renamed"

    message = out["messageCreate"]
    assert message["message"] == "hello from the SDK" and message["sender_id"] == alice["id"]
    assert [m["_id"] for m in out["messageList"]["items"]] == [message["_id"]]
    assert out["unread"]["total"] == 0
    assert out["unreadDialogsIds"] == {"total": 0, dialog["_id"]: 0}
    assert out["reactions"] == {"👍": [alice["id"]]}

    blob = out["blob"]
    assert blob["size"] == len("attachment bytes from the SDK") and blob["uid"]
    assert out["download"] == {"status": 200, "body": "attachment bytes from the SDK"}
    assert out["afterDelete"]["items"] == []
    assert out["publicSubscribe"]["type"] == 4
    assert out["notifications"] == {"notifications": {"enabled": 0}}
    record = out["dataCreate"]
    assert record["reportedUserId"] == bob["id"] and record["user_id"] == alice["id"]
    assert [r["_id"] for r in out["dataList"]["items"]] == [record["_id"]]
    assert out["dataUpdate"]["reason"] == "updated"
    assert out["dataAfterDelete"]["items"] == []


def test_jwtTokenUser(sdk, server):
    """init({appId, token: <JWT>}) authenticates a token user, created on first use."""
    import time

    from tests.e2e.conftest import REST_JWT_SECRET
    from xmppchat.api.sessions import encodeJWT
    jwt = encodeJWT({"user_id": "sdk-user", "exp": int(time.time()) + 600}, REST_JWT_SECRET)
    out = runNode("jwt_flow.cjs", {"apiUrl": f"http://127.0.0.1:{server.ports['rest']}",
                                   "appId": REST_APP_ID, "token": jwt})
    assert "error" not in out, out
    assert out["session"]["user_id"] > 0 and out["session"]["application_id"] == REST_APP_ID
    [user] = out["users"]["items"]
    assert user["id"] == out["session"]["user_id"] and user["external_user_id"] == "sdk-user"
    assert [d["_id"] for d in out["dialogs"]["items"]] == [server.broadcast]  # every user's


@pytest.fixture(scope="module")
def chatServer(tmp_path_factory):
    from tests.e2e.nodeclients import TRANSPORTS

    running = startServer(tmp_path_factory.mktemp("sdk-chat"), extra=TRANSPORTS)
    yield running
    stopServer(running)


def test_mucJoinLeaveKick(sdk, chatServer):
    """With connectycube_compat on, chat.muc.join/leave resolve, listOnlineUsers works, a foreign join rejects (407) and onKickOccupant fires."""
    from tests.e2e.test_muc import users as makeUsers
    from tests.e2e.test_rest import call

    accounts = makeUsers.__wrapped__(chatServer)
    ownerToken, ownerId = accounts["owner"]
    token, userId = accounts["member"]
    status, body = call(chatServer, "POST", "/chat/Dialog.json", {
        "type": 2, "name": "SDK room", "occupants_ids": [userId]}, token=ownerToken)
    assert status == 201, body
    dialogId = body["_id"]
    status, body = call(chatServer, "POST", "/chat/Dialog.json", {
        "type": 2, "name": "Not yours", "occupants_ids": [accounts["third"][1]]}, token=ownerToken)
    assert status == 201, body
    out = runNode("muc_flow.cjs", {
        "apiUrl": f"http://127.0.0.1:{chatServer.ports['rest']}",
        "chatUrl": f"ws://127.0.0.1:{chatServer.ports['websocket']}", "domain": "localhost",
        "appId": REST_APP_ID, "userId": userId, "token": token, "ownerToken": ownerToken,
        "dialogId": dialogId, "otherDialogId": body["_id"]}, timeout=60)
    assert "error" not in out, out
    assert out["joined"] and out["left"] and out["online"] == [userId]
    assert out["foreignJoin"]["code"] == "407", out["foreignJoin"]  # registration-required
    assert out["removeStatus"] == 200
    assert out["kick"] == {"dialogId": dialogId, "initiatorId": ownerId}
