"""
Real-client tests for privacy lists (XEP-0016) and the blocking command
(XEP-0191): slixmpp clients against a real server over loopback.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from tests.e2e.test_slixmpp import TIMEOUT, Client, run

QUIET = 0.7  # seconds to wait when checking that nothing arrives
USERS = ("alice", "bob", "carol", "erin", "frank", "gina", "hank", "ivan", "judy")


@pytest.fixture(scope="module")
def accounts(server):
    for name in USERS:
        server.adduser(name, f"{name}-pw")
    return server


class PrivacyClient(Client):
    """
    A client with the privacy, blocking, version and last plugins that
    records every message and presence it receives.
    """

    def __init__(self, server, name, resource=None):
        jid = f"{name}@localhost" + (f"/{resource}" if resource else "")
        Client.__init__(self, server, jid, f"{name}-pw")
        for plugin in ("xep_0016", "xep_0191", "xep_0092", "xep_0012"):
            self.register_plugin(plugin)
        self.allMessages: asyncio.Queue = asyncio.Queue()
        self.presences: asyncio.Queue = asyncio.Queue()
        self.pushes: asyncio.Queue = asyncio.Queue()
        self.register_handler(Callback("all messages", StanzaPath("message"),
                                       lambda m: self.allMessages.put_nowait(m)))
        self.register_handler(Callback("all presence", StanzaPath("presence"),
                                       lambda p: self.presences.put_nowait(p)))
        self.add_event_handler("blocked", lambda iq: self.pushes.put_nowait(("block", iq)))
        self.add_event_handler("unblocked", lambda iq: self.pushes.put_nowait(("unblock", iq)))


def sdkItems(user, mutual=False, start=1):
    """The two items the ConnectyCube SDK writes for one blocked user (§5.18), as XML."""
    children = "" if mutual else "<message/><presence-in/><presence-out/><iq/>"
    return "".join(
        f"<item type='jid' value='{value}' action='deny' order='{order}'>{children}</item>"
        for value, order in ((f"{user}@localhost", start), (f"muc.localhost/{user}", start + 1)))


def editList(client, name, items):
    """
    Create or replace a list with exactly these items (slixmpp's own
    edit_list writes <presence-in/> for presence_out, so the wire form is
    built here, as the SDK sends it).
    """
    iq = client.Iq()
    iq["type"] = "set"
    iq.append(ET.fromstring(f"<query xmlns='jabber:iq:privacy'><list name='{name}'>{items}</list></query>"))
    return iq.send(timeout=TIMEOUT)


async def nothing(queue, match=lambda item: True):
    """True when nothing matching arrives on C{queue} for QUIET seconds."""
    deadline = asyncio.get_running_loop().time() + QUIET
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return True
        try:
            item = await asyncio.wait_for(queue.get(), left)
        except asyncio.TimeoutError:
            return True
        if match(item):
            return False


async def next(queue, match):
    while True:
        item = await asyncio.wait_for(queue.get(), TIMEOUT)
        if match(item):
            return item


async def until(attempt):
    """Retry C{attempt} (an IQ) until it succeeds, within TIMEOUT."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        try:
            return await attempt()
        except IqError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def subscribed(client, contact, states=("to", "both")):
    """Wait until the server's roster of C{client} shows a subscription to C{contact}."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        # the whole roster every time: no cached version (RFC 6121 §2.6)
        client.client_roster.version = ""
        roster = await client.get_roster(timeout=TIMEOUT)
        items = {str(item["jid"]): item["subscription"] for item in roster["roster"]}
        if items.get(contact) in states:
            return
        assert asyncio.get_running_loop().time() < deadline, items
        await asyncio.sleep(0.1)


async def login(*clients):
    for client in clients:
        assert await client.login()


async def logout(*clients):
    for client in clients:
        await client.logout()


async def setDefault(client, name, items):
    await editList(client, name, items)
    await client.plugin["xep_0016"].make_default(name, timeout=TIMEOUT)


def test_oneWayBlockChat(accounts):
    """One-way block: the blocked user's chat bounces with code 503, the blocker still reaches them."""

    async def scenario():
        alice, bob = PrivacyClient(accounts, "alice"), PrivacyClient(accounts, "bob")
        await login(alice, bob)
        await setDefault(alice, "@ConnectyCube/blockList", sdkItems("bob"))
        bob.send_message(mto="alice@localhost", mbody="let me in", mtype="chat")
        error = await next(bob.allMessages, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "service-unavailable"
        assert error.xml.find("{jabber:client}error").get("code") == "503"
        assert error["error"]["text"] == "Service not available."
        assert await nothing(alice.allMessages)
        alice.send_message(mto="bob@localhost", mbody="I can still write", mtype="chat")
        got = await next(bob.allMessages, lambda m: m["type"] == "chat")
        assert got["body"] == "I can still write"
        await logout(alice, bob)

    run(scenario())


def test_mutualBlockChat(accounts):
    """Mutual block (no children): neither side can write; the blocker gets not-acceptable."""

    async def scenario():
        carol, bob = PrivacyClient(accounts, "carol"), PrivacyClient(accounts, "bob")
        await login(carol, bob)
        await setDefault(carol, "@ConnectyCube/blockList", sdkItems("bob", mutual=True))
        carol.send_message(mto="bob@localhost", mbody="no", mtype="chat")
        error = await next(carol.allMessages, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "not-acceptable"
        bob.send_message(mto="carol@localhost", mbody="no either", mtype="chat")
        error = await next(bob.allMessages, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "service-unavailable"
        assert await nothing(bob.allMessages, lambda m: m["type"] == "chat")
        assert await nothing(carol.allMessages, lambda m: m["type"] == "chat")
        await logout(carol, bob)

    run(scenario())


def test_presenceAndIqHidden(accounts):
    """A blocked contact sees the blocker go offline, gets no presence or probe answers, and its IQs fail."""

    async def scenario():
        erin, frank = PrivacyClient(accounts, "erin", "e1"), PrivacyClient(accounts, "frank", "f1")
        carol = PrivacyClient(accounts, "carol")
        await login(erin, frank, carol)
        for client in (erin, frank):
            client.roster.auto_subscribe = False
        # one subscription at a time (both at once race in the presence module)
        erin.send_presence_subscription(pto="frank@localhost")
        await subscribed(erin, "frank@localhost")
        frank.send_presence_subscription(pto="erin@localhost")
        await subscribed(frank, "erin@localhost")
        await subscribed(erin, "frank@localhost", ("both",))
        await setDefault(erin, "block", sdkItems("frank"))
        await next(frank.presences, lambda p: p["from"] == erin.boundjid and p["type"] == "unavailable")
        await next(erin.presences, lambda p: p["from"] == frank.boundjid and p["type"] == "unavailable")
        erin.send_presence(pshow="away")
        assert await nothing(frank.presences, lambda p: p["from"].bare == "erin@localhost")
        frank.send_presence(pshow="dnd")
        assert await nothing(erin.presences, lambda p: p["from"].bare == "frank@localhost")
        frank2 = PrivacyClient(accounts, "frank", "f2")
        await login(frank2)
        assert await nothing(frank2.presences, lambda p: p["from"].bare == "erin@localhost")
        # IQs: to the blocker's bare JID (last activity) and to its resource (software version)
        with pytest.raises(IqError) as info:
            await frank.plugin["xep_0012"].get_last_activity("erin@localhost", timeout=TIMEOUT)
        assert info.value.iq["error"]["condition"] == "service-unavailable"
        assert info.value.iq["error"]["text"] == "Service not available."
        with pytest.raises(IqError) as info:
            await frank.plugin["xep_0092"].get_version(erin.boundjid, timeout=TIMEOUT)
        assert info.value.iq["error"]["condition"] == "service-unavailable"
        version = await carol.plugin["xep_0092"].get_version(erin.boundjid, timeout=TIMEOUT)
        assert version["software_version"]["name"]
        try:
            await carol.plugin["xep_0012"].get_last_activity("erin@localhost", timeout=TIMEOUT)
        except IqError as e:  # no last-activity module yet: the router's answer, not privacy's
            assert e.iq["error"]["text"] != "Service not available."
        await logout(erin, frank, frank2, carol)

    run(scenario())


def test_declineThenReplaceDefault(accounts):
    """Replacing or declining a default list another resource relies on is conflict; alone it works (§2.5)."""

    async def scenario():
        g1, g2 = PrivacyClient(accounts, "gina", "g1"), PrivacyClient(accounts, "gina", "g2")
        await login(g1, g2)
        privacy = g1.plugin["xep_0016"]
        await setDefault(g1, "first", sdkItems("bob"))
        await editList(g1, "second", sdkItems("carol"))
        for attempt in (lambda: privacy.make_default("second", timeout=TIMEOUT),
                        lambda: privacy.remove_default(timeout=TIMEOUT)):
            with pytest.raises(IqError) as info:
                await attempt()
            assert info.value.iq["error"]["condition"] == "conflict"
        await g2.logout()
        await until(lambda: privacy.remove_default(timeout=TIMEOUT))  # once the server has seen g2 go
        await privacy.make_default("second", timeout=TIMEOUT)
        names = await privacy.get_privacy_lists(timeout=TIMEOUT)
        assert names["privacy"]["default"]["name"] == "second"
        assert sorted(item["name"] for item in names["privacy"]["lists"]) == ["first", "second"]
        with pytest.raises(IqError) as info:
            await privacy.make_default("missing", timeout=TIMEOUT)
        assert info.value.iq["error"]["condition"] == "item-not-found"
        await g1.logout()

    run(scenario())


def test_blockingCommandAgreesWithPrivacyLists(accounts):
    """XEP-0191 blocks show in the default privacy list and SDK-style privacy blocks in the blocklist."""

    async def scenario():
        h1, h2 = PrivacyClient(accounts, "hank", "h1"), PrivacyClient(accounts, "hank", "h2")
        ivan = PrivacyClient(accounts, "ivan")
        await login(h1, h2, ivan)
        assert await h2.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == set()
        await h1.plugin["xep_0191"].block("ivan@localhost", timeout=TIMEOUT)
        kind, push = await asyncio.wait_for(h2.pushes.get(), TIMEOUT)
        assert kind == "block" and [i["jid"] for i in push["block"]] == ["ivan@localhost"]
        names = await h1.plugin["xep_0016"].get_privacy_lists(timeout=TIMEOUT)
        default = names["privacy"]["default"]["name"]
        assert default == "@ConnectyCube/blockList"
        stored = await h1.plugin["xep_0016"].get_list(default, timeout=TIMEOUT)
        items = stored["privacy"]["list"]["items"]
        assert [(i["type"], i["value"], i["action"]) for i in items] == [("jid", "ivan@localhost", "deny")]
        ivan.send_message(mto="hank@localhost", mbody="hello?", mtype="chat")
        error = await next(ivan.allMessages, lambda m: m["type"] == "error")
        assert error["error"]["condition"] == "service-unavailable"
        # the SDK's way: rewrite the default list with two items for judy; the blocklist follows
        await editList(h1, default, sdkItems("judy"))
        blocked = await h2.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT)
        assert {str(j) for j in blocked} == {"judy@localhost", "muc.localhost/judy"}
        await h1.plugin["xep_0191"].unblock("judy@localhost", timeout=TIMEOUT)
        stored = await h1.plugin["xep_0016"].get_list(default, timeout=TIMEOUT)
        assert [i["value"] for i in stored["privacy"]["list"]["items"]] == ["muc.localhost/judy"]
        ivan.send_message(mto="hank@localhost", mbody="now?", mtype="chat")
        got = await next(h1.allMessages, lambda m: m["type"] == "chat")
        assert got["body"] == "now?"
        await logout(h1, h2, ivan)

    run(scenario())
