"""
Issue 18 reload on a real server (twistd subprocess, plain HTTP over
loopback): the C{rest} part of C{POST /admin/api/reload} lifts a REST rate
limit raised in the config file and changes the CORS answer without a
restart; SIGHUP re-reads the config file like C{prosodyctl reload} (a
raised C{[limits]} lockout threshold applies), and a file that no longer
validates changes nothing but the certificate, with one error line.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_adminapi import OPS, api
from tests.e2e.test_login_lockout import saslAttempts
from tests.e2e.test_slixmpp import TIMEOUT

ORIGIN = "https://app.example.com"
SOURCE = "127.0.0.3"  # its own loopback address: lockouts here touch no other test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("restreload"), rest="""
address_rate_per_minute = 1
address_burst = 3
""", extra="""
[limits]
exempt_loopback = false
failed_logins_free = 10
failed_logins_lockout = 10
""" + OPS)
    running.addusers(["ivan", "judy"])
    yield running
    stopServer(running)


def rest(server, method, path, body=None, headers=None):
    """
    C{(status, headers)} of one REST request.
    """
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.ports['rest']}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def newSession(server) -> int:
    return rest(server, "POST", "/session.json", {"application_id": REST_APP_ID,
                                                  "auth_key": REST_AUTH_KEY})[0]


def edit(server, old: str, new: str) -> None:
    text = server.config.read_text()
    assert old in text
    server.config.write_text(text.replace(old, new))


def hangUp(server, expect: str) -> None:
    """SIGHUP, then wait for one more log line containing C{expect}."""
    count = server.log().count(expect)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while server.log().count(expect) <= count:
        assert server.process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_reloadRestLiftsTheLimitAndChangesCORS(server):
    """A client limited to 3 calls gets 429; after the config is raised and `rest` reloaded it is not; CORS follows."""
    original = server.config.read_text()
    try:
        assert [newSession(server) for _ in range(4)] == [201, 201, 201, 429]
        status, headers = rest(server, "OPTIONS", "/users.json", headers={"Origin": ORIGIN})
        assert headers.get("Access-Control-Allow-Origin") is None
        edit(server, "address_rate_per_minute = 1\naddress_burst = 3",
             f"address_rate_per_minute = 6000\naddress_burst = 100\ncors_origins = [\"{ORIGIN}\"]")
        status, body, _ = api(server, "POST", "reload", {"what": ["rest"]})
        assert (status, body["nodes"]) == (200, {"local": {"rest": "reloaded"}}), body
        assert [newSession(server) for _ in range(10)] == [201] * 10
        status, headers = rest(server, "OPTIONS", "/users.json", headers={"Origin": ORIGIN})
        assert (status, headers.get("Access-Control-Allow-Origin")) == (204, ORIGIN)
    finally:
        server.config.write_text(original)
        api(server, "POST", "reload", {"what": ["rest"]})


def test_sighupReloadsLimits(server):
    """SIGHUP re-reads the file: a raised failed-login threshold applies (12 failures, then a login)."""
    original = server.config.read_text()
    edit(server, "failed_logins_lockout = 10", "failed_logins_lockout = 100")
    edit(server, "failed_logins_free = 10", "failed_logins_free = 100")
    try:
        hangUp(server, "SIGHUP: ")
        for _ in range(3):
            saslAttempts(server, SOURCE, "ivan", ["wrong"] * 4)
        assert saslAttempts(server, SOURCE, "ivan", ["ivan-pw"]) == ["success"]
    finally:
        server.config.write_text(original)
        hangUp(server, "SIGHUP: ")


def test_sighupWithInvalidFileKeepsAll(server):
    """An invalid file at SIGHUP: one error line, the certificate still reloaded, the running limits kept."""
    original = server.config.read_text()
    reloads = server.log().count("TLS certificate reloaded")
    server.config.write_text(original.replace("failed_logins_lockout = 10", "failed_logins_lockout = 100")
                             .replace("failed_logins_free = 10", "failed_logins_free = 100")
                             + "\n[log]\nlevel = \"loud\"\n")
    try:
        hangUp(server, "not reloaded, keeping the running configuration")
        lines = [line for line in server.log().splitlines() if "keeping the running configuration" in line]
        assert len(lines) == 1 and "log.level" in lines[0], lines
        assert server.log().count("TLS certificate reloaded") == reloads + 1
        for _ in range(3):
            saslAttempts(server, "127.0.0.4", "judy", ["wrong"] * 4)
        assert saslAttempts(server, "127.0.0.4", "judy", ["judy-pw"]) != ["success"]
    finally:
        server.config.write_text(original)
