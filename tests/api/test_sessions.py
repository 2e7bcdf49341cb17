"""
Tests for L{xmppchat.api.sessions}: application and user sessions, login,
logout, JWT token users, and tokens as XMPP passwords.
"""

from __future__ import annotations

import pytest

from xmppchat.api.sessions import InvalidJWT, decodeJWT, encodeJWT
from xmppchat.auth.credentials import Credentials, tokenHash
from xmppchat.auth.source import StorageCredentialSource
from tests.api.helpers import SECRET, ApiHarness
from tests.helpers import result


@pytest.fixture
def api():
    return ApiHarness()


def test_appSession(api):
    """POST /session.json with the app id and key gives a token and user_id 0."""
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key"})
    assert r.status == 201
    session = r.json["session"]
    assert session["application_id"] == 1 and session["user_id"] == 0
    assert len(session["token"]) == 40
    r = api.get("/session.json", token=session["token"])
    assert r.status == 200 and r.json["session"]["token"] == session["token"]


def test_appSessionBadKey(api):
    """A wrong auth_key or unknown application is a 422; no token is issued."""
    for body in ({"application_id": 1, "auth_key": "nope"}, {"application_id": 9, "auth_key": "test-key"},
                 {"application_id": "x", "auth_key": "test-key"}, {"auth_key": "test-key"},
                 {"application_id": 1}):
        r = api.post("/session.json", body)
        assert r.status == 422, body
        assert "errors" in r.json


def test_sessionBodyNotObject(api):
    """A JSON array body is refused."""
    r = api.post("/session.json", [1, 2])
    assert r.status == 400


def test_userSession(api):
    """A session with login and password carries the user and its id."""
    user = api.signup("alice")
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "user": {"login": "alice", "password": "password1"}})
    assert r.status == 201
    assert r.json["session"]["user_id"] == user["id"]
    assert r.json["session"]["user"]["login"] == "alice"


def test_userSessionByEmailOrId(api):
    """Users can also authenticate with their id; unknown lookups are 401."""
    user = api.signup("alice")
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "user": {"id": user["id"], "password": "password1"}})
    assert r.status == 201 and r.json["session"]["user_id"] == user["id"]


def test_userSessionWrongPassword(api):
    """A wrong password or unknown login is 401 Unauthorized."""
    api.signup("alice")
    for user in ({"login": "alice", "password": "wrong-pass"}, {"login": "bob", "password": "password1"},
                 {"login": "alice"}):
        r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key", "user": user})
        assert r.status == 401, user
        assert r.json["errors"]["base"] == ["Unauthorized"]


def test_userSessionThrottled(api):
    """Repeated failures lock the account out with 429."""
    api.signup("alice")
    statuses = []
    for _ in range(12):
        r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                       "user": {"login": "alice", "password": "wrong-pass"}})
        statuses.append(r.status)
    assert statuses[0] == 401 and statuses[-1] == 429


def test_destroySession(api):
    """DELETE /session.json kills the token."""
    token, _ = api.user("alice")
    r = api.delete("/session.json", token=token)
    assert r.status == 200
    assert api.get("/session.json", token=token).status == 401


def test_destroyAppSession(api):
    """An application session can be destroyed too."""
    token = api.appToken()
    assert api.delete("/session.json", token=token).status == 200
    assert api.get("/session.json", token=token).status == 401


def test_tokenExpires(api):
    """A token is dead after token_seconds."""
    token, _ = api.user("alice")
    app = api.appToken()
    api.clock.advance(api.config.rest.token_seconds + 1)
    assert api.get("/session.json", token=token).status == 401
    assert api.get("/session.json", token=app).status == 401


def test_loginUpgradesToken(api):
    """POST /login.json turns the app token into the user's; DELETE /login.json turns it back."""
    user = api.signup("alice")
    token = api.appToken()
    r = api.post("/login.json", {"login": "alice", "password": "password1"}, token=token)
    assert r.status == 202 and r.json["user"]["id"] == user["id"]
    r = api.get("/session.json", token=token)
    assert r.json["session"]["user_id"] == user["id"]
    assert api.delete("/login.json", token=token).status == 200
    r = api.get("/session.json", token=token)
    assert r.status == 200 and r.json["session"]["user_id"] == 0


def test_loginWrongPassword(api):
    """A failed login leaves the app session as it was."""
    api.signup("alice")
    token = api.appToken()
    r = api.post("/login.json", {"login": "alice", "password": "nope-nope"}, token=token)
    assert r.status == 401
    assert api.get("/session.json", token=token).json["session"]["user_id"] == 0


def test_loginNeedsSession(api):
    """POST /login.json without a token is the session 401."""
    r = api.post("/login.json", {"login": "alice", "password": "password1"})
    assert r.status == 401


def test_appSessionCannotUseUserCalls(api):
    """A user-only call with an app session is 403."""
    user = api.signup("alice")
    r = api.put(f"/users/{user['id']}.json", {"user": {"full_name": "A"}}, token=api.appToken())
    assert r.status == 403


def test_appSessionsBounded():
    """Application sessions beyond max_app_sessions evict the oldest."""
    api = ApiHarness(rest={"max_app_sessions": 3})
    tokens = [api.appToken() for _ in range(5)]
    assert api.get("/session.json", token=tokens[0]).status == 401
    assert api.get("/session.json", token=tokens[-1]).status == 200


def test_tokenIsXMPPPassword(api):
    """A user token works as the SASL password: PLAIN and SCRAM candidates."""
    token, userId = api.user("alice")
    account = result(api.storage.accounts.getAccount(userId))
    assert account.localpart == f"{userId}-1"
    source = StorageCredentialSource(api.storage, api.clock)
    assert result(source.checkPlain(account.localpart, token)).tokenHash == tokenHash(token)
    assert result(source.checkPlain(account.localpart, "password1")) is True
    assert result(source.checkPlain(account.localpart, "0" * 40)) is False
    candidates = result(source.getScramCandidates(account.localpart, "sha1"))
    assert len(candidates) == 2
    record = result(api.storage.tokens.getToken(tokenHash(token)))
    derived = Credentials.fromDict(record.credentials).sha1
    assert derived.salt == Credentials.fromDict(account.credentials).sha1.salt


def test_jwtRoundTrip():
    """decodeJWT accepts what encodeJWT signs and refuses tampering and expiry."""
    token = encodeJWT({"user_id": "ext-1", "exp": 2_000_000_000}, SECRET)
    assert decodeJWT(token, 1, SECRET, 1_700_000_000) == ("ext-1", 2_000_000_000.0)
    with pytest.raises(InvalidJWT):
        decodeJWT(token, 1, "another-secret-0123456789", 1_700_000_000)
    with pytest.raises(InvalidJWT):
        decodeJWT(token, 1, SECRET, 2_000_000_001)
    head, payload, sig = token.split(".")
    with pytest.raises(InvalidJWT):
        decodeJWT(f"{head}.{payload}x.{sig}", 1, SECRET, 1_700_000_000)
    for claims in ({"user_id": "ext-1"}, {"user_id": "Bad Id!", "exp": 2e9}, {"exp": 2e9}):
        with pytest.raises(InvalidJWT):
            decodeJWT(encodeJWT(claims, SECRET), 1, SECRET, 1_700_000_000)


def test_jwtNoneAlgorithm():
    """An unsigned (alg none) token is refused."""
    good = encodeJWT({"user_id": "x", "exp": 2e9}, SECRET)
    import base64
    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(InvalidJWT):
        decodeJWT(f"{head}.{good.split('.')[1]}.", 1, SECRET, 1_700_000_000)


def test_jwtAuthenticatesAndCreatesUser(api):
    """A JWT as CB-Token authenticates; its unknown user is created once."""
    token = encodeJWT({"user_id": "ext-42", "exp": 1_700_003_600}, SECRET)
    r = api.get("/session.json", token=token)
    assert r.status == 200, r
    userId = r.json["session"]["user_id"]
    assert userId > 0
    assert r.json["session"]["user"]["external_user_id"] == "ext-42"
    again = encodeJWT({"user_id": "ext-42", "exp": 1_700_007_200}, SECRET)
    assert api.get("/session.json", token=again).json["session"]["user_id"] == userId
    account = result(api.storage.accounts.getAccount(userId))
    assert account.localpart == f"{userId}-1"
    source = StorageCredentialSource(api.storage, api.clock)
    assert result(source.checkPlain(account.localpart, token)).tokenHash == tokenHash(token)
    assert len(result(source.getScramCandidates(account.localpart, "sha256"))) == 3


def test_jwtExpiredOrForeign(api):
    """An expired JWT, or one signed for an app without that secret, is 401."""
    expired = encodeJWT({"user_id": "ext-1", "exp": 1_600_000_000}, SECRET)
    assert api.get("/session.json", token=expired).status == 401
    foreign = encodeJWT({"user_id": "ext-1", "exp": 1_800_000_000}, "some-other-secret-xyz")
    assert api.get("/session.json", token=foreign).status == 401


def test_jwtSessionProvider(api):
    """POST /session.json with provider jwt exchanges the JWT for a session token."""
    jwt = encodeJWT({"user_id": "ext-7", "exp": 1_700_003_600}, SECRET)
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "provider": "jwt", "keys": {"token": jwt}})
    assert r.status == 201, r
    assert r.json["session"]["token"] != jwt and r.json["session"]["user_id"] > 0
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "provider": "jwt", "keys": {"token": "a.b.c"}})
    assert r.status == 401
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "provider": "facebook", "keys": {"token": "x"}})
    assert r.status == 422


def test_cliAccountLogsInByName(api):
    """An account made with the admin CLI (localpart, no login) logs in with its name."""
    from xmppchat.auth.credentials import deriveCredentials
    account = result(api.storage.accounts.createAccount(
        "carol", deriveCredentials("carol-password").toDict()))
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                   "user": {"login": "carol", "password": "carol-password"}})
    assert r.status == 201 and r.json["session"]["user_id"] == account.id


def test_expiredTokensPurged(api):
    """While the site listens, expired user tokens and app sessions are purged hourly."""
    token, userId = api.user("alice")
    api.appToken()
    api.site.startFactory()
    try:
        api.clock.advance(api.config.rest.token_seconds + 3600)
        assert result(api.storage.tokens.liveTokens(userId, 0)) == []
        assert len(api.ctx.sessions._appSessions) == 0
    finally:
        api.site.stopFactory()


def test_loginEventOnlyOnceTheSessionExists(api):
    """
    Review 18 #6: a REST session that could not be created emits no
    C{login} event (it used to, right after the password check).
    """
    from xmppchat import observe

    api.signup("alice")
    seen = []
    observer = lambda name, fields: seen.append(name)  # noqa: E731
    observe.addObserver(observer)
    original = api.ctx.sessions.createUserSession

    async def failing(*args, **kwargs):
        raise RuntimeError("storage down")

    try:
        api.ctx.sessions.createUserSession = failing
        r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                       "user": {"login": "alice", "password": "password1"}})
        assert r.status == 500
        assert "login" not in seen
        api.ctx.sessions.createUserSession = original
        r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                       "user": {"login": "alice", "password": "password1"}})
        assert r.status == 201 and seen.count("login") == 1
    finally:
        api.ctx.sessions.createUserSession = original
        observe.removeObserver(observer)


def test_blockedAccountRefused(api):
    """Issue 19: a blocked account's password, JWT and token logins are 403."""
    user = api.signup("mallory")
    token, _ = api.login("mallory")
    jwt = encodeJWT({"user_id": "ext-b", "exp": 1_700_003_600}, SECRET)
    jwtUserId = api.get("/session.json", token=jwt).json["session"]["user_id"]
    for accountId in (user["id"], jwtUserId):
        result(api.storage.accounts.updateAccount(accountId, blocked=True))
    body = {"application_id": 1, "auth_key": "test-key",
            "user": {"login": "mallory", "password": "password1"}}
    r = api.post("/session.json", body)
    assert r.status == 403 and r.json["errors"]["base"] == ["The account is blocked"]
    r = api.post("/session.json", dict(body, user={"login": "mallory", "password": "wrong"}))
    assert r.status == 401  # nothing is told before the password is right
    assert api.post("/login.json", body["user"], token=api.appToken()).status == 403
    assert api.get("/session.json", token=token).status == 403
    assert api.get("/session.json", token=jwt).status == 403
    result(api.storage.tokens.deleteAccountTokens(jwtUserId))  # as blocking does
    assert api.get("/session.json", token=jwt).status == 403
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key", "provider": "jwt",
                                   "keys": {"token": jwt}})
    assert r.status == 403
    result(api.storage.accounts.updateAccount(user["id"], blocked=False))
    assert api.post("/session.json", body).status == 201
    assert api.get("/session.json", token=token).status == 200


def test_noSessionUntilThePanelSettingsAreLoaded(api):
    """Review 19 A3: the listeners accept before the storage has started; until the admin panel's
    settings are loaded, a session with the file's auth key (rotated in the panel) or a JWT (its
    secret perhaps rotated) is 503 with Retry-After, then the rotated key is the one in force."""
    from twisted.internet import defer

    from tests.helpers import makeConfig
    from xmppchat.api.sessions import JWTChecker
    from xmppchat.runsettings import RunSettings, appKey

    panel = RunSettings(makeConfig(rest={"apps": [dict(app) for app in api.config.rest.apps]}), api.storage)
    result(defer.ensureDeferred(panel.put(appKey(1, "auth_key"), "rotated-key-0123456789")))  # in the panel, earlier
    settings = RunSettings(api.config, api.storage)
    api.ctx.sessions.settings = settings
    jwt = encodeJWT({"user_id": "ext-9", "exp": 1_700_003_600}, SECRET)
    for r in (api.post("/session.json", {"application_id": 1, "auth_key": "test-key"}),
              api.post("/session.json", {"application_id": 1, "auth_key": "test-key", "provider": "jwt",
                                         "keys": {"token": jwt}}),
              api.get("/session.json", token=jwt),
              api.post("/users.json", {"user": {"login": "early", "password": "password1"}},
                       headers={"CB-AuthKey": "test-key"})):
        assert r.status == 503 and r.headers.getRawHeaders("retry-after") == ["1"], r
    account = result(api.storage.accounts.createAccount("{id}-1", None, externalId="ext-9", jwt=True))
    assert result(defer.ensureDeferred(JWTChecker(api.ctx)(account, jwt))) is False
    result(defer.ensureDeferred(settings.load()))
    assert api.post("/session.json", {"application_id": 1, "auth_key": "test-key"}).status == 422
    assert api.post("/session.json", {"application_id": 1, "auth_key": "rotated-key-0123456789"}).status == 201
    assert api.get("/session.json", token=jwt).status == 200
