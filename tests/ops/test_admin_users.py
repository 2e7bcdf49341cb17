"""
Issue 19, the admin panel's Users page: its admin API
(xmppchat.ops.admin.users and the user routes of xmppchat.ops.adminapi)
in process, through L{AdminAPI.render} with the bearer key, on both
storage backends; every change leaves an C{admin-action} audit event.
The same API over HTTP on a live server with a slixmpp client:
L{test_liveServerKickAndView}.
"""

from __future__ import annotations

import asyncio
import json
from io import BytesIO
from urllib.parse import parse_qs, quote, unquote

import pytest
from twisted.internet import defer, threads
from twisted.internet.address import IPv4Address
from twisted.web.test.requesthelper import DummyRequest

from tests.helpers import makeConfig
from tests.storage.test_contract import CREDS, backend, clock, result, storage  # noqa: F401 (fixtures)
from xmppchat import observe
from xmppchat.auth.credentials import Credentials, verifyPlain
from xmppchat.ops.adminapi import KICK_TEXT, MAX_REASON, AdminAPI
from xmppchat.ops.logs import describe
from xmppchat.service import XMPPChatService
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, QueryTimeout

KEY = "users-admin-key-0123456789abcdefghijklmnop"


@pytest.fixture
def audit():
    """The admin-action events, as the log writes them."""
    lines = []

    def observer(name, fields):
        if name == "admin-action":
            lines.append(describe(name, fields))

    observe.addObserver(observer)
    yield lines
    observe.removeObserver(observer)


@pytest.fixture
def api(storage, clock, monkeypatch, tmp_path):  # noqa: F811
    """An L{AdminAPI} of a service on the contract suite's C{storage}; password hashing inline."""
    monkeypatch.setattr("xmppchat.service.openStorage", lambda config, reactor: storage)
    monkeypatch.setattr(threads, "deferToThread",
                        lambda f, *args, **kwargs: defer.maybeDeferred(f, *args, **kwargs))
    return AdminAPI(XMPPChatService(makeConfig(server={"data_dir": str(tmp_path)}), clock), KEY)


def call(api, method, path, body=None):
    """C{(status, decoded JSON)} of one request to /admin/api/<path> with the admin key."""
    path, _, query = path.partition("?")
    # as twisted.web splits and unquotes a request's path
    request = DummyRequest([unquote(p).encode() for p in path.split("/")])
    request.client = IPv4Address("TCP", "127.0.0.1", 40000)
    request.method = method.encode()
    request.isSecure = lambda: False
    request.args = {k.encode(): [v.encode() for v in vs] for k, vs in parse_qs(query).items()}
    request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {KEY}".encode()])
    request.content = BytesIO(json.dumps(body).encode() if body is not None else b"")
    api.render(request)
    assert request.finished, "the request did not finish"
    api.lastRequest = request
    return request.responseCode or 200, json.loads(b"".join(request.written))


def add(storage, localpart, **kwargs):  # noqa: F811
    return result(storage.accounts.createAccount(localpart, CREDS, **kwargs))


def people(storage):  # noqa: F811
    return [add(storage, "alice", login="al1ce", email="alice@example.org",
                profile={"full_name": "Alice Liddell", "custom_data": '{"team":"red"}'}),
            add(storage, "bob", email="bob@example.net", profile={"full_name": "Bob Stone"}),
            add(storage, "carol", login="caro", profile={"full_name": "Carol Liddell"})]


def names(answer):
    return [u["name"] for u in answer["users"]]


def test_searchByEachFieldOrIdPaged(api, storage):  # noqa: F811
    """q matches localpart (any case), login, e-mail, full name or the exact id; total and pages."""
    alice, bob, carol = people(storage)
    status, everyone = call(api, "GET", "users")
    assert status == 200 and names(everyone) == ["alice", "bob", "carol"]
    assert (everyone["total"], everyone["skip"], everyone["limit"]) == (3, 0, 20)
    assert everyone["users"][0] == {"id": alice.id, "name": "alice", "jid": "alice@localhost",
                                    "login": "al1ce", "email": "alice@example.org",
                                    "full_name": "Alice Liddell", "created": everyone["users"][0]["created"]}
    for q, expected in [("Liddell", ["alice", "carol"]), ("BO", ["bob"]), ("caro", ["carol"]),
                        ("example.net", ["bob"]), ("l1c", ["alice"]), (str(bob.id), ["bob"]),
                        ("nobody", [])]:
        status, found = call(api, "GET", f"users?q={quote(q)}")
        assert (status, names(found), found["total"]) == (200, expected, len(expected)), q
    status, page = call(api, "GET", "users?q=Liddell&skip=1&limit=1")
    assert (names(page), page["total"]) == (["carol"], 2)


@pytest.mark.parametrize("q", ["²", "9" * 30, "-" + "9" * 19])
def test_searchNumbersNoIdCanBe(api, storage, q):  # noqa: F811
    """Review 19 B1: "²" (isdigit, not int) or a number beyond 64 bits finds nothing, not a 500."""
    people(storage)
    status, found = call(api, "GET", f"users?q={quote(q)}")
    assert (status, names(found)) == (200, []), found


def test_queryTimeoutIs503WithRetryAfter(api, storage, monkeypatch):  # noqa: F811
    """Review 19 B6: a search cut by [storage] query_timeout_ms is 503 with Retry-After, as in REST."""
    monkeypatch.setattr(storage.accounts, "findAccounts",
                        lambda query: defer.fail(QueryTimeout("Query took longer than 100 ms")))
    status, body = call(api, "GET", "users?q=a")
    assert (status, api.lastRequest.responseHeaders.getRawHeaders(b"retry-after")) == (503, [b"2"]), body
    assert "try again later" in body["error"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "skip=-1", "skip=x", "q=" + "a" * 257,
                                   "q=a%00b"])
def test_searchBounds(api, query):
    """limit 1..100, skip >= 0 and a q of at most 256 characters without NUL (review 19 B8), else 400."""
    status, body = call(api, "GET", f"users?{query}")
    assert status == 400 and body["error"]


def test_userView(api, storage, clock):  # noqa: F811
    """The view: profile with custom data, last activity, sessions of every node, lockout, dialogs."""
    alice, bob, carol = people(storage)
    result(storage.lastActivity.setLastActivity("alice", clock.seconds() - 60, "gone fishing"))
    team = result(storage.dialogs.createDialog(DIALOG_GROUP, alice.id, [bob.id, carol.id], name="Team"))
    clock.advance(5)
    pair = result(storage.dialogs.createDialog(DIALOG_PRIVATE, bob.id, [alice.id]))
    result(storage.dialogs.createDialog(DIALOG_GROUP, bob.id, [carol.id], name="Not hers"))
    throttle = api.host.loginThrottle
    for _ in range(throttle.lockoutFailures):
        throttle.recordFailure("203.0.113.9", "alice")
    here = {"jid": "alice@localhost/phone", "transport": "c2s", "node": None}
    there = {"jid": "alice@localhost/web", "transport": "websocket", "node": "n2"}
    asked = []

    async def gather(kind, args):
        asked.append((kind, args))
        return [(None, [here]), ("n2", [there])], ["n3"]

    api.agent.gather = gather
    status, view = call(api, "GET", "users/alice")
    assert status == 200
    assert asked == [("sessions", {"user": "alice@localhost"})]
    assert (view["id"], view["jid"], view["login"], view["email"]) == (
        alice.id, "alice@localhost", "al1ce", "alice@example.org")
    assert view["profile"] == {"full_name": "Alice Liddell", "custom_data": '{"team":"red"}'}
    assert view["last_activity"]["status"] == "gone fishing" and view["last_activity"]["at"].endswith("Z")
    assert (view["sessions"], view["unreachable"]) == ([here, there], ["n3"])
    lockout = view["lockout"]
    assert lockout["locked"] and lockout["failures"] == throttle.lockoutFailures
    assert [s["address"] for s in lockout["sources"]] == ["203.0.113.9"] and lockout["until"].endswith("Z")
    assert [(d["id"], d["type"], d["name"], d["occupants"]) for d in view["dialogs"]] == [
        (pair.id, DIALOG_PRIVATE, None, 2), (team.id, DIALOG_GROUP, "Team", 3)]
    assert view["dialogs_total"] == 2
    # by bare JID too; nobody else's state leaks into bob's
    status, bobs = call(api, "GET", "users/bob@localhost")
    assert status == 200 and not bobs["lockout"]["locked"] and bobs["last_activity"] is None
    assert bobs["dialogs_total"] == 3


@pytest.mark.parametrize("path, status", [("users/nobody", 404), ("users/a%20b", 400),
                                          ("users/x@elsewhere", 400)])
def test_userViewErrors(api, path, status):
    assert call(api, "GET", path)[0] == status


def test_kickEndsTheUsersSessionsEverywhere(api, storage, audit):  # noqa: F811
    """POST users/<NAME>/kick asks every node to end the bare JID's sessions; audited; 404 without one."""
    people(storage)
    asked = []

    async def gather(kind, args):
        asked.append((kind, args))
        return ([(None, ["alice@localhost/phone"]), ("n2", ["alice@localhost/web"])], []) \
            if args["jid"].startswith("alice@") else ([(None, [])], [])

    api.agent.gather = gather
    status, body = call(api, "POST", "users/alice/kick", {"reason": "spam"})
    assert (status, body) == (200, {"kicked": ["alice@localhost/phone", "alice@localhost/web"],
                                    "unreachable": []})
    assert asked == [("kick", {"jid": "alice@localhost", "reason": "spam"})]
    assert audit == ["Admin admin-key: kick jid=alice@localhost sessions=2 from 127.0.0.1"]
    assert call(api, "POST", "users/bob/kick")[0] == 404
    assert asked[-1] == ("kick", {"jid": "bob@localhost", "reason": KICK_TEXT})
    assert call(api, "POST", "users/alice/kick", {"reason": "x" * (MAX_REASON + 1)})[0] == 400
    assert call(api, "POST", "users/nobody/kick")[0] == 404
    # the older route shares the code, and the audit
    status, body = call(api, "DELETE", "sessions/alice@localhost%2Fphone?reason=bye")
    assert status == 200 and asked[-1] == ("kick", {"jid": "alice@localhost/phone", "reason": "bye"})
    assert audit[-1] == "Admin admin-key: kick jid=alice@localhost/phone sessions=2 from 127.0.0.1"
    assert len(audit) == 2
    assert call(api, "GET", "users/alice/kick")[0] == 405


def test_unlockLiftsTheLockout(api, storage, audit):  # noqa: F811
    """POST users/<NAME>/unlock clears the account's counters here and asks every process; audited."""
    people(storage)
    throttle = api.host.loginThrottle
    for _ in range(throttle.lockoutFailures):
        throttle.recordFailure("203.0.113.9", "alice")
    assert throttle.refusedFor("203.0.113.9", "alice") > 0
    status, body = call(api, "POST", "users/alice/unlock")
    assert status == 200 and body == {"unlocked": "alice", "cleared": 2}
    assert throttle.refusedFor("203.0.113.9", "alice") == 0
    assert not throttle.accountState("alice")["locked"]
    assert "alice" in [key for _, key in result(storage.unlocks.listUnlocks())]
    assert audit == ["Admin admin-key: unlock target=alice cleared=2 from 127.0.0.1"]
    assert call(api, "POST", "users/nobody/unlock")[0] == 404
    # the older route too
    assert call(api, "POST", "unlock", {"target": "203.0.113.9"})[0] == 200
    assert audit[-1] == "Admin admin-key: unlock target=203.0.113.9 cleared=1 from 127.0.0.1"


def test_createUserWithProfile(api, storage, audit):  # noqa: F811
    """POST users takes full_name, email and custom_data besides name and password; audited."""
    status, body = call(api, "POST", "users", {"name": "dora", "password": "dora-pw",
                                               "full_name": "Dora Explorer", "email": "dora@example.org",
                                               "custom_data": '{"level": 3}'})
    assert status == 201 and body["jid"] == "dora@localhost"
    account = result(storage.accounts.getAccountByLocalpart("dora"))
    assert (account.id, account.email) == (body["id"], "dora@example.org")
    assert account.profile == {"full_name": "Dora Explorer", "custom_data": '{"level": 3}'}
    assert verifyPlain(Credentials.fromDict(account.credentials), "dora-pw")
    assert audit == [f"Admin admin-key: create-user jid=dora@localhost id={account.id} from 127.0.0.1"]
    status, body = call(api, "POST", "users", {"name": "plain", "password": "pw"})
    assert status == 201 and result(storage.accounts.getAccountByLocalpart("plain")).profile == {}


@pytest.mark.parametrize("extra, status, text", [
    ({"email": "not-an-address"}, 400, "e-mail"),
    ({"email": "dora@example.org"}, 409, "in use"),
    ({"full_name": "x" * 256}, 400, "full_name"),
    ({"custom_data": "x" * 6000}, 400, "custom_data"),
    ({"full_name": 7}, 400, "full_name"),
    ({"name": "dora"}, 409, "already exists"),
])
def test_createUserRefusals(api, storage, audit, extra, status, text):  # noqa: F811
    add(storage, "dora", email="dora@example.org")
    answer = call(api, "POST", "users", {"name": "eve", "password": "pw", **extra})
    assert answer[0] == status and text in answer[1]["error"], answer
    assert result(storage.accounts.countAccounts()) == 1 and audit == []


def test_passwordAndDeleteAreAudited(api, storage, audit):  # noqa: F811
    """PUT users/<NAME>/password and DELETE users/<NAME> change storage and leave an audit line each."""
    alice = people(storage)[0]
    status, body = call(api, "PUT", "users/alice/password", {"password": "new secret"})
    assert (status, body) == (200, {"changed": "alice@localhost", "revoked": 0})
    account = result(storage.accounts.getAccount(alice.id))
    assert verifyPlain(Credentials.fromDict(account.credentials), "new secret")
    status, body = call(api, "DELETE", "users/alice")
    assert (status, body) == (200, {"deleted": "alice@localhost", "ended": 0})
    assert result(storage.accounts.getAccount(alice.id)) is None
    assert audit == ["Admin admin-key: set-password jid=alice@localhost revoked=0 from 127.0.0.1",
                     f"Admin admin-key: delete-user jid=alice@localhost id={alice.id} ended=0 from 127.0.0.1"]
    assert not any("new secret" in line for line in audit)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A server subprocess with the admin API on its [ops] listener, and alice."""
    from tests.e2e.conftest import startServer, stopServer
    from tests.e2e.test_adminapi import OPS

    running = startServer(tmp_path_factory.mktemp("admin-users"), extra=OPS)
    running.addusers(["alice"])
    yield running
    stopServer(running)


def test_liveServerKickAndView(live):
    """
    Over HTTP: search and view alice with her slixmpp session, kick her
    (her stream ends with policy-violation, the log names who did it),
    then create a user with a profile and log in with its password.
    """
    from tests.e2e.test_adminapi import api as http, logged, streamErrors
    from tests.e2e.test_slixmpp import TIMEOUT, Client, run

    async def scenario():
        alice = Client(live, "alice@localhost/desk", "alice-pw")
        errors = streamErrors(alice)
        assert await alice.login()
        status, found, _ = await asyncio.to_thread(http, live, "GET", "users?q=ALI")
        assert status == 200 and [u["jid"] for u in found["users"]] == ["alice@localhost"]
        status, view, _ = await asyncio.to_thread(http, live, "GET", "users/alice")
        assert status == 200 and [s["jid"] for s in view["sessions"]] == ["alice@localhost/desk"]
        status, kicked, _ = await asyncio.to_thread(http, live, "POST", "users/alice/kick", {"reason": "test"})
        assert (status, kicked) == (200, {"kicked": ["alice@localhost/desk"], "unreachable": []})
        assert await asyncio.wait_for(errors, TIMEOUT) == "policy-violation"
        await asyncio.to_thread(logged, live, "Admin admin-key: kick jid=alice@localhost sessions=1")
        # the logout's last activity is written after the stream ended: wait for it
        for _ in range(50):
            status, view, _ = await asyncio.to_thread(http, live, "GET", "users/alice")
            if view["last_activity"] is not None:
                break
            await asyncio.sleep(0.1)
        assert view["sessions"] == [] and view["last_activity"] is not None
        status, made, _ = await asyncio.to_thread(http, live, "POST", "users", {
            "name": "newbie", "password": "newbie-pw", "full_name": "New Bie", "email": "nb@example.org"})
        assert status == 201 and made["jid"] == "newbie@localhost"
        newbie = Client(live, "newbie@localhost", "newbie-pw")
        assert await newbie.login()
        await newbie.logout()
        status, view, _ = await asyncio.to_thread(http, live, "GET", "users/newbie")
        assert (view["email"], view["profile"]) == ("nb@example.org", {"full_name": "New Bie"})

    run(scenario())
