"""
XEP-0114 external components against xmppchat and Prosody 0.12's
mod_component: one scenario (a slixmpp C{ComponentXMPP} and slixmpp
clients), run on both, records what the component and the users see, and
both must agree.

Prosody runs with a throw-away config (L{tests.differential.prosody}) plus
a component port of its own on loopback and C{Component "bot.localhost"}
with a C{component_secret}.

Where the two differ, and this test records but does not compare: an IQ to
a configured component that is not connected gets C{service-unavailable}
from xmppchat (RFC 6120 §8.3.3.19, as for any entity that cannot answer)
and C{remote-server-timeout} (with Prosody's C{not-connected} element)
from Prosody.
"""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.exceptions import IqError

from tests.cluster.live import freePort
from tests.differential.prosody import CONFIG, ProsodyServer, eitherServer
from tests.e2e.test_component import COMPONENTS, SECRET, Component
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

NS_ITEMS = "http://jabber.org/protocol/disco#items"


class ComponentProsody(ProsodyServer):
    """
    The differential Prosody with a component port and bot.localhost (and
    gw.localhost, never connected) as external components.
    """

    def _configure(self, port: int) -> None:
        self.port = port
        self.componentPort = freePort()
        text = CONFIG.format(dir=self.directory, port=port).replace(
            "component_ports = { }",
            f'component_ports = {{ {self.componentPort} }}\ncomponent_interfaces = {{ "127.0.0.1" }}')
        text += (f'\nComponent "bot.localhost"\n    component_secret = "{SECRET}"\n'
                 f'\nComponent "gw.localhost"\n    component_secret = "gw-secret-0123456789"\n')
        self.config.write_text(text)

    @property
    def ports(self) -> dict:
        return {"c2s": self.port, "component": self.componentPort}


@pytest.fixture(scope="module", params=["xmppchat", "prosody"])
def server(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param + "-component")
    with eitherServer(request.param, directory, ComponentProsody, COMPONENTS) as running:
        running.addusers(["alice", "carol"])
        yield running


async def iqError(client, to, xmlns):
    try:
        await client.make_iq_get(queryxmlns=xmlns, ito=to).send(timeout=TIMEOUT)
    except IqError as e:
        return e.condition
    return "result"


def test_componentScenario(server):
    """Wrong secret, handshake, disco#items, message both ways, offline storage, spoofed from: the same."""
    async def scenario():
        seen = {}
        wrong = Component(server, secret="not-the-secret-at-all")
        seen["wrong secret"] = (await wrong.login(), wrong.errors)

        bot = Component(server)
        seen["handshake"] = await bot.login()
        alice = Client(server, "alice@localhost", "alice-pw")
        assert await alice.login()
        items = await alice.make_iq_get(queryxmlns=NS_ITEMS, ito="localhost").send(timeout=TIMEOUT)
        seen["listed"] = "bot.localhost" in [i.get("jid") for i in items.xml.iter(f"{{{NS_ITEMS}}}item")]
        seen["not connected"] = await iqError(alice, "gw.localhost", "jabber:iq:version")

        alice.send_message(mto="bot.localhost", mbody="ping", mtype="chat")
        got = await asyncio.wait_for(bot.messages.get(), TIMEOUT)
        seen["to component"] = (got["body"], got["from"] == alice.boundjid)
        bot.send_message(mto=got["from"], mfrom="echo@bot.localhost/x", mbody="pong", mtype="chat")
        reply = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        seen["to user"] = (reply["body"], str(reply["from"]))

        bot.send_message(mto="carol@localhost", mfrom="bot.localhost", mbody="later", mtype="chat")
        await asyncio.sleep(0.5)
        carol = Client(server, "carol@localhost", "carol-pw")
        assert await carol.login()
        stored = await asyncio.wait_for(carol.messages.get(), TIMEOUT)
        seen["offline"] = (stored["body"], str(stored["from"]))

        gone = asyncio.get_event_loop().create_future()
        bot.add_event_handler("disconnected", lambda _: gone.done() or gone.set_result(True))
        bot.send_message(mto="alice@localhost", mfrom="carol@localhost", mbody="phish", mtype="chat")
        await asyncio.wait_for(gone, TIMEOUT)
        await asyncio.sleep(0.3)
        seen["spoofed from"] = (bot.errors, alice.messages.empty())
        alice.disconnect()
        carol.disconnect()
        return seen

    seen = run(scenario())
    notConnected = seen.pop("not connected")
    assert notConnected == ("service-unavailable" if server.name == "xmppchat" else "remote-server-timeout")
    assert seen == {
        "wrong secret": (False, ["not-authorized"]),
        "handshake": True,
        "listed": True,
        "to component": ("ping", True),
        "to user": ("pong", "echo@bot.localhost/x"),
        "offline": ("later", "bot.localhost"),
        "spoofed from": (["invalid-from"], True),
    }
