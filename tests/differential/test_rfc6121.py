"""
Differential tests: the same slixmpp scenarios against xmppchat and
Prosody (see conftest.py), each recording what every client received as
normalised data (tests/differential/observe.py) and comparing it with the
one result RFC 6120/6121 call for, which Prosody shows.  Where xmppchat
may legitimately answer otherwise, the expectation names the section that
allows it.
"""

from __future__ import annotations

import pytest

from tests.differential.observe import befriend, play

# Accounts per scenario; their localparts are <scenario>-<name>.
USERS = {
    "reflect": ("alice",),
    "unavail": ("alice",),
    "probe": ("alice", "bob"),
    "unsolicited": ("alice", "bob"),
    "handshake": ("alice", "bob"),
    "priority": ("alice", "bob"),
    "fallback": ("alice", "bob"),
    "nouser": ("alice",),
    "offline": ("alice", "carol"),
    "iqgone": ("alice", "bob"),
}


@pytest.fixture(scope="module")
def users(server):
    server.addusers([f"{scene}-{name}" for scene, names in USERS.items() for name in names])
    return server


def check(server, got, expected, section):
    """
    Assert C{got} is C{expected}, naming the server and the section.
    """
    assert got == expected, f"{section} on {server.name}: got {got!r}, expected {expected!r}"


def test_initialPresenceReflected(users):
    """RFC 6121 §4.2.2: initial presence goes to all of the user's available resources, the sender's included."""

    async def script(scene):
        await scene.online("alice")
        await scene.online("alice")
        return scene.observed(kinds=("presence",))

    check(users, play(users, "reflect", script), {
        "alice/1": ["presence available from=alice/1 to=alice/1",
                    "presence available from=alice/2 to=alice/1"],
        "alice/2": ["presence available from=alice/1 to=alice/2",
                    "presence available from=alice/2 to=alice/2"],
    }, "RFC 6121 §4.2.2")


def test_unavailablePresenceReflected(users):
    """RFC 6121 §4.5.2: unavailable presence goes to all of the user's available resources, the sender's included."""

    async def script(scene):
        first, second = await scene.online("alice", "alice")
        since = scene.mark()
        second.send_presence(ptype="unavailable", pstatus="gone")
        await scene.settle()
        return scene.observed(since, kinds=("presence",))

    check(users, play(users, "unavail", script), {
        "alice/1": ["presence unavailable from=alice/2 to=alice/1 status='gone'"],
        "alice/2": ["presence unavailable from=alice/2 to=alice/2 status='gone'"],
    }, "RFC 6121 §4.5.2")


def test_probeAnswered(users):
    """RFC 6121 §4.3: a user logging in gets the presence of a subscribed, available contact (probe answered)."""

    async def script(scene):
        await befriend(scene.server, "probe", "alice", "bob")
        bob = await scene.login("bob")
        bob.send_presence(pstatus="here", ppriority=1)
        await scene.settle()
        since = scene.mark()
        await scene.online("alice")
        # Self-presence is test_initialPresenceReflected's.
        return scene.observed(since, kinds=("presence",), others=True)

    check(users, play(users, "probe", script), {
        # §4.3.2: the probe is answered with bob's last presence;
        # §4.2.2: alice's initial presence is broadcast to her subscriber.
        "alice/1": ["presence available from=bob/1 to=alice/1 priority=1 status='here'"],
        "bob/1": ["presence available from=alice/1 to=bob"],
    }, "RFC 6121 §4.3.2 and §4.2.2")


def test_unsolicitedSubscribedIgnored(users):
    """RFC 6121 §3.1.6: a 'subscribed' without a pending request is not delivered and changes no roster."""

    async def script(scene):
        alice, bob = await scene.online("alice", "bob", rosters=True)
        before = await scene.roster(alice)
        since = scene.mark()
        bob.send_presence(pto=scene.jid("alice"), ptype="subscribed")
        await scene.settle(quiet=0.6)
        seen = scene.observed(since)
        return {"alice roster before": before, "alice roster after": await scene.roster(alice),
                "alice received": seen["alice/1"]}

    check(users, play(users, "unsolicited", script), {
        "alice roster before": [], "alice roster after": [], "alice received": [],
    }, "RFC 6121 §3.1.6")


def test_subscriptionHandshake(users):
    """RFC 6121 §3.1.2-§3.1.6: subscribe and approve, with the roster pushes and presence each side gets, in order."""

    async def script(scene):
        alice, bob = await scene.online("alice", "bob", rosters=True)
        since = scene.mark()
        alice.send_presence_subscription(pto=scene.jid("bob"))
        await scene.settle()
        requested = scene.observed(since, ordered=True)
        since = scene.mark()
        bob.send_presence(pto=scene.jid("alice"), ptype="subscribed")
        await scene.settle()
        approved = scene.observed(since, ordered=True)
        return {"requested": requested, "approved": approved,
                "rosters": [await scene.roster(alice), await scene.roster(bob)]}

    requestedByAlice = ["roster-push to=alice/1 bob:none:ask=subscribe"]
    if users.name == "prosody":
        # Prosody acknowledges a subscription request with unavailable
        # presence from the contact's bare JID; RFC 6121 §3.1.3 neither
        # asks for nor forbids it, and xmppchat does not send it.
        requestedByAlice.append("presence unavailable from=bob to=alice")
    check(users, play(users, "handshake", script), {
        "requested": {
            # §3.1.2: the user's server pushes the pending item; §3.1.3: the
            # contact gets the request from the user's bare JID.
            "alice/1": requestedByAlice,
            "bob/1": ["presence subscribe from=alice to=bob"],
        },
        "approved": {
            # §3.1.6: the 'subscribed' MUST reach the user before the roster
            # push; §3.1.5: the contact's server then sends the contact's
            # available presence to the user's bare JID.
            "alice/1": ["presence subscribed from=bob to=alice",
                        "roster-push to=alice/1 bob:to",
                        "presence available from=bob/1 to=alice"],
            # §3.1.5: the contact's server pushes subscription 'from'.
            "bob/1": ["roster-push to=bob/1 alice:from"],
        },
        "rosters": [["bob:to"], ["alice:from"]],
    }, "RFC 6121 §3.1")


def test_bareMessagePriorities(users):
    """RFC 6121 §8.5.2.1.1: a chat to the bare JID goes to the highest non-negative priority, never to a negative one."""

    async def script(scene):
        alice, = await scene.online("alice")
        first, second = await scene.login("bob"), await scene.login("bob")
        first.send_presence(ppriority=5)
        second.send_presence(ppriority=-1)
        await scene.settle()
        for body, priorities in (("one", None), ("two", (1, 3)), ("three", (0, -1))):
            if priorities:
                first.send_presence(ppriority=priorities[0])
                second.send_presence(ppriority=priorities[1])
                await scene.settle()
            alice.send_message(mto=scene.jid("bob"), mbody=body, mtype="chat")
            await scene.settle()
        return scene.observed(kinds=("message",))

    # Priorities 5/-1: only bob/1; 1/3: Prosody picks the highest (bob/2),
    # xmppchat every non-negative resource, which §8.5.2.1.1 allows as its
    # option (b) for more than one non-negative resource; 0/-1: only bob/1.
    two = {"prosody": ("bob/2",), "xmppchat": ("bob/1", "bob/2")}[users.name]
    expected = {"alice/1": [], "bob/1": ["message chat from=alice/1 to=bob body='one'"], "bob/2": []}
    for label in two:
        expected[label].append("message chat from=alice/1 to=bob body='two'")
    expected["bob/1"].append("message chat from=alice/1 to=bob body='three'")
    expected = {label: sorted(texts) for label, texts in expected.items()}
    check(users, play(users, "priority", script), expected, "RFC 6121 §8.5.2.1.1")


def test_unknownFullJIDFallsBackToBare(users):
    """RFC 6121 §8.5.3.2.1: a chat to a full JID with no such resource is handled as if sent to the bare JID."""

    async def script(scene):
        alice, bob = await scene.online("alice", "bob")
        alice.send_message(mto=scene.jid("bob") + "/no-such-resource", mbody="anyone?", mtype="chat")
        await scene.settle()
        return scene.observed(kinds=("message",))

    check(users, play(users, "fallback", script), {
        "alice/1": [],
        "bob/1": ["message chat from=alice/1 to=bob/? body='anyone?'"],
    }, "RFC 6121 §8.5.3.2.1")


def test_noSuchUser(users):
    """RFC 6121 §8.5.1: a message or IQ to an account that does not exist gets service-unavailable."""

    async def script(scene):
        alice, = await scene.online("alice")
        since = scene.mark()
        alice.send_message(mto=scene.jid("nobody"), mbody="hello?", mtype="chat")
        await scene.settle()
        answer = await scene.ask(alice, scene.jid("nobody"))
        return {"message": scene.observed(since)["alice/1"], "iq": answer}

    check(users, play(users, "nouser", script), {
        "message": ["message error from=nobody to=alice/1 error=cancel/service-unavailable"],
        "iq": "cancel/service-unavailable from=nobody",
    }, "RFC 6121 §8.5.1")


def test_offlineMessageDelayed(users):
    """RFC 6121 §8.5.2.2.1, XEP-0160, XEP-0203: a chat to an offline user is delivered at login with a delay stamp."""

    async def script(scene):
        alice, = await scene.online("alice")
        alice.send_message(mto=scene.jid("carol"), mbody="while you were out", mtype="chat")
        await scene.settle()
        await scene.online("carol")
        return scene.observed(kinds=("message",))

    check(users, play(users, "offline", script), {
        "alice/1": [],
        # Addressed as sent (to the bare JID), as XEP-0160's example shows.
        "carol/1": ["message chat from=alice/1 to=carol body='while you were out' delayed"],
    }, "RFC 6121 §8.5.2.2.1 / XEP-0160 / XEP-0203")


def test_iqToUnavailableResource(users):
    """RFC 6121 §8.5.3.2.3: an IQ to a full JID with no such resource gets service-unavailable."""

    async def script(scene):
        alice, bob = await scene.online("alice", "bob")
        answers = [await scene.ask(alice, scene.jid("bob") + "/gone"),
                   await scene.ask(alice, scene.jid("alice") + "/gone")]
        await scene.settle()
        return {"answers": answers, "bob received": scene.observed(kinds=("iq",))["bob/1"]}

    check(users, play(users, "iqgone", script), {
        "answers": ["cancel/service-unavailable from=bob/?", "cancel/service-unavailable from=alice/?"],
        "bob received": [],
    }, "RFC 6121 §8.5.3.2.3")
