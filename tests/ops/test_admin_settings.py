"""
Issue 19, the admin API of the Chat settings and Applications pages
(L{xmppchat.ops.admin.settings}): every action in process on both storage
backends (status, body, the change in storage and in the running config,
the audit line), then over HTTP on a live server: a change survives a
config reload and SIGHUP, and a rotated key is what the REST API takes.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from twisted.internet import defer, task

from tests.helpers import makeConfig
from tests.storage.test_contract import BACKENDS, openBackend, result
from xmppchat.ops.adminapi import ApiError
from xmppchat.ops.admin import settings as feature
from xmppchat.runsettings import PREFIX, RunSettings
from xmppchat.storage.interfaces import DIALOG_GROUP, TokenRecord

APP = {"application_id": 3, "auth_key": "file-auth-key-1234", "jwt_secret": "file-jwt-secret-5678"}


class FakeAPI:
    """
    What the feature module uses of L{xmppchat.ops.adminapi.AdminAPI}:
    routes, the service's settings, storage, config, the cluster gather
    and the audit (recorded).
    """

    def __init__(self, storage, config):
        self.storage = storage
        self.config = config
        self.service = SimpleNamespace(settings=RunSettings(config, storage))
        self.routes = {}
        self.audits = []
        self.gathered = []
        self.agent = SimpleNamespace(gather=self._gather, clock=task.Clock())
        feature.install(self)

    async def _gather(self, kind, args):
        self.gathered.append(kind)
        return [(None, [])], ["node-b"]

    def route(self, method, pattern, handler):
        self.routes[(method, pattern)] = handler

    def audit(self, request, action, **details):
        self.audits.append((action, details))

    def call(self, method, pattern, *segments, body=None):
        """C{(status, body)} of one handler call, an L{ApiError} as its status and text."""
        d = defer.ensureDeferred(self.routes[(method, pattern)](SimpleNamespace(), body or {}, *segments))
        try:
            out = result(d)
        except ApiError as e:
            return e.status, {"error": e.text}
        return out if isinstance(out, tuple) else (200, out)


@pytest.fixture(params=BACKENDS)
def api(request):
    storage = openBackend(request.param)
    result(storage.start())
    config = makeConfig(rest={"apps": [dict(APP)]}, dialogs={"extension_fields": ["topic"]})
    result(storage.dialogs.configureExtensions(config.dialogs.extension_fields))
    yield FakeAPI(storage, config)
    result(storage.stop())


def stored(api):
    return result(api.storage.settings.getSettings(PREFIX))


def test_listShowsConfigAndPanelValues(api):
    """GET settings: each key with its config value, its panel value (none yet) and the value in force."""
    status, body = api.call("GET", "settings")
    assert status == 200
    byKey = {s["key"]: s for s in body["settings"]}
    assert list(byKey) == ["dialogs.extension_fields", "privacy.last_seen_default",
                           "muc.room_default_members_only", "muc.room_default_public",
                           "muc.room_default_persistent", "muc.room_default_moderated"]
    assert byKey["dialogs.extension_fields"] == {
        "key": "dialogs.extension_fields", "title": "Dialog extension fields",
        "help": byKey["dialogs.extension_fields"]["help"], "type": "fields", "max": 3,
        "config": ["topic"], "panel": None, "value": ["topic"]}
    assert byKey["privacy.last_seen_default"]["options"] == ["everyone", "contacts", "nobody"]
    assert byKey["muc.room_default_public"]["type"] == "bool"


def test_addAndRemoveExtensionField(api):
    """Adding a field stores and applies it; removing it strips it from every dialog (other fields kept)."""
    status, body = api.call("PUT", "settings/*", "dialogs.extension_fields",
                            body={"value": ["topic", "color"]})
    assert status == 200 and body["value"] == ["topic", "color"] and body["panel"] == ["topic", "color"]
    assert body["config"] == ["topic"] and body["unreachable"] == ["node-b"] and body["stripped"] == 0
    assert api.config.dialogs.extension_fields == ["topic", "color"]
    assert stored(api) == {PREFIX + "dialogs.extension_fields": ["topic", "color"]}
    assert api.gathered == ["settings"]
    assert api.audits == [("setting-changed", {"key": "dialogs.extension_fields",
                                               "value": '["topic", "color"]', "stripped": 0})]
    ids = [result(api.storage.dialogs.createDialog(DIALOG_GROUP, 1, name=str(i), extensions={
        "topic": "t", "color": "red"})).id for i in range(2)]
    status, body = api.call("PUT", "settings/*", "dialogs.extension_fields", body={"value": ["topic"]})
    assert status == 200 and body["stripped"] == 2
    assert [result(api.storage.dialogs.getDialog(i)).extensions for i in ids] == [{"topic": "t"}] * 2
    assert api.audits[-1] == ("setting-changed", {"key": "dialogs.extension_fields", "value": '["topic"]',
                                                  "stripped": 2})


@pytest.mark.parametrize("key, value, text", [
    ("dialogs.extension_fields", ["a", "b", "c", "d"], "at most 3 fields"),
    ("dialogs.extension_fields", ["limit"], "a dialog field, a list parameter"),
    ("dialogs.extension_fields", ["x y"], "invalid extension field name"),
    ("dialogs.extension_fields", "color", "expected list"),
    ("privacy.last_seen_default", "friends", "must be one of"),
    ("muc.room_default_public", "yes", "expected bool"),
])
def test_badValueRefused(api, key, value, text):
    """A value the config file would refuse is 400 with the config's own text; nothing stored, no audit."""
    status, body = api.call("PUT", "settings/*", key, body={"value": value})
    assert status == 400 and text in body["error"]
    assert stored(api) == {} and api.audits == [] and api.config.dialogs.extension_fields == ["topic"]


def test_unknownKeysAndBodies(api):
    """Unknown keys and an application's secret are 404 for PUT; a body without value is 400."""
    assert api.call("PUT", "settings/*", "muc.max_rooms", body={"value": 1})[0] == 404
    status, body = api.call("PUT", "settings/*", "rest.apps.3.auth_key", body={"value": "mine-1234"})
    assert status == 404 and "rotate" in body["error"]
    assert api.call("PUT", "settings/*", "privacy.last_seen_default", body={"val": "x"})[0] == 400
    assert api.call("DELETE", "settings/*", "nope")[0] == 404
    assert stored(api) == {} and api.audits == []


def test_privacyAndRoomDefaults(api):
    """The last-seen default and a room default apply to the running config."""
    assert api.call("PUT", "settings/*", "privacy.last_seen_default", body={"value": "nobody"})[0] == 200
    assert api.call("PUT", "settings/*", "muc.room_default_persistent", body={"value": False})[0] == 200
    assert api.config.privacy.last_seen_default == "nobody" and api.config.muc.room_default_persistent is False
    assert set(stored(api)) == {PREFIX + "privacy.last_seen_default", PREFIX + "muc.room_default_persistent"}


def test_revertToTheConfigValue(api):
    """DELETE settings/<key>: the config's value again, the stored one gone; a second time is 404."""
    api.call("PUT", "settings/*", "privacy.last_seen_default", body={"value": "everyone"})
    status, body = api.call("DELETE", "settings/*", "privacy.last_seen_default")
    assert status == 200 and body["value"] == "contacts" and body["panel"] is None
    assert api.config.privacy.last_seen_default == "contacts" and stored(api) == {}
    assert api.audits[-1] == ("setting-reverted", {"key": "privacy.last_seen_default", "stripped": 0})
    assert api.call("DELETE", "settings/*", "privacy.last_seen_default")[0] == 404


def test_appsListMasksTheKey(api):
    """GET apps: the id, the auth key masked but its last 4 characters, whether a JWT secret is set."""
    status, body = api.call("GET", "apps")
    assert status == 200
    assert body == {"apps": [{"application_id": 3, "auth_key": "\u2022\u2022\u2022\u20221234",
                              "auth_key_rotated": False, "jwt_secret_set": True,
                              "jwt_secret_rotated": False}]}
    assert "file-auth" not in json.dumps(body)


def test_rotateAuthKey(api):
    """The new key is made here, returned once, in force and stored; the audit names no secret."""
    status, body = api.call("POST", "apps/*/rotate", "3", body={"what": "auth_key"})
    assert status == 200
    new = body["value"]
    assert len(new) >= 40 and new != APP["auth_key"] and body["auth_key"] == "\u2022" * 4 + new[-4:]
    assert body["auth_key_rotated"] is True and body["revoked_tokens"] == 0
    assert api.config.rest.apps[0]["auth_key"] == new
    assert stored(api) == {PREFIX + "rest.apps.3.auth_key": new}
    assert api.audits == [("app-secret-rotated", {"app": 3, "what": "auth_key", "revoked_tokens": 0})]
    assert new not in repr(api.audits)
    again = api.call("POST", "apps/*/rotate", "3", body={"what": "auth_key"})[1]["value"]
    assert again != new and api.config.rest.apps[0]["auth_key"] == again
    assert api.call("GET", "apps")[1]["apps"][0]["auth_key"].endswith(again[-4:])
    # back to the file's key
    assert api.call("DELETE", "settings/*", "rest.apps.3.auth_key")[0] == 200
    assert api.config.rest.apps[0]["auth_key"] == APP["auth_key"]


def test_rotateJWTSecretRevokesJWTSessions(api):
    """A new JWT secret deletes the tokens of JWT-made accounts, not the others'."""
    storage = api.storage
    jwtUser = result(storage.accounts.createAccount("{id}-3", None, externalId="ext", jwt=True))
    other = result(storage.accounts.createAccount("alice", None))
    for name, account in (("j", jwtUser), ("a", other)):
        result(storage.tokens.addToken(TokenRecord(name, account.id, 3, 0.0, time.time() + 600)))
    status, body = api.call("POST", "apps/*/rotate", "3", body={"what": "jwt_secret"})
    assert status == 200 and body["revoked_tokens"] == 1
    assert api.config.rest.apps[0]["jwt_secret"] == body["value"]
    assert result(storage.tokens.getToken("j")) is None and result(storage.tokens.getToken("a")) is not None


def test_rotateJWTSecretPurgesAfterTheSpreadAndAgain(api):
    """Review 19 A1: the tokens are deleted after the other nodes have the new secret (a token stored
    by a login there before they had it goes too), and once more GATHER_SECONDS later (a login under
    the old secret still in flight)."""
    from xmppchat.ops.adminapi import GATHER_SECONDS

    storage = api.storage
    jwtUser = result(storage.accounts.createAccount("{id}-3", None, externalId="ext", jwt=True))

    def token(name):
        result(storage.tokens.addToken(TokenRecord(name, jwtUser.id, 3, 0.0, time.time() + 600)))

    async def gather(kind, args):
        token("minted-before-the-spread")
        return [(None, [])], []

    api.agent.gather = gather
    status, body = api.call("POST", "apps/*/rotate", "3", body={"what": "jwt_secret"})
    assert status == 200 and body["revoked_tokens"] == 1
    assert result(storage.tokens.getToken("minted-before-the-spread")) is None
    token("in-flight")
    api.agent.clock.advance(GATHER_SECONDS)
    assert result(storage.tokens.getToken("in-flight")) is None


def test_revertJWTSecretPurges(api):
    """Review 19 A7: back to the file's JWT secret, the tokens minted under the rotated one go too."""
    storage = api.storage
    jwtUser = result(storage.accounts.createAccount("{id}-3", None, externalId="ext", jwt=True))
    assert api.call("POST", "apps/*/rotate", "3", body={"what": "jwt_secret"})[0] == 200
    result(storage.tokens.addToken(TokenRecord("rotated", jwtUser.id, 3, 0.0, time.time() + 600)))
    status, body = api.call("DELETE", "settings/*", "rest.apps.3.jwt_secret")
    assert status == 200 and body["revoked_tokens"] == 1
    assert result(storage.tokens.getToken("rotated")) is None
    assert api.config.rest.apps[0]["jwt_secret"] == APP["jwt_secret"]
    assert api.audits[-1] == ("setting-reverted", {"key": "rest.apps.3.jwt_secret", "stripped": 0,
                                                   "revoked_tokens": 1})


def test_rotateRefusals(api):
    """Unknown application 404, unknown secret 400, a JWT secret the file does not set 409."""
    assert api.call("POST", "apps/*/rotate", "9", body={"what": "auth_key"})[0] == 404
    assert api.call("POST", "apps/*/rotate", "3", body={"what": "password"})[0] == 400
    del api.config.rest.apps[0]["jwt_secret"]
    api.service.settings.base["rest.apps.3.jwt_secret"] = None
    status, body = api.call("POST", "apps/*/rotate", "3", body={"what": "jwt_secret"})
    assert status == 409 and "JWT login is off" in body["error"]
    assert stored(api) == {} and api.audits == []


def test_failedStripIsAuditedSpreadAndRetried(api, monkeypatch):
    """Review 19 A4: when removing a field from the dialogs fails after the value is stored, the change
    is audited and spread, the answer is 503, and the same PUT again strips the dialogs."""
    from xmppchat.storage.interfaces import StorageError

    api.call("PUT", "settings/*", "dialogs.extension_fields", body={"value": ["topic", "color"]})
    dialog = result(api.storage.dialogs.createDialog(DIALOG_GROUP, 1, name="d", extensions={
        "topic": "t", "color": "red"}))
    real = api.storage.dialogs.configureExtensions

    def broken(*args):
        raise StorageError("disk full")

    monkeypatch.setattr(api.storage.dialogs, "configureExtensions", broken)
    api.gathered.clear()
    status, body = api.call("PUT", "settings/*", "dialogs.extension_fields", body={"value": ["topic"]})
    assert status == 503 and "stored and in force" in body["error"] and "disk full" in body["error"]
    assert api.config.dialogs.extension_fields == ["topic"]
    assert stored(api) == {PREFIX + "dialogs.extension_fields": ["topic"]}
    assert api.audits[-1] == ("setting-changed", {"key": "dialogs.extension_fields", "value": '["topic"]',
                                                  "stripped": "failed"})
    assert api.gathered == ["settings"]
    monkeypatch.setattr(api.storage.dialogs, "configureExtensions", real)
    status, body = api.call("PUT", "settings/*", "dialogs.extension_fields", body={"value": ["topic"]})
    assert status == 200 and body["stripped"] == 1
    assert result(api.storage.dialogs.getDialog(dialog.id)).extensions == {"topic": "t"}


def test_failedSpreadIsUnreachable(api):
    """Review 19 A4: a gather that fails (the bus) leaves the change in force and audited, the cluster
    reported unreachable rather than a 500."""
    async def failing(kind, args):
        raise ConnectionError("bus down")

    api.agent.gather = failing
    status, body = api.call("PUT", "settings/*", "privacy.last_seen_default", body={"value": "nobody"})
    assert status == 200 and body["unreachable"] == ["cluster (bus down)"]
    assert api.audits == [("setting-changed", {"key": "privacy.last_seen_default", "value": '"nobody"',
                                               "stripped": 0})]


# -- over HTTP, on a live server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.browser.conftest import panelServer
    from tests.e2e.conftest import stopServer

    running = panelServer(tmp_path_factory, extra='\n[dialogs]\nextension_fields = ["topic"]\n')
    yield running
    stopServer(running.server)


def sighup(server, expect="SIGHUP: "):
    """SIGHUP, then wait for one more log line containing C{expect}."""
    import signal

    count = server.log().count(expect)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while server.log().count(expect) <= count:
        assert server.process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_liveChangesSurviveReloadAndSIGHUP(live):
    """A panel value and a rotated key hold after POST reload and after SIGHUP (the file is re-read)."""
    from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY
    from tests.e2e.test_rest import call

    server = live.server
    status, body = live.api("PUT", "settings/dialogs.extension_fields", {"value": ["topic", "color"]})
    assert status == 200 and body["value"] == ["topic", "color"], body
    status, body = live.api("POST", "apps/1/rotate", {"what": "auth_key"})
    assert status == 200, body
    new = body["value"]

    def keys():
        old = call(server, "POST", "/session.json", {"application_id": REST_APP_ID, "auth_key": REST_AUTH_KEY})
        fresh = call(server, "POST", "/session.json", {"application_id": REST_APP_ID, "auth_key": new})
        fields = {s["key"]: s for s in live.api("GET", "settings")[1]["settings"]}["dialogs.extension_fields"]
        return old[0], fresh[0], fields["value"], fields["config"]

    assert keys() == (422, 201, ["topic", "color"], ["topic"])
    status, body = live.api("POST", "reload", {})
    assert status == 200 and "error" not in body["nodes"]["local"], body
    assert keys() == (422, 201, ["topic", "color"], ["topic"])
    sighup(server)
    assert keys() == (422, 201, ["topic", "color"], ["topic"])
    assert "[rest] apps changed" not in server.log()  # the reload saw the panel's key, not a change
    log = server.log()
    assert "Admin admin-key: app-secret-rotated app=1 what=auth_key" in log
    assert "Admin admin-key: setting-changed key=dialogs.extension_fields" in log
    assert new not in log


def test_liveRotationAndIssuedSessions(live):
    """After an auth key rotation, sessions issued before stay valid; after a JWT secret rotation, the
    JWTs signed with the old secret are refused, one already used included, and the new secret's work."""
    from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY, REST_JWT_SECRET
    from tests.e2e.test_rest import call
    from xmppchat.api.sessions import encodeJWT

    server = live.server
    live.api("DELETE", "settings/rest.apps.1.auth_key")  # the file's key, whatever ran before
    status, body = call(server, "POST", "/session.json", {"application_id": REST_APP_ID,
                                                          "auth_key": REST_AUTH_KEY})
    assert status == 201, body
    issued = body["session"]["token"]
    assert live.api("POST", "apps/1/rotate", {"what": "auth_key"})[0] == 200
    assert call(server, "GET", "/session.json", token=issued)[0] == 200

    def jwt(secret, user="ext-rotate"):
        return encodeJWT({"user_id": user, "exp": int(time.time()) + 600}, secret)

    used = jwt(REST_JWT_SECRET)
    assert call(server, "GET", "/session.json", token=used)[0] == 200
    status, body = live.api("POST", "apps/1/rotate", {"what": "jwt_secret"})
    assert status == 200 and body["revoked_tokens"] >= 1, body
    assert call(server, "GET", "/session.json", token=used)[0] == 401
    assert call(server, "GET", "/session.json", token=jwt(REST_JWT_SECRET, "ext-other"))[0] == 401
    assert call(server, "GET", "/session.json", token=jwt(body["value"]))[0] == 200
    assert body["value"] not in server.log()
