"""
Differential test of roster versioning (RFC 6121 §2.6, XEP-0237; issue 16
item 6): the same slixmpp scenario against xmppchat and Prosody (see
conftest.py).  Versions are opaque strings (§2.6.1), so what is compared
is how each server uses them, not their values.
"""

from __future__ import annotations

import pytest

from tests.differential.observe import NS_ROSTER, play
from tests.e2e.test_slixmpp import TIMEOUT


@pytest.fixture(scope="module")
def users(server):
    server.addusers(["rosterver-alice", "rosterver-bob", "rosterver-carol"])
    return server


async def versionedGet(scene, client, ver: str):
    """
    A roster get carrying C{ver}: C{(None, None)} for an empty result,
    else C{(version, items)}.
    """
    iq = client.make_iq_get(queryxmlns=NS_ROSTER)
    iq.xml.find(f"{{{NS_ROSTER}}}query").set("ver", ver)
    reply = await iq.send(timeout=TIMEOUT)
    query = reply.xml.find(f"{{{NS_ROSTER}}}query")
    if query is None:
        return None, None
    return query.get("ver"), sorted(scene.item(item) for item in query)


def test_rosterVersioning(users):
    """
    RFC 6121 §2.6: the stream feature; a full roster with a version; an
    empty result for the current version; a push with a version after a
    change by another session; the full roster with that version for a
    stale one, and an empty result for it afterwards.  (Prosody 0.12 calls
    a roster never written version 1, and the roster after its first
    change version 1 too, so the scene starts with a roster written once.)
    """

    async def script(scene):
        alice, other = await scene.login("alice"), await scene.login("alice")
        alice.update_roster(scene.jid("carol"), name="Carol")
        await scene.settle()
        first, items = await versionedGet(scene, alice, "")
        outcome = {"feature": "rosterver" in alice.features, "first": (first is not None, items)}
        if not first:
            return outcome  # no versioning: nothing more to compare
        outcome["current"] = await versionedGet(scene, alice, first)
        await versionedGet(scene, other, first)  # an interested resource (§2.1.6)
        since = scene.mark()
        alice.update_roster(scene.jid("bob"), name="Bob")
        await scene.settle()
        pushes = [xml.find(f"{{{NS_ROSTER}}}query") for client, xml in scene.received[since:]
                  if client is other and xml.get("type") == "set"]
        pushed = [query.get("ver") for query in pushes if query is not None]
        outcome["pushes"] = [bool(ver) and ver != first for ver in pushed]
        stale, items = await versionedGet(scene, other, first)
        outcome["stale"] = (stale == pushed[-1] if pushed else stale, items)
        outcome["after"] = await versionedGet(scene, other, stale)
        return outcome

    got = play(users, "rosterver", script)
    expected = {"feature": True, "first": (True, ["carol:none"]), "current": (None, None), "pushes": [True],
                "stale": (True, ["bob:none", "carol:none"]), "after": (None, None)}
    assert got == expected, f"RFC 6121 §2.6 on {users.name}: got {got!r}, expected {expected!r}"
