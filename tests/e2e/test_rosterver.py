"""
Roster versioning (RFC 6121 §2.6, XEP-0237; issue 16 item 6) with a real
client: slixmpp sends the version it cached when the server offers the
C{rosterver} stream feature.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.test_slixmpp import TIMEOUT, Client, run

NS_ROSTER = "jabber:iq:roster"


@pytest.fixture(scope="module")
def users(server):
    server.addusers(["rv-alice", "rv-bob", "rv-carol"])
    return server


async def login(server, cached=None, user="rv-alice"):
    """A session of C{user} whose roster cache holds version C{cached}."""
    client = Client(server, f"{user}@localhost", f"{user}-pw", presence=False)
    # the IQs as they arrived (slixmpp's roster handler adds an empty
    # <query/> to a result that had none when it reads it)
    client.arrived = {}

    def record(stanza):
        client.arrived.setdefault(stanza["id"], ET.fromstring(ET.tostring(stanza.xml)))
        return stanza

    client.add_filter("in", record)
    assert await client.login()
    assert "rosterver" in client.features
    if cached is not None:
        client.client_roster.version = cached
    return client


def query(client, reply):
    return client.arrived[reply["id"]].find(f"{{{NS_ROSTER}}}query")


def test_cachedVersionGetsEmptyResultThenTheChange(users):
    """
    Reconnecting with the cached version gets an empty result; after a
    change made by another session, the old version gets the full roster
    with the version that session's push carried.
    """

    async def scenario():
        first = await login(users)
        reply = await first.get_roster(timeout=TIMEOUT)
        assert query(first, reply) is not None
        first.update_roster("rv-bob@localhost", name="Bob")
        await asyncio.sleep(0.5)
        cached = first.client_roster.version
        assert cached and cached != query(first, reply).get("ver")  # the push's version
        await first.logout()

        again = await login(users, cached)
        reply = await again.get_roster(timeout=TIMEOUT)
        assert reply["type"] == "result" and query(again, reply) is None
        assert again.client_roster.version == cached

        pushed = asyncio.get_event_loop().create_future()
        again.add_event_handler("roster_update", lambda iq: iq["type"] == "set" and not pushed.done()
                                and pushed.set_result(iq))
        other = await login(users)
        await other.get_roster(timeout=TIMEOUT)
        other.update_roster("rv-carol@localhost", name="Carol")
        push = await asyncio.wait_for(pushed, TIMEOUT)
        newer = push["roster"]["ver"]
        assert newer and newer != cached
        await other.logout()
        await again.logout()

        stale = await login(users, cached)
        reply = await stale.get_roster(timeout=TIMEOUT)
        assert reply["roster"]["ver"] == newer
        assert sorted(str(jid) for jid in reply["roster"]["items"]) == ["rv-bob@localhost", "rv-carol@localhost"]
        await stale.logout()

    run(scenario())
