"""
Issue 15 findings 1, 2 and 4 on the REST side, written as the attacks
(both backends, tests/api/conftest.py): pre-registering a JWT user's
external id, a JWT for another application, a JWT reused after logout,
tokens surviving a password change, and a token exchange that outlives the
JWT it came from.  Which XMPP streams must end is checked on the
C{credentials-revoked} events REST fires (tests/e2e/test_revocation.py
closes real streams).
"""

from __future__ import annotations

from twisted.internet import defer

from xmppchat.api.sessions import JWTChecker, encodeJWT
from xmppchat.api.users import createRestAccount
from xmppchat.auth.credentials import tokenHash
from tests.api.helpers import SECRET, ApiHarness
from tests.helpers import result

NOW = 1_700_000_000


def jwt(userId, exp=NOW + 3600, secret=SECRET, **claims):
    return encodeJWT({"user_id": userId, "exp": exp, **claims}, secret)


def revocations(api):
    seen = []
    api.hooks.add("credentials-revoked", seen.append)
    return seen


# -- finding 1: JWT identities apart from password accounts ------------------------------


def test_signupCannotPreRegisterJWTExternalId():
    """With only the public auth key, an attacker cannot sign up holding a JWT user's external id."""
    api = ApiHarness()
    r = api.post("/users.json", {"user": {"login": "mallory", "password": "mallory-pw",
                                          "external_user_id": "emp-1001"}},
                 headers={"CB-AuthKey": "test-key"})
    assert r.status == 422 and "reserved for JWT logins" in r.json["errors"]["external_user_id"][0]
    r = api.get("/session.json", token=jwt("emp-1001"))
    assert r.status == 200
    account = result(api.storage.accounts.getAccount(r.json["session"]["user_id"]))
    assert account.jwt and account.login is None


def test_jwtNeverLogsIntoPasswordAccount():
    """A JWT naming an external id held by a password account is 401 with a reason, no merge."""
    api = ApiHarness()
    victim = result(_run(createRestAccount(api.ctx, 1, "mallory-pw", login="mallory",
                                           externalId="emp-1002")))
    token = jwt("emp-1002")
    r = api.get("/session.json", token=token)
    assert r.status == 401 and "logs in with a password" in r.json["errors"]["base"][0]
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key", "provider": "jwt",
                                   "keys": {"token": token}})
    assert r.status == 401
    assert result(api.storage.tokens.liveTokens(victim.id)) == []
    assert result(api.storage.accounts.getAccount(victim.id)).jwt is False


def test_jwtAccountGetsNoPassword():
    """A JWT account cannot be given a password, and no password logs into it."""
    api = ApiHarness()
    token = jwt("emp-1003")
    userId = api.get("/session.json", token=token).json["session"]["user_id"]
    r = api.put(f"/users/{userId}.json", {"user": {"password": "new-password-1",
                                                   "old_password": "whatever-1"}}, token=token)
    assert r.status == 422 and "logs in with JWTs" in r.json["errors"]["password"][0]


# -- finding 2: one application per server --------------------------------------------------


def test_jwtForAnotherApplicationRefused():
    """A JWT claiming another application_id, or signed with another secret, opens nothing."""
    api = ApiHarness()
    assert api.get("/session.json", token=jwt("x1", application_id=2)).status == 401
    assert api.get("/session.json", token=jwt("x1", secret="app-2-secret-0123456789")).status == 401
    assert api.get("/session.json", token=jwt("x1", application_id=1)).status == 200


# -- finding 4: revocation ----------------------------------------------------------------


def test_jwtRevokedByLogout():
    """After DELETE /session.json a JWT is refused until its exp (on REST and as XMPP password)."""
    api = ApiHarness()
    seen = revocations(api)
    token = jwt("emp-2001")
    session = api.get("/session.json", token=token).json["session"]
    assert api.delete("/session.json", token=token).status == 200
    assert api.get("/session.json", token=token).status == 401
    assert [r.tokens for r in seen] == [(tokenHash(token),)]
    account = result(api.storage.accounts.getAccount(session["user_id"]))
    assert result(_run(JWTChecker(api.ctx)(account, token))) is False
    api.clock.advance(3601)
    result(api.storage.tokens.purgeExpired())
    assert result(api.storage.tokens.isRevoked(tokenHash(token))) is False


def test_jwtRevokedByLoginDelete():
    """DELETE /login.json also ends what the JWT opened: it no longer names the user."""
    api = ApiHarness()
    token = jwt("emp-2002")
    assert api.get("/session.json", token=token).status == 200
    assert api.delete("/login.json", token=token).status == 200
    assert api.get("/session.json", token=token).json["session"]["user_id"] == 0


def test_passwordChangeRevokesOtherTokens():
    """A password change revokes the account's other tokens; the changing one stays."""
    api = ApiHarness()
    stolen, userId = api.user("alice", "alice-pw-1")
    changing, _ = api.login("alice", "alice-pw-1")
    seen = revocations(api)
    r = api.put(f"/users/{userId}.json", {"user": {"password": "alice-pw-2",
                                                   "old_password": "alice-pw-1"}}, token=changing)
    assert r.status == 200, r
    assert api.get("/session.json", token=stolen).status == 401
    assert api.get("/session.json", token=changing).status == 200
    assert len(seen) == 1 and seen[0].password and seen[0].tokens == (tokenHash(stolen),)
    assert seen[0].condition == "reset"


def test_tokenExchangeDoesNotOutliveJWT():
    """provider jwt turns only a JWT into a session, and that session ends with the JWT."""
    api = ApiHarness()
    token = jwt("emp-2003", exp=NOW + 60)
    body = {"application_id": 1, "auth_key": "test-key", "provider": "jwt"}
    r = api.post("/session.json", {**body, "keys": {"token": token}})
    assert r.status == 201, r
    fresh = r.json["session"]["token"]
    plain, _ = api.user("bob")
    assert api.post("/session.json", {**body, "keys": {"token": plain}}).status == 401
    api.clock.advance(61)
    assert api.get("/session.json", token=fresh).status == 401


def test_accountDeletionRevokes():
    """DELETE /users/<id>.json removes its tokens and names the account as deleted."""
    api = ApiHarness()
    token, userId = api.user("carol")
    other, _ = api.login("carol")
    seen = revocations(api)
    assert api.delete(f"/users/{userId}.json", token=token).status == 200
    assert api.get("/session.json", token=other).status == 401
    assert [(r.deleted, r.condition) for r in seen] == [(True, "not-authorized")]


def test_deletedJWTUserNotRecreatedByItsJWT():
    """A JWT user who deleted his account: that JWT does not make it again before its exp."""
    api = ApiHarness()
    token = jwt("emp-2004")
    userId = api.get("/session.json", token=token).json["session"]["user_id"]
    assert api.delete(f"/users/{userId}.json", token=token).status == 200
    assert api.get("/session.json", token=token).status == 401
    assert result(api.storage.accounts.getAccountByExternalId("emp-2004")) is None


def _run(coroutine):
    return defer.ensureDeferred(coroutine)


def test_loginOnAJWTDoesNotOutliveIt():
    """POST /login.json with a JWT as CB-Token: the token still dies at the JWT's exp."""
    api = ApiHarness()
    api.signup("dave", "dave-pw-1")
    token = jwt("emp-2005", exp=NOW + 60)
    assert api.get("/session.json", token=token).status == 200
    r = api.post("/login.json", {"login": "dave", "password": "dave-pw-1"}, token=token)
    assert r.status == 202, r
    api.clock.advance(61)
    assert api.get("/session.json", token=token).status == 401
