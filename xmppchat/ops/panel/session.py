"""
Signing in to the web admin panel (issue 19): C{/admin/api/session}.

    POST   session {"name", "password"} -> {"name", "csrf"} and the cookie
    GET    session                      -> {"name", "csrf"}, or 401
    DELETE session                      -> {"signed_out": name} (needs the CSRF token)

A wrong name or password is 401; after C{panel_signin_failures} of them
within C{panel_signin_window_seconds} from one address or for one name,
every sign-in for it is 429 with C{Retry-After} (RFC 6585 §4), the right
password included, so that guessing cannot go on at the speed of the
password hash.  The cookie (L{xmppchat.ops.panel.auth}) is C{HttpOnly},
C{SameSite=Strict}, C{Path=/admin}, and C{Secure} when the request came
over TLS.
"""

from __future__ import annotations

import hmac
import secrets

from twisted.internet import threads
from twisted.logger import Logger

from xmppchat import observe
from xmppchat.ops.apierror import ApiError
from xmppchat.ops.panel.auth import (COOKIE, COOKIE_PATH, SECRET_SETTING, Administrators,
                                     SigninThrottle)

log = Logger()

SAFE_METHODS = frozenset((b"GET", b"HEAD"))
SAFE_METHODS_TEXT = frozenset(m.decode() for m in SAFE_METHODS)
CSRF_HEADER = b"x-csrf-token"


class PanelAuth:
    """
    The panel's sessions for the admin API (L{xmppchat.ops.adminapi}).
    """

    def __init__(self, ops, storage, clock=None):
        self.enabled = bool(ops.panel and ops.administrators)
        self.storage = storage
        self.ops = ops
        self.secret: bytes | None = None  # read from the storage at the first panel request
        self.clock = {"clock": clock} if clock is not None else {}
        self.administrators = Administrators(ops, **self.clock)
        self.throttle = SigninThrottle(ops.panel_signin_failures, ops.panel_signin_window_seconds,
                                       **self.clock)

    def reload(self, config) -> bool:
        """
        The C{reload} part C{panel}: the administrators, session lengths
        and throttle limits of a re-read config (a removed administrator
        or a changed hash ends those sessions at once); what the throttle
        counted is kept.  Turning the panel on or off needs a restart.
        """
        ops = self.ops = config.ops
        self.administrators = Administrators(ops, self.secret or b"", **self.clock)
        self.throttle.failures = ops.panel_signin_failures
        self.throttle.window = ops.panel_signin_window_seconds
        return True

    @staticmethod
    def _setCookie(request, value: str, maxAge: int | None = None) -> None:
        request.addCookie(COOKIE, value, path=COOKIE_PATH, httpOnly=True, sameSite="strict",
                          secure=request.isSecure() or None,
                          max_age=str(maxAge) if maxAge is not None else None)

    async def _ready(self) -> None:
        """
        The cookie secret (review 19 #5): the storage's, made by whichever
        process of the deployment asked first.
        """
        if self.secret is None:
            value = await self.storage.settings.addSetting(SECRET_SETTING, secrets.token_hex(32))
            self.secret = bytes.fromhex(value)
            self.administrators = Administrators(self.ops, self.secret, **self.clock)

    async def authenticate(self, request):
        """
        The L{PanelSession} of the request's cookie (401 without a live
        one), its CSRF token checked when the method changes something
        (403), the cookie refreshed to slide the idle timeout.
        """
        await self._ready()
        session = self.administrators.session(
            (request.getCookie(COOKIE.encode()) or b"").decode("ascii", "replace"))
        if session is None or await self.storage.tokens.isRevoked(session.revocationKey):
            raise ApiError(401, "Not signed in, or the session is over: sign in again")
        if request.method not in SAFE_METHODS:
            given = request.requestHeaders.getRawHeaders(CSRF_HEADER, [b""])[0]
            if not hmac.compare_digest(given, session.csrf.encode()):
                raise ApiError(403, "The X-CSRF-Token header is missing or wrong: reload the panel")
        refreshed = self.administrators.refreshed(session)
        if refreshed is not None:
            self._setCookie(request, refreshed)
        return session

    async def serve(self, api, request, body: dict):
        """
        C{/admin/api/session}: sign in, who am I, sign out.
        """
        if not self.enabled:
            raise ApiError(404, "The admin panel is off: set [ops] panel and [[ops.administrators]]")
        method = request.method
        if method == b"POST":
            return await self._signIn(api, request, body)
        if method in (b"GET", b"DELETE"):
            session = await self.authenticate(request)
            request.adminName = session.name
            if method == b"GET":
                return {"name": session.name, "csrf": session.csrf}
            await self.storage.tokens.revokeToken(session.revocationKey,
                                                  self.administrators.expiresAt(session))
            self._setCookie(request, "", maxAge=0)
            api.audit(request, "sign-out")
            return {"signed_out": session.name}
        request.setHeader(b"allow", b"GET, POST, DELETE")
        raise ApiError(405, "Method not allowed")

    async def _signIn(self, api, request, body: dict):
        kind = (request.getHeader(b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()
        if kind != "application/json":  # no simple cross-site form can post it (review 19 #11)
            raise ApiError(415, "Sign in with a JSON body (Content-Type: application/json)")
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or len(name) > 64 \
                or len(password) > 1024:
            raise ApiError(400, "\"name\" and \"password\" strings are required")
        address = request.getClientAddress().host
        keys = (f"address:{address}", f"name:{name}")
        wait = self.throttle.retryAfter(*keys)
        if wait:
            request.setHeader(b"retry-after", str(wait).encode())
            raise ApiError(429, f"Too many failed sign-ins: try again in {wait} s")
        stamp = self.throttle.attempt(*keys)  # counted before anything waits (review 19 #1)
        await self._ready()
        if not await threads.deferToThread(self.administrators.check, name, password):
            known = name in self.administrators.hashes  # never log what was typed as a name
            observe.emit("admin-action", admin=name if known else "(unknown)",
                         action="sign-in failed", details="", address=address)
            raise ApiError(401, "Wrong name or password")
        self.throttle.forgive(stamp, *keys)
        session, cookie = self.administrators.open(name)
        self._setCookie(request, cookie)
        request.adminName = name
        api.audit(request, "sign-in")
        return {"name": name, "csrf": session.csrf}
