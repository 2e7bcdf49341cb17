"""
Issue 19: signing in to the web admin panel with a real browser, and what
the panel refuses without a session.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.browser.conftest import ADMIN, shot, signIn, wait, waitFor


def test_signInShowsTheOverviewAndSignOutEndsTheSession(panel, browser):
    """
    A wrong password stays on the sign-in form with an error; the right
    one opens the overview with the administrator's name; signing out
    comes back to the form and the cookie no longer opens the API.
    """
    browser.get(panel.url)
    form = wait(browser, "#page-signin form")
    shot(browser, "signin")
    form.find_element("name", "name").send_keys(ADMIN)
    form.find_element("name", "password").send_keys("not the password")
    form.find_element("css selector", "button[data-action=sign-in]").click()
    error = wait(browser, "#notice.error")
    assert "Wrong name or password" in error.text
    browser.refresh()
    signIn(browser, panel)
    assert ADMIN in wait(browser, "#who").text
    cookies = {c["name"]: c for c in browser.get_cookies()}
    cookie = cookies["xmppchat_admin"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    # the cookie alone opens the API for reading
    status, body = _get(panel, "session", cookie["value"])
    assert (status, body["name"]) == (200, ADMIN)
    wait(browser, "button[data-action=sign-out]").click()
    wait(browser, "#page-signin form")
    waitFor(browser, lambda b: _get(panel, "session", cookie["value"])[0] == 401,
            message="the signed-out cookie still opens the API")
    assert _get(panel, "stats", cookie["value"])[0] == 401


def _get(panel, path, cookie):
    request = urllib.request.Request(f"{panel.base}/admin/api/{path}",
                                     headers={"Cookie": f"xmppchat_admin={cookie}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_pagesCarryAStrictContentSecurityPolicy(panel):
    for path in ("", "core.js", "panel.css", "pages/users.js"):
        with urllib.request.urlopen(panel.url + path, timeout=10) as response:
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"
