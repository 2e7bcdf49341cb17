"""
Issue 19, "Security tests: no page or API call without a session, CSRF
token required on every change, sign-in throttled", on an in-process
server with the panel (real HTTP over loopback).

Every check walks the live route table C{AdminAPI.routes}, so the routes
every panel feature registers (L{xmppchat.ops.admin}) are covered without
being listed here.  The handlers are replaced by stubs that record being
called: a refused request must not reach its handler (nothing changed),
and a request with a live session and its CSRF token must (so that a
refusal is the auth layer's, not a missing route's).
"""

from __future__ import annotations

import json
import time
from io import BytesIO

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from tests.test_ops_listener import startOpsServer
from xmppchat.ops.panel import loadFiles
from xmppchat.ops.panel.auth import COOKIE, MIN_ITERATIONS, SigninThrottle, hashPassword

NAME = "root"
PASSWORD = "security-test-password"
KEY = "security-admin-key-0123456789abcdefghijk"
FAILURES = 3
HASH = hashPassword(PASSWORD, MIN_ITERATIONS)


def concrete(pattern: str) -> str:
    """A path that matches C{pattern} (each C{*} one segment)."""
    return "/".join("x" if part == "*" else part for part in pattern.split("/"))


class PanelSecurityTests(TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.service = yield startOpsServer(
            self, admin_key=KEY, panel=True, panel_signin_failures=FAILURES,
            administrators=[{"name": NAME, "password_hash": HASH}])
        self.base = f"http://127.0.0.1:{self.service.portNumber('ops')}"
        self.api = self.service.ports["ops"].factory.resource.children[b"admin"].children[b"api"]
        self.calls = []
        for index, route in enumerate(self.api.routes):
            self.api.routes[index] = route._replace(handler=self._stub(route))

    def _stub(self, route):
        async def stub(request, body, *segments):
            self.calls.append((route.method, route.pattern))
            return {"stub": route.pattern}

        return stub

    @defer.inlineCallbacks
    def call(self, method, path, body=None, cookie=None, csrf=None, key=None, source="127.0.0.1",
             headers=None):
        """C{(status, decoded JSON, response headers)} of one request to C{/admin/<path>}."""
        sent = Headers({b"content-type": [b"application/json"]})
        if cookie is not None:
            sent.addRawHeader(b"cookie", f"{COOKIE}={cookie}".encode())
        if csrf is not None:
            sent.addRawHeader(b"x-csrf-token", csrf.encode())
        if key is not None:
            sent.addRawHeader(b"authorization", f"Bearer {key}".encode())
        for name, value in (headers or {}).items():
            sent.addRawHeader(name.encode(), value.encode())
        producer = FileBodyProducer(BytesIO(json.dumps(body).encode())) if body is not None else None
        response = yield Agent(reactor, bindAddress=(source, 0)).request(
            method.encode(), f"{self.base}/admin/{path}".encode(), sent, producer)
        data = yield readBody(response)
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = data
        return response.code, decoded, response.headers

    @defer.inlineCallbacks
    def signIn(self, name=NAME, password=PASSWORD, source="127.0.0.1", headers=None):
        """C{(status, answer, cookie value or None, Set-Cookie header)}."""
        status, answer, headers = yield self.call("POST", "api/session", {"name": name, "password": password},
                                                  source=source, headers=headers)
        setCookie = (headers.getRawHeaders(b"set-cookie") or [b""])[0].decode()
        value = setCookie.split(";", 1)[0].partition("=")[2] if setCookie.startswith(COOKIE + "=") else None
        return status, answer, value, setCookie

    def routes(self):
        routes = [(r.method, r.pattern) for r in self.api.routes]
        self.assertGreaterEqual(len(routes), 11)  # issue 18's nine, overview, announcements at least
        return routes

    # -- no session, no key -------------------------------------------------------------

    @defer.inlineCallbacks
    def test_everyRouteNeedsASessionOrTheKey(self):
        """Every registered route: 401 with neither cookie nor key (a forged cookie neither); the key reaches it."""
        for method, pattern in self.routes():
            for cookie in (None, f"{NAME}.1.1.nonce.forged"):
                status, answer, _ = yield self.call(method, f"api/{concrete(pattern)}", {}, cookie=cookie)
                self.assertEqual((method, pattern, status), (method, pattern, 401), answer)
        self.assertEqual(self.calls, [])
        for method, pattern in self.routes():
            status, _, _ = yield self.call(method, f"api/{concrete(pattern)}", {}, key=KEY)
            self.assertEqual((method, pattern, status), (method, pattern, 200))
        self.assertEqual(len(self.calls), len(self.routes()))

    # -- CSRF ------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_everyChangeNeedsTheCSRFToken(self):
        """With a session cookie, every non-GET route is 403 without or with a wrong X-CSRF-Token and its handler is not run."""
        status, answer, cookie, _ = yield self.signIn()
        self.assertEqual(status, 200)
        csrf = answer["csrf"]
        changes = [(m, p) for m, p in self.routes() if m != "GET"]
        self.assertTrue(changes)
        for method, pattern in changes:
            for given in (None, "", csrf[:-1] + ("A" if csrf[-1] != "A" else "B"), csrf + "x"):
                status, _, _ = yield self.call(method, f"api/{concrete(pattern)}", {}, cookie=cookie, csrf=given)
                self.assertEqual((method, pattern, given, status), (method, pattern, given, 403))
        self.assertEqual(self.calls, [])
        for method, pattern in self.routes():  # positive control: the token (and reading without one) works
            status, _, _ = yield self.call(method, f"api/{concrete(pattern)}", {}, cookie=cookie,
                                           csrf=csrf if method != "GET" else None)
            self.assertEqual((method, pattern, status), (method, pattern, 200))
        self.assertEqual(len(self.calls), len(self.routes()))

    @defer.inlineCallbacks
    def test_anotherSessionsTokenIsRefused(self):
        """The CSRF token of one session does not authorise a change with another session's cookie."""
        _, first, _, _ = yield self.signIn()
        _, _, cookie, _ = yield self.signIn()
        status, _, _ = yield self.call("POST", "api/announce", {"body": "x"}, cookie=cookie, csrf=first["csrf"])
        self.assertEqual(status, 403)
        self.assertEqual(self.calls, [])

    @defer.inlineCallbacks
    def test_signOutNeedsTheToken(self):
        """DELETE session without the token is 403 and the session stays."""
        _, answer, cookie, _ = yield self.signIn()
        status, _, _ = yield self.call("DELETE", "api/session", cookie=cookie)
        self.assertEqual(status, 403)
        status, again, _ = yield self.call("GET", "api/session", cookie=cookie)
        self.assertEqual((status, again["name"]), (200, NAME))

    # -- sessions that are over ------------------------------------------------------------

    @defer.inlineCallbacks
    def assertOver(self, cookie, csrf):
        for method, pattern in self.routes() + [("GET", "session")]:
            status, _, _ = yield self.call(method, f"api/{concrete(pattern)}", {}, cookie=cookie,
                                           csrf=csrf if method != "GET" else None)
            self.assertEqual((method, pattern, status), (method, pattern, 401))
        self.assertEqual(self.calls, [])

    @defer.inlineCallbacks
    def test_signedOutSessionIsRefusedEverywhere(self):
        """After sign-out the old cookie (and its token) get 401 on every route."""
        _, answer, cookie, _ = yield self.signIn()
        status, _, headers = yield self.call("DELETE", "api/session", cookie=cookie, csrf=answer["csrf"])
        self.assertEqual(status, 200)
        cleared = headers.getRawHeaders(b"set-cookie")[0].decode()
        self.assertTrue(cleared.startswith(f"{COOKIE}=;") and "Max-Age=0" in cleared, cleared)
        yield self.assertOver(cookie, answer["csrf"])

    @defer.inlineCallbacks
    def test_idleSessionIsRefusedEverywhere(self):
        """A properly signed session unused for panel_idle_minutes gets 401 on every route."""
        admins = self.api.panel.administrators
        now = int(time.time())
        idle = admins._session(NAME, now - admins.idle - 5, now - admins.idle - 5, "idle-nonce")
        yield self.assertOver(admins.cookie(idle), idle.csrf)
        fresh = admins._session(NAME, now - admins.idle - 5, now - 5, "idle-nonce")  # control: used lately
        status, _, _ = yield self.call("GET", "api/session", cookie=admins.cookie(fresh))
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_oldSessionIsRefusedEverywhere(self):
        """A session older than panel_session_hours gets 401 on every route, however recently used."""
        admins = self.api.panel.administrators
        now = int(time.time())
        old = admins._session(NAME, now - admins.lifetime - 5, now, "old-nonce")
        yield self.assertOver(admins.cookie(old), old.csrf)

    # -- sign-in throttle --------------------------------------------------------------------

    @defer.inlineCallbacks
    def assertThrottled(self, source, name=NAME, password=PASSWORD, headers=None):
        status, answer, cookie, _ = yield self.signIn(name, password, source=source, headers=headers)
        self.assertEqual(status, 429, answer)
        self.assertIsNone(cookie)

    @defer.inlineCallbacks
    def test_signInThrottledPerAddress(self):
        """
        FAILURES wrong passwords from one address (each for another name)
        are 401; the next sign-in from it is 429 with Retry-After, the
        right password included, and X-Forwarded-For does not get round
        it; another address still signs in.
        """
        for i in range(FAILURES):
            status, _, _, _ = yield self.signIn(f"guess{i}", "wrong", source="127.0.0.2")
            self.assertEqual(status, 401)
        status, answer, headers = yield self.call("POST", "api/session", {"name": NAME, "password": PASSWORD},
                                                  source="127.0.0.2")
        self.assertEqual(status, 429, answer)
        retry = int(headers.getRawHeaders(b"retry-after")[0])
        self.assertTrue(0 < retry <= self.service.config.ops.panel_signin_window_seconds + 1)
        yield self.assertThrottled("127.0.0.2", headers={"X-Forwarded-For": "192.0.2.7"})
        status, _, cookie, _ = yield self.signIn(source="127.0.0.3")
        self.assertEqual(status, 200)
        self.assertIsNotNone(cookie)

    @defer.inlineCallbacks
    def test_signInThrottledPerName(self):
        """
        NAME_FACTOR x FAILURES wrong passwords for one name, each from
        another address: the right password for it is then 429 from anywhere.
        """
        for i in range(FAILURES * SigninThrottle.NAME_FACTOR):
            status, _, _, _ = yield self.signIn(NAME, "wrong", source=f"127.0.1.{i + 1}")
            self.assertEqual(status, 401)
        yield self.assertThrottled("127.0.2.1")
        status, _, headers = yield self.call("POST", "api/session", {"name": NAME, "password": PASSWORD},
                                             source="127.0.2.2")
        self.assertEqual(status, 429)
        self.assertGreater(int(headers.getRawHeaders(b"retry-after")[0]), 0)
        status, _, _, _ = yield self.signIn("someone-else", "wrong", source="127.0.2.2")
        self.assertEqual(status, 401)  # the address itself is not locked

    @defer.inlineCallbacks
    def test_concurrentGuessesAreThrottledToo(self):
        """
        Many wrong sign-ins sent at once (before any has been checked): no
        more than FAILURES passwords are tried, the others are 429.
        """
        attempts = [self.signIn(NAME, f"guess-{i}", source="127.0.3.1") for i in range(FAILURES + 7)]
        results = yield defer.gatherResults(attempts)
        statuses = sorted(status for status, _, _, _ in results)
        self.assertEqual(statuses, [401] * FAILURES + [429] * 7)

    # -- pages, headers, cookie ------------------------------------------------------------

    @defer.inlineCallbacks
    def test_everyFileHasAStrictPolicy(self):
        """Every static file (and the API's JSON) has a CSP without inline code or framing, X-Frame-Options DENY, nosniff."""
        files = sorted(loadFiles())
        self.assertIn("pages/overview.js", files)
        for path in [""] + files + ["api/session"]:
            status, _, headers = yield self.call("GET", path)
            self.assertIn(status, (200, 401), path)
            csp = headers.getRawHeaders(b"content-security-policy")[0].decode()
            directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
            self.assertEqual(directives["default-src"], "'none'", path)
            self.assertEqual(directives["script-src"], "'self'", path)
            self.assertEqual(directives["frame-ancestors"], "'none'", path)
            self.assertNotIn("unsafe", csp, path)
            self.assertEqual(headers.getRawHeaders(b"x-frame-options"), [b"DENY"], path)
            self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"], path)
            self.assertIsNone(headers.getRawHeaders(b"strict-transport-security"), path)  # plain HTTP

    @defer.inlineCallbacks
    def test_pageScriptsHaveNoInlineCode(self):
        """index.html loads scripts and styles only from files (the CSP would block inline ones)."""
        _, html, _ = yield self.call("GET", "")
        self.assertNotRegex(html, rb"<script(?![^>]*\bsrc=)[^>]*>")
        self.assertNotIn(b"<style", html)
        self.assertNotRegex(html, rb"\son[a-z]+=")

    @defer.inlineCallbacks
    def test_cookieFlags(self):
        """The session cookie is HttpOnly, SameSite=Strict, Path=/admin; not Secure over plain HTTP."""
        _, _, cookie, setCookie = yield self.signIn()
        self.assertIsNotNone(cookie)
        flags = [flag.strip().lower() for flag in setCookie.split(";")[1:]]
        self.assertIn("httponly", flags)
        self.assertIn("samesite=strict", flags)
        self.assertIn("path=/admin", flags)
        self.assertNotIn("secure", flags)
