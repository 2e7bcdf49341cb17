"""
Tests for L{xmppchat.api.users}: signup, lookups, lists with filters,
updates (own user only, privacy settings, password change) and deletion.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness
from tests.helpers import result


@pytest.fixture
def api():
    return ApiHarness()


def test_signup(api):
    """Signup with an app session creates the user with localpart <id>-<appId>."""
    user = api.signup("alice", full_name="Alice A", tag_list="a, b", custom_data='{"x":1}')
    assert user["login"] == "alice" and user["full_name"] == "Alice A"
    assert user["user_tags"] == "a,b" and user["custom_data"] == '{"x":1}'
    assert isinstance(user["id"], int)
    account = result(api.storage.accounts.getAccount(user["id"]))
    assert account.localpart == f"{user['id']}-1"
    assert account.credentials is not None and "password1" not in str(account.credentials)


def test_signupWithAuthKey(api):
    """Signup without a session but with CB-AuthKey uses that key's application."""
    r = api.post("/users.json", {"user": {"login": "bob", "password": "password1"}},
                 headers={"CB-AuthKey": "test-key"})
    assert r.status == 201
    account = result(api.storage.accounts.getAccount(r.json["user"]["id"]))
    assert account.localpart.endswith("-1")


def test_signupNeedsAppOrKey(api):
    """Signup with neither a session nor a known CB-AuthKey is 401."""
    r = api.post("/users.json", {"user": {"login": "bob", "password": "password1"}})
    assert r.status == 401
    r = api.post("/users.json", {"user": {"login": "bob", "password": "password1"}},
                 headers={"CB-AuthKey": "wrong"})
    assert r.status == 401


def test_signupValidation(api):
    """Wrong types, bad logins, short passwords and unknown fields are 422 naming the field."""
    token = api.appToken()
    cases = [
        ({"login": "al", "password": "password1"}, "login"),
        ({"login": "alice", "password": "short"}, "password"),
        ({"login": "alice", "password": 12345678}, "password"),
        ({"password": "password1"}, "login"),
        ({"email": "not-an-email", "password": "password1"}, "email"),
        ({"login": "alice", "password": "password1", "full_name": ["x"]}, "full_name"),
        ({"login": "alice", "password": "password1", "shoe_size": 44}, "shoe_size"),
        ({"login": "alice", "password": "password1", "tag_list": [1, 2]}, "tag_list"),
    ]
    for user, name in cases:
        r = api.post("/users.json", {"user": user}, token=token)
        assert r.status == 422, (user, r)
        assert name in r.json["errors"], (user, r)
    r = api.post("/users.json", {"user": "alice"}, token=token)
    assert r.status == 400


def test_customDataLimit(api):
    """custom_data over 5 KB is a 422 with a clear message."""
    token = api.appToken()
    r = api.post("/users.json", {"user": {"login": "alice", "password": "password1",
                                          "custom_data": "x" * 5121}}, token=token)
    assert r.status == 422
    assert "5120 bytes" in r.json["errors"]["custom_data"][0]


def test_signupDuplicate(api):
    """A taken login or e-mail is a 422 'has already been taken'."""
    api.signup("alice", email="a@example.com")
    token = api.appToken()
    r = api.post("/users.json", {"user": {"login": "alice", "password": "password1"}}, token=token)
    assert r.status == 422 and r.json["errors"]["login"] == ["has already been taken"]
    r = api.post("/users.json", {"user": {"login": "alice2", "email": "A@example.com",
                                          "password": "password1"}}, token=token)
    assert r.status == 422 and "email" in r.json["errors"]


def test_getUser(api):
    """GET /users/<id>.json shows a user; another user's e-mail is hidden."""
    alice = api.signup("alice", email="a@example.com")
    token, _ = api.user("bob")
    r = api.get(f"/users/{alice['id']}.json", token=token)
    assert r.status == 200 and r.json["user"]["login"] == "alice"
    assert r.json["user"]["email"] is None and "privacy_settings" not in r.json["user"]
    assert api.get("/users/999.json", token=token).status == 404
    assert api.get("/users/abc.json", token=token).status == 404


def test_finders(api):
    """by_login, by_email and external lookups find the user."""
    alice = api.signup("alice", email="a@example.com")
    token = api.appToken()
    assert api.get("/users/by_login.json?login=alice", token=token).json["user"]["id"] == alice["id"]
    assert api.get("/users/by_email.json?email=a%40example.com", token=token).json["user"]["id"] == alice["id"]
    assert api.get("/users/by_login.json?login=nobody", token=token).status == 404
    assert api.get("/users/by_login.json", token=token).status == 400


def test_listV2Filters(api):
    """/users/v2.json filters by id[in][] and login, with limit/offset and totals."""
    ids = [api.signup(name)["id"] for name in ("alice", "bob", "carol")]
    token = api.appToken()
    r = api.get(f"/users/v2.json?id[in][]={ids[0]}&id[in][]={ids[2]}&limit=10&offset=0", token=token)
    assert r.status == 200
    assert [u["id"] for u in r.json["items"]] == [ids[0], ids[2]]
    assert r.json["total_entries"] == 2
    r = api.get("/users/v2.json?login=bob", token=token)
    assert [u["login"] for u in r.json["items"]] == ["bob"]
    r = api.get("/users/v2.json?limit=2&offset=1&sort_desc=id", token=token)
    assert [u["id"] for u in r.json["items"]] == [ids[1], ids[0]]
    assert r.json["total_entries"] == 3
    r = api.get("/users/v2.json?full_name[ctn]=x&id[bogus]=1", token=token)
    assert r.status == 400


def test_listV1(api):
    """/users.json pages with page/per_page and wraps each item as {user}."""
    for name in ("alice", "bob", "carol"):
        api.signup(name)
    token = api.appToken()
    r = api.get("/users.json?page=2&per_page=2", token=token)
    assert r.json["current_page"] == 2 and r.json["total_entries"] == 3
    assert [i["user"]["login"] for i in r.json["items"]] == ["carol"]


def test_updateOwn(api):
    """PUT /users/<own id>.json changes the profile and privacy settings."""
    token, uid = api.user("alice")
    r = api.put(f"/users/{uid}.json", {"user": {"full_name": "Alice", "phone": "123",
                                                "privacy_settings": {"typing_indicators": {"enabled": False}}}},
                token=token)
    assert r.status == 200, r
    assert r.json["user"]["full_name"] == "Alice"
    assert r.json["user"]["privacy_settings"] == {"typing_indicators": {"enabled": False},
                                                  "read_receipts": {"enabled": True},
                                                  "last_seen": {"visibility": "contacts"}}
    account = result(api.storage.accounts.getAccount(uid))
    assert account.profile["privacy_settings"]["typing_indicators"] == {"enabled": False}
    assert account.profile["privacy_settings"]["read_receipts"] == {"enabled": True}


def test_privacyDefaults(api):
    """A new user's switches are both enabled and his last seen is the server default."""
    token, uid = api.user("alice")
    r = api.get(f"/users/{uid}.json", token=token)
    assert r.json["user"]["privacy_settings"] == {"typing_indicators": {"enabled": True},
                                                  "read_receipts": {"enabled": True},
                                                  "last_seen": {"visibility": "contacts"}}


def test_privacyValidation(api):
    """Unknown privacy keys and non-boolean values are 422."""
    token, uid = api.user("alice")
    for value in ({"location": {"enabled": True}}, {"read_receipts": True},
                  {"read_receipts": {"enabled": "yes"}}, "off"):
        r = api.put(f"/users/{uid}.json", {"user": {"privacy_settings": value}}, token=token)
        assert r.status == 422, value


def test_updateOtherUserRefused(api):
    """Changing another user is 403."""
    alice = api.signup("alice")
    token, _ = api.user("bob")
    r = api.put(f"/users/{alice['id']}.json", {"user": {"full_name": "pwned"}}, token=token)
    assert r.status == 403
    assert r.json["errors"]["base"] == ["You can only change your own user"]


def test_passwordChange(api):
    """A password change needs the right old_password; the new one then works."""
    token, uid = api.user("alice")
    r = api.put(f"/users/{uid}.json", {"user": {"password": "newpassword"}}, token=token)
    assert r.status == 422 and "old_password" in r.json["errors"]
    r = api.put(f"/users/{uid}.json", {"user": {"password": "newpassword", "old_password": "wrongwrong"}},
                token=token)
    assert r.status == 422
    r = api.put(f"/users/{uid}.json", {"user": {"password": "newpassword", "old_password": "password1"}},
                token=token)
    assert r.status == 200
    api.login("alice", "newpassword")
    # the existing token still works as XMPP SCRAM password (same salt)
    from xmppchat.auth.source import StorageCredentialSource
    account = result(api.storage.accounts.getAccount(uid))
    source = StorageCredentialSource(api.storage, api.clock)
    assert len(result(source.getScramCandidates(account.localpart, "sha1"))) >= 2


def test_updateLoginTaken(api):
    """Taking another user's login is 422."""
    api.signup("alice")
    token, uid = api.user("bob")
    r = api.put(f"/users/{uid}.json", {"user": {"login": "alice"}}, token=token)
    assert r.status == 422 and r.json["errors"]["login"] == ["has already been taken"]


def test_deleteOwn(api):
    """DELETE /users/<own id>.json removes the account and its tokens."""
    token, uid = api.user("alice")
    other = api.signup("bob")
    assert api.delete(f"/users/{other['id']}.json", token=token).status == 403
    r = api.delete(f"/users/{uid}.json", token=token)
    assert r.status == 200 and r.raw == b""
    assert result(api.storage.accounts.getAccount(uid)) is None
    assert api.get("/session.json", token=token).status == 401


def test_privacyStoredAtSignup(api):
    """New accounts carry privacy_settings in their profile, both enabled."""
    user = api.signup("alice")
    account = result(api.storage.accounts.getAccount(user["id"]))
    assert account.profile["privacy_settings"] == {"typing_indicators": {"enabled": True},
                                                   "read_receipts": {"enabled": True}}


def test_signupExternalId():
    """Without JWT logins, external_user_id is kept and limited to a-z 0-9 @ _ -."""
    api = ApiHarness(rest={"apps": [{"application_id": 1, "auth_key": "test-key"}]})
    token = api.appToken()
    r = api.post("/users.json", {"user": {"login": "alice", "password": "password1",
                                          "external_user_id": "ext_1"}}, token=token)
    assert r.status == 201 and r.json["user"]["external_user_id"] == "ext_1"
    r = api.post("/users.json", {"user": {"login": "bob", "password": "password1",
                                          "external_user_id": "Bad Id"}}, token=token)
    assert r.status == 422 and "external_user_id" in r.json["errors"]


def test_online(api):
    """/users/online.json lists users available over XMPP (sent presence), and counts them."""
    from types import SimpleNamespace

    from xmppchat.sessions import SessionRegistry
    alice = api.signup("alice")
    bob = api.signup("bob")
    token, _ = api.user("carol")
    registry = SessionRegistry()
    for user, available in ((alice, True), (alice, False), (bob, False)):
        account = result(api.storage.accounts.getAccount(user["id"]))
        registry.add(SimpleNamespace(bare=f"{account.localpart}@localhost", resource=f"r{available}",
                                     account=account, available=available))
    assert api.get("/users/online.json", token=token).json == {"users": []}
    api.ctx.online = registry
    r = api.get("/users/online.json?limit=10&offset=0", token=token)
    assert [u["id"] for u in r.json["users"]] == [alice["id"]]
    assert api.get("/users/online.json?count=true", token=token).json == {"count": 1}


def test_onlineNeedsAUser(api):
    """With only the public auth key's application session, nobody's online state is listed (issue 15 finding 9)."""
    r = api.get("/users/online.json", token=api.appToken())
    assert r.status == 403 and "user session" in r.json["errors"]["base"][0]
    assert api.get("/users/online.json?count=true", token=api.appToken()).status == 403
    assert api.get("/users/online.json").status == 401


def test_resetPasswordUnavailable(api):
    """Password reset answers a clear JSON 501 (no e-mail delivery)."""
    r = api.post("/users/password/reset.json", {"email": "a@example.com"})
    assert r.status == 501 and "administrator" in r.json["errors"]["base"][0]
