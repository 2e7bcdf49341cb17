"""
Issue 15 findings 3, 10 and 14 at the REST layer, on both storage backends:
list queries are bounded before they reach storage ([rest] max_filters,
max_filter_values, max_filter_value_length: 422 naming the limit), a query
cut by [storage] query_timeout_ms is a 503 with Retry-After and no
traceback, and users cannot be filtered or sorted on fields the caller may
not see (the hidden e-mail oracle).
"""

from __future__ import annotations

import contextlib

import mongomock
import pytest
from pymongo.errors import ExecutionTimeout
from twisted.logger import LogLevel, globalLogPublisher

from tests.api.helpers import ApiHarness
from tests.helpers import result
from xmppchat.api.users import QUERYABLE, userJSON


@contextlib.contextmanager
def loggedErrors():
    """The critical/error events logged meanwhile (each a traceback in the server log)."""
    events = []

    def observer(event):
        if event.get("log_level") in (LogLevel.critical, LogLevel.error):
            events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(observer)


def values(n, start=0):
    return ",".join(str(start + i) for i in range(n))


def listPaths(api, token):
    """A list query of every collection, to append one filter to."""
    dialog = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": "1"},
                      token=token).json
    return ["/data/UserReports.json?f", "/users/v2.json?id", "/users.json?id",
            "/chat/Dialog.json?occupants_ids",
            f"/chat/Message.json?chat_dialog_id={dialog['_id']}&sender_id"]


def test_inFilterWith500ValuesIs422():
    """Finding 14: an [in] with 500 values is a readable 422 naming the limit (was a fake 503 and a CRITICAL traceback)."""
    api = ApiHarness()
    token, _ = api.user("mallory")
    api.post("/data/UserReports.json", {"f": [1, 2, 3]}, token=token)
    with loggedErrors() as errors:
        for path in listPaths(api, token):
            r = api.get(f"{path}[in]={values(500)}", token=token)
            assert r.status == 422, (path, r)
            message = " ".join(m for ms in r.json["errors"].values() for m in ms)
            assert "at most 100" in message and "max_filter_values" in message, (path, r)
    assert errors == []


def test_withinTheLimitsAnswered():
    """100 values, 20 filters and 1024-character values are answered (the defaults are limits, not less)."""
    api = ApiHarness()
    token, _ = api.user("alice")
    api.post("/data/UserReports.json", {"f": [5, 7], "g": "x"}, token=token)
    r = api.get(f"/data/UserReports.json?f[in]={values(100)}", token=token)
    assert r.status == 200 and r.json["total_entries"] == 1, r
    r = api.get("/data/UserReports.json?" + "&".join(f"k{i}[ne]=1" for i in range(20)), token=token)
    assert r.status == 200 and r.json["total_entries"] == 1, r
    r = api.get("/data/UserReports.json?g[ctn]=" + "x" * 1024, token=token)
    assert r.status == 200 and r.json["total_entries"] == 0, r


def test_filterCountAndLengthBounded():
    """More than max_filters conditions, or a value longer than max_filter_value_length, is a 422."""
    api = ApiHarness()
    token, _ = api.user("mallory")
    r = api.get("/data/UserReports.json?" + "&".join(f"k{i}[ne]=1" for i in range(21)), token=token)
    assert r.status == 422 and "max_filters" in r.json["errors"]["base"][0], r
    r = api.get("/data/UserReports.json?g[ctn]=" + "x" * 1025, token=token)
    assert r.status == 422 and "max_filter_value_length" in r.json["errors"]["g"][0], r
    r = api.put("/data/UserReports/by_criteria.json",
                {"search_criteria": {"f": {"in": list(range(101))}}, "x": 1}, token=token)
    assert r.status == 422 and "max_filter_values" in r.json["errors"]["f"][0], r


def test_valuesCountedOverAllFilters():
    """The value budget is per query: two lists of 60 values exceed 100."""
    api = ApiHarness()
    token, _ = api.user("mallory")
    r = api.get(f"/data/UserReports.json?f[in]={values(60)}&g[nin]={values(60)}", token=token)
    assert r.status == 422 and "g" in r.json["errors"], r


def test_limitsConfigurable():
    """[rest] max_filter_values and max_filters are what the REST layer enforces."""
    api = ApiHarness(rest={"max_filter_values": 3, "max_filters": 2})
    token, _ = api.user("alice")
    assert api.get(f"/users/v2.json?id[in]={values(3, 1)}", token=token).status == 200
    r = api.get(f"/users/v2.json?id[in]={values(4, 1)}", token=token)
    assert r.status == 422 and "at most 3" in r.json["errors"]["id"][0], r
    assert api.get("/users/v2.json?id=1&login=x&full_name=y", token=token).status == 422


def heavyRecords(api, token, count=20):
    """Records whose list field makes [all] scan thousands of elements per value."""
    for _ in range(count):
        r = api.post("/data/UserReports.json", {"f": [0] * 3000 + list(range(1, 101))}, token=token)
        assert r.status == 201, r


def test_queryTimeoutIs503WithRetryAfter(apiBackend, monkeypatch):
    """Finding 3: a query cut by the time limit is a 503 with Retry-After and a readable text, logged without a traceback."""
    api = ApiHarness()
    token, _ = api.user("mallory")
    if apiBackend == "sqlite":
        heavyRecords(api, token)
        api.storage.db.queryTimeoutMs = 1  # the progress handler cuts it
    else:
        seen = []

        def expired(cursor, ms):
            # What the server answers once maxTimeMS has passed (mongomock ignores it).
            if ms is None:  # mongomock's own find()
                return cursor
            seen.append(ms)
            raise ExecutionTimeout("operation exceeded time limit", 50)

        monkeypatch.setattr(mongomock.collection.Cursor, "max_time_ms", expired)
    with loggedErrors() as errors:
        r = api.get(f"/data/UserReports.json?f[all]={values(100, 1)}", token=token)
    assert r.status == 503, r
    assert r.header("retry-after") == "2"
    assert "ran longer than" in r.json["errors"]["base"][0], r
    assert errors == []
    if apiBackend == "mongomock":
        assert seen == [2000]


def test_emailOracleRefused():
    """Finding 10: range filters on a hidden e-mail answer nothing a binary search can use."""
    api = ApiHarness()
    victimId = api.signup("victim", email="zed.secret@example.com")["id"]
    token, _ = api.user("mallory")
    answers = set()

    def probe(path, low):
        r = api.get(f"{path}?id={victimId}&email[gte]={low}", token=token)
        answers.add((r.status, r.raw))
        return r.status == 200 and r.json["total_entries"] == 1

    for path in ("/users.json", "/users/v2.json"):
        # The attack: binary search, character by character, for the largest prefix <= address.
        learned = ""
        for _ in range(8):
            alphabet = sorted("abcdefghijklmnopqrstuvwxyz.@")
            lo, hi = 0, len(alphabet) - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if probe(path, learned + alphabet[mid]):
                    lo = mid
                else:
                    hi = mid - 1
            learned += alphabet[lo]
        assert not "zed.secret@example.com".startswith(learned), learned
    assert len(answers) == 1 and all(status == 422 for status, _ in answers), answers
    for query in ("sort_asc=email", "sort_desc=email", "email=zed.secret@example.com",
                  "localpart[start_with]=1", "privacy_settings[ne]=1"):
        r = api.get(f"/users/v2.json?{query}", token=token)
        assert r.status == 422, (query, r)


def test_queryableFieldsAreVisibleToEveryone():
    """Every field users can be filtered or sorted on is shown to other users exactly as to its owner."""
    api = ApiHarness()
    api.signup("victim", email="v@example.com", phone="123", full_name="V", tag_list="a,b",
               custom_data="{}", website="w")
    token, viewerId = api.user("viewer")
    account = result(api.storage.accounts.getAccountByLogin("victim"))
    own, other = userJSON(api.ctx, account), userJSON(api.ctx, account, viewerId)
    assert QUERYABLE <= set(other)
    assert all(own[name] == other[name] for name in QUERYABLE)
    assert own["email"] != other["email"]
    assert api.get("/users/v2.json?full_name=V&sort_asc=login", token=token).json["total_entries"] == 1


@pytest.mark.parametrize("query", ["login[in]=alpha,zulu", "user_tags[all]=a,b", "phone=123"])
def test_visibleFieldFiltersStillWork(query):
    """Filters on visible fields keep working."""
    api = ApiHarness()
    api.signup("alpha", phone="123", tag_list="a,b")
    token, _ = api.user("bravo")
    r = api.get(f"/users/v2.json?{query}", token=token)
    assert r.status == 200 and r.json["total_entries"] >= 1, r
