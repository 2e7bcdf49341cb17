"""
Tests for L{xmppchat.api.json}: parameter parsing, bodies, the error
envelope, size limits, CORS and routing.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xmppchat.api.json import INT_MAX, ApiError, Filter, idList, intOf, parseQueryString, toInt
from tests.api.helpers import ApiHarness


@pytest.fixture
def api():
    return ApiHarness(rest={"cors_origins": ["https://app.example.com"], "max_body_bytes": 4096})


def test_nestedOperators():
    """C{k[op]=v} becomes a filter with the operator; plain keys are equality."""
    params = parseQueryString(b"date_sent[gt]=1700000000&type=2&limit=5")
    assert params.filters(reserved={"limit"}) == [
        Filter("date_sent", "gt", "1700000000"), Filter("type", "eq", "2")]


def test_listForms():
    """C{k[]=a&k[]=b}, C{k[in][]=..}, comma lists and C{", "} lists are equivalent."""
    for raw in (b"id[in][]=101&id[in][]=202", b"id[in]=101%2C202", b"id[in]=101%2C%20202",
                b"id[in]=101,202"):
        assert parseQueryString(raw).filters() == [Filter("id", "in", ["101", "202"])], raw
    assert parseQueryString(b"id[]=1&id[]=2").filters() == [Filter("id", "in", ["1", "2"])]


def test_encodedBrackets():
    """Brackets percent-encoded by the app (C{updated_at%5Bgt%5D}) parse the same."""
    assert parseQueryString(b"updated_at%5Bgt%5D=17").filters() == [Filter("updated_at", "gt", "17")]


def test_unknownOperator():
    """An unknown operator is a 400 naming the field."""
    with pytest.raises(ApiError) as e:
        parseQueryString(b"name[regex]=x").filters()
    assert e.value.status == 400 and "name" in e.value.errors


def test_tooManyParameters():
    """More than 200 parameters are refused."""
    with pytest.raises(ApiError) as e:
        parseQueryString(b"&".join(b"k%d=1" % i for i in range(300)))
    assert e.value.status == 400


def test_badUTF8Query():
    """A query string that is not UTF-8 is a 400."""
    with pytest.raises(ApiError):
        parseQueryString(b"a=%ff%fe")


def test_idList():
    """Ids come as lists, comma strings with or without spaces, or one number."""
    assert idList("202, 303", "occupants_ids") == [202, 303]
    assert idList([1, "2", 2], "x") == [1, 2]
    assert idList(7, "x") == [7]
    with pytest.raises(ApiError):
        idList("a,b", "x")
    with pytest.raises(ApiError):
        idList({"a": 1}, "x")


@pytest.mark.parametrize("value", ["²", "١٢", "--5", "9" * 30, str(INT_MAX + 1), 10**30, True, 1.5, ""])
def test_intOfRefusesWhatTheStoresCannotHold(value):
    """Review 19 B1: other scripts' digits, a number beyond 64 bits: no int (toInt: 422, not 500)."""
    assert intOf(value) is None
    with pytest.raises(ApiError) as e:
        toInt(value, "admins_ids")
    assert e.value.status == 422 and "admins_ids" in e.value.errors


def test_intOf():
    assert [intOf(v) for v in (" 42 ", "-7", 5, str(INT_MAX))] == [42, -7, 5, INT_MAX]


def test_unknownPath(api):
    """Unknown paths are a JSON 404, at the root and below /chat."""
    for path in ("/nothing.json", "/chat/Nothing.json", "/", "/users/1/x/y/z.json"):
        r = api.get(path)
        assert r.status == 404, path
        assert r.json == {"errors": {"base": ["Not found"]}}, path
        assert r.header("content-type").startswith("application/json")


def test_wrongMethod(api):
    """A known path with another method is a JSON 405 with Allow."""
    r = api.request("PATCH", "/session.json")
    assert r.status == 405 and "errors" in r.json
    assert "POST" in r.header("allow")


def test_malformedJSON(api):
    """A body that is not JSON is a 400 with the envelope, not a traceback."""
    for raw in (b"{nope", b"\xff\xfe", b"[1, NaN]", b'"just a string"', b"[" * 2000 + b"]" * 2000):
        r = api.request("POST", "/session.json", raw=raw)
        assert r.status == 400, raw[:10]
        assert "errors" in r.json


def test_bodyTooLarge(api):
    """A body over max_body_bytes is a 413 with the envelope."""
    r = api.post("/session.json", {"application_id": 1, "auth_key": "x" * 5000})
    assert r.status == 413
    assert "too large" in r.json["errors"]["base"][0]


def test_bodyOverHardLimitNotBuffered(api):
    """Beyond the site's hard limit the request stops buffering and still gets 413."""
    api.stub._agent._serverFactory.maxRequestBytes = 1000
    r = api.request("POST", "/session.json", raw=b"{" + b" " * 5000 + b"}")
    assert r.status == 413


def test_missingToken(api):
    """A call needing a session without CB-Token is the SDK's session-expired 401."""
    r = api.get("/users/1.json")
    assert r.status == 401
    assert r.json == {"errors": {"base": ["Required session does not exist"]}}


def test_unknownToken(api):
    """An unknown token is the same 401."""
    r = api.get("/users/1.json", token="0" * 40)
    assert r.status == 401
    assert r.json["errors"]["base"] == ["Required session does not exist"]


def test_corsPreflight(api):
    """A preflight from an allowed origin gets the SDK's headers allowed."""
    r = api.request("OPTIONS", "/chat/Dialog.json", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "cb-token,cb-sdk,content-type"})
    assert r.status == 204
    assert r.header("access-control-allow-origin") == "https://app.example.com"
    allowed = r.header("access-control-allow-headers").lower()
    for name in ("cb-token", "cb-sdk", "cb-authkey", "content-type"):
        assert name in allowed


def test_corsOtherOrigin(api):
    """Another origin gets no CORS headers."""
    r = api.request("OPTIONS", "/session.json", headers={"Origin": "https://evil.example"})
    assert r.header("access-control-allow-origin") is None


def test_corsOnErrors(api):
    """Error responses carry CORS headers too, so browsers can read them."""
    r = api.get("/users/1.json", headers={"Origin": "https://app.example.com"})
    assert r.status == 401
    assert r.header("access-control-allow-origin") == "https://app.example.com"


def test_internalErrorIsJSON(api, monkeypatch):
    """An unexpected exception in a handler is a JSON 500, never an HTML traceback."""
    def boom(*a, **kw):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(api.ctx.sessions, "createAppSession", boom)
    r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key"})
    assert r.status == 500
    assert r.json == {"errors": {"base": ["Internal server error"]}}
    assert b"kaboom" not in r.raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_queryParserNeverCrashes(raw):
    """Arbitrary query strings parse, or fail only with a 400 ApiError; filters likewise."""
    try:
        params = parseQueryString(raw)
        params.filters()
    except ApiError as e:
        assert e.status == 400


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="ab[]_", max_size=8), st.text(max_size=5)), max_size=20))
def test_nestedKeysNeverCrash(pairs):
    """Any mix of bracketed keys builds a Params without exceptions."""
    from xmppchat.api.json import parseParams
    try:
        parseParams(pairs).filters()
    except ApiError as e:
        assert e.status == 400


@pytest.mark.parametrize("failure", ["storage", "handler"])
def test_failureLogOmitsQueryString(api, monkeypatch, failure):
    """
    Security review (minor): a failed request is logged with its path, not
    its query string, which may hold a session token (?token=).
    """
    from twisted.logger import formatEvent, globalLogPublisher

    from xmppchat.storage.interfaces import StorageError

    def failing(uid):
        raise StorageError("down") if failure == "storage" else RuntimeError("bug")

    monkeypatch.setattr(api.storage.blobs, "getBlobByUid", failing)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        r = api.get("/blobs/" + "0" * 32 + "?token=SECRET-SESSION-TOKEN")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert r.status in (500, 503)
    logged = "\n".join(formatEvent(e) for e in events)
    assert "/blobs/" + "0" * 32 in logged and "SECRET-SESSION-TOKEN" not in logged
