"""
Differential tests for PEP (XEP-0163, issue 16 item 1): the same slixmpp
scenarios against xmppchat and Prosody's mod_pep: publish -> the event at
the contact's +notify resource only, the last item at a contact's login,
and item retrieval by a contact and by a stranger.

Where they differ, legitimately:
- Prosody 0.12 also sends each event to the bare JID of a contact it
  subscribed on its own (XEP-0060 §9.1 auto-subscribe), so every available
  resource, with +notify or not, gets it, the +notify one twice; XEP-0163
  §4.3 filters by +notify, which xmppchat does.  The scenarios compare the
  events addressed to full JIDs, the +notify filtering itself;
- a stranger reading a presence-access node: Prosody answers C{forbidden},
  xmppchat C{not-authorized} with C{<presence-subscription-required/>}, as
  XEP-0060 §6.5.9.4 says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from tests.differential.observe import Scene, befriend, play
from tests.differential.test_rfc6121 import check
from tests.e2e.test_slixmpp import TIMEOUT

NICK = "http://jabber.org/protocol/nick"
PS = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"
USERS = {"pepnotify": ("alice", "bob"), "peplast": ("alice", "bob"), "pepread": ("alice", "bob", "carol")}


@pytest.fixture(scope="module")
def users(server):
    server.addusers([f"{scene}-{name}" for scene, names in USERS.items() for name in names])
    return server


async def withInterest(scene, short, nodes):
    """A logged-in client of C{short} whose caps say +notify for C{nodes}; sends initial presence."""
    client = scene.client(short)
    for plugin in ("xep_0030", "xep_0115"):
        client.register_plugin(plugin)
    assert await client.login()
    for node in nodes:
        client.plugin["xep_0030"].add_feature(f"{node}+notify")
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    client.send_presence()
    await scene.settle()
    return client


def publish(client, text):
    iq = client.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(f"<pubsub xmlns='{PS}'><publish node='{NICK}'><item id='current'>"
                            f"<nick xmlns='{NICK}'>{text}</nick></item></publish></pubsub>"))
    return iq.send(timeout=TIMEOUT)


def events(scene, since):
    """
    Label -> the PEP events addressed to each client's full JID since
    C{since}: C{from node id text} (see the module docstring).
    """
    out = {label: [] for label in scene.labels.values()}
    for client, xml in scene.received[since:]:
        event = xml.find(f"{{{EVENT}}}event")
        if event is None or "/" not in (xml.get("to") or "/"):
            continue
        for items in event:
            for item in items:
                nick = item.find(f"{{{NICK}}}nick")
                out[scene.labels[client]].append(
                    f"{scene.name(xml.get('from'))} {items.get('node')} {item.get('id')} "
                    f"{nick.text if nick is not None else '-'}")
    return out


def test_publishReachesNotifyResourceOnly(users):
    """XEP-0163 §4.3: the contact's resource with nick+notify gets the event; one without, and the publisher, do not."""

    async def script(scene):
        await befriend(scene.server, "pepnotify", "alice", "bob")
        # the node exists before the scene: what is compared is a plain publish
        before = Scene(scene.server, "pepnotify")
        try:
            await publish((await before.online("alice"))[0], "Created")
        finally:
            await before.close()
        await withInterest(scene, "bob", [NICK])
        await scene.online("bob")
        alice = (await scene.online("alice"))[0]
        since = scene.mark()
        await publish(alice, "Alice")
        await scene.settle()
        return events(scene, since)

    check(users, play(users, "pepnotify", script), {
        "bob/1": [f"alice {NICK} current Alice"], "bob/2": [], "alice/1": [],
    }, "XEP-0163 §4.3")


def test_lastItemAtLogin(users):
    """XEP-0163 §4.3.4: a contact logging in with nick+notify gets the last published item."""

    async def script(scene):
        await befriend(scene.server, "peplast", "alice", "bob")
        alice = (await scene.online("alice"))[0]
        await publish(alice, "Earlier")
        since = scene.mark()
        await withInterest(scene, "bob", [NICK])
        return events(scene, since)

    check(users, play(users, "peplast", script), {
        "alice/1": [], "bob/1": [f"alice {NICK} current Earlier"],
    }, "XEP-0163 §4.3.4")


def test_itemsReadByContactNotStranger(users):
    """XEP-0060 §6.5 with the presence access model: a contact reads the item, a stranger is refused."""

    async def script(scene):
        await befriend(scene.server, "pepread", "alice", "bob")
        alice, bob, carol = await scene.online("alice", "bob", "carol")
        await publish(alice, "Readable")
        answers = []
        for reader in (bob, carol):
            iq = reader.Iq()
            iq["type"] = "get"
            iq["to"] = scene.jid("alice")
            iq.append(ET.fromstring(f"<pubsub xmlns='{PS}'><items node='{NICK}'/></pubsub>"))
            try:
                reply = await iq.send(timeout=TIMEOUT)
            except IqError as e:
                answers.append(f"error {e.iq['error']['type']}/{e.condition}")
                continue
            items = reply.xml.findall(f"{{{PS}}}pubsub/{{{PS}}}items/{{{PS}}}item")
            answers.append(" ".join(f"{i.get('id')}:{i.find(f'{{{NICK}}}nick').text}" for i in items))
        return answers

    refusal = "error auth/forbidden" if users.name == "prosody" else "error auth/not-authorized"
    check(users, play(users, "pepread", script), ["current:Readable", refusal],
          "XEP-0060 §6.5.9.4 (presence access model)")
