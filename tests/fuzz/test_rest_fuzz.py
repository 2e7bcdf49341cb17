"""
Property-based fuzzing of the REST side-service (reference/connectycube-sdk.md
§4) through C{treq.testing.StubTreq} over the real site, on both storage
backends: malformed and mistyped JSON in every field, huge numbers and
strings, deep nesting, hostile unicode, odd query strings, content types,
form bodies and methods, on every route.

Invariants checked for every request:
- never a 5xx (storage is up, so not even a 503);
- every answer of a JSON route is JSON; every error is C{{"errors": ...}};
- a refused request (4xx) changes nothing in the store;
- the service keeps answering valid requests afterwards.
"""

from __future__ import annotations

import json
import os
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmppchat.api import collections
from tests.api import helpers
from tests.api.helpers import ApiHarness

# Generous REST rate limits: the fuzzer sends thousands of calls at a frozen clock.
PERMISSIVE = {"token_rate_per_minute": 0, "address_rate_per_minute": 0}

# XMPPCHAT_FUZZ_EXAMPLES=1000 XMPPCHAT_FUZZ_RANDOM=1 for a longer, randomised run.
FUZZ = settings(max_examples=int(os.environ.get("XMPPCHAT_FUZZ_EXAMPLES", "100")), deadline=None,
                derandomize=not os.environ.get("XMPPCHAT_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

FIELDS = ["_id", "_parent_id", "admins_ids", "application_id", "attachments", "auth_key", "blob",
          "chat_dialog_id", "chat_dialog_ids", "count", "delivered", "email", "force", "keys",
          "limit", "login", "message", "name", "occupants_ids", "old_password", "password",
          "permissions", "provider", "public", "read", "recipientId", "recipient_id", "send_to_chat",
          "size", "skip", "type", "user", "full_name", "custom_data", "tag_list", "push_all",
          "pull_all", "add", "remove", "enabled", "record", "search_criteria", "extensions",
          "content_type", "privacy_settings", "photo", "description", "pinned_messages_ids",
          "date_sent", "external_user_id", "id", "token", "search_text", "mark_as_read"]

HOSTILE_TEXT = ["\u202eevil\u202c", "a\x00b", "\ud800", "\udfff\ud800", "😀" * 50, "",
                " ", "null", "undefined", "NaN", "-1", "1e308", str(2 ** 63), str(-2 ** 63 - 1),
                "0" * 24, "f" * 24, "1,2,,3", "[]", "{}", "x" * 70000, "\ufeff", "\u0301" * 300,
                "%00", "../../etc/passwd", "<script>", "a" * 256, "1.5", " 1 ", "+1", "٣"]
# Short enough for a request line (Twisted refuses lines over 16 KiB).
QUERY_TEXT = [t for t in HOSTILE_TEXT if len(t) < 1000]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from([2 ** 63, 2 ** 64, -2 ** 63 - 1, 10 ** 400, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308, 5e-324]),
    st.text(max_size=40), st.sampled_from(HOSTILE_TEXT),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                                 inner, max_size=4)), max_leaves=12)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)


def deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


RAW_BODIES = [b"{", b"}", b"[1,", b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
              b"\xff\xfe{}", b'{"a":"\\ud800"}', b'{"user":{"login":"\\udfff"}}', b"null",
              b"1", b'"x"', b"true", b"[" * 100_000, deep(5000), b'{"a":1e999999}',
              b'{"a":' + b"9" * 5000 + b"}", b"\x00", b"{\"a\":1}garbage",
              b'{"a":1,"a":2}', b"\xef\xbb\xbf{}", "{\"é\":\"\u202e\"}".encode(),
              b'{"' + b"k" * 100_000 + b'":1}', b"[]", b"[[]]", b"[{}]"]

QUERIES = ["k[", "k]", "k[op][op]=1", "k[][]=1", "[]=1", "=1", "&&&", "k[gt]=1&k=2&k[]=3",
           "limit=-1", "limit=99999999999999999999", "limit=1e308", "skip=NaN", "skip=-5",
           "sort_desc=;drop", "count=1&count=2", "_id[in]=zz", "_id[in][]=a&_id[in][]=b",
           "id[in][]=1&id[in][]=x", "date_sent[gt]=abc", "date_sent[gt]=1e999",
           "created_at[lt]=-1", "type[in]=2%2C3%2Cz", "x[unknown]=1", "%ff=1", "a=%ff",
           "a=%00", "k%5Bgt%5D=1", "chat_dialog_id=" + "0" * 24, "user_id[ne]=null",
           "a[b][c][d][e][f][g]=1", "page=0", "per_page=-1", "current_page=1e9",
           "&".join(f"p{i}=" for i in range(1500)), "&".join("r=1" for _ in range(500)),
           "token=" + "x" * 5000, "output[include]=a,b", "a[ctn]=%E2%80%AE",
           "updated_at[gt]=2e9&updated_at[lt]=null"]

CONTENT_TYPES = ["application/json", "application/json;charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=xyz", "application/xml", "", "*/*",
                 "application/json; charset=latin-1"]
# (A NUL in a header is refused by Twisted's HTTP parser with a bare 400
# before any resource runs: malformed HTTP, not an API request.)

METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "FOO", "PROPFIND"]


@pytest.fixture(params=helpers.BACKENDS)
def world(request):
    """A harness with two users, a dialog, a message, a record and a blob."""
    helpers.backend = request.param
    try:
        api = ApiHarness(rest=PERMISSIVE)
    finally:
        helpers.backend = "sqlite"
    alice, aliceId = api.user("fuzz-alice", email="a@example.com")
    bob, bobId = api.user("fuzz-bob")
    dialog = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": str(bobId)},
                      token=alice).json
    message = api.post("/chat/Message.json", {"chat_dialog_id": dialog["_id"], "message": "hi"},
                       token=alice).json
    record = api.post("/data/UserReports.json", {"reason": "x"}, token=alice).json
    blob = api.post("/blobs.json", {"blob": {"name": "a.txt", "content_type": "text/plain"}},
                    token=alice).json["blob"]
    upload = (b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--B--\r\n")
    r = api.request("POST", f"/blobs/upload?uid={blob['uid']}", token=alice, raw=upload,
                    contentType="multipart/form-data; boundary=B")
    assert r.status == 201, r
    ids = {"dialogId": dialog["_id"], "dialogIds": dialog["_id"], "messageId": message["_id"],
           "messageIds": message["_id"], "userId": str(aliceId), "blobId": str(blob["id"]),
           "ref": str(blob["id"]), "uid": blob["uid"], "className": "UserReports",
           "recordId": record["_id"], "recordIds": record["_id"], "externalId": "x"}
    api.fuzz = {"alice": alice, "bob": bob, "app": api.appToken(), "ids": ids,
                "routes": routes(api, ids), "bobId": bobId,
                "templated": [r for r in patternRoutes(api, ids)
                              if (r[0], r[3]) in templates(ids, bobId)],
                "templates": templates(ids, bobId)}
    return api


def routes(api, ids):
    """C{(method, path, text)} for every route, with real ids in the placeholders."""
    return [(method, path, text) for method, path, text, _ in patternRoutes(api, ids)]


def patternRoutes(api, ids):
    """C{(method, path, text, pattern)}: L{routes} with the route pattern."""
    out = []
    for path, cls in collections(api.ctx):
        for method, segments, _auth, text, *_ in cls(api.ctx)._routes:
            parts = [ids.get(s[1:-1], "1") if s.startswith("{") else s for s in segments]
            out.append((method, "/" + "/".join([path, *parts]) + ".json", text,
                        "/".join([path, *segments])))
    return out


def fingerprint(api):
    """Everything stored, as one comparable value (both backends)."""
    db = api.storage.db
    if hasattr(db, "connection"):
        return list(db.connection.iterdump())
    # (MongoDB's id counters may advance for a refused signup: ids are never reused.)
    return {name: sorted(map(repr, db.db[name].find({}, {"_id": 0})))
            for name in sorted(db.db.list_collection_names()) if name != "counters"}


def check(api, r, method, path, text=False, before=None):
    """The invariants every answer must keep."""
    # 501 is the documented answer of the password-reset route (no e-mail here).
    assert r.status < 500 or (r.status == 501 and "password/reset" in path), (method, path, r)
    ctype = r.header("content-type") or ""
    assert b"<html" not in r.raw.lower(), (method, path, r)
    if method == "OPTIONS" and r.status == 204:
        return
    if r.status >= 400:
        assert ctype.startswith("application/json"), (method, path, r)
        if method != "HEAD":
            assert isinstance(r.json, dict) and "errors" in r.json, (method, path, r)
        if before is not None:
            assert fingerprint(api) == before, ("stored from a refused request", method, path, r)
    elif not (text and not r.raw) and method != "HEAD" and not path.startswith("/blobs/"):
        assert ctype.startswith("application/json") and r.json is not None, (method, path, r)


def stillServing(api):
    """A valid call still works after the hostile ones."""
    r = api.get("/session.json", token=api.fuzz["alice"])
    assert r.status == 200 and r.json["session"]["user_id"], r
    r = api.get("/chat/Dialog.json", token=api.fuzz["alice"])
    assert r.status == 200 and isinstance(r.json["items"], list), r


def pickToken(api, which):
    return {"alice": api.fuzz["alice"], "bob": api.fuzz["bob"], "app": api.fuzz["app"],
            "none": None, "junk": "x" * 40, "jwtish": "a.b.c"}[which]


tokens = st.sampled_from(["alice", "alice", "alice", "bob", "app", "none", "junk", "jwtish"])


# Calls that end the caller's own session or account: sent with a fresh
# application token so the fixture's users survive the run.
SELF_DESTRUCTIVE = {("DELETE", "session"), ("POST", "login"), ("DELETE", "login"),
                    ("DELETE", "users")}


def send(api, method, path, text, token, **kw):
    if token in (api.fuzz["alice"], api.fuzz["bob"]) and (
            (method, path.split("/")[1].split(".")[0].split("?")[0]) in SELF_DESTRUCTIVE):
        token = api.appToken()
    before = fingerprint(api)
    r = api.request(method, path, token=token, **kw)
    check(api, r, method, path, text, before)
    return r


@FUZZ
@given(data=st.data(), body=bodies, who=tokens)
def test_jsonBodies(world, data, body, who):
    """Mistyped and hostile JSON fields on every route never give a 5xx or a non-JSON error."""
    method, path, text = data.draw(st.sampled_from(world.fuzz["routes"]))
    if path == "/session.json" and method == "POST" and data.draw(st.booleans()):
        body.update({"application_id": 1, "auth_key": "test-key"})
    send(world, method, path, text, pickToken(world, who), raw=json.dumps(body).encode())
    stillServing(world)


@FUZZ
@given(data=st.data(), value=values, who=tokens)
def test_nestedFields(world, data, value, who):
    """Wrong types below C{user}, C{blob}, C{push_all}, C{record}... are refused cleanly."""
    method, path, text = data.draw(st.sampled_from(world.fuzz["routes"]))
    outer = data.draw(st.sampled_from(["user", "blob", "push_all", "pull_all", "record", "keys",
                                       "permissions", "search_criteria", "privacy_settings"]))
    inner = data.draw(st.sampled_from(FIELDS))
    body = {outer: {inner: value}}
    if data.draw(st.booleans()):
        body.update({"application_id": 1, "auth_key": "test-key", "type": 2,
                     "chat_dialog_id": world.fuzz["ids"]["dialogId"], "message": "m"})
    send(world, method, path, text, pickToken(world, who), raw=json.dumps(body).encode())
    stillServing(world)


@FUZZ
@given(data=st.data(), raw=st.sampled_from(RAW_BODIES) | st.binary(max_size=200),
       ctype=st.sampled_from(CONTENT_TYPES), who=tokens)
def test_rawBodies(world, data, raw, ctype, who):
    """Malformed JSON, deep nesting, NaN, lone surrogates and odd content types are 4xx JSON."""
    method, path, text = data.draw(st.sampled_from(world.fuzz["routes"]))
    send(world, method, path, text, pickToken(world, who), raw=raw, contentType=ctype)
    stillServing(world)


@FUZZ
@given(data=st.data(), query=st.sampled_from(QUERIES) | st.text(
    alphabet=string.ascii_letters + "[]=&%,;+ 0123456789é\u202e", max_size=60), who=tokens)
def test_queryStrings(world, data, query, who):
    """Odd query strings (brackets, operators, thousands of parameters) never give a 5xx."""
    method, path, text = data.draw(st.sampled_from(world.fuzz["routes"]))
    send(world, method, path + "?" + query, text, pickToken(world, who))
    stillServing(world)


@FUZZ
@given(data=st.data(), form=st.dictionaries(
    st.sampled_from(FIELDS + ["user[login]", "user[password]", "force[]", "a[b][c]", "k["]),
    st.sampled_from(QUERY_TEXT + ["1", "x"]), max_size=5), who=tokens)
def test_formBodies(world, data, form, who):
    """Form-encoded bodies with nested and hostile keys are handled like JSON ones."""
    method, path, text = data.draw(st.sampled_from(world.fuzz["routes"]))
    raw = "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'), safe='[]')}="
                   f"{quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in form.items())
    send(world, method, path, text, pickToken(world, who), raw=raw.encode("ascii"),
         contentType="application/x-www-form-urlencoded; charset=UTF-8")
    stillServing(world)


@FUZZ
@given(data=st.data(), method=st.sampled_from(METHODS), who=tokens,
       segment=st.sampled_from(["", "x", "%ff", "%00", "..", "a.json", "x" * 3000, "😀",
                                "1,2,3", "," * 50]))
def test_methodsAndPaths(world, data, method, who, segment):
    """Unknown methods and paths are JSON 404/405, never HTML."""
    _, path, _ = data.draw(st.sampled_from(world.fuzz["routes"]))
    if segment:
        path = path[:-5] + "/" + segment + ".json"
    text = any(r == (method if method != "HEAD" else "GET", path, True)
               for r in world.fuzz["routes"])
    send(world, method, path, text, pickToken(world, who))
    stillServing(world)


# Issue 15 findings 3 and 14: list operands up to and beyond [rest] max_filter_values.
MAX_VALUES = 100
LIST_QUERIES = ["/data/UserReports.json?reason", "/data/UserReports.json?tags",
                "/users/v2.json?id", "/users.json?login", "/chat/Dialog.json?occupants_ids",
                "/chat/Dialog.json?name", "/chat/Message.json?chat_dialog_id={dialogId}&sender_id",
                "/chat/Message.json?chat_dialog_id={dialogId}&custom"]
operand = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.sampled_from(QUERY_TEXT),
                    st.text(alphabet=string.ascii_letters + string.digits + "é ._-", max_size=12))


@FUZZ
@given(data=st.data(), op=st.sampled_from(["in", "nin", "all", "or"]),
       count=st.integers(0, 2 * MAX_VALUES) | st.sampled_from([MAX_VALUES, MAX_VALUES + 1, 500, 2000]),
       form=st.sampled_from(["comma", "brackets"]), who=st.sampled_from(["alice", "bob"]))
def test_listOperands(world, data, op, count, form, who):
    """Any operand list, up to and beyond the limit, gives a result or a 4xx, never a 5xx (a list beyond the limit is a 422)."""
    path = data.draw(st.sampled_from(LIST_QUERIES)).format(**world.fuzz["ids"])
    items = data.draw(st.lists(operand, min_size=count, max_size=count)) if count <= 120 else \
        [str(i) for i in range(count)]
    texts = [quote(str(v).encode("utf-8", "surrogatepass"), safe="") for v in items]
    name = path.rpartition("?")[2].rpartition("&")[2]
    if form == "comma":
        query = f"{path}[{op}]=" + "%2C".join(texts)
    else:
        query = f"{path}[{op}][]=" + f"&{name}[{op}][]=".join(texts)
    if len(query) > 12000:  # Twisted's 16 KiB request line limit is not what this tests
        items = [str(i) for i in range(count)]
        query = f"{path}[{op}]=" + "%2C".join(items)
    r = send(world, "GET", query, False, pickToken(world, who))
    # Commas split values and blanks are dropped, so count what the server sees.
    seen = sum(len([p for p in str(v).split(",") if p.strip()]) for v in items)
    if seen > MAX_VALUES and "malformed query string" not in r.raw.decode():  # (> 200 parameters)
        assert r.status == 422 and "max_filter_values" in json.dumps(r.json), (query[:200], r)
    else:
        assert r.status in (200, 400, 422), (query[:200], r)
    stillServing(world)


def test_surrogateInStoredField(world):
    """A lone surrogate in a stored string is refused with 400, not stored, not a 500."""
    before = fingerprint(world)
    dialogId = world.fuzz["ids"]["dialogId"]
    r = world.request("POST", "/chat/Message.json", token=world.fuzz["alice"],
                      raw=b'{"chat_dialog_id":"' + dialogId.encode() + b'","message":"\\ud800"}')
    assert r.status == 400 and "errors" in r.json, r
    assert fingerprint(world) == before
    stillServing(world)


def test_outageIs503(world):
    """A storage outage is the only 5xx: a JSON 503, and service resumes with the store."""
    db = world.storage.db
    name = "connection" if hasattr(db, "connection") else "db"
    saved = getattr(db, name)
    setattr(db, name, None)
    try:
        r = world.get("/chat/Dialog.json", token=world.fuzz["alice"])
    finally:
        setattr(db, name, saved)
    assert r.status == 503, r
    assert r.json == {"errors": {"base": ["Storage unavailable, try again"]}}
    stillServing(world)


def templates(ids, bobId):
    """A valid body (JSON) or query (dict) per route, to mutate one field at a time."""
    d = ids["dialogId"]
    return {
        ("POST", "session"): {"application_id": 1, "auth_key": "test-key",
                              "user": {"login": "fuzz-bob", "password": "password1"}},
        ("POST", "login"): {"login": "fuzz-bob", "password": "password1"},
        ("POST", "users"): {"user": {"login": "fuzz-new", "password": "password1",
                                     "full_name": "N", "tag_list": "a,b", "custom_data": "{}"}},
        ("PUT", "users/{userId}"): {"user": {"full_name": "A", "phone": "1", "website": "w",
                                             "custom_data": "{}", "privacy_settings": {
                                                 "typing_indicators": {"enabled": True}}}},
        ("POST", "chat/Dialog"): {"type": 2, "name": "g", "occupants_ids": str(bobId),
                                  "extensions": {"a": "b"}, "permissions": {"allow_preview": True}},
        ("PUT", "chat/Dialog/{dialogId}"): {"name": "n", "description": "d",
                                            "push_all": {"occupants_ids": [bobId]}},
        ("PUT", "chat/Dialog/{dialogId}/admins"): {"push_all": {"admins_ids": [bobId]}},
        ("PUT", "chat/Dialog/{dialogId}/notifications"): {"enabled": 1},
        ("POST", "chat/Message"): {"chat_dialog_id": d, "message": "m", "send_to_chat": 1,
                                   "attachments": [{"type": "image", "uid": "u"}]},
        ("PUT", "chat/Message"): {"chat_dialog_id": d, "read": 1},
        ("PUT", "chat/Message/{messageIds}"): {"chat_dialog_id": d, "read": 1, "delivered": 1,
                                               "message": "edited"},
        ("PUT", "chat/Message/{messageId}/reactions"): {"add": "👍", "remove": "🔥"},
        ("POST", "chat/Message/system"): {"recipientId": bobId, "k": "v"},
        ("POST", "data/{className}"): {"reason": "r", "permissions": {"read": {"access": "open"}}},
        ("POST", "data/{className}/multi"): {"record": {"1": {"reason": "a"}}},
        ("PUT", "data/{className}/multi"): {"record": {"1": {"_id": ids["recordId"], "reason": "b"}}},
        ("PUT", "data/{className}/{recordId}"): {"reason": "y", "inc": {"n": 1}},
        ("PUT", "data/{className}/by_criteria"): {"search_criteria": {"reason": "x"}, "reason": "z"},
        ("POST", "blobs"): {"blob": {"name": "b.txt", "content_type": "text/plain",
                                     "public": False}},
        ("PUT", "blobs/{blobId}/complete"): {"size": 3},
        ("PUT", "blobs/{blobId}"): {"blob": {"name": "c.txt"}},
        ("GET", "chat/Message"): {"chat_dialog_id": d, "sort_desc": "date_sent", "limit": "10",
                                  "date_sent[gt]": "1", "mark_as_read": "0", "skip": "0"},
        ("GET", "chat/Dialog"): {"type[in]": "2,3", "sort_desc": "last_message_date_sent",
                                 "limit": "5", "skip": "0", "_id": d},
        ("GET", "users/v2"): {"id[in][]": "1", "limit": "10", "offset": "0",
                              "sort_asc": "created_at"},
        ("GET", "users"): {"per_page": "10", "page": "1", "login": "fuzz-alice"},
        ("GET", "users/by_login"): {"login": "fuzz-alice"},
        ("GET", "users/by_email"): {"email": "a@example.com"},
        ("GET", "users/online"): {"count": "true", "limit": "5", "offset": "0"},
        ("GET", "chat/search"): {"search_text": "hi", "chat_dialog_ids": d, "limit": "5",
                                 "start_date": "2023-11-14T22:13:20.000Z"},
        ("GET", "chat/Message/unread"): {"chat_dialog_ids": d},
        ("GET", "data/{className}"): {"reason": "r", "created_at[gt]": "1", "limit": "10",
                                      "sort_desc": "created_at", "output[include]": "reason"},
        ("GET", "data/{className}/{recordIds}"): {"permissions": "1"},
        ("GET", "blobs"): {"current_page": "1", "per_page": "10"},
        ("GET", "chat/Dialog/{dialogId}/occupants"): {"limit": "10", "skip": "0"},
        ("DELETE", "data/{className}/by_criteria"): {"reason": "nothing-like-this"},
    }


def paths(value, prefix=()):
    """Every key path into a template, the whole subtrees included."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(prefix + (k,))
            out.extend(paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append(prefix + (i,))
            out.extend(paths(v, prefix + (i,)))
    return out


def mutated(template, where, value):
    """A deep copy of C{template} with C{value} at the key path C{where}."""
    copy = json.loads(json.dumps(template))
    target = copy
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return copy


def encodeQuery(values) -> str:
    return "&".join(f"{quote(str(k).encode('utf-8', 'surrogatepass'), safe='[]')}="
                    f"{quote(str(v).encode('utf-8', 'surrogatepass'), safe=',')}"
                    for k, v in values.items())


@FUZZ
@given(data=st.data(), value=values)
def test_templateMutations(world, data, value):
    """A valid call with one field (or subtree) replaced by a hostile value never gives a 5xx."""
    method, path, text, pattern = data.draw(st.sampled_from(world.fuzz["templated"]))
    template = world.fuzz["templates"][(method, pattern)]
    where = data.draw(st.sampled_from(paths(template)))
    sendTemplate(world, method, path, text, pattern, mutated(template, where, value))
    stillServing(world)


@FUZZ
@given(data=st.data(), key=st.sampled_from(["[gt]", "[in][]", "[op][op]", "[", "[]", "[ctn]",
                                            "[nin]", "[all]", "[or]", "[lte]", "[ne]"]),
       text=st.sampled_from(QUERY_TEXT + ["1", "a,b", ""]))
def test_templateQueryOperators(world, data, key, text):
    """Operators and hostile values on every filter of every listing never give a 5xx."""
    choices = [r for r in world.fuzz["templated"] if r[0] == "GET"]
    method, path, textRoute, pattern = data.draw(st.sampled_from(choices))
    query = dict(world.fuzz["templates"][(method, pattern)])
    name = data.draw(st.sampled_from(sorted(query)))
    query[name.split("[")[0] + key] = text
    send(world, method, path + "?" + encodeQuery(query), textRoute, world.fuzz["alice"])
    stillServing(world)


def sendTemplate(api, method, path, text, pattern, body):
    """Send C{body} (a template or a mutation of one) the way the SDK would."""
    token = None if pattern == "session" else api.fuzz["alice"]
    if pattern == "login":
        token = api.appToken()
    if method in ("GET", "DELETE"):
        # (values cut to 1000 characters: a request line must stay under 16 KiB)
        query = encodeQuery({k: str(v)[:1000] for k, v in body.items()
                             if not isinstance(v, (dict, list))})
        if method == "GET":
            return send(api, method, path + "?" + query, text, token)
        return send(api, method, path, text, token, raw=query.encode("ascii"),
                    contentType="application/x-www-form-urlencoded; charset=UTF-8")
    return send(api, method, path, text, token, raw=json.dumps(body).encode())


def test_templatesAreValid(world):
    """Every unmutated template succeeds, so the mutations reach the handlers' validation."""
    failed = []
    for method, path, text, pattern in world.fuzz["templated"]:
        r = sendTemplate(world, method, path, text, pattern,
                         world.fuzz["templates"][(method, pattern)])
        if r.status >= 300:
            failed.append((method, pattern, r))
    assert len(world.fuzz["templated"]) == len(world.fuzz["templates"])
    assert not failed, failed


@pytest.mark.parametrize("query", ["id=99999999999999999999", "id[in][]=99999999999999999999"])
def test_hugeIdFilter(world, query):
    """An id filter beyond 64 bits is a 400 naming the field (was a 500 from SQLite)."""
    r = world.get("/users/v2.json?" + query, token=world.fuzz["alice"])
    assert r.status == 400 and "id" in r.json["errors"], r


def test_hugeUserId(world):
    """A user id beyond 64 bits in the path is refused as not an id (was a 500 from SQLite)."""
    r = world.get("/users/99999999999999999999.json", token=world.fuzz["alice"])
    assert 400 <= r.status < 500 and "errors" in r.json, r


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1e999"])
def test_hugeCustomFieldFilter(world, value):
    """Huge numbers in a custom-object filter are compared, never a 5xx."""
    r = world.get(f"/data/UserReports.json?reason[gt]={value}", token=world.fuzz["alice"])
    assert r.status == 200 and isinstance(r.json["items"], list), r


@pytest.mark.parametrize("number", [b"18446744073709551616", b"-9223372036854775809", b"1e400"])
def test_hugeJSONNumbers(world, number):
    """JSON numbers the stores cannot hold (beyond int64, infinite doubles) are a 400, not stored."""
    before = fingerprint(world)
    r = world.request("POST", "/data/UserReports.json", token=world.fuzz["alice"],
                      raw=b'{"reason":"x","n":' + number + b"}")
    assert r.status == 400 and r.json == {"errors": {"base": ["malformed JSON body"]}}, r
    assert fingerprint(world) == before
    assert world.post("/data/UserReports.json", {"reason": "x", "n": 2 ** 63 - 1},
                      token=world.fuzz["alice"]).status == 201


def test_infiniteSearchDate(world):
    """A search date of 1e999 is a 400 naming the field (was a 500)."""
    r = world.get("/chat/search.json?search_text=hi&start_date=1e999", token=world.fuzz["alice"])
    assert r.status == 400 and "start_date" in r.json["errors"], r


def test_malformedMultipart(world):
    """A malformed multipart body is a JSON 400 (Twisted answered a bare, empty 400)."""
    r = world.request("POST", "/blobs/upload?uid=" + world.fuzz["ids"]["uid"],
                      token=world.fuzz["alice"], raw=b"{", contentType="multipart/form-data")
    assert r.status == 400
    assert r.json == {"errors": {"base": ["malformed multipart/form-data body"]}}, r
    stillServing(world)


@pytest.mark.parametrize("key", ["a.b", "$x", "é", "{", "k" * 65])
def test_badFieldNames(world, key):
    """Field names the stores refuse are a 422 naming them, not stored (were 500s); dialog extensions ignore them (tests/api/test_seed.py)."""
    alice, d = world.fuzz["alice"], world.fuzz["ids"]["dialogId"]
    recordId = world.fuzz["ids"]["recordId"]
    before = fingerprint(world)
    calls = [
        ("POST", "/chat/Message.json", {"chat_dialog_id": d, "message": "m", key: 1}, key[:64]),
        ("POST", "/data/UserReports.json", {key: 1}, key[:64]),
        ("POST", "/data/UserReports/multi.json", {"record": {"1": {key: 1}}}, key[:64]),
        ("PUT", f"/data/UserReports/{recordId}.json", {key: 1}, key[:64]),
        ("PUT", f"/data/UserReports/{recordId}.json", {"inc": {key: 1}}, "inc"),
    ]
    for method, path, body, named in calls:
        r = world.request(method, path, body=body, token=alice)
        assert r.status == 422 and named in r.json["errors"], (method, path, r)
    form = world.request("PUT", f"/data/UserReports/{recordId}.json", token=alice, raw=b"{",
                         contentType="application/x-www-form-urlencoded")
    assert form.status == 422, form
    assert fingerprint(world) == before


def test_overlongRequestLine(world):
    """A request line over Twisted's 16 KiB header limit is refused and the service keeps serving."""
    try:
        r = world.get("/users/v2.json?" + "&".join(f"p{i}=1" for i in range(3000)),
                      token=world.fuzz["alice"])
    except Exception:  # the bare 400 and the dropped connection reach treq as a lost response
        pass
    else:
        assert r.status == 400, r
    stillServing(world)
