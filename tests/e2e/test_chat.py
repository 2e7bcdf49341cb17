"""
Real-client tests of the chat modules: slixmpp clients talk to a real
xmppchat server over loopback (chat states, markers and receipts, carbons,
last activity, system messages, client state indication), and the webhook
push notifier posts to a real HTTP listener on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from slixmpp.exceptions import IqError

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run


class Hooks(BaseHTTPRequestHandler):
    """Records the JSON body of every POST."""

    received: queue.Queue

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.server.received.put((self.path, self.headers.get("Content-Type"), json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook():
    httpd = HTTPServer(("127.0.0.1", 0), Hooks)
    httpd.received = queue.Queue()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, webhook):
    url = f"http://127.0.0.1:{webhook.server_address[1]}/push"
    running = startServer(tmp_path_factory.mktemp("chat"), f"""
[push]
notifier = "webhook"
url = "{url}"
timeout = 5
retries = 1
""")
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        running.adduser(name, f"{name}-pw")
    yield running
    stopServer(running)


def client(server, name, *plugins):
    c = Client(server, f"{name}@localhost", f"{name}-pw")
    for plugin in plugins:
        c.register_plugin(plugin)
    return c


def nextEvent(c, name):
    """A future for the next event C{name} of client C{c}."""
    future = asyncio.get_running_loop().create_future()

    def handler(stanza):
        if not future.done():
            future.set_result(stanza)

    c.add_event_handler(name, handler)
    future.add_done_callback(lambda _: c.del_event_handler(name, handler))
    return future


async def within(future):
    return await asyncio.wait_for(future, TIMEOUT)


async def pushFor(webhook, messageId, seen=None):
    """The webhook request for message C{messageId}; the others received meanwhile go to C{seen}."""
    loop = asyncio.get_running_loop()
    while True:
        request = await loop.run_in_executor(None, lambda: webhook.received.get(timeout=TIMEOUT))
        if request[2].get("message_id") == messageId:
            return request
        if seen is not None:
            seen.append(request[2])


async def subscribeTo(c, contact):
    """Subscribe C{c} to C{contact}'s presence (the contact's slixmpp approves automatically)."""
    await c.get_roster(timeout=TIMEOUT)
    c.send_presence_subscription(pto=contact)
    for _ in range(100):
        if c.client_roster[contact]["subscription"] in ("to", "both"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no subscription to {contact}")


def test_chatStates(server):
    """A composing notification from alice fires bob's chatstate_composing event."""

    async def scenario():
        alice = client(server, "alice", "xep_0085")
        bob = client(server, "bob", "xep_0085")
        assert await alice.login() and await bob.login()
        composing = nextEvent(bob, "chatstate_composing")
        message = alice.make_message(mto="bob@localhost", mtype="chat")
        message["chat_state"] = "composing"
        message.send()
        got = await within(composing)
        assert got["from"].bare == "alice@localhost" and got["body"] == ""
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_markersAndReceipts(server):
    """Bob's XEP-0184 receipt (sent automatically) and XEP-0333 displayed marker reach alice."""

    async def scenario():
        alice = client(server, "alice", "xep_0184", "xep_0333")
        bob = client(server, "bob", "xep_0184", "xep_0333")
        assert await alice.login() and await bob.login()
        receipt = nextEvent(alice, "receipt_received")
        incoming = nextEvent(bob, "message")
        message = alice.make_message(mto="bob@localhost", mbody="read me", mtype="chat")
        message["id"] = "m-read-me"
        message["request_receipt"] = True
        message.send()
        got = await within(incoming)
        assert got["request_receipt"]
        assert (await within(receipt))["receipt"] == "m-read-me"
        displayed = nextEvent(alice, "marker_displayed")
        bob.plugin["xep_0333"].send_marker(mto="alice@localhost", id="m-read-me", marker="displayed", mtype="chat")
        marker = await within(displayed)
        assert marker["displayed"]["id"] == "m-read-me" and marker["from"].bare == "bob@localhost"
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_carbons(server):
    """With carbons enabled, a message sent from one of carol's clients reaches her other one as a sent carbon."""

    async def scenario():
        phone = client(server, "carol", "xep_0280")
        laptop = client(server, "carol", "xep_0280")
        dave = client(server, "dave")
        assert await phone.login() and await laptop.login() and await dave.login()
        await phone.plugin["xep_0280"].enable(timeout=TIMEOUT)
        await laptop.plugin["xep_0280"].enable(timeout=TIMEOUT)
        sent = nextEvent(laptop, "carbon_sent")
        phone.send_message(mto="dave@localhost", mbody="from my phone", mtype="chat")
        carbon = await within(sent)
        forwarded = carbon["carbon_sent"]
        assert forwarded["body"] == "from my phone" and forwarded["to"].bare == "dave@localhost"
        assert (await within(dave.messages.get()))["body"] == "from my phone"
        assert laptop.messages.empty()
        await phone.logout()
        await laptop.logout()
        await dave.logout()

    run(scenario())


def test_lastActivity(server):
    """XEP-0012: server uptime, 0 for an online contact, seconds and status after logout; strangers get forbidden."""

    async def scenario():
        erin = client(server, "erin", "xep_0012")
        frank = client(server, "frank", "xep_0012")
        assert await erin.login() and await frank.login()
        uptime = await erin.plugin["xep_0012"].get_last_activity("localhost", timeout=TIMEOUT)
        assert uptime["last_activity"]["seconds"] >= 0
        with pytest.raises(IqError) as refused:
            await erin.plugin["xep_0012"].get_last_activity("frank@localhost", timeout=TIMEOUT)
        assert refused.value.condition == "forbidden"
        await subscribeTo(erin, "frank@localhost")
        online = await erin.plugin["xep_0012"].get_last_activity("frank@localhost", timeout=TIMEOUT)
        assert online["last_activity"]["seconds"] == 0 and online["from"] == "frank@localhost"
        frank.send_presence(ptype="unavailable", pstatus="gone fishing")
        await frank.logout()
        await asyncio.sleep(1.2)
        offline = await erin.plugin["xep_0012"].get_last_activity("frank@localhost", timeout=TIMEOUT)
        assert offline["last_activity"]["seconds"] >= 1
        assert offline["last_activity"]["status"] == "gone fishing"
        await erin.logout()

    run(scenario())


def test_statusStreaming(server):
    """The SDK's status-streaming subscription: result, then jabber:iq:last pushes on login (0) and logout."""

    async def scenario():
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        carol = client(server, "carol")
        dave = client(server, "dave")
        assert await carol.login() and await dave.login()
        await subscribeTo(carol, "dave@localhost")
        await dave.logout()
        pushes: asyncio.Queue = asyncio.Queue()
        carol.register_handler(Callback("status push", MatchXPath("{jabber:client}iq/{jabber:iq:last}query"),
                                        lambda iq: pushes.put_nowait(iq)))
        iq = carol.make_iq_set()
        iq["id"] = "u1:statusStreaming"
        iq.xml.append(ET.fromstring("<subscribe xmlns='https://connectycube.com/protocol/status_streaming' "
                                    "user_jid='dave@localhost' enable='true'/>"))
        reply = await iq.send(timeout=TIMEOUT)
        assert reply["type"] == "result"
        dave = client(server, "dave")
        assert await dave.login()
        online = await within(pushes.get())
        query = online.xml.find("{jabber:iq:last}query")
        assert online["type"] == "result" and online["from"] == "dave@localhost" and query.get("seconds") == "0"
        await dave.logout()
        offline = await within(pushes.get())
        assert offline.xml.find("{jabber:iq:last}query").get("seconds") != "0"
        await carol.logout()

    run(scenario())


def test_systemMessage(server):
    """A headline system message with extraParams reaches bob whole, with date_sent stamped; it is never stored."""

    async def scenario():
        alice = client(server, "alice")
        bob = client(server, "bob")
        assert await alice.login() and await bob.login()
        sdp = "a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\n" * 500
        message = alice.make_message(mto="bob@localhost", mbody="call", mtype="headline")
        message.xml.append(ET.fromstring(
            "<extraParams xmlns='jabber:client'><moduleIdentifier>WebRTCVideoChat</moduleIdentifier>"
            f"<signalType>call</signalType><sdp>{sdp}</sdp></extraParams>"))
        message.send()
        got = await within(bob.messages.get())
        assert got["type"] == "headline"
        extra = got.xml.find("{jabber:client}extraParams")
        assert extra.find("{jabber:client}moduleIdentifier").text == "WebRTCVideoChat"
        assert extra.find("{jabber:client}sdp").text == sdp
        assert int(extra.find("{jabber:client}date_sent").text) > 1600000000
        await bob.logout()
        alice.send_message(mto="bob@localhost", mbody="missed call", mtype="headline")
        await asyncio.sleep(0.5)
        bob = client(server, "bob", "xep_0203")
        assert await bob.login()
        await asyncio.sleep(1)
        assert bob.messages.empty()
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_clientStateIndication(server, webhook):
    """An inactive client (XEP-0352) still gets messages at once (and a push) but chat states are held back."""

    async def scenario():
        alice = client(server, "alice", "xep_0085")
        bob = client(server, "bob", "xep_0085", "xep_0352")
        assert await alice.login() and await bob.login()
        await asyncio.sleep(0.3)
        bob.plugin["xep_0352"].send_inactive()
        states = []
        bob.add_event_handler("chatstate", states.append)
        message = alice.make_message(mto="bob@localhost", mtype="chat")
        message["chat_state"] = "composing"
        message.send()
        wake = alice.make_message(mto="bob@localhost", mbody="wake up", mtype="chat")
        wake["id"] = "wake-up"
        wake.send()
        got = await within(bob.messages.get())
        assert got["body"] == "wake up" and states == []
        _, _, push = await pushFor(webhook, "wake-up")
        assert push["reason"] == "inactive" and push["to"] == "bob@localhost"
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_webhookPush(server, webhook):
    """A message to an offline user makes the server POST a JSON push to the configured webhook."""

    async def scenario():
        alice = client(server, "alice")
        assert await alice.login()
        message = alice.make_message(mto="dave@localhost", mbody="are you there?", mtype="chat")
        message["id"] = "push-me"
        message.send()
        seen = []
        path, contentType, body = await pushFor(webhook, "push-me", seen)
        assert all(p.get("body") not in ("call", "missed call") for p in seen)  # system messages: no push
        assert path == "/push" and contentType == "application/json"
        assert (body["to"], body["from"], body["message_id"], body["reason"], body["body"]) == (
            "dave@localhost", "alice@localhost", "push-me", "offline", "are you there?")
        await alice.logout()

    run(scenario())
