"""
Issue 15 findings 8, 9 and 11 against a real server with a real client
(L{tests.e2e.rawclient} over TCP+STARTTLS, plain HTTP for REST), each
written as the attack: an offline-queue flood through a group dialog, a
stranger tracking someone's presence, a stranger probing a members-only
room.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.rawclient import NS_CLIENT, RawClient, body
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import run

PASSWORD = "consent-pw-1"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@pytest.fixture(scope="module")
def consentServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("consent"), "[limits]\noffline_messages_per_user = 8\n")
    status, answer = call(running, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, answer
    appToken = answer["session"]["token"]
    running.users = {}
    for name in ("mallory", "victim", "alice"):
        status, answer = call(running, "POST", "/users.json",
                              {"user": {"login": name, "password": PASSWORD}}, token=appToken)
        assert status == 201, answer
        userId = answer["user"]["id"]
        status, answer = call(running, "POST", "/session.json", {
            "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": name, "password": PASSWORD}})
        assert status == 201, answer
        running.users[name] = (userId, answer["session"]["token"])
    yield running
    stopServer(running)


def jid(server, name):
    return f"{server.users[name][0]}-1@localhost"


async def login(server, name):
    client = RawClient(server)
    await client.login(f"{server.users[name][0]}-1", PASSWORD)
    return client


async def waitFor(client, predicate, timeout=15):
    while True:
        stanza = await asyncio.wait_for(client.stanzas.get(), timeout)
        if predicate(stanza):
            return stanza


def errorOf(stanza):
    error = stanza.find(f"{{{NS_CLIENT}}}error")
    return None if error is None else [c.tag.split("}")[1] for c in error if c.tag != f"{{{NS_STANZAS}}}text"][0]


def groupDialog(server, owner, occupants, name):
    ids = ",".join(str(server.users[o][0]) for o in occupants)
    status, answer = call(server, "POST", "/chat/Dialog.json",
                          {"type": 2, "occupants_ids": ids, "name": name}, token=server.users[owner][1])
    assert status == 201, answer
    return answer["_id"]


def test_groupFloodLeavesTheVictimsQueueToOthers(consentServer):
    """Mallory floods Victim's offline queue through a group he put her in; Alice's 1-1 message still reaches her at login (finding 8)."""
    server = consentServer
    room = f"1_{groupDialog(server, 'mallory', ['victim'], 'flood')}@muc.localhost"

    async def scenario():
        mallory = await login(server, "mallory")
        for i in range(20):
            mallory.send(f"<message to='{room}' type='groupchat' id='g{i}'><body>flood {i}</body>"
                         "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"
                         "</message>")
        mallory.send(f"<message to='{jid(server, 'victim')}' type='chat' id='dm'><body>me again</body></message>")
        bounced = await waitFor(mallory, lambda s: s.get("id") == "dm")
        assert bounced.get("type") == "error" and errorOf(bounced) == "service-unavailable"
        alice = await login(server, "alice")
        alice.send(f"<message to='{jid(server, 'victim')}' type='chat' id='hi'><body>lunch?</body></message>")
        pong = await alice.request("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>", "p")
        assert pong.get("type") == "result"  # handled after the message: nothing bounced
        victim = await login(server, "victim")
        victim.send("<presence/>")
        bodies = []
        while "lunch?" not in bodies:
            stanza = await waitFor(victim, lambda s: s.tag == f"{{{NS_CLIENT}}}message")
            bodies.append(body(stanza))
        assert bodies == ["flood 0", "flood 1", "lunch?"]  # Mallory's share: 25 % of 8
        for client in (mallory, alice, victim):
            await client.close()

    run(scenario())


def test_strangerCannotTrackPresence(consentServer):
    """A stranger gets neither the online list with the public key, nor last activity by opening a dialog; a partner who was written to does (finding 9)."""
    server = consentServer
    status, answer = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, answer
    status, answer = call(server, "GET", "/users/online.json", token=answer["session"]["token"])
    assert status == 403, answer
    status, answer = call(server, "GET", "/users/online.json", token=server.users["alice"][1])
    assert status == 200 and "users" in answer
    status, dialog = call(server, "POST", "/chat/Dialog.json",
                          {"type": 3, "occupants_ids": str(server.users["victim"][0])},
                          token=server.users["mallory"][1])
    # 200: the flood test's chat already made the pair's dialog (stock 1-1 chat is archived, issue 16)
    assert status in (200, 201), dialog

    async def scenario():
        victim = await login(server, "victim")
        mallory = await login(server, "mallory")
        mallory.send("<presence/>")
        query = f"<iq type='get' to='{jid(server, 'victim')}' id='l'><query xmlns='jabber:iq:last'/></iq>"
        refused = await mallory.request(query, "l")
        assert refused.get("type") == "error" and errorOf(refused) == "forbidden"
        victim.send(f"<message to='{jid(server, 'mallory')}' type='chat' id='v'><body>who are you?</body>"
                    f"<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
                    f"<dialog_id>{dialog['_id']}</dialog_id></extraParams></message>")
        await waitFor(mallory, lambda s: body(s) == "who are you?")
        answered = await mallory.request(query.replace("id='l'", "id='l2'"), "l2")
        assert answered.get("type") == "result"
        for client in (victim, mallory):
            await client.close()

    run(scenario())


def test_strangerCannotProbeMembersOnlyRoom(consentServer):
    """disco#info of a members-only dialog's room gives a non-member no name, only item-not-found (finding 11)."""
    server = consentServer
    room = f"1_{groupDialog(server, 'alice', ['victim'], 'Secret plans')}@muc.localhost"

    async def scenario():
        mallory = await login(server, "mallory")
        reply = await mallory.request(f"<iq type='get' to='{room}' id='i'>"
                                      "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "i")
        assert reply.get("type") == "error" and errorOf(reply) == "item-not-found"
        await mallory.close()

    run(scenario())
