"""
Differential test of XEP-0313 account archive queries (issue 16, helper
mamacct): two stock clients chat both ways, then one queries its archive
without C{with}, pages it with RSM, and compares the ids with the
XEP-0359 stanza-ids it was delivered, against xmppchat and Prosody's
mod_mam (see conftest.py).  Archive ids are opaque: what is compared is
the order, the bodies and whether ids match, not their values.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.differential.observe import play
from tests.e2e.test_mam import NS_FORWARD, NS_MAM, NS_RSM, NS_SID
from tests.e2e.test_slixmpp import TIMEOUT

NS_DISCO = "http://jabber.org/protocol/disco#info"


@pytest.fixture(scope="module")
def users(server):
    server.addusers(["mam-alice", "mam-bob"])
    return server


async def archive(scene, client, rsm: str = ""):
    """(result ids, bodies, complete, last) of an account query without 'with'."""
    queryId = f"q{scene.mark()}"
    since = scene.mark()
    query = ET.fromstring(f"<query xmlns='{NS_MAM}' queryid='{queryId}'>{rsm}</query>")
    reply = await client.make_iq_set(query).send(timeout=TIMEOUT)
    await scene.settle()
    results = [r for c, xml in scene.received[since:] if c is client
               for r in xml.findall(f"{{{NS_MAM}}}result") if r.get("queryid") == queryId]
    bodies = [r.find(f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message").findtext("{jabber:client}body")
              for r in results]
    fin = reply.xml.find(f"{{{NS_MAM}}}fin")
    last = fin.find(f"{{{NS_RSM}}}set").findtext(f"{{{NS_RSM}}}last")
    return [r.get("id") for r in results], bodies, fin.get("complete") == "true", last


def test_accountArchive(users):
    """XEP-0313 §4 and XEP-0059: the account archive without 'with', in order, paged; XEP-0359 ids."""

    async def script(scene):
        alice, bob = await scene.online("alice", "bob")
        disco = await alice.make_iq_get(queryxmlns=NS_DISCO, ito=scene.jid("alice")).send(timeout=TIMEOUT)
        features = {f.get("var") for f in disco.xml.iter(f"{{{NS_DISCO}}}feature")}
        since = scene.mark()
        for i, (sender, peer) in enumerate(((alice, "bob"), (bob, "alice"), (alice, "bob"), (bob, "alice"))):
            sender.send_message(mto=scene.jid(peer), mbody=f"d{i}", mtype="chat")
            await scene.settle()
        delivered = {}
        for client, xml in scene.received[since:]:
            body = xml.findtext("{jabber:client}body")
            if client is alice and body:
                delivered[body] = {e.get("by"): e.get("id") for e in xml.findall(f"{{{NS_SID}}}stanza-id")}
        ids, bodies, complete, _ = await archive(scene, alice)
        first, firstBodies, firstComplete, last = await archive(scene, alice, f"<set xmlns='{NS_RSM}'><max>2</max></set>")
        rest, restBodies, _, _ = await archive(
            scene, alice, f"<set xmlns='{NS_RSM}'><max>2</max><after>{last}</after></set>")
        tail, tailBodies, _, _ = await archive(scene, alice, f"<set xmlns='{NS_RSM}'><max>1</max><before/></set>")
        return {
            "features": {NS_MAM, NS_SID} <= features,
            "all": (bodies, complete),
            "ids match stanza-ids": all(delivered[b].get(scene.jid("alice")) == ids[bodies.index(b)]
                                        for b in delivered),
            "first page": (firstBodies, firstComplete, first == ids[:2]),
            "after": (restBodies, rest == ids[2:]),
            "last page": (tailBodies, tail == ids[3:]),
        }

    got = play(users, "mam", script)
    expected = {"features": True, "all": (["d0", "d1", "d2", "d3"], True), "ids match stanza-ids": True,
                "first page": (["d0", "d1"], False, True), "after": (["d2", "d3"], True),
                "last page": (["d3"], True)}
    assert got == expected, f"XEP-0313 on {users.name}: got {got!r}, expected {expected!r}"
