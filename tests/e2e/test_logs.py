"""
The log an operator reads (issue 18 item 2), from a real server process:
slixmpp logs in and out over STARTTLS and direct TLS, fails a login, a
BOSH client over plain HTTP and REST clients log in; the log file has
one readable line for each, no secret, no "Starting factory" noise; a
second server writes [log] format "json" with a namespace level.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e import test_bosh as bosh
from tests.e2e.conftest import REST_AUTH_KEY, REST_JWT_SECRET, startServer, stopServer
from tests.e2e.test_slixmpp import Client, run
from xmppchat.api.sessions import encodeJWT

TIMEOUT = 20
PASSWORD = "Corr3ct-Horse-Battery-Staple"
WRONG = "Wr0ng-Guess-Of-The-Password"
NS_HTTPBIND = bosh.NS_HTTPBIND


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("logs"), extra="""
[bosh]
enabled = true
port = 0
""")
    running.adduser("alice", PASSWORD)
    yield running
    stopServer(running)


def waitForLine(server, pattern: str) -> re.Match:
    """The first log line matching C{pattern}, waiting for it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        for line in server.log().splitlines():
            match = re.search(pattern, line)
            if match:
                return match
        assert time.monotonic() < deadline, f"no line like {pattern!r} in:\n{server.log()}"
        time.sleep(0.05)


def post(port: int, body: str):
    return bosh.post(port, body)[1]


def boshLoginAndTerminate(server, resource: str) -> None:
    """A BOSH session over plain HTTP on loopback: PLAIN, bind C{resource}, terminate."""
    port = server.ports["bosh"]
    start = post(port, f"<body xmlns='{NS_HTTPBIND}' rid='1' to='localhost' wait='5' hold='1' "
                       "xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
    sid = start["sid"]
    auth = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    answer = post(port, f"<body xmlns='{NS_HTTPBIND}' rid='2' sid='{sid}'>"
                        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{auth}</auth></body>")
    assert [e.name for e in answer.elements()] == ["success"], answer.toXml()
    post(port, f"<body xmlns='{NS_HTTPBIND}' rid='3' sid='{sid}' xmlns:xmpp='urn:xmpp:xbosh' "
               "xmpp:restart='true'/>")
    bound = post(port, f"<body xmlns='{NS_HTTPBIND}' rid='4' sid='{sid}'><iq xmlns='jabber:client' "
                       "type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       f"<resource>{resource}</resource></bind></iq></body>")
    assert "result" in bound.toXml(), bound.toXml()
    post(port, f"<body xmlns='{NS_HTTPBIND}' rid='5' sid='{sid}' type='terminate'/>")


def restSession(server, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.ports['rest']}/session.json", method="POST",
        data=json.dumps({"application_id": 1, "auth_key": REST_AUTH_KEY, **body}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def test_loginsLogoutsAndFailuresLogged(server):
    """One readable info line per login, logout and failed login, on every transport; secrets nowhere."""

    async def scenario():
        phone = Client(server, "alice@localhost/phone", PASSWORD)
        assert await phone.login()
        await phone.logout()
        tablet = Client(server, "alice@localhost/tablet", PASSWORD, directTLS=True)
        assert await tablet.login()
        await tablet.logout()
        guess = Client(server, "alice@localhost/x", WRONG)
        assert not await guess.login()
        guess.disconnect()

    run(scenario())
    events = r"\[xmppchat\.events#info\] "
    mechanism = waitForLine(server, events + r"login alice@localhost/phone via c2s \((SCRAM-SHA-[0-9]+)\)"
                                             r" from 127\.0\.0\.1$").group(1)
    waitForLine(server, events + r"logout alice@localhost/phone \(c2s\): client closed$")
    waitForLine(server, events + r"login alice@localhost/tablet via c2s-tls \(SCRAM-SHA-[0-9]+\) from 127\.0\.0\.1$")
    waitForLine(server, events + r"logout alice@localhost/tablet \(c2s-tls\): client closed$")
    waitForLine(server, events + re.escape(f"login failed for alice@localhost via c2s ({mechanism}) from "
                                           "127.0.0.1: not-authorized"))
    boshLoginAndTerminate(server, "web")
    waitForLine(server, events + r"login alice@localhost/web via bosh \(PLAIN\) from 127\.0\.0\.1$")
    waitForLine(server, events + r"logout alice@localhost/web \(bosh\): client closed$")
    status, created = restSession(server, {"user": {"login": "alice", "password": PASSWORD}})
    assert status == 201
    assert restSession(server, {"user": {"login": "alice", "password": WRONG}})[0] == 401
    jwt = encodeJWT({"user_id": "ext-9", "exp": int(time.time()) + 3600}, REST_JWT_SECRET)
    status, viaJWT = restSession(server, {"provider": "jwt", "keys": {"token": jwt}})
    assert status == 201
    waitForLine(server, events + r"login alice@localhost via rest \(password\) from 127\.0\.0\.1$")
    waitForLine(server, events + r"login failed for alice via rest \(password\) from 127\.0\.0\.1: not-authorized$")
    waitForLine(server, events + r"login [0-9]+-1@localhost via rest \(jwt\) from 127\.0\.0\.1$")
    log = server.log()
    for secret in (PASSWORD, WRONG, jwt, created["session"]["token"], viaJWT["session"]["token"],
                   base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode(), REST_AUTH_KEY):
        assert secret not in log
    assert "Starting factory" not in log and "Stopping factory" not in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def jsonServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("jsonlogs"), extra="""
[log]
format = "json"
levels = { "xmppchat.events" = "warn" }
""")
    running.adduser("bob", "bob-pw")
    yield running
    stopServer(running)


def test_jsonFormatAndNamespaceLevel(jsonServer):
    """format json: every line one object (time, level, namespace, message); a namespace level hides logins."""

    async def scenario():
        bob = Client(jsonServer, "bob@localhost/r", "bob-pw")
        assert await bob.login()
        await bob.logout()

    run(scenario())
    waitForLine(jsonServer, r'"message": "xmppchat serving localhost on ')
    records = [json.loads(line) for line in jsonServer.log().splitlines()]
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records)
    [serving] = [r for r in records if r["message"].startswith("xmppchat serving")]
    assert (serving["level"], serving["namespace"]) == ("info", "xmppchat.service.XMPPChatService")
    assert not [r for r in records if r["namespace"] == "xmppchat.events"]
