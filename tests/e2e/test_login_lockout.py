"""
Issue 15 finding 5 as the attack, on a real server: wrong passwords from
one source must not lock the account's owner out of XMPP (SASL over TCP
from another loopback address) nor out of REST (real HTTP, sources told
apart by a trusted proxy's X-Forwarded-For); the guessing source is
stopped, and C{admin unlock} (another process) lifts its lockout.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_hardening import HEADER, readUntil

TIMEOUT = 20
ATTACKER_IP = "127.0.0.2"  # a second loopback source address (Linux routes 127/8)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("lockout"), extra="""
[limits]
exempt_loopback = false
failed_logins_free = 10
failed_logins_lockout = 10
trusted_proxies = ["127.0.0.1/32"]

[log]
format = "json"
""")
    running.adduser("alice", "alice-pw")
    running.adduser("bob", "bob-pw")
    yield running
    stopServer(running)


def logLines(server) -> list[str]:
    """The messages of the server's log ([log] format = "json": one object a line)."""
    return [json.loads(line)["message"] for line in server.log().splitlines()]


def saslAttempts(server, source, user, passwords):
    """
    One direct-TLS stream from C{source}: a PLAIN attempt per password;
    the name of each answer (C{success} or the failure condition).
    """
    raw = socket.create_connection(("127.0.0.1", server.ports["c2s-tls"]), timeout=TIMEOUT,
                                   source_address=(source, 0))
    context = ssl.create_default_context(cafile=str(server.ca))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    answers = []
    try:
        tls.sendall(HEADER)
        readUntil(tls, b"</stream:features>")
        for password in passwords:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            tls.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
            data = b""
            while b"<success" not in data and b"</failure>" not in data:
                chunk = tls.recv(65536)
                assert chunk, data
                data += chunk
            if b"<success" in data:
                answers.append("success")
                break
            condition = re.search(rb"<failure[^>]*><([a-z-]+)", data)
            answers.append(condition.group(1).decode())
    finally:
        tls.close()
    return answers


def restLogin(server, forwardedFor, login, password):
    """POST /session.json through the 'proxy' on 127.0.0.1; (status, Retry-After)."""
    body = json.dumps({"application_id": 1, "auth_key": REST_AUTH_KEY,
                       "user": {"login": login, "password": password}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.ports['rest']}/session.json", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwardedFor})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Retry-After")


def test_saslGuessingDoesNotLockOutTheOwner(server):
    """Ten wrong SASL passwords from one address lock that address out of alice, not alice from elsewhere."""
    answers = []
    for _ in range(3):
        answers += saslAttempts(server, ATTACKER_IP, "alice", ["wrong"] * 4)
    assert answers[:10] == ["not-authorized"] * 10 and answers[10:] == ["temporary-auth-failure"] * 2
    # even the right password is refused to the guessing source...
    assert saslAttempts(server, ATTACKER_IP, "alice", ["alice-pw"]) == ["temporary-auth-failure"]
    # ...but the owner logs in from her own address, and over REST too
    assert saslAttempts(server, "127.0.0.1", "alice", ["alice-pw"]) == ["success"]
    assert restLogin(server, "198.51.100.20", "alice", "alice-pw")[0] == 201
    [line] = [line for line in logLines(server) if "Failed-login lockout" in line]
    assert line == "Failed-login lockout: source 127.0.0.2 for account alice, for 300 s"


def test_restGuessingDoesNotLockOutTheOwnerAndAdminUnlocks(server):
    """Ten wrong REST passwords from one client lock that client out (429), not bob; admin unlock lifts it."""
    attacker = "198.51.100.66"
    statuses = [restLogin(server, attacker, "bob", "wrong-password")[0] for _ in range(10)]
    assert statuses == [401] * 10
    status, retryAfter = restLogin(server, attacker, "bob", "bob-pw")
    assert status == 429 and int(retryAfter) > 0
    assert restLogin(server, "203.0.113.7", "bob", "bob-pw")[0] == 201
    assert saslAttempts(server, "127.0.0.1", "bob", ["bob-pw"]) == ["success"]
    done = server.admin("unlock", attacker)
    assert done.returncode == 0 and attacker in done.stdout, done.stderr
    deadline = time.monotonic() + 10
    while restLogin(server, attacker, "bob", "bob-pw")[0] != 201:
        assert time.monotonic() < deadline, "admin unlock was not applied"
        time.sleep(0.5)
    assert "Failed logins of 198.51.100.66 forgotten (admin unlock)" in logLines(server)


def test_adminUnlockOfAUser(server):
    """admin unlock NAME clears the lockouts of that account; an unknown name is an error."""
    for _ in range(3):
        saslAttempts(server, ATTACKER_IP, "bob", ["wrong"] * 4)
    assert saslAttempts(server, ATTACKER_IP, "bob", ["bob-pw"]) == ["temporary-auth-failure"]
    assert server.admin("unlock", "bob").returncode == 0
    deadline = time.monotonic() + 10
    while saslAttempts(server, ATTACKER_IP, "bob", ["bob-pw"]) != ["success"]:
        assert time.monotonic() < deadline, "admin unlock was not applied"
        time.sleep(0.5)
    missing = server.admin("unlock", "nobody")
    assert missing.returncode == 1 and "no such user" in missing.stderr
