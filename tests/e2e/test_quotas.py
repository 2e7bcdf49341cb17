"""
Per-user quotas against a real server (issue 15 finding 15): plain HTTP
over loopback to the REST port.  An attacker firing many creations in
parallel gets exactly his quota stored (SQLite checks in the write
transaction), the rest 403 with the SDK's error body; the daily message
quota answers 429 with C{Retry-After}; another user is unaffected.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import REST_AUTH_KEY, startServer, stopServer
from tests.e2e.test_rest import exchange as call


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("quotas"), extra="""
[quotas]
blobs_per_user = 3
records_per_user = 3
dialogs_per_user = 1
messages_per_user_per_day = 2
""")
    yield running
    stopServer(running)


def user(server, login):
    status, body, _ = call(server, "POST", "/session.json",
                           {"application_id": 1, "auth_key": REST_AUTH_KEY})
    app = body["session"]["token"]
    status, body, _ = call(server, "POST", "/users.json",
                           {"user": {"login": login, "password": f"{login}-pw-1"}}, token=app)
    assert status == 201, body
    status, body, _ = call(server, "POST", "/session.json", {
        "application_id": 1, "auth_key": REST_AUTH_KEY,
        "user": {"login": login, "password": f"{login}-pw-1"}})
    assert status == 201, body
    return body["session"]["token"], body["session"]["user_id"]


def parallel(count, f):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: f(), range(count)))


def test_parallelCreationsStopAtTheQuota(server):
    """Twelve parallel blob and record creations by one user store exactly three of each; bob's still work."""
    mallory, _ = user(server, "mallory")
    bob, _ = user(server, "bob")
    blob = {"blob": {"name": "x.bin", "content_type": "application/octet-stream"}}
    results = parallel(12, lambda: call(server, "POST", "/blobs.json", blob, token=mallory))
    assert sorted(r[0] for r in results) == [201] * 3 + [403] * 9
    refusal = next(r[1] for r in results if r[0] == 403)
    assert refusal == {"errors": {"base": ["Quota exceeded: at most 3 files per user (you have 3)"]}}
    assert call(server, "GET", "/blobs.json", token=mallory)[1]["total_entries"] == 3
    results = parallel(12, lambda: call(server, "POST", "/data/UserReports.json", {"r": "x"},
                                        token=mallory))
    assert sorted(r[0] for r in results) == [201] * 3 + [403] * 9
    assert call(server, "GET", "/data/UserReports.json?count=1", token=mallory)[1]["count"] == 3
    assert call(server, "POST", "/blobs.json", blob, token=bob)[0] == 201
    assert call(server, "POST", "/data/UserReports.json", {"r": "y"}, token=bob)[0] == 201


def test_dialogAndMessageQuotas(server):
    """A second owned dialog is 403; the third message of the day is 429 with Retry-After."""
    eve, _ = user(server, "eve")
    _, carolId = user(server, "carol")
    dialog = {"type": 2, "name": "spam", "occupants_ids": str(carolId)}
    status, created, _ = call(server, "POST", "/chat/Dialog.json", dialog, token=eve)
    assert status == 201
    status, body, _ = call(server, "POST", "/chat/Dialog.json", dialog, token=eve)
    assert status == 403 and "at most 1 dialogs" in body["errors"]["base"][0]
    message = {"chat_dialog_id": created["_id"], "message": "buy now"}
    for _ in range(2):
        assert call(server, "POST", "/chat/Message.json", message, token=eve)[0] == 201
    status, body, headers = call(server, "POST", "/chat/Message.json", message, token=eve)
    assert status == 429 and "stored messages per user a day" in body["errors"]["base"][0]
    assert 0 < int(headers["Retry-After"]) <= 86400
