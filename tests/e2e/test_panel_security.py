"""
Issue 19's security tests on a live server (the in-process walk over every
route is tests/ops/test_panel_security.py): with the panel's cookie, a
change without the CSRF token is refused and really changes nothing in
the storage; after sign-out the cookie opens nothing; the sign-in
throttle answers 429 with Retry-After, the right password included.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ADMIN, PANEL_PASSWORD, panelServer
from tests.e2e.conftest import stopServer
from tests.e2e.test_slixmpp import Client, run
from xmppchat.ops.panel.auth import COOKIE


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    running = panelServer(tmp_path_factory)
    running.server.addusers(["alice"])
    yield running
    stopServer(running.server)


def call(panel, method, path, body=None, cookie=None, csrf=None):
    """C{(status, decoded JSON, headers)} of one request with the panel's cookie (no key)."""
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    request = urllib.request.Request(f"{panel.base}/admin/api/{path}", headers=headers, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers


def signIn(panel, password=PANEL_PASSWORD):
    status, answer, headers = call(panel, "POST", "session", {"name": ADMIN, "password": password})
    cookie = (headers.get("Set-Cookie") or "").split(";", 1)[0].partition("=")[2]
    return status, answer, cookie


def accounts(panel) -> str:
    done = panel.server.admin("list")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_changesWithoutTheTokenChangeNothing(panel):
    """Create, delete and password change with the cookie but no (or a wrong) token: 403, the accounts are as before."""
    status, answer, cookie = signIn(panel)
    assert status == 200
    before = accounts(panel)
    assert "alice@localhost" in before
    for csrf in (None, "wrong-token"):
        for method, path, body in (("POST", "users", {"name": "mallory", "password": "mallory-pw"}),
                                   ("DELETE", "users/alice", None),
                                   ("PUT", "users/alice/password", {"password": "taken-over"})):
            status, _, _ = call(panel, method, path, body, cookie=cookie, csrf=csrf)
            assert (method, path, status) == (method, path, 403)
    assert accounts(panel) == before

    async def aliceLogsIn():
        client = Client(panel.server, "alice@localhost/check", "alice-pw")
        assert await client.login()  # her password is unchanged
        await client.logout()

    run(aliceLogsIn())
    status, created, _ = call(panel, "POST", "users", {"name": "trent", "password": "trent-pw"}, cookie=cookie,
                              csrf=answer["csrf"])
    assert status == 201 and "trent@localhost" in accounts(panel)  # control: the token does work
    assert f"Admin {ADMIN}: sign-in" in panel.server.log()


def test_signedOutCookieOpensNothing(panel):
    """After sign-out, the cookie is 401 for reading and for changing."""
    _, answer, cookie = signIn(panel)
    assert call(panel, "GET", "overview", cookie=cookie)[0] == 200
    assert call(panel, "DELETE", "session", cookie=cookie, csrf=answer["csrf"])[0] == 200
    assert call(panel, "GET", "overview", cookie=cookie)[0] == 401
    assert call(panel, "POST", "announce", {"body": "x"}, cookie=cookie, csrf=answer["csrf"])[0] == 401


def test_signInThrottled(panel):
    """(Last: it locks this server's sign-in.) After panel_signin_failures wrong passwords, the right one is 429 with Retry-After."""
    for _ in range(5):
        assert signIn(panel, "wrong password")[0] == 401
    status, answer, headers = call(panel, "POST", "session", {"name": ADMIN, "password": PANEL_PASSWORD})
    assert status == 429, answer
    assert 0 < int(headers["Retry-After"]) <= 901
    assert not headers.get("Set-Cookie")
