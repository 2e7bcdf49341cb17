"""
Real-client tests of XMPP over BOSH (XEP-0124/XEP-0206): strophe.js logs in
over HTTP long-polling on loopback with PLAIN and SCRAM-SHA-1, chats with a
slixmpp client on TCP and terminates the session; raw HTTP checks the error
answers.
"""

from __future__ import annotations

import asyncio
import http.client

import pytest

from tests.e2e.nodeclients import nodeClients, replyAndFinish, transportServer  # noqa: F401 (fixtures)
from tests.e2e.test_slixmpp import Client, run
from tests.helpers import xml

TIMEOUT = 20
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"


def post(port: int, body: str, path: str = "/http-bind"):
    """
    POST C{body} to the BOSH endpoint: C{(status, parsed body)}.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", path, body.encode(), {"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        return response.status, xml(response.read().decode())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def boshUsers(transportServer):
    for name in ("carol", "dave"):
        transportServer.adduser(name, f"{name}-pw")
    return transportServer


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-1"])
def test_stropheChatsWithSlixmppAndTerminates(boshUsers, nodeClients, mechanism):
    """strophe.js logs in over BOSH, chats with slixmpp on TCP, terminates; the sid is then unknown."""
    port = boshUsers.ports["bosh"]

    async def scenario():
        dave = Client(boshUsers, "dave@localhost", "dave-pw")
        assert await dave.login()
        carol = await nodeClients.start(
            "strophe-bosh.cjs", service=f"http://127.0.0.1:{port}/http-bind", jid="carol@localhost",
            password="carol-pw", mechanism=mechanism, to="dave@localhost",
            body=f"hello over BOSH with {mechanism}")
        try:
            online = await carol.next()
            assert online["event"] == "online", carol.events
            assert online["mechanism"] == mechanism
            assert online["jid"].startswith("carol@localhost/") and len(online["jid"]) > len("carol@localhost/") + 16
            await replyAndFinish(carol, dave, online["jid"], f"hello over BOSH with {mechanism}")
        finally:
            await carol.stop()
            await dave.logout()
        status, body = await asyncio.to_thread(
            post, port, f"<body xmlns='{NS_HTTPBIND}' rid='5' sid='{online['sid']}'/>")
        assert (status, body.getAttribute("type"), body.getAttribute("condition")) == (
            200, "terminate", "item-not-found")

    run(scenario())


def test_unknownSidItemNotFound(transportServer):
    """A request for a sid that never existed gets the item-not-found terminal condition."""
    status, body = post(transportServer.ports["bosh"], f"<body xmlns='{NS_HTTPBIND}' rid='1' sid='nope'/>")
    assert (status, body["type"], body["condition"]) == (200, "terminate", "item-not-found")


@pytest.mark.parametrize("payload", ["not xml", "<body xmlns='jabber:client' rid='1'/>",
                                     f"<body xmlns='{NS_HTTPBIND}'/>"])
def test_badRequests(transportServer, payload):
    """Garbage, a non-BOSH root or a missing rid get 400 with the bad-request terminal condition."""
    status, body = post(transportServer.ports["bosh"], payload)
    assert (status, body["type"], body["condition"]) == (400, "terminate", "bad-request")


def test_bodyTooLarge(transportServer):
    """A body over max_body_bytes gets 413 with policy-violation."""
    status, body = post(transportServer.ports["bosh"],
                        f"<body xmlns='{NS_HTTPBIND}' rid='1'>{'x' * 300000}</body>")
    assert (status, body["type"], body["condition"]) == (413, "terminate", "policy-violation")


def test_sessionCreationOverHTTP(transportServer):
    """A raw session creation request gets a sid, the negotiated limits and the SASL features."""
    status, body = post(transportServer.ports["bosh"],
                        f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost'"
                        " wait='600' hold='5' ver='1.6' xmpp:version='1.0'/>")
    assert status == 200
    assert len(body["sid"]) >= 32 and body["wait"] == "60" and body["hold"] == "1" and body["requests"] == "2"
    assert body.getAttribute(("urn:xmpp:xbosh", "version")) == "1.0"
    [features] = body.elements()
    mechanisms = [str(m) for m in features.elements("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms").__next__()
                  .elements()]
    assert "PLAIN" in mechanisms and "SCRAM-SHA-1" in mechanisms
    status, body = post(transportServer.ports["bosh"],
                        f"<body xmlns='{NS_HTTPBIND}' rid='101' sid='{body['sid']}' type='terminate'/>")
    assert (status, body["type"]) == (200, "terminate")


def test_boshMountedOnRestPort(transportServer):
    """BOSH is also served at /http-bind on the REST side-service's port (XEP-0206 fallback)."""
    import urllib.request

    port = transportServer.ports["rest"]
    body = (b"<body rid='1000' to='localhost' wait='5' hold='1' ver='1.6' xml:lang='en' "
            b"xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/http-bind", data=body,
                                     headers={"Content-Type": "text/xml; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=20) as response:
        reply = response.read()
    assert b"sid=" in reply and b"mechanisms" in reply
