"""
Issue 19, the panel's Moderation page: its admin API
(L{xmppchat.ops.admin.moderation}) in process, on both storage backends,
driven through L{AdminAPI.render} with the bearer key; the audit events
checked for every change.  Over HTTP to a live server: the last test
(the browser test is tests/browser/test_moderation.py).
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from twisted.internet.address import IPv4Address
from twisted.web.test.requesthelper import DummyRequest

from tests.conftest import BACKENDS
from tests.helpers import HostHarness, result, sentMessages
from xmppchat import observe
from xmppchat.auth.credentials import tokenHash
from xmppchat.ops.adminapi import AdminAgent, AdminAPI
from xmppchat.runsettings import RunSettings
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, Query, TokenRecord

KEY = "moderation-admin-key-0123456789abcdefgh"
NS_DELETE = "urn:xmpp:message-delete:0"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


class Harness(HostHarness):
    """
    A host with its storage and an L{AdminAPI} over them (no listener).
    """

    def __init__(self, **sections):
        sections.setdefault("rest", {"data_classes": ["UserReports", "MessageReports"]})
        super().__init__(**sections)
        service = SimpleNamespace(host=self.host, storage=self.storage, reactor=self.clock,
                                  config=self.config, reloadHooks={},
                                  settings=RunSettings(self.config, self.storage))
        service.adminAgent = AdminAgent(service)
        self.api = AdminAPI(service, KEY)

    def call(self, method: str, path: str, body=None, query=None):
        """C{(status, decoded JSON)} of one admin API request."""
        request = DummyRequest([p.encode() for p in path.split("/")])
        request.method = method.encode()
        request.args = {k.encode(): [str(v).encode()] for k, v in (query or {}).items()}
        request.uri = ("/admin/api/" + path + ("?" + urlencode(query) if query else "")).encode()
        request.content = io.BytesIO(json.dumps(body).encode() if body is not None else b"")
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {KEY}".encode()])
        request.isSecure = lambda: False
        request.client = IPv4Address("TCP", "192.0.2.7", 4321)
        self.api.render(request)
        assert request.finished, f"{method} {path} did not finish"
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def report(self, cls: str, reporter: int, **fields):
        return result(self.storage.records.createRecord(cls, reporter, fields))

    def post(self, dialog, sender: int, text: str):
        return result(self.storage.messages.createMessage(dialog.id, sender, text))


@pytest.fixture
def audit():
    events = []

    def observer(name, fields):
        if name == "admin-action":
            events.append(fields)

    observe.addObserver(observer)
    yield events
    observe.removeObserver(observer)


@pytest.fixture(params=BACKENDS)
def h(request):
    """A harness on each storage backend (the live test below runs once)."""
    HostHarness.backend = request.param  # reset by tests.conftest's harnessBackend
    return Harness()


def people(h):
    """alice (reporter), mallory (reported): their accounts."""
    return h.addUser("alice", "alice-pw"), h.addUser("mallory", "mallory-pw")


def test_userReportsNewestFirstWithTheReportedUser(h):
    """GET reports?kind=user: newest first, paged, reporter and reported user resolved."""
    alice, mallory = people(h)
    h.report("UserReports", alice.id, reportedUserId=mallory.id, reason="spam")
    h.clock.advance(1)
    h.report("UserReports", alice.id, reportedUserId=str(mallory.id), reason="again")
    h.clock.advance(1)
    h.report("UserReports", mallory.id, reportedUserId=999, reason="nobody")
    status, body = h.call("GET", "reports", query={"kind": "user"})
    assert status == 200, body
    assert (body["kind"], body["class"], body["declared"], body["total"]) == ("user", "UserReports",
                                                                              True, 3)
    assert [r["reason"] for r in body["items"]] == ["nobody", "again", "spam"]
    newest, middle, oldest = body["items"]
    assert newest["user"] == {"id": 999, "missing": True}
    assert middle["user"]["id"] == oldest["user"]["id"] == mallory.id
    assert oldest["user"]["jid"] == "mallory@localhost" and oldest["user"]["blocked"] is False
    assert oldest["reporter"]["name"] == "alice" and oldest["handled"] is False
    assert oldest["fields"] == {"reportedUserId": mallory.id, "reason": "spam"}
    status, page = h.call("GET", "reports", query={"kind": "user", "skip": 1, "limit": 1})
    assert [r["reason"] for r in page["items"]] == ["again"] and page["total"] == 3


@pytest.mark.parametrize("given", ["²", "9" * 30, " 12 ", True])
def test_reportedUserNoStoreHolds(h, given):
    """Review 19 B1: an app's report naming "²" or a number beyond 64 bits is shown, not a 500 forever."""
    alice, mallory = people(h)
    h.report("UserReports", alice.id, reportedUserId=given, reason="odd")
    status, body = h.call("GET", "reports", query={"kind": "user"})
    assert status == 200 and body["items"][0]["user"] == {"id": given, "missing": True}, body


def test_messageReportsResolveTheMessage(h):
    """GET reports?kind=message: the reported message with its sender, or deleted."""
    alice, mallory = people(h)
    dialog = h.addDialog(DIALOG_PRIVATE, "alice", ["alice", "mallory"])
    message = h.post(dialog, mallory.id, "buy cheap pills")
    h.report("MessageReports", alice.id, reportedMessageId=message.id, reason="spam")
    h.clock.advance(1)
    h.report("MessageReports", alice.id, reportedMessageId="0" * 24, dialogId=dialog.id,
             reason="gone")
    status, body = h.call("GET", "reports", query={"kind": "message"})
    assert status == 200 and body["class"] == "MessageReports" and body["total"] == 2
    gone, spam = body["items"]
    assert gone["message"] == {"id": "0" * 24, "dialog": dialog.id, "deleted": True}
    assert spam["message"]["text"] == "buy cheap pills" and spam["message"]["dialog"] == dialog.id
    assert spam["message"]["sender"]["name"] == "mallory"


def test_undeclaredClassSaysSo():
    """A report class missing from [rest] data_classes is answered as such (apps cannot store it)."""
    h = Harness(rest={"data_classes": ["UserReports"]},
                moderation={"message_reports_class": "Complaints"})
    status, body = h.call("GET", "reports", query={"kind": "message"})
    assert (status, body["class"], body["declared"], body["items"]) == (200, "Complaints", False, [])


@pytest.mark.parametrize("query", [{"kind": "dialog"}, {"limit": 0}, {"limit": 101}, {"skip": -1},
                                   {"handled": "yes"}, {"limit": "x"}])
def test_badListQueries(h, query):
    """Unknown kinds and out-of-range paging are 400 with a readable text."""
    status, body = h.call("GET", "reports", query=query)
    assert status == 400 and body["error"]


def test_markHandled(h, audit):
    """PUT reports/<id> {"handled": true} stores the mark on the record; handled=0/1 filter by it."""
    alice, mallory = people(h)
    report = h.report("UserReports", alice.id, reportedUserId=mallory.id, reason="spam")
    other = h.report("UserReports", alice.id, reportedUserId=mallory.id, reason="more")
    status, body = h.call("PUT", f"reports/{report.id}", {"handled": True})
    assert status == 200 and body["handled"] is True and body["user"]["name"] == "mallory"
    assert result(h.storage.records.getRecord("UserReports", report.id)).fields["handled"] is True
    assert audit[-1]["action"] == "report-handled" and report.id in audit[-1]["details"]
    assert audit[-1]["admin"] == "admin-key"
    open_ = h.call("GET", "reports", query={"kind": "user", "handled": "0"})[1]
    done = h.call("GET", "reports", query={"kind": "user", "handled": "1"})[1]
    assert [r["id"] for r in open_["items"]] == [other.id] and open_["total"] == 1
    assert [r["id"] for r in done["items"]] == [report.id]
    status, body = h.call("PUT", f"reports/{report.id}", {"handled": False})
    assert status == 200 and body["handled"] is False
    assert "handled" not in result(h.storage.records.getRecord("UserReports", report.id)).fields
    assert audit[-1]["action"] == "report-reopened"
    assert h.call("PUT", "reports/" + "f" * 24, {"handled": True})[0] == 404
    assert h.call("PUT", "reports/nonsense", {"handled": True})[0] == 404
    assert h.call("PUT", f"reports/{report.id}", {"handled": "yes"})[0] == 400
    assert len(audit) == 2


def test_messageInContext(h):
    """GET messages/<id>/context: the message with N before and after it, in dialog order."""
    alice, mallory = people(h)
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["alice", "mallory"], name="lobby")
    other = h.addDialog(DIALOG_GROUP, "alice", ["alice"], name="other")
    sent = []
    for n in range(12):
        h.post(other, alice.id, f"elsewhere {n}")
        sent.append(h.post(dialog, mallory.id if n == 6 else alice.id, f"m{n}"))
        if n % 3:
            h.clock.advance(1)  # some in the same second: the order still decides
    status, body = h.call("GET", f"messages/{sent[6].id}/context", query={"around": 3})
    assert status == 200, body
    assert body["message"]["text"] == "m6" and body["message"]["sender"]["name"] == "mallory"
    assert [m["text"] for m in body["before"]] == ["m3", "m4", "m5"]
    assert [m["text"] for m in body["after"]] == ["m7", "m8", "m9"]
    assert body["dialog"] == {"id": dialog.id, "type": DIALOG_GROUP, "name": "lobby", "occupants": 2}
    edge = h.call("GET", f"messages/{sent[1].id}/context", query={"around": 5})[1]
    assert [m["text"] for m in edge["before"]] == ["m0"] and len(edge["after"]) == 5
    alone = h.call("GET", f"messages/{sent[1].id}/context", query={"around": 0})[1]
    assert alone["before"] == alone["after"] == []
    assert h.call("GET", f"messages/{'a' * 24}/context")[0] == 404
    assert h.call("GET", "messages/x/context")[0] == 404
    assert h.call("GET", f"messages/{sent[1].id}/context", query={"around": 51})[0] == 400


def test_deleteMessageForEveryone(h, audit):
    """DELETE messages/<id>: gone from storage, and the online peer gets the SDK's remove from the sender."""
    alice, mallory = people(h)
    dialog = h.addDialog(DIALOG_PRIVATE, "alice", ["alice", "mallory"])
    kept = h.post(dialog, alice.id, "hello")
    message = h.post(dialog, mallory.id, "buy cheap pills")
    _, transport = h.connect("alice", "phone")
    status, body = h.call("DELETE", f"messages/{message.id}")
    assert (status, body) == (200, {"deleted": message.id, "dialog": dialog.id})
    assert result(h.storage.messages.getMessage(message.id)) is None
    assert [m.id for m in result(h.storage.messages.listMessages(dialog.id, alice.id, Query()))] == [
        kept.id]
    removes = [m for m in sentMessages(transport)
               if any(c.uri == NS_DELETE and c.name == "remove" for c in m.elements())]
    assert len(removes) == 1
    remove = next(c for c in removes[0].elements() if c.name == "remove")
    assert remove["id"] == message.id and removes[0]["from"] == "mallory@localhost"
    assert audit[-1]["action"] == "delete-message" and message.id in audit[-1]["details"]
    assert h.call("DELETE", f"messages/{message.id}")[0] == 404
    assert len(audit) == 1


def streamCondition(transport):
    error = transport.closed
    if error is None or isinstance(error, str):
        return error
    return next(c.name for c in error.elements() if c.uri == NS_STREAMS and c.name != "text")


def test_blockEndsSessionsAndLogins(h, audit):
    """POST users/<name>/block: stored, tokens deleted, streams end (policy-violation), logins refused."""
    from tests.auth.test_revocation import saslLogin

    _, mallory = people(h)
    result(h.storage.tokens.addToken(TokenRecord(tokenHash("tok"), mallory.id, 1, 0.0, 1e12)))
    stream, transport = saslLogin(h, "mallory", "mallory-pw", "phone")
    status, body = h.call("POST", "users/mallory/block", {"reason": "spam"})
    assert status == 200, body
    assert body["blocked"] == "mallory@localhost" and body["ended"] == ["mallory@localhost/phone"]
    assert body["revoked"] == 1 and body["unreachable"] == []
    assert result(h.storage.accounts.getAccount(mallory.id)).blocked is True
    assert result(h.storage.tokens.liveTokens(mallory.id, 0.0)) == []
    assert streamCondition(transport) == "policy-violation"
    assert audit[-1]["action"] == "block-user" and "mallory@localhost" in audit[-1]["details"]
    with pytest.raises(AssertionError):
        saslLogin(h, "mallory", "mallory-pw", "again")  # <account-disabled/>
    status, body = h.call("POST", "users/mallory/unblock")
    assert (status, body) == (200, {"unblocked": "mallory@localhost"})
    assert result(h.storage.accounts.getAccount(mallory.id)).blocked is False
    assert audit[-1]["action"] == "unblock-user"
    assert saslLogin(h, "mallory", "mallory-pw", "again")[0].session is not None
    assert h.call("POST", "users/nobody/block")[0] == 404
    assert h.call("POST", "users/mallory/block", {"reason": "x" * 1025})[0] == 400
    assert h.call("GET", "users/mallory/block")[0] == 405
    assert len(audit) == 2


def test_reportedUserCanBeDeleted(h):
    """The page's "Delete user" is the admin API's DELETE users/<name>."""
    people(h)
    status, body = h.call("DELETE", "users/mallory")
    assert status == 200 and body["deleted"] == "mallory@localhost"


# -- over HTTP, against a live server -------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A server with the admin API (and the panel) on: tests.browser's, without a browser."""
    from tests.browser.conftest import panelServer
    from tests.e2e.conftest import stopServer

    running = panelServer(tmp_path_factory)
    yield running
    stopServer(running.server)


def test_overHTTP(live):
    """
    A MessageReports record made over REST as the SDK makes it shows with
    its message; the delete empties the reporter's history; the block
    refuses the sender's REST login with 403 until unblocked.
    """
    from tests.e2e.conftest import REST_AUTH_KEY
    from tests.e2e.test_rest import call, restUsers

    adminCall = live.api
    server = live.server
    users = restUsers(server, "hreporter", "hspammer")
    (aliceToken, aliceId), (spamToken, _) = users["hreporter"], users["hspammer"]
    status, message = call(server, "POST", "/chat/Message.json",
                           {"recipient_id": aliceId, "message": "cheap pills"}, spamToken)
    assert status == 201, message
    status, record = call(server, "POST", "/data/MessageReports.json",
                          {"reportedMessageId": message["_id"], "reason": "spam"}, aliceToken)
    assert status == 201, record
    status, body = adminCall("GET", "reports?kind=message")
    assert status == 200, body
    report = next(r for r in body["items"] if r["id"] == record["_id"])
    assert report["message"]["text"] == "cheap pills" and report["reporter"]["id"] == aliceId
    spammer = report["message"]["sender"]
    status, context = adminCall("GET", f"messages/{message['_id']}/context?around=2")
    assert status == 200 and context["message"]["id"] == message["_id"]
    assert adminCall("DELETE", f"messages/{message['_id']}")[0] == 200
    dialogId = message["chat_dialog_id"]
    status, history = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialogId}", None,
                           aliceToken)
    assert status == 200 and history["items"] == []
    status, body = adminCall("POST", f"users/{spammer['name']}/block", {"reason": "spam"})
    assert status == 200 and body["revoked"] >= 1
    login = {"application_id": 1, "auth_key": REST_AUTH_KEY,
             "user": {"login": "hspammer", "password": "hspammer-pw-1"}}
    status, body = call(server, "POST", "/session.json", login)
    assert status == 403 and body["errors"]["base"] == ["The account is blocked"]
    assert call(server, "GET", "/session.json", None, spamToken)[0] == 401  # its token was deleted
    status, listed = adminCall("GET", "reports?kind=message")
    reported = next(r for r in listed["items"] if r["id"] == record["_id"])
    assert reported["message"]["deleted"] is True
    assert adminCall("POST", f"users/{spammer['name']}/unblock")[0] == 200
    assert call(server, "POST", "/session.json", login)[0] == 201
    log = server.log()
    for action in ("delete-message", "block-user", "unblock-user"):
        assert f"Admin admin-key: {action} " in log
