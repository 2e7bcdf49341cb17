"""
C{GET /metrics} and C{GET /health} of a real server (issue 18, "Metrics
and health"): real slixmpp clients log in and exchange messages, real REST
calls are made, then the scrape is parsed with C{prometheus_client}'s
parser and the counters are checked by value.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import TIMEOUT, Client, run


def scrape(server, path="/metrics") -> dict:
    """
    C{{(sample name, ((label, value), ...)): value}} of one scrape.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['ops']}{path}", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def opsServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("ops"), extra="""
[ops]
enabled = true
port = 0
""")
    running.addusers(["alice", "bob", "carol"])
    yield running
    stopServer(running)


def test_metricsAfterRealTraffic(opsServer):
    """Sessions, stanzas and messages counted by value after slixmpp clients chat, one of them offline."""
    before = scrape(opsServer)
    stanzasIn = value(before, "xmppchat_stanzas_total", kind="message", direction="in")
    stored = value(before, "xmppchat_storage_seconds_count", store="offline")

    async def scenario():
        alice = Client(opsServer, "alice@localhost", "alice-pw")
        bob = Client(opsServer, "bob@localhost", "bob-pw")
        assert await alice.login() and await bob.login()
        online = scrape(opsServer)
        assert value(online, "xmppchat_sessions", transport="c2s") == 2
        for n in range(3):
            alice.send_message(mto="bob@localhost", mbody=f"hello {n}", mtype="chat")
        for _ in range(3):
            await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        for n in range(2):
            alice.send_message(mto="carol@localhost", mbody=f"later {n}", mtype="chat")
        # an IQ round trip after the messages: the server handled them
        alice.register_plugin("xep_0199")
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
        await alice.logout()
        await bob.logout()

    run(scenario())
    after = scrape(opsServer)
    assert value(after, "xmppchat_stanzas_total", kind="message", direction="in") - stanzasIn == 5
    assert value(after, "xmppchat_stanzas_total", kind="message", direction="out") == 3
    assert value(after, "xmppchat_messages_delivered_total") == 3
    assert value(after, "xmppchat_messages_offline_total") == 2
    assert value(after, "xmppchat_stanzas_total", kind="iq", direction="in") >= 1
    assert value(after, "xmppchat_storage_seconds_count", store="offline") >= stored + 2
    assert value(after, "xmppchat_sessions", transport="c2s") == 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_restRequestsByRoute(opsServer):
    """REST calls are counted by method, route pattern (no ids) and status; a dialog message is stored."""
    stored = value(scrape(opsServer), "xmppchat_messages_stored_total")
    status, body = call(opsServer, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201
    app = body["session"]["token"]
    ids = []
    for name in ("metra", "metrb"):
        status, body = call(opsServer, "POST", "/users.json",
                            {"user": {"login": name, "password": f"{name}-pw-1"}}, token=app)
        assert status == 201, body
        ids.append(body["user"]["id"])
    for userId in ids:
        assert call(opsServer, "GET", f"/users/{userId}.json", token=app)[0] == 200
    assert call(opsServer, "GET", "/users/999999.json", token=app)[0] == 404
    assert call(opsServer, "GET", "/no/such/thing.json")[0] == 404
    status, body = call(opsServer, "POST", "/session.json", {
        "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": "metra", "password": "metra-pw-1"}})
    token = body["session"]["token"]
    status, dialog = call(opsServer, "POST", "/chat/Dialog.json", {"type": 3, "occupants_ids": str(ids[1])},
                          token=token)
    assert status == 201, dialog
    status, message = call(opsServer, "POST", "/chat/Message.json",
                           {"chat_dialog_id": dialog["_id"], "message": "stored"}, token=token)
    assert status == 201, message

    samples = scrape(opsServer)
    requests = "xmppchat_rest_requests_total"
    assert value(samples, requests, method="GET", route="/users/{userId}", status="200") == 2
    assert value(samples, requests, method="GET", route="/users/{userId}", status="404") == 1
    assert value(samples, requests, method="POST", route="/users", status="201") == 2
    assert value(samples, requests, method="POST", route="/session", status="201") == 2
    assert value(samples, requests, method="POST", route="/chat/Message", status="201") == 1
    assert value(samples, requests, method="other", route="unmatched", status="404") == 1
    routes = {dict(labels)["route"] for name, labels in samples if name == requests}
    assert all(re.fullmatch(r"(/([A-Za-z_]+|\{\w+\}))+|unmatched", route) for route in routes), routes
    assert value(samples, "xmppchat_messages_stored_total") - stored == 1


def test_health(opsServer):
    """/health answers 200 with the checks while storage answers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{opsServer.ports['ops']}/health", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok", "checks": {"storage": "ok"}}


@pytest.fixture(scope="module")
def limitedServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("opsevents"), extra="""
[ops]
enabled = true
port = 0

[limits]
message_rate = 1
message_burst = 2
""")
    running.addusers(["dora", "eve"])
    yield running
    stopServer(running)


def test_eventCountersAfterRealTraffic(limitedServer):
    """
    The counters fed by C{xmppchat.observe} (logins by result and
    mechanism, logouts by reason, rate limits by scope) count what real
    slixmpp clients did, once each: the emit points of the log and the
    metrics observer agree end to end.
    """

    async def scenario():
        dora = Client(limitedServer, "dora@localhost", "dora-pw", "SCRAM-SHA-256")
        eve = Client(limitedServer, "eve@localhost", "eve-pw", "PLAIN")
        wrong = Client(limitedServer, "eve@localhost", "not-her-password", "PLAIN")
        assert await dora.login() and await eve.login()
        assert await wrong.login() is False
        wrong.disconnect()
        for n in range(6):  # burst 2, then 1 a second: some are refused
            dora.send_message(mto="eve@localhost", mbody=f"flood {n}", mtype="chat")
        dora.register_plugin("xep_0199")
        await dora.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
        await dora.logout()
        await eve.logout()

    run(scenario())
    samples = scrape(limitedServer)
    logins = "xmppchat_logins_total"
    assert value(samples, logins, result="success", mechanism="SCRAM-SHA-256", transport="c2s") == 1
    assert value(samples, logins, result="success", mechanism="PLAIN", transport="c2s") == 1
    assert value(samples, logins, result="failure", mechanism="PLAIN", transport="c2s") == 1
    assert value(samples, "xmppchat_logouts_total", transport="c2s", reason="client_closed") == 2
    assert value(samples, "xmppchat_rate_limited_total", scope="messages") >= 1
