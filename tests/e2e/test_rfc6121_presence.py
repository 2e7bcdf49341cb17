"""
Real-client checks of the RFC 6121 presence MUSTs (slixmpp over loopback
against a real xmppchat server): self-presence reflection (§4.2.2, §4.5.2),
probe answers on login (§4.3), unsolicited approvals ignored (§3.1.5).
These assert xmppchat's behaviour only; tests/differential compares the
same scenarios with Prosody.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_slixmpp import TIMEOUT, Client, run

QUIET = 0.7  # how long "nothing arrives" is watched for
AVAILABLE = frozenset(("available", "away", "chat", "dnd", "xa"))


class PresenceClient(Client):
    """
    A client that records every presence and roster push it receives and
    answers no subscription on its own.
    """

    def __init__(self, server, jid, password):
        Client.__init__(self, server, jid, password)
        self.presences: asyncio.Queue = asyncio.Queue()
        self.pushes: list = []
        self.roster.auto_authorize = None  # neither accept nor refuse (False refuses)
        self.roster.auto_subscribe = False
        self.add_event_handler("presence", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("roster_update", lambda iq: self.pushes.append(iq))

    async def presenceFrom(self, full: str, presenceType: str = "available"):
        """
        The next presence from C{full} of C{presenceType}, skipping others
        (slixmpp gives an available presence its C{show} as type).
        """
        while True:
            presence = await asyncio.wait_for(self.presences.get(), TIMEOUT)
            kind = "available" if presence["type"] in AVAILABLE else presence["type"]
            if str(presence["from"]) == full and kind == presenceType:
                return presence

    async def quiet(self) -> list:
        """Everything that arrives within L{QUIET} seconds."""
        await asyncio.sleep(QUIET)
        got = []
        while not self.presences.empty():
            got.append(self.presences.get_nowait())
        return got


@pytest.fixture(scope="module")
def users(server):
    for name in ("refl", "probed", "prober", "victim", "attacker"):
        server.adduser(name, f"{name}-pw")
    return server


async def login(server, name, resource):
    client = PresenceClient(server, f"{name}@localhost/{resource}", f"{name}-pw")
    assert await client.login()
    return client


def test_initialPresenceReflected(users):
    """A client's initial presence comes back to it from its own full JID (RFC 6121 §4.2.2)."""

    async def scenario():
        one = await login(users, "refl", "one")
        own = await one.presenceFrom(str(one.boundjid))
        assert own["to"] == one.boundjid
        await one.logout()

    run(scenario())


def test_twoResourcesSeeEachOther(users):
    """With two resources, each initial presence reaches both; unavailable reaches the sender and the other (§4.2.2, §4.5.2)."""

    async def scenario():
        one = await login(users, "refl", "one")
        await one.presenceFrom("refl@localhost/one")
        two = await login(users, "refl", "two")
        await two.presenceFrom("refl@localhost/two")  # its own
        await two.presenceFrom("refl@localhost/one")  # the other resource's, on login
        await one.presenceFrom("refl@localhost/two")
        two.send_presence(ptype="unavailable", pstatus="gone for now")
        mine = await two.presenceFrom("refl@localhost/two", "unavailable")
        theirs = await one.presenceFrom("refl@localhost/two", "unavailable")
        assert mine["status"] == theirs["status"] == "gone for now"
        await two.logout()
        await one.logout()

    run(scenario())


def test_probeAnsweredOnLogin(users):
    """After a subscription handshake, a new resource of the subscriber gets the contact's presence at login (§4.3)."""

    async def scenario():
        prober = await login(users, "prober", "first")
        probed = await login(users, "probed", "desk")
        probed.send_presence(pshow="away", pstatus="at lunch")
        prober.send_presence_subscription(pto="probed@localhost", ptype="subscribe")
        await probed.presenceFrom("prober@localhost", "subscribe")
        probed.send_presence_subscription(pto="prober@localhost", ptype="subscribed")
        await prober.presenceFrom("probed@localhost/desk")
        second = await login(users, "prober", "second")
        presence = await second.presenceFrom("probed@localhost/desk")
        assert presence["show"] == "away" and presence["status"] == "at lunch"
        for client in (second, prober, probed):
            await client.logout()

    run(scenario())


def test_unsolicitedSubscribedIgnored(users):
    """A 'subscribed' the victim never asked for reaches nobody and leaves the victim's roster unchanged (§3.1.5, §3.1.6)."""

    async def scenario():
        victim = await login(users, "victim", "v")
        await victim.get_roster()  # an interested resource: would get roster pushes
        attacker = await login(users, "attacker", "x")
        await victim.quiet()
        victim.pushes.clear()  # the roster result itself
        attacker.send_presence_subscription(pto="victim@localhost", ptype="subscribed")
        attacker.send_presence(pstatus="watch me")
        got = await victim.quiet()
        assert [str(p["from"]) for p in got] == []
        assert victim.pushes == []
        victim.client_roster.version = ""  # the whole roster, not "unchanged" (RFC 6121 §2.6)
        roster = await victim.get_roster()
        assert "attacker@localhost" not in [str(jid) for jid in roster["roster"]["items"]]
        await attacker.logout()
        await victim.logout()

    run(scenario())
