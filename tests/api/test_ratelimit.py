"""
Tests for L{xmppchat.api.ratelimit}: REST request rate limits per session
token and per client address (token buckets, 429 with C{Retry-After},
RFC 6585 §4), and the failed-login throttle of REST password logins
(C{[limits] failed_logins_*}).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from xmppchat.api.ratelimit import RateLimiter
from xmppchat.config import ConfigError, buildConfig
from tests.api.helpers import ApiHarness
from tests.helpers import result

OFF = {"token_rate_per_minute": 0, "address_rate_per_minute": 0}


def newSession(api):
    return api.post("/session.json", {"application_id": 1, "auth_key": "test-key"})


def assert429(r, seconds, what):
    assert r.status == 429, r
    assert r.header("retry-after") == str(seconds), r.headers
    assert r.header("content-type").startswith("application/json")
    assert r.json == {"errors": {"base": [f"Too many {what}, retry in {seconds} s"]}}, r


def test_addressBurst():
    """Calls without a token get C{address_burst} at once, then 429 until the bucket refills."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 60, "address_burst": 3})
    for _ in range(3):
        assert newSession(api).status == 201
    assert429(newSession(api), 1, "requests from this address")
    api.clock.advance(1)
    assert newSession(api).status == 201
    assert newSession(api).status == 429


def test_retryAfterFollowsRate():
    """C{Retry-After} is the wait for the next token: 10 s at 6 requests per minute."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 6, "address_burst": 1})
    assert newSession(api).status == 201
    assert429(newSession(api), 10, "requests from this address")
    api.clock.advance(4)
    assert429(newSession(api), 6, "requests from this address")
    api.clock.advance(6)
    assert newSession(api).status == 201


def test_tokenBurst():
    """A valid token gets its own bucket: C{token_burst} calls, then 429; other tokens are unaffected."""
    api = ApiHarness(rest={**OFF, "token_rate_per_minute": 60, "token_burst": 5})
    token, other = api.appToken(), api.appToken()
    # The first call proves the token (charged to the address), then 5 from its bucket.
    for _ in range(6):
        assert api.get("/session.json", token=token).status == 200
    assert429(api.get("/session.json", token=token), 1, "requests for this session")
    assert api.get("/session.json", token=other).status == 200
    api.clock.advance(2)
    assert api.get("/session.json", token=token).status == 200


def test_unknownTokensChargeTheAddress():
    """Made-up tokens do not get fresh buckets: they are charged to the address (401, then 429)."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 60, "address_burst": 3,
                           "token_rate_per_minute": 60, "token_burst": 100})
    for i in range(3):
        assert api.get("/session.json", token=f"made-up-{i}").status == 401
    assert429(api.get("/session.json", token="made-up-x"), 1, "requests from this address")
    assert len(api.ctx.rateLimits.tokens) == 0


def test_refusedCallStoresNothing():
    """A signup refused with 429 creates no account."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 60, "address_burst": 1})
    body = {"user": {"login": "limited", "password": "password1"}}
    assert api.post("/users.json", body, headers={"CB-AuthKey": "test-key"}).status == 201
    body = {"user": {"login": "limited2", "password": "password1"}}
    assert api.post("/users.json", body, headers={"CB-AuthKey": "test-key"}).status == 429
    from twisted.internet import defer

    from xmppchat.api.users import findAccount
    found = defer.ensureDeferred(findAccount(api.storage, "login", "limited2"))
    assert result(found) is None
    assert result(defer.ensureDeferred(findAccount(api.storage, "login", "limited"))) is not None


def test_disabled():
    """A rate of 0 turns the limit off."""
    api = ApiHarness(rest={**OFF, "address_burst": 1, "token_burst": 1})
    token = api.appToken()
    for _ in range(150):
        assert api.get("/session.json", token=token).status == 200
        assert api.get("/session.json").status == 401
    assert len(api.ctx.rateLimits.tokens) == 0 and len(api.ctx.rateLimits.addresses) == 0


def test_defaultsAllowNormalUse():
    """With the default limits an SDK-like burst of calls goes through."""
    api = ApiHarness()
    token, _ = api.user("normal-use")
    for _ in range(150):
        assert api.get("/chat/Dialog.json", token=token).status == 200


def test_trackedKeysBounded():
    """At most C{rate_limit_keys} buckets are kept; the least recently used go first."""
    from twisted.internet.task import Clock

    limiter = RateLimiter(Clock(), 60, 1, 10)
    for i in range(1000):
        assert limiter.take(f"k{i}") == 0
    assert len(limiter) == 10
    assert limiter.take("k999") > 0
    assert limiter.take("k0") == 0  # forgotten: a full bucket again


def test_config():
    """Negative rates and empty bursts are configuration errors."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"rest": {"token_rate_per_minute": -1, "address_burst": 0,
                              "rate_limit_keys": 0}})
    text = "\n".join(e.value.problems)
    for key in ("rest.token_rate_per_minute", "rest.address_burst", "rest.rate_limit_keys"):
        assert key in text


# -- failed logins ([limits] failed_logins_*) -----------------------------------


def login(api, password, name="locked"):
    return api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                      "user": {"login": name, "password": password}})


def test_failedLoginsLockOut():
    """Wrong passwords are 401 until the lockout, then 429 with Retry-After, even for the right one."""
    api = ApiHarness(rest=OFF, limits={"failed_logins_lockout": 3,
                                       "failed_logins_lockout_seconds": 60})
    api.signup("locked")
    for _ in range(3):
        r = login(api, "wrong-password")
        assert r.status == 401 and r.json == {"errors": {"base": ["Unauthorized"]}}, r
    assert429(login(api, "password1"), 60, "failed logins")
    api.clock.advance(45)
    assert429(login(api, "password1"), 15, "failed logins")
    api.clock.advance(16)
    assert login(api, "password1").status == 201


def test_failedLoginsOnLoginJson():
    """POST /login.json shares the throttle: 401, then 429."""
    api = ApiHarness(rest=OFF, limits={"failed_logins_lockout": 2,
                                       "failed_logins_lockout_seconds": 30})
    api.signup("locked")
    token = api.appToken()
    body = {"login": "locked", "password": "nope-nope"}
    assert api.post("/login.json", body, token=token).status == 401
    assert api.post("/login.json", body, token=token).status == 401
    r = api.post("/login.json", {"login": "locked", "password": "password1"}, token=token)
    assert429(r, 30, "failed logins")


def test_unknownLoginsCountPerAddress():
    """Guessing logins that do not exist locks out the address too (failed_logins_per_source)."""
    api = ApiHarness(rest=OFF, limits={"failed_logins_per_source": 3,
                                       "failed_logins_lockout_seconds": 60})
    api.signup("locked")
    for i in range(3):
        assert login(api, "password1", name=f"ghost{i}").status == 401
    assert login(api, "password1").status == 429


def test_realServer(tmp_path):
    """A real HTTP client on loopback gets 429, Retry-After and a JSON error from a running service."""
    config = tmp_path / "rest.toml"
    config.write_text(f"""
[server]
domain = "localhost"
data_dir = "{tmp_path / 'data'}"

[storage]
backend = "sqlite"
path = "{tmp_path / 'db.sqlite3'}"

[rest]
enabled = true
interface = "127.0.0.1"
port = 0
address_rate_per_minute = 6
address_burst = 2

[[rest.apps]]
application_id = 1
auth_key = "real-key"
""")
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    process = subprocess.Popen([sys.executable, "-m", "xmppchat.api", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        line = process.stdout.readline().decode()
        assert "listening on" in line, (line, process.stderr.read1(4096) if process.poll() else "")
        url = f"http://{line.split()[-1]}/session.json"
        body = json.dumps({"application_id": 1, "auth_key": "real-key"}).encode()

        def post():
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, dict(response.headers), json.loads(response.read())
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), json.loads(e.read())

        assert post()[0] == 201 and post()[0] == 201
        status, headers, answer = post()
        assert status == 429, (status, answer)
        assert 1 <= int(headers["Retry-After"]) <= 10
        assert answer["errors"]["base"][0].startswith("Too many requests from this address")
    finally:
        process.terminate()
        process.wait(timeout=15)
