"""
Issue 17 items 3 and 4 against a real server with a real client
(L{tests.e2e.rawclient} over TCP+STARTTLS, plain HTTP for REST): privacy
settings changed over REST apply to an already-connected stream at once,
reads stay hidden over REST, and the last-seen setting decides XEP-0012.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.rawclient import NS_CLIENT, RawClient, body
from tests.e2e.test_consent import errorOf, waitFor
from tests.e2e.test_rest import call
from tests.e2e.test_revocation import signup
from tests.e2e.test_slixmpp import run

PASSWORD = "privacy-pw-1"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MARKERS = "urn:xmpp:chat-markers:0"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("privacy-settings"))
    running.users = {name: signup(running, name, PASSWORD) for name in ("alice", "bob", "carol", "dave")}
    yield running
    stopServer(running)


def jid(server, name):
    return f"{server.users[name][0]}-1@localhost"


def settings(server, name, **values):
    userId, token = server.users[name]
    status, answer = call(server, "PUT", f"/users/{userId}.json", {"user": {"privacy_settings": values}},
                          token=token)
    assert status == 200, answer
    return answer["user"]["privacy_settings"]


async def login(server, name):
    client = RawClient(server)
    await client.login(f"{server.users[name][0]}-1", PASSWORD)
    client.send("<presence/>")
    return client


def test_liveSettingsStopTypingAndReadsOfAConnectedStream(server):
    """alice, connected, turns typing and read receipts off over REST: bob gets her next message but no chat state or read marker, and REST hides her read."""
    status, message = call(server, "POST", "/chat/Message.json",
                           {"recipient_id": server.users["alice"][0], "message": "ping"},
                           token=server.users["bob"][1])
    assert status == 201, message

    async def scenario():
        alice, bob = await login(server, "alice"), await login(server, "bob")
        to = jid(server, "bob")
        alice.send(f"<message to='{to}' type='chat' id='t1'><composing xmlns='{NS_CHATSTATES}'/></message>")
        first = await waitFor(bob, lambda s: s.tag == f"{{{NS_CLIENT}}}message")
        assert first.find(f"{{{NS_CHATSTATES}}}composing") is not None
        settings(server, "alice", typing_indicators={"enabled": False}, read_receipts={"enabled": False})
        alice.send(f"<message to='{to}' type='chat' id='t2'><composing xmlns='{NS_CHATSTATES}'/></message>")
        alice.send(f"<message to='{to}' type='chat' id='r1'><displayed xmlns='{NS_MARKERS}' "
                   f"id='{message['_id']}'/></message>")
        alice.send(f"<message to='{to}' type='chat' id='b1'><body>after</body></message>")
        got = []
        while True:
            stanza = await waitFor(bob, lambda s: s.tag == f"{{{NS_CLIENT}}}message")
            got.append(stanza)
            if body(stanza) == "after":
                break
        assert [s.get("id") for s in got] == ["b1"]
        for client in (alice, bob):
            await client.close()

    run(scenario())
    dialogId = message["chat_dialog_id"]
    deadline = time.monotonic() + 10
    while True:  # the marker is stored after it was routed: wait until her read counts
        status, unread = call(server, "GET", "/chat/Message/unread.json", token=server.users["alice"][1])
        assert status == 200, unread
        if unread.get(dialogId) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert unread.get(dialogId) == 0  # her own count is exact
    status, listed = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0",
                          token=server.users["bob"][1])
    assert status == 200, listed
    ping = next(m for m in listed["items"] if m["_id"] == message["_id"])
    assert server.users["alice"][0] not in ping["read_ids"]


def test_lastSeenSettingDecidesLastActivity(server):
    """dave, who shares nothing with carol, is forbidden her last activity until she chooses 'everyone', and again after 'nobody'."""
    async def scenario():
        dave = await login(server, "dave")
        query = f"<iq type='get' to='{jid(server, 'carol')}' id='{{id}}'><query xmlns='jabber:iq:last'/></iq>"
        refused = await dave.request(query.format(id="l1"), "l1")
        assert refused.get("type") == "error" and errorOf(refused) == "forbidden"
        assert settings(server, "carol", last_seen={"visibility": "everyone"})["last_seen"] == {
            "visibility": "everyone"}
        answered = await dave.request(query.format(id="l2"), "l2")
        assert answered.get("type") == "result"
        settings(server, "carol", last_seen={"visibility": "nobody"})
        again = await dave.request(query.format(id="l3"), "l3")
        assert again.get("type") == "error" and errorOf(again) == "forbidden"
        await dave.close()

    run(scenario())
