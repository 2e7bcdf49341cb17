"""
Real-client tests of XMPP over WebSocket (RFC 7395): the @xmpp/client
library (the one inside the ConnectyCube SDK) logs in over ws:// on
loopback with PLAIN and SCRAM-SHA-1 and chats with a slixmpp client on
TCP; the unmodified ConnectyCube SDK does the same; raw upgrades check the
sub-protocol rule.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.nodeclients import nodeClients, replyAndFinish, transportServer  # noqa: F401 (fixtures)
from tests.e2e.test_slixmpp import Client, run

TIMEOUT = 20


@pytest.fixture(scope="module")
def wsUsers(transportServer):
    for name in ("alice", "bob"):
        transportServer.adduser(name, f"{name}-pw")
    return transportServer


def upgrade(port: int, protocol: str | None, path: str = "/") -> bytes:
    """
    The server's answer to a raw WebSocket upgrade request.
    """
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-1"])
def test_xmppjsChatsWithSlixmpp(wsUsers, nodeClients, mechanism):
    """@xmpp/client logs in over ws://127.0.0.1 (offered PLAIN and SCRAM-SHA-1) and chats with slixmpp on TCP."""
    port = wsUsers.ports["websocket"]

    async def scenario():
        bob = Client(wsUsers, "bob@localhost", "bob-pw")
        assert await bob.login()
        alice = await nodeClients.start(
            "xmpp-client.mjs", service=f"ws://127.0.0.1:{port}/", domain="127.0.0.1",
            username="alice", password="alice-pw", mechanism=mechanism,
            to="bob@localhost", body=f"hello over websocket with {mechanism}")
        try:
            online = await alice.next()
            assert online["event"] == "online", alice.events
            assert {"PLAIN", "SCRAM-SHA-1"} <= set(online["offered"])
            assert online["mechanism"] == mechanism
            assert online["jid"].startswith("alice@localhost/") and len(online["jid"]) > len("alice@localhost/") + 16
            await replyAndFinish(alice, bob, online["jid"], f"hello over websocket with {mechanism}")
        finally:
            await alice.stop()
            await bob.logout()

    run(scenario())


@pytest.fixture(scope="module")
def wssServer(tmp_path_factory):
    """
    A real server whose WebSocket listener is wss:// (the [tls] certificate).
    """
    running = startServer(tmp_path_factory.mktemp("wss"), extra="""
[websocket]
enabled = true
port = 0
tls = true
""")
    running.adduser("erin", "erin-pw")
    yield running
    stopServer(running)


def test_xmppjsOverWss(wssServer, nodeClients):
    """@xmpp/client verifies the certificate on wss://localhost, logs in with PLAIN and chats with slixmpp."""
    port = wssServer.ports["websocket"]
    wssServer.adduser("frank", "frank-pw")

    async def scenario():
        frank = Client(wssServer, "frank@localhost", "frank-pw")
        assert await frank.login()
        erin = await nodeClients.start(
            "xmpp-client.mjs", env={"NODE_EXTRA_CA_CERTS": str(wssServer.ca)},
            service=f"wss://localhost:{port}/", domain="localhost", username="erin", password="erin-pw",
            mechanism="PLAIN", to="frank@localhost", body="hello over wss")
        try:
            online = await erin.next()
            assert online["event"] == "online" and "PLAIN" in online["offered"], erin.events
            await replyAndFinish(erin, frank, online["jid"], "hello over wss")
        finally:
            await erin.stop()
            await frank.logout()

    run(scenario())


def test_wrongPasswordRejected(wsUsers, nodeClients):
    """A wrong password over WebSocket makes @xmpp/client's connect() reject with not-authorized."""
    port = wsUsers.ports["websocket"]

    async def scenario():
        alice = await nodeClients.start(
            "xmpp-client.mjs", service=f"ws://127.0.0.1:{port}/", domain="127.0.0.1",
            username="alice", password="wrong", mechanism="PLAIN", timeout=10)
        try:
            event = await alice.next()
            while event["event"] == "error":
                event = await alice.next()
            assert event == {"event": "failed", "error": "not-authorized"}
            assert await alice.wait() == 2
        finally:
            await alice.stop()

    run(scenario())


def test_upgradeEchoesXmppSubprotocol(transportServer):
    """The upgrade offering 'xmpp' gets 101 with Sec-WebSocket-Protocol: xmpp."""
    answer = upgrade(transportServer.ports["websocket"], "xmpp").decode("latin-1")
    assert answer.startswith("HTTP/1.1 101")
    assert "sec-websocket-protocol: xmpp\r\n" in answer.lower()


@pytest.mark.parametrize("protocol", [None, "chat"])
def test_upgradeWithoutXmppRefused(transportServer, protocol):
    """An upgrade without the 'xmpp' sub-protocol is refused with 400 (RFC 7395 §3.1)."""
    answer = upgrade(transportServer.ports["websocket"], protocol).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400"), answer


def test_upgradeOtherPathNotFound(transportServer):
    """An upgrade on another path than the configured one gets 404."""
    answer = upgrade(transportServer.ports["websocket"], "xmpp", "/elsewhere").decode("latin-1")
    assert answer.startswith("HTTP/1.1 404"), answer


def test_connectycubeSdkChatsWithSlixmpp(transportServer, nodeClients):
    """The unmodified ConnectyCube SDK 6.1.2 connects as 101-1 over ws:// and chats 1-1 with slixmpp."""
    port = transportServer.ports["websocket"]
    transportServer.adduser("101-1", "cube-pw")
    transportServer.adduser("202-1", "other-pw")

    async def scenario():
        peer = Client(transportServer, "202-1@localhost", "other-pw")
        assert await peer.login()
        sdk = await nodeClients.start(
            "connectycube-chat.cjs", chatUrl=f"ws://127.0.0.1:{port}", domain="localhost",
            userId=101, password="cube-pw", toUserId=202, body="hello from the SDK")
        try:
            assert (await sdk.next())["event"] == "online", sdk.events
            message = await asyncio.wait_for(peer.messages.get(), TIMEOUT)
            assert message["body"] == "hello from the SDK"
            assert str(message["from"]).startswith("101-1@localhost/")
            peer.send_message(mto=message["from"], mbody="hello SDK", mtype="chat")
            assert await sdk.next() == {"event": "message", "userId": 202, "body": "hello SDK"}
            assert (await sdk.next())["event"] == "offline"
            assert await sdk.wait() == 0
        finally:
            await sdk.stop()
            await peer.logout()

    run(scenario())
