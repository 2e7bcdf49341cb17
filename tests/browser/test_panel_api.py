"""
Issue 19: the panel's sign-in and session rules over HTTP on a live
server (no browser): the throttle under parallel guesses, 415 for a
non-JSON sign-in, administrators re-read at a reload, and every change
made through the admin API logged with the administrator's name
(security review of the foundation, findings 1, 2, 3, 11).
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request

from tests.browser.conftest import ADMIN, PANEL_PASSWORD


def call(panel, method, path, body=None, cookie=None, csrf=None, kind="application/json"):
    headers = {"Content-Type": kind}
    if cookie:
        headers["Cookie"] = f"xmppchat_admin={cookie}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    request = urllib.request.Request(f"{panel.base}/admin/api/{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers


def signIn(panel, name=ADMIN, password=PANEL_PASSWORD):
    status, body, headers = call(panel, "POST", "session", {"name": name, "password": password})
    assert status == 200, body
    cookie = headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    return cookie, body["csrf"]


def test_parallelGuessesCannotOutrunTheThrottle(panel):
    """
    Twenty wrong passwords sent at once for a made-up name: at most
    panel_signin_failures (5) are checked, the rest are 429.
    """
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(
            lambda i: call(panel, "POST", "session", {"name": "ghost", "password": f"guess{i}"})[0],
            range(20)))
    assert statuses.count(401) <= 5 and statuses.count(429) >= 15, statuses
    panel.api("POST", "unlock", {"target": "127.0.0.1"})  # the next tests sign in from here


def test_signInNeedsAJSONBody(panel):
    status, body, _ = call(panel, "POST", "session", {"name": ADMIN, "password": PANEL_PASSWORD},
                           kind="text/plain")
    assert status == 415 and "JSON" in body["error"]


def test_everyChangeIsLoggedWithTheAdministratorsName(panel):
    cookie, csrf = signIn(panel)
    status, body, _ = call(panel, "POST", "users", {"name": "logged", "password": "logged-pw"},
                           cookie=cookie, csrf=csrf)
    assert status == 201, body
    deadline = time.time() + 10
    while f"Admin {ADMIN}: POST users" not in panel.server.log() and time.time() < deadline:
        time.sleep(0.2)
    log = panel.server.log()
    assert f"Admin {ADMIN}: POST users" in log, log[-2000:]


def test_aReloadEndsTheSessionsOfARemovedAdministrator(panel):
    cookie, csrf = signIn(panel)
    assert call(panel, "GET", "session", cookie=cookie)[0] == 200
    config = panel.server.config
    original = config.read_text()
    try:
        # the same config with another administrator only
        config.write_text(original.replace(f'name = "{ADMIN}"', 'name = "someone-else"'))
        status, body = panel.api("POST", "reload", {"what": ["panel"]})
        assert status == 200 and body["nodes"]["local"]["panel"] == "reloaded", body
        assert call(panel, "GET", "session", cookie=cookie)[0] == 401
    finally:
        config.write_text(original)
        panel.api("POST", "reload", {"what": ["panel"]})
    deadline = time.time() + 5
    while call(panel, "POST", "session", {"name": ADMIN, "password": PANEL_PASSWORD})[0] != 200:
        assert time.time() < deadline
