"""
Issue 18 reload, the C{rest} part (L{xmppchat.api.reload}): the safe
C{[rest]} keys reach the running REST site at once (rate limits with
their buckets kept, CORS, body and page limits, filter limits, token
lifetime, data classes); listener, apps and C{max_app_sessions} wait for
a restart.  The live test is tests/e2e/test_restreload.py.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

from twisted.logger import globalLogPublisher

from tests.api.helpers import ApiHarness
from tests.helpers import makeConfig
from xmppchat.api.ratelimit import RateLimiter
from xmppchat.api.reload import RELOADED, RESTART, reloadRest
from xmppchat.api.site import requestLimit
from xmppchat.config import RestConfig

OFF = {"token_rate_per_minute": 0, "address_rate_per_minute": 0}
ORIGIN = "https://app.example.com"


def reload(api, **rest):
    """
    C{reloadRest} of the harness's config with C{rest} changed, as the
    service does; the fresh config.
    """
    values = {f.name: getattr(api.config.rest, f.name) for f in fields(RestConfig)}
    fresh = makeConfig(rest={**values, **rest})
    assert reloadRest(SimpleNamespace(config=api.config, restAPI=api.site), fresh) is True
    return fresh


def newSession(api):
    return api.post("/session.json", {"application_id": 1, "auth_key": "test-key"})


def test_everyKeyDecided():
    """Each [rest] key is either reloaded or kept until a restart: a new key must be decided."""
    names = {f.name for f in fields(RestConfig)}
    assert set(RELOADED) | set(RESTART) == names
    assert not set(RELOADED) & set(RESTART)


def test_raisedAddressLimitLiftsThe429():
    """A client at its address limit gets through once the burst is raised, without a restart."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 1, "address_burst": 2})
    assert [newSession(api).status for _ in range(3)] == [201, 201, 429]
    reload(api, address_rate_per_minute=600, address_burst=10)
    assert [newSession(api).status for _ in range(8)] == [201] * 8


def test_bucketsKeptAcrossReload():
    """A reload with the same limits does not hand a limited client a fresh burst; a lowered burst caps."""
    api = ApiHarness(rest={**OFF, "address_rate_per_minute": 1, "address_burst": 2})
    assert [newSession(api).status for _ in range(3)] == [201, 201, 429]
    reload(api)
    assert newSession(api).status == 429
    limiter = api.ctx.rateLimits.addresses
    limiter._buckets["192.0.2.9"] = bucket = type(next(iter(limiter._buckets.values())))(2, 0)
    reload(api, address_burst=1)
    assert bucket.tokens == 1.0


def test_rateLimiterConfigure():
    """RateLimiter.configure: raised burst adds its difference, rate 0 forgets, fewer keys trims."""
    clock = SimpleNamespace(seconds=lambda: 100.0)
    limiter = RateLimiter(clock, 60, 2, 10)
    for key in "abc":
        limiter.take(key)
    limiter.configure(60, 5, 2)
    assert list(limiter._buckets) == ["b", "c"]
    assert limiter._buckets["c"].tokens == 4.0
    limiter.configure(0, 5, 2)
    assert not limiter.enabled and len(limiter) == 0


def test_corsOriginsFollowReload():
    """A preflight from a newly allowed origin gets Access-Control-Allow-Origin after the reload."""
    api = ApiHarness(rest=OFF)
    r = api.request("OPTIONS", "/users.json", headers={"Origin": ORIGIN})
    assert r.header("access-control-allow-origin") is None
    reload(api, cors_origins=[ORIGIN])
    r = api.request("OPTIONS", "/users.json", headers={"Origin": ORIGIN})
    assert (r.status, r.header("access-control-allow-origin")) == (204, ORIGIN)


def test_queryLimitsAndClassesFollowReload():
    """max_filters, data_classes and max_body_bytes apply to the next requests."""
    api = ApiHarness(rest=OFF)
    token, _ = api.user("mallory")
    query = "/data/UserReports.json?a[ne]=1&b[ne]=1"
    assert api.get(query, token=token).status == 200
    reload(api, max_filters=1, data_classes=["UserReports", "Tickets"], max_body_bytes=1000)
    r = api.get(query, token=token)
    assert r.status == 422 and "max_filters" in r.json["errors"]["base"][0], r
    assert api.get("/data/Tickets.json", token=token).status == 200
    r = api.post("/data/Tickets.json", {"note": "x" * 2000}, token=token)
    assert r.status == 413, r
    reload(api, data_classes=["Tickets"])
    assert api.get("/data/UserReports.json", token=token).status == 404


def test_tokenSecondsForNewTokens():
    """token_seconds applies to tokens issued after the reload; issued ones keep their expiry."""
    api = ApiHarness(rest=OFF)
    before = api.ctx.sessions.createAppSession(1)
    reload(api, token_seconds=60)
    after = api.ctx.sessions.createAppSession(1)
    now = api.clock.seconds()
    assert (before.expiresAt, after.expiresAt) == (now + 7200, now + 60)


def test_requestLimitFollowsBlobLimit():
    """The site's buffered-request bound follows blob_max_bytes."""
    api = ApiHarness(rest=OFF)
    fresh = reload(api, blob_max_bytes=50 * 1024 * 1024)
    assert api.site.maxRequestBytes == requestLimit(fresh) >= 50 * 1024 * 1024


def test_restartKeysKeptAndNamed():
    """Listener, apps and max_app_sessions keep their running values; the warning names the keys, not the secrets."""
    api = ApiHarness(rest=OFF)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        reload(api, port=1234, max_app_sessions=3,
               apps=[{"application_id": 1, "auth_key": "new-secret-key", "jwt_secret": "j" * 32}])
    finally:
        globalLogPublisher.removeObserver(events.append)
    rest = api.config.rest
    assert (rest.port, rest.max_app_sessions, rest.apps[0]["auth_key"]) == (0, 10000, "test-key")
    warned = [e for e in events if e.get("log_namespace") == "xmppchat.api.reload"]
    assert [e["keys"] for e in warned] == ["port, max_app_sessions, apps"]
    assert "new-secret-key" not in repr(warned)
    assert newSession(api).status == 201
