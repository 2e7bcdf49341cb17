"""
Issue 18 item 4 on a real server: the admin API on the C{[ops]} listener
(plain HTTP over loopback) and C{python -m xmppchat.admin} on top of it,
with slixmpp clients that get kicked, lose their deleted account, and
receive announcements online and at their next login.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_login_lockout import ATTACKER_IP, saslAttempts
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

KEY = "e2e-admin-key-0123456789abcdefghijklmnop"
# the [ops] table of a server with the admin API on an ephemeral port
OPS = f"""
[ops]
enabled = true
interface = "127.0.0.1"
port = 0
admin_key = "{KEY}"
"""
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # session_recheck_seconds far away: what ends a stream here is the API
    running = startServer(tmp_path_factory.mktemp("adminapi"), extra="""
[limits]
session_recheck_seconds = 3600
exempt_loopback = false
failed_logins_free = 10
failed_logins_lockout = 10
""" + OPS)
    running.addusers(USERS)
    yield running
    stopServer(running)


def api(server, method, path, body=None, key=KEY):
    """
    C{(status, decoded JSON, headers)} of one admin API request.
    """
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['ops']}/admin/api/{path}",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def admin(server, *args, stdin=""):
    done = server.admin(*args, stdin=stdin)
    assert f"config {server.config}" in done.stderr, done.stderr
    return done


def streamErrors(client):
    """
    A future with the condition of the first stream error C{client} gets.
    """
    errors = asyncio.get_running_loop().create_future()
    client.add_event_handler("stream_error", lambda e: errors.done() or errors.set_result(e["condition"]))
    return errors


def logged(server, line):
    """Wait for C{line} in the server's log (review 18 #5: the logout reason)."""
    deadline = time.monotonic() + TIMEOUT
    while line not in server.log():
        assert time.monotonic() < deadline, f"not logged: {line!r}"
        time.sleep(0.1)


def test_authentication(server):
    """Without the Bearer key 401 (with WWW-Authenticate), with a wrong one 403, with the key 200."""
    status, body, headers = api(server, "GET", "stats", key=None)
    assert status == 401 and "Bearer" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = api(server, "GET", "stats", key=KEY[:-1] + "x")
    assert (status, body) == (403, {"error": "Wrong admin key"})
    status, body, _ = api(server, "GET", "stats")
    assert status == 200 and body["accounts"] >= len(USERS)


def test_sessionsAndKick(server):
    """admin sessions lists a slixmpp client (transport, address, since, SM/CSI); admin kick ends it with policy-violation."""

    async def scenario():
        alice = Client(server, "alice@localhost/phone", "alice-pw")
        errors = streamErrors(alice)
        assert await alice.login()
        done = await asyncio.to_thread(admin, server, "sessions", "--user", "alice@localhost")
        assert done.returncode == 0, done.stderr
        fields = done.stdout.strip().split("\t")
        assert fields[:3] == ["alice@localhost/phone", "c2s", "127.0.0.1"]
        assert fields[3].endswith("Z") and fields[5:] == ["-", "active"]
        status, body, _ = api(server, "GET", "sessions")
        mine = [s for s in body["sessions"] if s["jid"] == "alice@localhost/phone"]
        assert mine and mine[0]["sm"] == {"enabled": False, "resumable": False, "hibernating": False}
        done = await asyncio.to_thread(admin, server, "kick", "alice@localhost/phone", "--reason", "spam")
        assert (done.returncode, done.stdout) == (0, "kicked alice@localhost/phone\n"), done.stderr
        assert await asyncio.wait_for(errors, TIMEOUT) == "policy-violation"
        await asyncio.to_thread(logged, server, "logout alice@localhost/phone (c2s): kicked")
        status, body, _ = api(server, "GET", "sessions?user=alice@localhost")
        assert (status, body["sessions"]) == (200, [])
        missing = await asyncio.to_thread(admin, server, "kick", "alice@localhost")
        assert missing.returncode == 1 and "No session of alice@localhost" in missing.stderr

    run(scenario())


@pytest.mark.parametrize("command, condition", [("deluser", "not-authorized"), ("passwd", "reset")])
def test_userCommandEndsTheSessionAtOnce(server, command, condition):
    """admin deluser / passwd while the user is connected: the stream ends at once (not at the next recheck)."""
    name = {"deluser": "bob", "passwd": "frank"}[command]

    async def scenario():
        client = Client(server, f"{name}@localhost", f"{name}-pw")
        errors = streamErrors(client)
        assert await client.login()
        started = time.monotonic()
        done = await asyncio.to_thread(admin, server, command, name, stdin="new-password\n")
        assert done.returncode == 0, done.stderr
        assert "ended" in done.stdout
        assert await asyncio.wait_for(errors, 5) == condition
        assert time.monotonic() - started < 5
        reason = {"deluser": "account deleted", "passwd": "password changed"}[command]
        await asyncio.to_thread(logged, server, f"logout {client.boundjid.full} (c2s): {reason}")
        client.disconnect()

    run(scenario())
    if command == "passwd":
        async def again():
            client = Client(server, f"{name}@localhost", "new-password")
            assert await client.login()
            await client.logout()

        run(again())


def test_announceOnlineAndOffline(server):
    """admin announce --all: the online client gets a headline now, the offline user at the next login."""

    async def scenario():
        carol = Client(server, "carol@localhost", "carol-pw")
        assert await carol.login()
        done = await asyncio.to_thread(admin, server, "announce", "--all", "--subject", "Maintenance",
                                       "Restart at 22:00")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("announced to 1 online session(s), stored for ")
        stored = int(done.stdout.split("stored for ")[1].split()[0])
        before = api(server, "GET", "stats")[1]["offline"]
        assert before >= stored >= 2  # dave and the others without a session
        message = await asyncio.wait_for(carol.messages.get(), TIMEOUT)
        assert (message["type"], message["subject"], message["body"]) == (
            "headline", "Maintenance", "Restart at 22:00")
        assert message["from"].full == "localhost"
        await carol.logout()
        dave = Client(server, "dave@localhost", "dave-pw")
        assert await dave.login()
        message = await asyncio.wait_for(dave.messages.get(), TIMEOUT)
        assert (message["type"], message["body"]) == ("headline", "Restart at 22:00")
        await dave.logout()
        deadline = time.monotonic() + TIMEOUT
        while api(server, "GET", "stats")[1]["offline"] != before - 1:  # delivered, then deleted
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

    run(scenario())


def test_announceOnlineOnly(server):
    """admin announce (default): only online users; nothing is stored for the others."""
    before = api(server, "GET", "stats")[1]["offline"]
    done = admin(server, "announce", "-", stdin="only for the online ones")
    assert done.returncode == 0 and done.stdout.startswith("announced to "), done.stderr
    assert api(server, "GET", "stats")[1]["offline"] == before


def test_stats(server):
    """admin stats: sessions by transport, accounts, rooms, offline queue, uptime."""

    async def scenario():
        gina = Client(server, "gina@localhost", "gina-pw")
        assert await gina.login()
        done = await asyncio.to_thread(admin, server, "stats")
        assert done.returncode == 0, done.stderr
        stats = json.loads(done.stdout)
        assert stats["sessions"]["total"] >= 1 and stats["sessions"]["byTransport"]["c2s"] >= 1
        assert stats["accounts"] >= len(USERS) - 1 and stats["rooms"] >= 0
        assert stats["offline"] >= 0 and stats["uptime"] > 0 and stats["nodes"] == []
        await gina.logout()

    run(scenario())


def test_unlockThroughTheAPI(server):
    """admin unlock NAME goes through the API: the lockout is gone at once, not at the next poll."""
    for _ in range(3):
        saslAttempts(server, ATTACKER_IP, "erin", ["wrong"] * 4)
    assert saslAttempts(server, ATTACKER_IP, "erin", ["erin-pw"]) == ["temporary-auth-failure"]
    done = admin(server, "unlock", "erin")
    assert done.returncode == 0 and done.stdout.startswith("unlocked erin"), done.stderr
    assert saslAttempts(server, ATTACKER_IP, "erin", ["erin-pw"]) == ["success"]
    missing = admin(server, "unlock", "nobody")
    assert missing.returncode == 1 and "No such user" in missing.stderr


def test_reload(server):
    """admin reload re-reads the config file: TLS, limits (a changed lockout threshold applies), log; an invalid file changes nothing."""
    done = admin(server, "reload")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tls: reloaded\n" in done.stdout and "limits: reloaded\n" in done.stdout
    assert "log: reloaded\n" in done.stdout
    original = server.config.read_text()
    server.config.write_text(original.replace("failed_logins_lockout = 10", "failed_logins_lockout = 100")
                             .replace("failed_logins_free = 10", "failed_logins_free = 100"))
    try:
        assert admin(server, "reload", "limits").returncode == 0
        for _ in range(3):
            saslAttempts(server, ATTACKER_IP, "gina", ["wrong"] * 4)
        assert saslAttempts(server, ATTACKER_IP, "gina", ["gina-pw"]) == ["success"]
    finally:
        server.config.write_text(original)
        assert admin(server, "reload", "limits").returncode == 0
    server.config.write_text(original + "\n[log]\nlevel = \"loud\"\n")
    try:
        status, body, _ = api(server, "POST", "reload", {})  # (the CLI itself refuses that file)
        assert status == 200 and "log.level" in body["nodes"]["local"]["error"], body
    finally:
        server.config.write_text(original)
    status, body, _ = api(server, "POST", "reload", {"what": ["nonsense"]})
    assert status == 400 and "nonsense" in body["error"]


def test_usersResource(server):
    """POST /users creates (409 twice), PUT .../password changes, DELETE removes (404 after)."""
    status, body, _ = api(server, "POST", "users", {"name": "henry", "password": "henry-pw"})
    assert status == 201 and body["jid"] == "henry@localhost" and body["id"] > 0
    assert api(server, "POST", "users", {"name": "henry", "password": "x"})[0] == 409
    assert api(server, "POST", "users", {"name": "bad@name/x", "password": "x"})[0] == 400
    status, body, _ = api(server, "PUT", "users/henry/password", {"password": "henry-new"})
    assert (status, body) == (200, {"changed": "henry@localhost", "revoked": 0})

    async def login():
        client = Client(server, "henry@localhost", "henry-new")
        assert await client.login()
        await client.logout()

    run(login())
    status, body, _ = api(server, "DELETE", "users/henry")
    assert (status, body) == (200, {"deleted": "henry@localhost", "ended": 0})
    assert api(server, "DELETE", "users/henry")[0] == 404


def test_badRequests(server):
    """Unknown resources 404, wrong methods 405, bodies that are not JSON objects 400."""
    assert api(server, "GET", "nothing")[0] == 404
    assert api(server, "POST", "stats", {})[0] == 405
    assert api(server, "POST", "announce", {"body": "x", "to": "everyone"})[0] == 400
    assert api(server, "POST", "announce", {"to": "all"})[0] == 400
    assert api(server, "POST", "announce", ["not", "an", "object"])[0] == 400
    assert api(server, "GET", "sessions?user=not@another.domain")[0] == 400


def test_kickEndsASessionWaitingForResumption(server):
    """A kick ends a XEP-0198 session whose connection was cut (hibernating): it is gone, not resumable."""
    from tests.e2e.test_smacks import SMClient

    async def listed():
        status, body, _ = await asyncio.to_thread(api, server, "GET", "sessions?user=gina@localhost")
        return body["sessions"]

    async def scenario():
        gina = SMClient(server, "gina@localhost/sm", "gina-pw")
        assert await gina.login()
        await asyncio.wait_for(gina.enabled, TIMEOUT)
        assert (await listed())[0]["sm"] == {"enabled": True, "resumable": True, "hibernating": False}
        gina.transport.abort()  # no </stream>: the session waits for resumption
        deadline = time.monotonic() + TIMEOUT
        while not (await listed())[0]["sm"]["hibernating"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        status, body, _ = await asyncio.to_thread(api, server, "DELETE", "sessions/gina@localhost")
        assert (status, body["kicked"]) == (200, ["gina@localhost/sm"])
        assert await listed() == []
        gina.disconnect()

    run(scenario())
