"""
Issue 15 findings 1 and 4 against a real server: REST over loopback HTTP,
XMPP streams of L{RawClient} (PLAIN over STARTTLS) that must be closed, with
the stream error named by RFC 6120 §4.9.3 (C{reset} for revoked
credentials, C{not-authorized} for a deleted account).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from xmppchat.api.sessions import encodeJWT
from tests.e2e.conftest import REST_AUTH_KEY, REST_JWT_SECRET, startServer, stopServer
from tests.e2e.rawclient import NS_STREAM, RawClient, StreamClosed
from tests.e2e.test_rest import call
from tests.e2e.test_slixmpp import run

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
RECHECK = 1


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("revocation"),
                          extra=f"[limits]\nsession_recheck_seconds = {RECHECK}\n")
    yield running
    stopServer(running)


def signup(server, login, password):
    """
    A REST user logged in: C{(user id, session token)}.
    """
    status, body = call(server, "POST", "/users.json",
                        {"user": {"login": login, "password": password}}, token=appToken(server))
    assert status == 201, body
    return body["user"]["id"], session(server, login, password)


def appToken(server):
    """
    An application session: what the public auth key alone gives.
    """
    status, body = call(server, "POST", "/session.json",
                        {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, body
    return body["session"]["token"]


def session(server, login, password):
    status, body = call(server, "POST", "/session.json", {
        "application_id": 1, "auth_key": REST_AUTH_KEY, "user": {"login": login, "password": password}})
    assert status == 201, body
    return body["session"]["token"]


async def connect(server, userId, password, resource):
    client = RawClient(server)
    await client.login(f"{userId}-1", password, resource)
    return client


async def endedWith(client, timeout=5.0):
    """
    The condition of the stream error the server closed C{client} with.
    """
    await asyncio.wait_for(asyncio.shield(client.closed), timeout)
    while not client.stanzas.empty():
        element = client.stanzas.get_nowait()
        if element.tag == f"{{{NS_STREAM}}}error":
            await client.close()
            return next(c.tag.split("}")[1] for c in element if c.tag.startswith(f"{{{NS_STREAMS}}}")
                        and not c.tag.endswith("}text"))
    await client.close()
    return "closed without a stream error"


async def stillOpen(client):
    """
    The stream answers a ping (it was not closed).
    """
    reply = await client.request("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>", "p")
    assert reply.get("type") == "result"
    await client.close()


async def refused(server, userId, password):
    try:
        await connect(server, userId, password, "again")
    except (AssertionError, StreamClosed):
        return True
    return False


def test_logoutEndsTheTokensStream(server):
    """DELETE /session.json: the token stops working and its XMPP stream ends with reset."""
    userId, token = signup(server, "rev-logout", "rev-logout-pw")

    async def scenario():
        byToken = await connect(server, userId, token, "t")
        byPassword = await connect(server, userId, "rev-logout-pw", "p")
        assert call(server, "DELETE", "/session.json", token=token)[0] == 200
        assert await endedWith(byToken) == "reset"
        await stillOpen(byPassword)
        assert await refused(server, userId, token)

    run(scenario())
    assert call(server, "GET", "/session.json", token=token)[0] == 401


def test_jwtDeadAfterLogout(server):
    """A logged-out JWT is refused on REST and as XMPP password; the stream it opened ends."""
    jwt = encodeJWT({"user_id": "rev-jwt-1", "exp": int(time.time()) + 600}, REST_JWT_SECRET)
    status, body = call(server, "GET", "/session.json", token=jwt)
    assert status == 200, body
    userId = body["session"]["user_id"]

    async def scenario():
        stream = await connect(server, userId, jwt, "j")
        assert call(server, "DELETE", "/session.json", token=jwt)[0] == 200
        assert await endedWith(stream) == "reset"
        assert await refused(server, userId, jwt)

    run(scenario())
    assert call(server, "GET", "/session.json", token=jwt)[0] == 401


def test_passwordChangeRevokes(server):
    """A password change ends the password's and other tokens' streams; the changing token stays."""
    userId, stolen = signup(server, "rev-pw", "rev-pw-old-1")
    changing = session(server, "rev-pw", "rev-pw-old-1")

    async def scenario():
        byPassword = await connect(server, userId, "rev-pw-old-1", "p")
        byStolen = await connect(server, userId, stolen, "s")
        byChanging = await connect(server, userId, changing, "c")
        status, body = call(server, "PUT", f"/users/{userId}.json", {
            "user": {"password": "rev-pw-new-1", "old_password": "rev-pw-old-1"}}, token=changing)
        assert status == 200, body
        assert await endedWith(byPassword) == "reset"
        assert await endedWith(byStolen) == "reset"
        await stillOpen(byChanging)
        assert await refused(server, userId, stolen)

    run(scenario())
    assert call(server, "GET", "/session.json", token=stolen)[0] == 401
    assert call(server, "GET", "/session.json", token=changing)[0] == 200


def test_exchangeEndsWithTheJWT(server):
    """provider jwt: a session token is refused, and the new session dies with its JWT."""
    jwt = encodeJWT({"user_id": "rev-jwt-2", "exp": int(time.time()) + 3}, REST_JWT_SECRET)
    exchange = {"application_id": 1, "auth_key": REST_AUTH_KEY, "provider": "jwt"}
    status, body = call(server, "POST", "/session.json", {**exchange, "keys": {"token": jwt}})
    assert status == 201, body
    fresh = body["session"]["token"]
    status, _ = call(server, "POST", "/session.json", {**exchange, "keys": {"token": fresh}})
    assert status == 401
    time.sleep(4)
    assert call(server, "GET", "/session.json", token=fresh)[0] == 401


def test_accountDeletionEndsStreams(server):
    """DELETE /users/<id>.json ends every stream of the account with not-authorized."""
    userId, token = signup(server, "rev-del", "rev-del-pw")

    async def scenario():
        byPassword = await connect(server, userId, "rev-del-pw", "p")
        assert call(server, "DELETE", f"/users/{userId}.json", token=token)[0] == 200
        assert await endedWith(byPassword) == "not-authorized"

    run(scenario())


@pytest.mark.parametrize("command, condition", [("deluser", "not-authorized"), ("passwd", "reset")])
def test_adminCommandEndsStreams(server, command, condition):
    """admin deluser / passwd in another process: the running server ends the stream within the recheck time."""
    name = f"rev-admin-{command}"
    server.adduser(name, f"{name}-pw")

    async def scenario():
        client = RawClient(server)
        await client.login(name, f"{name}-pw", "r")
        done = await asyncio.to_thread(server.admin, command, name, stdin=f"{name}-new\n")
        assert done.returncode == 0, done.stderr
        assert await endedWith(client, timeout=RECHECK + 4) == condition

    run(scenario())


def test_preRegisteredExternalIdRefused(server):
    """An attacker with only the auth key cannot sign up holding a JWT user's external id."""
    status, body = call(server, "POST", "/users.json", {"user": {
        "login": "rev-mallory", "password": "rev-mallory-pw", "external_user_id": "rev-emp-7"}},
        token=appToken(server))
    assert status == 422, body
    jwt = encodeJWT({"user_id": "rev-emp-7", "exp": int(time.time()) + 600}, REST_JWT_SECRET)
    status, body = call(server, "GET", "/session.json", token=jwt)
    assert status == 200 and body["session"]["user"]["login"] is None


def test_logoutEndsScramTokenStream(server):
    """slixmpp logged in with SCRAM-SHA-1 and a REST token: logout ends that stream with reset."""
    from tests.e2e.test_slixmpp import Client

    userId, token = signup(server, "rev-scram", "rev-scram-pw")

    async def scenario():
        client = Client(server, f"{userId}-1@localhost", token, "SCRAM-SHA-1")
        errors = asyncio.get_running_loop().create_future()
        client.add_event_handler("stream_error", lambda e: errors.done() or errors.set_result(
            e["condition"]))
        assert await client.login()
        assert call(server, "DELETE", "/session.json", token=token)[0] == 200
        assert await asyncio.wait_for(errors, 5) == "reset"
        client.disconnect()

    run(scenario())
