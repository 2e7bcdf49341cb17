"""
Real-client tests for PEP (XEP-0163 on XEP-0060, issue 16 item 1): slixmpp
clients with entity caps (XEP-0115) and +notify interests against a real
server over loopback, the way Conversations, Gajim and Dino use it:
nickname (XEP-0172), avatar (XEP-0084), bookmarks (XEP-0402, whitelist),
an OMEMO device list (open), last item at login, preconditions, quotas,
blocking.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_privacy import nothing, subscribed
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

PS = "http://jabber.org/protocol/pubsub"
EVENT = "{http://jabber.org/protocol/pubsub#event}event"
NICK = "http://jabber.org/protocol/nick"
AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
DEVICES = "eu.siacs.conversations.axolotl.devicelist"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "quota")
MAX_NODES = 6


@pytest.fixture(scope="module")
def pepServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("pep"), extra=f"""
[pep]
max_nodes_per_user = {MAX_NODES}
max_item_bytes = 8192
""")
    running.addusers(USERS)
    yield running
    stopServer(running)


class PEPClient(Client):
    """
    A client with disco, caps and PEP that says +notify for C{interests}
    and records every headline (PEP events) it receives.
    """

    def __init__(self, server, name, resource=None, interests=()):
        jid = f"{name}@localhost" + (f"/{resource}" if resource else "")
        Client.__init__(self, server, jid, f"{name}-pw", presence=False)
        for plugin in ("xep_0030", "xep_0060", "xep_0115", "xep_0163", "xep_0191"):
            self.register_plugin(plugin)
        self.interests = interests
        self.events: asyncio.Queue = asyncio.Queue()
        self.register_handler(Callback("pep events", StanzaPath("message@type=headline"),
                                       lambda m: self.events.put_nowait(m)))

    async def login(self):
        ok = await Client.login(self)
        if ok:
            for namespace in self.interests:
                self.plugin["xep_0030"].add_feature(f"{namespace}+notify")
            await self.plugin["xep_0115"].update_caps(broadcast=False)
            self.send_presence()
        return ok

    def iq(self, payload: str, iqType="set", to=None):
        iq = self.Iq()
        iq["type"] = iqType
        if to:
            iq["to"] = to
        iq.append(ET.fromstring(payload))
        return iq.send(timeout=TIMEOUT)


def publishXML(node, payload, itemId="current", **options):
    fields = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in options.items())
    form = (f"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{PS}#publish-options</value></field>{fields}</x></publish-options>") if options else ""
    return f"<pubsub xmlns='{PS}'><publish node='{node}'><item id='{itemId}'>{payload}</item></publish>{form}</pubsub>"


def itemsXML(node, itemId=None):
    item = f"<item id='{itemId}'/>" if itemId else ""
    return f"<pubsub xmlns='{PS}'><items node='{node}'>{item}</items></pubsub>"


def eventItems(message, node):
    """The <item/> elements of a PEP event for C{node} in C{message} (XML), else []."""
    event = message.xml.find(EVENT)
    if event is None:
        return []
    items = event.find("{http://jabber.org/protocol/pubsub#event}items")
    if items is None or items.get("node") != node:
        return []
    return items.findall("{http://jabber.org/protocol/pubsub#event}item")


async def nextEvent(client, node):
    while True:
        message = await asyncio.wait_for(client.events.get(), TIMEOUT)
        items = eventItems(message, node)
        if items:
            return message, items


async def befriend(a, b):
    """Mutual presence subscription between two logged-in clients (slixmpp auto-approves)."""
    a.send_presence_subscription(pto=b.boundjid.bare)
    await subscribed(a, b.boundjid.bare)
    b.send_presence_subscription(pto=a.boundjid.bare)
    await subscribed(b, a.boundjid.bare)
    await subscribed(a, b.boundjid.bare, ("both",))


def errorConditions(error: IqError) -> tuple:
    element = error.iq.xml.find("{jabber:client}error")
    return tuple(child.tag.split("}")[1] for child in element if not child.tag.endswith("}text"))


def test_nickReachesOnlyNotifyResources(pepServer):
    """XEP-0172 nick: the contact's resource with nick+notify gets the event, the one without does not."""

    async def scenario():
        alice = PEPClient(pepServer, "alice")
        bobNotify = PEPClient(pepServer, "bob", "notify", interests=[NICK])
        bobPlain = PEPClient(pepServer, "bob", "plain")
        for client in (alice, bobNotify, bobPlain):
            assert await client.login()
        await befriend(alice, bobNotify)
        await asyncio.sleep(0.3)
        await alice.iq(publishXML(NICK, f"<nick xmlns='{NICK}'>Alice in PEP</nick>"))
        message, items = await nextEvent(bobNotify, NICK)
        assert message["from"] == "alice@localhost"
        assert items[0].find(f"{{{NICK}}}nick").text == "Alice in PEP"
        assert await nothing(bobPlain.events, lambda m: eventItems(m, NICK))
        for client in (alice, bobNotify, bobPlain):
            await client.logout()

    run(scenario())


def test_avatarMetadataAndData(pepServer):
    """XEP-0084: the metadata event reaches the contact, who then fetches the data item by id."""

    async def scenario():
        carol = PEPClient(pepServer, "carol")
        dave = PEPClient(pepServer, "dave", interests=[AVATAR_META])
        assert await carol.login() and await dave.login()
        await befriend(carol, dave)
        await asyncio.sleep(0.3)
        avatarId = "0123456789abcdef0123456789abcdef01234567"
        await carol.iq(publishXML(AVATAR_DATA, f"<data xmlns='{AVATAR_DATA}'>iVBORw0KGgo=</data>", avatarId))
        await carol.iq(publishXML(AVATAR_META, f"<metadata xmlns='{AVATAR_META}'><info id='{avatarId}' bytes='8'"
                                               " type='image/png' height='1' width='1'/></metadata>", avatarId))
        _, items = await nextEvent(dave, AVATAR_META)
        assert items[0].get("id") == avatarId
        reply = await dave.iq(itemsXML(AVATAR_DATA, avatarId), "get", "carol@localhost")
        data = reply.xml.find(f"{{{PS}}}pubsub/{{{PS}}}items/{{{PS}}}item/{{{AVATAR_DATA}}}data")
        assert data is not None and data.text == "iVBORw0KGgo="
        await carol.logout()
        await dave.logout()

    run(scenario())


def test_bookmarksWhitelist(pepServer):
    """XEP-0402 bookmarks (whitelist): the owner's other resource is notified, a contact cannot read them."""

    async def scenario():
        erin = PEPClient(pepServer, "erin", "phone")
        erinDesk = PEPClient(pepServer, "erin", "desk", interests=[BOOKMARKS])
        frank = PEPClient(pepServer, "frank", interests=[BOOKMARKS])
        for client in (erin, erinDesk, frank):
            assert await client.login()
        await befriend(erin, frank)
        await asyncio.sleep(0.3)
        room = "room@muc.localhost"
        await erin.iq(publishXML(BOOKMARKS, f"<conference xmlns='{BOOKMARKS}' autojoin='true' name='Room'/>",
                                 room, persist_items="true", max_items="max", send_last_published_item="never",
                                 access_model="whitelist"))
        _, items = await nextEvent(erinDesk, BOOKMARKS)
        assert items[0].get("id") == room
        assert await nothing(frank.events, lambda m: eventItems(m, BOOKMARKS))
        with pytest.raises(IqError) as refused:
            await frank.iq(itemsXML(BOOKMARKS), "get", "erin@localhost")
        assert errorConditions(refused.value) == ("not-allowed", "closed-node")
        # the same publish-options with another access model: the precondition fails
        with pytest.raises(IqError) as mismatch:
            await erin.iq(publishXML(BOOKMARKS, f"<conference xmlns='{BOOKMARKS}'/>", "other@muc.localhost",
                                     access_model="open"))
        assert errorConditions(mismatch.value) == ("conflict", "precondition-not-met")
        reply = await erin.iq(itemsXML(BOOKMARKS), "get")
        ids = [i.get("id") for i in reply.xml.iter(f"{{{PS}}}item")]
        assert ids == [room]
        for client in (erin, erinDesk, frank):
            await client.logout()

    run(scenario())


def test_omemoDeviceListOpenToStrangers(pepServer):
    """An OMEMO device list published with access model open is readable by a non-contact."""

    async def scenario():
        gina = PEPClient(pepServer, "gina")
        hank = PEPClient(pepServer, "hank")
        assert await gina.login() and await hank.login()
        await gina.iq(publishXML(DEVICES, "<list xmlns='eu.siacs.conversations.axolotl'><device id='42'/></list>",
                                 access_model="open"))
        reply = await hank.iq(itemsXML(DEVICES), "get", "gina@localhost")
        device = reply.xml.find(".//{eu.siacs.conversations.axolotl}device")
        assert device is not None and device.get("id") == "42"
        with pytest.raises(IqError) as refused:
            await hank.iq(itemsXML(NICK), "get", "gina@localhost")
        assert errorConditions(refused.value)[0] == "item-not-found"
        await gina.logout()
        await hank.logout()

    run(scenario())


def test_lastItemOnLogin(pepServer):
    """A contact logging in with nick+notify gets the last published nick at once."""

    async def scenario():
        alice = PEPClient(pepServer, "alice", "again")
        assert await alice.login()
        await alice.iq(publishXML(NICK, f"<nick xmlns='{NICK}'>Alice later</nick>"))
        await alice.logout()
        bob = PEPClient(pepServer, "bob", "late", interests=[NICK])
        assert await bob.login()
        message, items = await nextEvent(bob, NICK)
        assert message["from"] == "alice@localhost"
        assert items[0].find(f"{{{NICK}}}nick").text == "Alice later"
        await bob.logout()

    run(scenario())


def test_quotaExceeded(pepServer):
    """Past max_nodes_per_user a publish to a new node is resource-constraint; a too big item payload-too-big."""

    async def scenario():
        quota = PEPClient(pepServer, "quota")
        assert await quota.login()
        for n in range(MAX_NODES):
            await quota.iq(publishXML(f"urn:example:{n}", "<x xmlns='urn:example'/>"))
        with pytest.raises(IqError) as refused:
            await quota.iq(publishXML("urn:example:one-too-many", "<x xmlns='urn:example'/>"))
        assert errorConditions(refused.value) == ("resource-constraint", "max-nodes-exceeded")
        with pytest.raises(IqError) as big:
            await quota.iq(publishXML("urn:example:0", "<x xmlns='urn:example'>" + "x" * 9000 + "</x>"))
        assert errorConditions(big.value) == ("not-acceptable", "payload-too-big")
        await quota.logout()

    run(scenario())


def test_blockedContactGetsNothing(pepServer):
    """A contact carol blocked (XEP-0191) gets no event and cannot read even her open node."""

    async def scenario():
        carol = PEPClient(pepServer, "carol", "blocker")
        dave = PEPClient(pepServer, "dave", "blocked", interests=[NICK, DEVICES])
        assert await carol.login() and await dave.login()
        await carol.plugin["xep_0191"].block("dave@localhost", timeout=TIMEOUT)
        await carol.iq(publishXML(DEVICES, "<list xmlns='eu.siacs.conversations.axolotl'/>", access_model="open"))
        await carol.iq(publishXML(NICK, f"<nick xmlns='{NICK}'>Carol</nick>"))
        assert await nothing(dave.events)
        with pytest.raises(IqError) as refused:
            await dave.iq(itemsXML(DEVICES), "get", "carol@localhost")
        assert errorConditions(refused.value)[0] == "service-unavailable"
        await carol.plugin["xep_0191"].unblock("dave@localhost", timeout=TIMEOUT)
        await carol.logout()
        await dave.logout()

    run(scenario())


def test_serverCapsVerifiedBySlixmpp(pepServer):
    """XEP-0115 §6.3: slixmpp reads the server's <c/> in the stream features, asks node#ver and verifies the hash."""

    async def scenario():
        client = PEPClient(pepServer, "hank", "caps")
        assert await client.login()
        assert "caps" in client.features
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        ver = None
        while ver is None and asyncio.get_running_loop().time() < deadline:
            ver = await client.plugin["xep_0115"].get_verstring("localhost")
            await asyncio.sleep(0.1)
        assert ver, "slixmpp did not verify the server's caps"
        info = await client.plugin["xep_0115"].get_caps(verstring=ver)
        assert "http://jabber.org/protocol/disco#info" in info["features"]
        await client.logout()

    run(scenario())
