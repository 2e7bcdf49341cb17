"""
REST sessions and authentication (reference/connectycube-sdk.md §4.2):
C{POST/GET/DELETE /session.json}, C{POST/DELETE /login.json}, and the
C{CB-Token} header every other call carries.

Three kinds of token:

- application sessions (C{POST /session.json} with only C{application_id}
  and C{auth_key}), kept in memory (bounded, oldest evicted): a restart
  makes the SDK call C{on.sessionExpired} and create a new one;
- user sessions, stored with the token store by the SHA-256 of the token
  together with SCRAM keys derived from the token with the account's salt,
  so the token also works as the XMPP password with PLAIN and SCRAM
  (L{xmppchat.auth.source});
- JWTs (RFC 7519, HS256 only, RFC 7518 §3.2) signed with the application's
  C{jwt_secret} (one application per server, issue 15 finding 2): claim
  C{user_id} is the account's external id (created on first use and marked
  L{Account.jwt}); C{exp} is required.  A JWT used on REST is registered
  like a user session, so the same string then works as XMPP password
  (PLAIN and SCRAM); PLAIN also accepts a fresh JWT of an existing token
  user (L{JWTChecker}; the account and its id come from the first REST use).

Issue 15 finding 1: JWT identities and password accounts are apart.  A JWT
logs only into an account it created (L{Account.jwt}); an external id held
by a password account answers 401, never a merge.  Finding 4: logout
revokes the token (a JWT by its hash until its C{exp}), a password change
revokes the account's other tokens, and the XMPP streams that logged in
with what was revoked end (the C{credentials-revoked} event,
L{xmppchat.auth.revocation}).  Issue 19: an account the administrator
blocked gets 403 for its right password, a JWT or a token (its tokens
are deleted when it is blocked: those then answer 401).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import http

from xmppchat import observe
from xmppchat.api.json import (
    APP,
    EXTERNAL_ID,
    ApiError,
    PUBLIC,
    USER,
    JSONResource,
    baseError,
    fieldError,
    forbidden,
    isoTime,
    requireDict,
    route,
    toInt,
    unauthorized,
)
from xmppchat.api.ratelimit import tooManyRequests
from xmppchat.api.users import createRestAccount, findAccount, userJSON
from xmppchat.auth.credentials import Credentials, deriveCredentials, tokenHash, verifyPlain
from xmppchat.auth.revocation import BLOCKED_TEXT
from xmppchat.auth.throttle import LoginThrottle
from xmppchat.storage.interfaces import AlreadyExists, TokenRecord

log = Logger()

MAX_JWT_BYTES = 4096


@dataclass
class SessionInfo:
    """
    An authenticated caller.

    @ivar account: the user's L{xmppchat.storage.interfaces.Account}, or
        C{None} for an application session.
    """

    token: str
    tokenHash: str
    appId: int
    account: object
    createdAt: float
    expiresAt: float
    stored: bool = False

    @property
    def userId(self) -> int:
        return self.account.id if self.account is not None else 0

    def toJSON(self) -> dict:
        return {
            "id": int(self.tokenHash[:12], 16),
            "user_id": self.userId,
            "application_id": self.appId,
            "token": self.token,
            "ts": int(self.createdAt),
            "nonce": int(self.tokenHash[12:20], 16),
            "created_at": isoTime(self.createdAt),
            "updated_at": isoTime(self.createdAt),
        }


def _b64urlDecode(part: str) -> bytes:
    padded = part + "=" * (-len(part) % 4)
    return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)


def _b64urlEncode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def blocked() -> ApiError:
    """
    The answer to the right credentials of an account the administrator
    blocked (issue 19): 403, the server refuses them (RFC 9110 §15.5.4).
    """
    return forbidden(BLOCKED_TEXT)


class InvalidJWT(ValueError):
    """
    The string is not a valid, unexpired JWT for any configured secret.
    """


def encodeJWT(claims: dict, secret: str) -> str:
    """
    An HS256 JWT (tests and tooling; the server only verifies).
    """
    header = _b64urlEncode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64urlEncode(json.dumps(claims).encode())
    signing = f"{header}.{payload}".encode("ascii")
    signature = hmac.digest(secret.encode("utf-8"), signing, "sha256")
    return f"{header}.{payload}.{_b64urlEncode(signature)}"


def looksLikeJWT(token: str) -> bool:
    return token.count(".") == 2 and len(token) <= MAX_JWT_BYTES


def decodeJWT(token: str, appId: int, secret: str, now: float) -> tuple[str, float]:
    """
    Verify an HS256 JWT of application C{appId} signed with C{secret}
    (only that secret: one application per server, issue 15 finding 2; a
    C{application_id} claim naming another application is refused).
    Returns C{(externalId, expiresAt)}; raises L{InvalidJWT}.
    """
    if not looksLikeJWT(token):
        raise InvalidJWT("not a JWT")
    headerPart, payloadPart, signaturePart = token.split(".")
    try:
        header = json.loads(_b64urlDecode(headerPart))
        payload = json.loads(_b64urlDecode(payloadPart))
        signature = _b64urlDecode(signaturePart)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidJWT("malformed JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidJWT("only HS256 JWTs are accepted")
    if not isinstance(payload, dict):
        raise InvalidJWT("the JWT payload must be an object")
    signing = f"{headerPart}.{payloadPart}".encode("ascii")
    expected = hmac.digest(secret.encode("utf-8"), signing, "sha256")
    if not hmac.compare_digest(expected, signature):
        raise InvalidJWT("bad JWT signature")
    claimedApp = payload.get("application_id", payload.get("app_id"))
    if claimedApp is not None and str(claimedApp) != str(appId):
        raise InvalidJWT(f"the JWT is for application {claimedApp}, not {appId}")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise InvalidJWT("the JWT needs a numeric exp claim")
    if exp <= now:
        raise InvalidJWT("the JWT has expired")
    nbf = payload.get("nbf")
    if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and nbf > now + 60:
        raise InvalidJWT("the JWT is not valid yet")
    userId = payload.get("user_id")
    if isinstance(userId, int) and not isinstance(userId, bool):
        userId = str(userId)
    if not isinstance(userId, str) or not EXTERNAL_ID.fullmatch(userId):
        raise InvalidJWT("user_id must be 1-128 characters of a-z 0-9 @ _ -")
    return userId, float(exp)


class SessionManager:
    """
    Issues, looks up and destroys tokens; authenticates calls.
    """

    def __init__(self, ctx):
        self.ctx = ctx
        self._appSessions: OrderedDict[str, SessionInfo] = OrderedDict()
        # the XMPP host's when both run in one process (XMPPChatService.restSite)
        limits = ctx.limits
        self.throttle = (LoginThrottle(ctx.clock) if limits is None
                         else LoginThrottle.fromConfig(limits, ctx.clock))
        # the admin panel's settings (XMPPChatService.restSite): until they
        # are loaded the application's secrets may be the file's, rotated since
        self.settings = None

    @property
    def ready(self) -> bool:
        """
        Whether the application secrets in force are the panel's (review
        19 A3: the listeners accept before the storage has started).
        """
        return self.settings is None or self.settings.loaded

    def starting(self) -> None:
        """
        503 with C{Retry-After} while not L{ready}: no session is made with
        an auth key or a JWT the panel may have rotated.
        """
        if not self.ready:
            e = baseError(http.SERVICE_UNAVAILABLE, "The server is starting, try again")
            e.headers = {b"retry-after": b"1"}
            raise e

    # -- applications -------------------------------------------------------

    def app(self, appId, authKey=None, checkKey=True) -> dict:
        """
        The configured application C{appId}; 422 if unknown or the key is
        wrong.
        """
        try:
            appId = toInt(appId, "application_id")
        except Exception:
            raise fieldError("application_id", "must be a configured application id") from None
        app = self.ctx.apps.get(appId)
        if app is None:
            raise baseError(422, "Unknown application")
        if checkKey:
            self.starting()
        if checkKey and not (isinstance(authKey, str) and hmac.compare_digest(
                authKey.encode("utf-8"), app["auth_key"].encode("utf-8"))):
            raise baseError(422, "Unexpected auth_key")
        return app

    def jwtApp(self) -> tuple[int, str] | None:
        """
        C{(appId, secret)} of the application whose JWTs are accepted, or
        C{None} when it has no C{jwt_secret}.
        """
        for appId, app in self.ctx.apps.items():
            if app.get("jwt_secret"):
                return appId, app["jwt_secret"]
        return None

    def decodeJWT(self, token: str) -> tuple[int, str, float]:
        """
        C{(appId, externalId, expiresAt)} of a JWT of this server's
        application; raises L{InvalidJWT}.
        """
        app = self.jwtApp()
        if app is None or not looksLikeJWT(token) or not self.ready:
            raise InvalidJWT("not a JWT of this application")
        return (app[0], *decodeJWT(token, app[0], app[1], self.ctx.clock.seconds()))

    # -- issuing --------------------------------------------------------------

    def _newToken(self) -> tuple[str, str]:
        token = secrets.token_hex(20)
        return token, tokenHash(token)

    def createAppSession(self, appId: int) -> SessionInfo:
        token, hashed = self._newToken()
        now = self.ctx.clock.seconds()
        info = SessionInfo(token, hashed, appId, None, now, now + self.ctx.config.token_seconds)
        self._appSessions[hashed] = info
        while len(self._appSessions) > self.ctx.config.max_app_sessions:
            self._appSessions.popitem(last=False)
        return info

    def purgeAppSessions(self) -> int:
        """
        Forget expired application sessions; returns how many.
        """
        now = self.ctx.clock.seconds()
        dead = [h for h, info in self._appSessions.items() if info.expiresAt <= now]
        for hashed in dead:
            del self._appSessions[hashed]
        return len(dead)

    async def _storeUserToken(self, info: SessionInfo) -> SessionInfo:
        """
        Store C{info} as a user token with SCRAM keys derived with the
        account's salt (so XMPP SCRAM accepts it too).
        """
        credentials = None
        if info.account.credentials:
            keys = Credentials.fromDict(info.account.credentials).sha1
            derived = await self.ctx.runCPU(deriveCredentials, info.token, keys.salt,
                                            keys.iterations)
            credentials = derived.toDict()
        await self.ctx.storage.tokens.addToken(TokenRecord(
            tokenHash=info.tokenHash, accountId=info.account.id, appId=info.appId,
            createdAt=info.createdAt, expiresAt=info.expiresAt, credentials=credentials))
        info.stored = True
        return info

    async def createUserSession(self, appId: int, account, notAfter: float | None = None
                                ) -> SessionInfo:
        """
        A new user token, expiring after C{token_seconds} or at
        C{notAfter}, whichever is first.
        """
        token, hashed = self._newToken()
        now = self.ctx.clock.seconds()
        expiresAt = now + self.ctx.config.token_seconds
        if notAfter is not None:
            expiresAt = min(expiresAt, notAfter)
        info = SessionInfo(token, hashed, appId, account, now, expiresAt)
        return await self._storeUserToken(info)

    # -- revoking (issue 15 finding 4) ------------------------------------------

    async def revoke(self, info: SessionInfo, announce: bool = True) -> None:
        """
        The user token of C{info} no longer holds: deleted (a JWT also
        remembered as revoked until its C{exp}), and, when C{announce}, the
        XMPP streams that logged in with it end.
        """
        if info.account is None:
            return
        tokens = self.ctx.storage.tokens
        if looksLikeJWT(info.token):
            await tokens.revokeToken(info.tokenHash, info.expiresAt)
        elif info.stored:
            await tokens.deleteToken(info.tokenHash)
        info.stored = False
        if announce:
            self.revoked(info.account, tokens=(info.tokenHash,), text="Logged out")

    def revoked(self, account, **what) -> None:
        """
        Fire C{credentials-revoked} for C{account}
        (L{xmppchat.auth.revocation.Revocation} fields in C{what}).
        """
        from xmppchat.auth.revocation import Revocation

        self.ctx.fire("credentials-revoked", Revocation(account.localpart, **what))

    async def upgrade(self, info: SessionInfo, account) -> SessionInfo:
        """
        C{POST /login.json}: the caller's token now belongs to C{account}
        (an application token becomes a user token; a user token is
        replaced: the streams it opened for another user end; a JWT
        still ends at its C{exp}).
        """
        if info.account is not None and info.account.id == account.id:
            if info.stored:
                await self.ctx.storage.tokens.deleteToken(info.tokenHash)
        else:
            await self.revoke(info)
        self._appSessions.pop(info.tokenHash, None)
        now = self.ctx.clock.seconds()
        expiresAt = now + self.ctx.config.token_seconds
        if looksLikeJWT(info.token):
            expiresAt = min(expiresAt, info.expiresAt)
        upgraded = SessionInfo(info.token, info.tokenHash, info.appId, account, now, expiresAt)
        return await self._storeUserToken(upgraded)

    async def downgrade(self, info: SessionInfo) -> SessionInfo:
        """
        C{DELETE /login.json}: the token stays valid as an application
        session.
        """
        await self.revoke(info)
        app = SessionInfo(info.token, info.tokenHash, info.appId, None, info.createdAt,
                          info.expiresAt)
        self._appSessions[info.tokenHash] = app
        return app

    async def destroy(self, info: SessionInfo) -> None:
        self._appSessions.pop(info.tokenHash, None)
        await self.revoke(info)

    # -- looking up ---------------------------------------------------------

    async def resolve(self, token: str) -> SessionInfo | None:
        """
        The live session of C{token}, or C{None}.
        """
        if not token or len(token) > MAX_JWT_BYTES:
            return None
        hashed = tokenHash(token)
        now = self.ctx.clock.seconds()
        info = self._appSessions.get(hashed)
        if info is not None:
            if info.expiresAt > now:
                return info
            del self._appSessions[hashed]
            return None
        record = await self.ctx.storage.tokens.getToken(hashed, now)
        if record is not None:
            account = await self.ctx.storage.accounts.getAccount(record.accountId)
            if account is None:
                return None
            if account.blocked:
                raise blocked()
            return SessionInfo(token, hashed, record.appId or 0, account, record.createdAt,
                               record.expiresAt, stored=True)
        if looksLikeJWT(token):
            return await self._resolveJWT(token, hashed, now)
        return None

    async def _resolveJWT(self, token, hashed, now):
        self.starting()
        try:
            appId, externalId, expiresAt = self.decodeJWT(token)
        except InvalidJWT as e:
            log.debug("JWT refused: {reason}", reason=e)
            return None
        if await self.ctx.storage.tokens.isRevoked(hashed, now):
            log.debug("JWT refused: logged out")
            return None
        account = await self.accountForExternalId(appId, externalId)
        if account.blocked:
            raise blocked()
        info = SessionInfo(token, hashed, appId, account, now, expiresAt)
        try:
            return await self._storeUserToken(info)
        except AlreadyExists:  # registered meanwhile by a concurrent call
            info.stored = True
            return info

    async def accountForExternalId(self, appId: int, externalId: str):
        """
        The account of a token user, created on first use and marked
        L{Account.jwt} (no password: it gets unguessable credentials so its
        tokens can carry SCRAM keys).  An account of this external id
        without the mark has a password: 401, a JWT never logs into it
        (issue 15 finding 1).
        """
        account = await findAccount(self.ctx.storage, "externalId", externalId)
        if account is None:
            try:
                account = await createRestAccount(self.ctx, appId, password=None,
                                                  externalId=externalId, jwt=True)
            except AlreadyExists:
                account = await findAccount(self.ctx.storage, "externalId", externalId)
        if account is None or not account.jwt:
            log.warn("A JWT for external id {ext} was refused: a password account holds it",
                     ext=externalId)
            raise baseError(http.UNAUTHORIZED, "This external user id belongs to a user who logs"
                            " in with a password, not with a JWT")
        return account

    async def authenticate(self, request, level: str):
        """
        The caller's L{SessionInfo} for a route of C{level}; 401 when a
        needed token is missing or dead, 403 when a user session is needed
        and the token is an application session's.
        """
        token = request.getHeader("cb-token")
        if level == PUBLIC:
            return await self.resolve(token) if token else None
        if not token:
            raise unauthorized()
        info = await self.resolve(token)
        if info is None:
            raise unauthorized()
        if level == USER and info.account is None:
            raise forbidden("This call needs a user session (log in first)")
        return info

    # -- passwords ------------------------------------------------------------

    async def checkPassword(self, request, account, password) -> bool:
        """
        Whether C{password} is C{account}'s, with the failed-login throttle
        of SASL (L{LoginThrottle}, keyed by localpart): 429 while this
        client address is locked out for this account, answers held as
        it says.
        """
        address = self.ctx.clientAddress(request)
        key = account.localpart if account is not None else None
        lockedFor = self.throttle.refusedFor(address, key)
        if lockedFor > 0:
            raise tooManyRequests(lockedFor, "failed logins")
        ok = False
        if (account is not None and account.credentials and not account.jwt
                and isinstance(password, str) and password):
            ok = await self.ctx.runCPU(verifyPlain, Credentials.fromDict(account.credentials),
                                       password)
        delay = self.throttle.delayFor(address, key, ok)
        if ok:
            self.throttle.recordSuccess(address, key)
        else:
            self.throttle.recordFailure(address, key)
        if delay > 0:
            await task.deferLater(self.ctx.clock, delay, lambda: None)
        return ok

    def loggedIn(self, request, account, mechanism: str) -> None:
        """
        The C{login} event of a REST session creation (L{xmppchat.observe}).
        """
        observe.emit("login", jid=f"{account.localpart}@{self.ctx.server.domain}", transport="rest",
                     mechanism=mechanism, address=self.ctx.clientAddress(request), resumed=False)

    def loginFailed(self, request, account, mechanism: str, condition: str) -> None:
        """
        The C{login-failed} event: C{account} as the client named it.
        """
        observe.emit("login-failed", account=account, transport="rest", mechanism=mechanism,
                     address=self.ctx.clientAddress(request), condition=condition)

    def loggedOut(self, info) -> None:
        """
        The C{logout} event of a user session the client ended.
        """
        if info.account is not None:
            observe.emit("logout", jid=f"{info.account.localpart}@{self.ctx.server.domain}",
                         transport="rest", reason="client closed")

    async def userFromCredentials(self, request, data: dict):
        """
        The account named by C{login}, C{email} or C{id} in C{data} whose
        C{password} matches (the caller emits C{login} once its session
        exists: review 18 #6); 401 C{Unauthorized} otherwise (a
        C{login-failed} event, as for 429 while locked out).
        """
        data = requireDict(data, "user")
        password = data.get("password")
        account = None
        for key, attribute in (("login", "login"), ("email", "email"), ("id", "id")):
            value = data.get(key)
            if value is None or value == "":
                continue
            if key == "id":
                try:
                    value = toInt(value, "id")
                except Exception:
                    break
            elif not isinstance(value, str):
                raise fieldError(key, "must be a string", 400)
            account = await findAccount(self.ctx.storage, attribute, value)
            if account is None and key == "login":
                # Accounts made with the admin CLI have a localpart, no login.
                account = await self.ctx.storage.accounts.getAccountByLocalpart(value)
                if account is not None and account.login is not None:
                    account = None
            break
        else:
            raise baseError(422, "Provide login, email or id, and password")
        try:
            ok = await self.checkPassword(request, account, password)
        except ApiError:
            self.loginFailed(request, str(value), "password", "temporary-auth-failure")
            raise
        if not ok:
            self.loginFailed(request, str(value), "password", "not-authorized")
            raise baseError(http.UNAUTHORIZED, "Unauthorized")
        if account.blocked:
            self.loginFailed(request, str(value), "password", "account-disabled")
            raise blocked()
        return account


class SessionResource(JSONResource):
    """
    C{/session.json}.
    """

    @route("POST", auth=PUBLIC)
    async def create(self, call):
        body = requireDict(call.body, "body")
        sessions = self.ctx.sessions
        app = sessions.app(body.get("application_id"), body.get("auth_key"))
        appId = app["application_id"]
        provider = body.get("provider")
        if provider is not None:
            if provider != "jwt":
                raise fieldError("provider", f"unsupported provider {provider!r}")
            keys = requireDict(body.get("keys"), "keys")
            token = keys.get("token")
            # Only a JWT of this application: a session token is not an
            # identity provider's assertion (finding 4).
            info = await sessions.resolve(token) if isinstance(token, str) and looksLikeJWT(
                token) else None
            if info is None or info.account is None or info.appId != appId:
                sessions.loginFailed(call.request, None, "jwt", "not-authorized")
                raise baseError(http.UNAUTHORIZED, "Invalid or expired JWT")
            # The new session ends with the JWT it came from (finding 4).
            info = await sessions.createUserSession(appId, info.account, notAfter=info.expiresAt)
            sessions.loggedIn(call.request, info.account, "jwt")  # once it exists (review 18 #6)
        elif body.get("user") is not None:
            account = await sessions.userFromCredentials(call.request, body["user"])
            info = await sessions.createUserSession(appId, account)
            sessions.loggedIn(call.request, account, "password")
        else:
            info = sessions.createAppSession(appId)
        return http.CREATED, {"session": await self.sessionJSON(info)}

    async def sessionJSON(self, info) -> dict:
        out = info.toJSON()
        if info.account is not None:
            out["user"] = userJSON(self.ctx, info.account)
        return out

    @route("GET", auth=APP)
    async def show(self, call):
        return {"session": await self.sessionJSON(call.session)}

    @route("DELETE", auth=APP, text=True)
    async def destroy(self, call):
        await self.ctx.sessions.destroy(call.session)
        self.ctx.sessions.loggedOut(call.session)
        return None


class LoginResource(JSONResource):
    """
    C{/login.json}: turn the caller's session into a user session.
    """

    @route("POST", auth=APP)
    async def login(self, call):
        account = await self.ctx.sessions.userFromCredentials(call.request, call.body)
        await self.ctx.sessions.upgrade(call.session, account)
        self.ctx.sessions.loggedIn(call.request, account, "password")
        return http.ACCEPTED, {"user": userJSON(self.ctx, account)}

    @route("DELETE", auth=USER, text=True)
    async def logout(self, call):
        await self.ctx.sessions.downgrade(call.session)
        self.ctx.sessions.loggedOut(call.session)
        return None


class JWTChecker:
    """
    An extra XMPP PLAIN password check: C{password} is a valid JWT of an
    application whose external id belongs to the account (for token users
    who never called REST).
    """

    def __init__(self, ctx):
        self.ctx = ctx

    async def __call__(self, account, password: str):
        """
        The JWT's L{TokenRecord} once registered as a session token of
        C{account} (so its revocation ends the stream), or C{False}: only
        for an account the JWT created (L{Account.jwt}), never for a
        logged-out JWT.
        """
        sessions = self.ctx.sessions
        if not account.jwt or not looksLikeJWT(password):
            return False
        try:
            appId, externalId, expiresAt = sessions.decodeJWT(password)
        except InvalidJWT:
            return False
        hashed = tokenHash(password)
        now = self.ctx.clock.seconds()
        if account.externalId != externalId or await self.ctx.storage.tokens.isRevoked(hashed, now):
            return False
        info = SessionInfo(password, hashed, appId, account, now, expiresAt)
        try:
            await sessions._storeUserToken(info)
        except AlreadyExists:  # registered by REST or another login meanwhile
            pass
        return TokenRecord(tokenHash=hashed, accountId=account.id, appId=appId, createdAt=now,
                           expiresAt=expiresAt)


__all__ = ["SessionInfo", "SessionManager", "SessionResource", "LoginResource",
           "encodeJWT", "decodeJWT", "InvalidJWT", "JWTChecker"]
