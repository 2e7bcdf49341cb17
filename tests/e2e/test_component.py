"""
XEP-0114 external components with a real component client over loopback:
slixmpp's C{ComponentXMPP} connects to the C{[components]} listener of a
real server, and slixmpp clients talk to it.
"""

from __future__ import annotations

import asyncio

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

SECRET = "bot-secret-0123456789"
COMPONENTS = f"""
[components]
enabled = true
port = 0

[[components.external]]
domain = "bot.localhost"
secret = "{SECRET}"

[[components.external]]
domain = "gw.localhost"
secret = "gw-secret-0123456789"
"""


class Component(slixmpp.ComponentXMPP):
    """
    A component that records the messages and stream errors it receives.
    """

    def __init__(self, server, domain="bot.localhost", secret=SECRET):
        slixmpp.ComponentXMPP.__init__(self, domain, secret, "127.0.0.1", server.ports["component"])
        self.messages: asyncio.Queue = asyncio.Queue()
        self.errors: list = []
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self._done(True))
        self.add_event_handler("disconnected", lambda _: self._done(False))
        self.add_event_handler("stream_error", lambda e: self.errors.append(e["condition"]))
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))

    def _done(self, value):
        if not self.started.done():
            self.started.set_result(value)

    async def login(self):
        self.connect()
        return await asyncio.wait_for(self.started, TIMEOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("component"), extra=COMPONENTS)
    running.addusers(["alice", "carol", "dave"])
    yield running
    stopServer(running)


def test_handshakeAndChat(server):
    """The component's handshake is accepted; a user's message reaches it and its reply reaches the user."""
    async def scenario():
        bot = Component(server)
        assert await bot.login()
        alice = Client(server, "alice@localhost", "alice-pw")
        assert await alice.login()
        alice.send_message(mto="bot.localhost", mbody="ping", mtype="chat")
        got = await asyncio.wait_for(bot.messages.get(), TIMEOUT)
        assert got["body"] == "ping" and got["from"] == alice.boundjid
        bot.send_message(mto=got["from"], mfrom="echo@bot.localhost/x", mbody="pong", mtype="chat")
        reply = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        assert reply["body"] == "pong" and str(reply["from"]) == "echo@bot.localhost/x"
        alice.disconnect()
        bot.disconnect()
    run(scenario())


def test_replyStoredOffline(server):
    """The component's message to an offline user is stored and delivered when the user comes online."""
    async def scenario():
        bot = Component(server)
        assert await bot.login()
        bot.send_message(mto="carol@localhost", mfrom="bot.localhost", mbody="while you were out", mtype="chat")
        await asyncio.sleep(0.5)
        bot.disconnect()
        carol = Client(server, "carol@localhost", "carol-pw")
        assert await carol.login()
        got = await asyncio.wait_for(carol.messages.get(), TIMEOUT)
        assert got["body"] == "while you were out" and str(got["from"]) == "bot.localhost"
        carol.disconnect()
    run(scenario())


def test_attackWrongSecret(server):
    """A component with a wrong secret is refused with not-authorized."""
    async def scenario():
        bot = Component(server, secret="not-the-secret-at-all")
        assert not await bot.login()
        assert bot.errors == ["not-authorized"]
    run(scenario())


def test_disconnectedComponent(server):
    """An IQ to a configured component that is not connected gets service-unavailable."""
    async def scenario():
        dave = Client(server, "dave@localhost", "dave-pw")
        assert await dave.login()
        iq = dave.make_iq_get(queryxmlns="jabber:iq:version", ito="gw.localhost")
        with pytest.raises(IqError) as e:
            await iq.send(timeout=TIMEOUT)
        assert e.value.condition == "service-unavailable"
        dave.disconnect()
    run(scenario())


def test_attackSpoofedFrom(server):
    """A component sending as a local user gets invalid-from and the message reaches nobody."""
    async def scenario():
        alice = Client(server, "alice@localhost", "alice-pw")
        assert await alice.login()
        bot = Component(server)
        assert await bot.login()
        bot.disconnected = asyncio.get_event_loop().create_future()
        bot.add_event_handler("disconnected", lambda _: bot.disconnected.done() or bot.disconnected.set_result(1))
        bot.send_message(mto="alice@localhost", mfrom="dave@localhost", mbody="phish", mtype="chat")
        await asyncio.wait_for(bot.disconnected, TIMEOUT)
        assert "invalid-from" in bot.errors
        await asyncio.sleep(0.3)
        assert alice.messages.empty()
        alice.disconnect()
    run(scenario())
