"""
Issue 19, the panel's Overview and Announcements: the per-minute rates of
L{xmppchat.ops.metrics.Metrics} (a ring of counter samples), the
overview's sums over nodes, the announcements list and its audit line
(in process); then C{GET overview} and C{GET announcements} over HTTP on
a live server with a slixmpp client and the REST API as clients use it.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from tests.browser.conftest import panelServer
from tests.e2e.conftest import stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run
from tests.storage.test_contract import addAccount, backend, clock, result, storage  # noqa: F401 (fixtures)
from xmppchat import observe
from xmppchat.ops.admin.overview import OFFLINE_CACHE_SECONDS, TOP_OFFLINE, Announcements, OfflineQueues, overview
from xmppchat.ops.metrics import RATE_SAMPLE_SECONDS, Metrics


def startedMetrics():
    reactor = Clock()
    metrics = Metrics(multiproc="")
    metrics.start(SimpleNamespace(reactor=reactor, cluster=None))
    return metrics, reactor


def restRequest(metrics, code):
    metrics.restRequest(SimpleNamespace(route=("GET", "/users"), code=code, prepath=[]))


def test_perMinuteIsTheChangeOverTheRing():
    """Messages counted after the first sample show as a per-minute rate over the ring's window, which stays a minute long."""
    metrics, reactor = startedMetrics()
    try:
        assert metrics.perMinute(metrics.counts()["totals"]) == (0.0, dict.fromkeys(metrics.counts()["totals"]))
        for _ in range(6):
            reactor.advance(RATE_SAMPLE_SECONDS)
            for _ in range(5):
                metrics.stanzasIn["message"].inc()
        metrics.stanzasIn["presence"].inc()  # not a message
        window, rates = metrics.perMinute(metrics.counts()["totals"])
        assert (window, rates["messages"]) == (60.0, 30.0)
        for _ in range(7):  # a quiet minute: the old samples leave the ring
            reactor.advance(RATE_SAMPLE_SECONDS)
        window, rates = metrics.perMinute(metrics.counts()["totals"])
        assert (window, rates["messages"]) == (60.0, 0.0)
    finally:
        metrics.stop()
    assert not reactor.getDelayedCalls()


def test_perMinuteIsNullUntilTheWindowIsASampleLong():
    """Review 19 B7: one message 0.1 s after the start is not 600 a minute: null until RATE_SAMPLE_SECONDS."""
    metrics, reactor = startedMetrics()
    try:
        reactor.advance(0.1)
        metrics.stanzasIn["message"].inc()
        assert metrics.perMinute(metrics.counts()["totals"]) == (0.1, dict.fromkeys(metrics.counts()["totals"]))
        reactor.advance(RATE_SAMPLE_SECONDS - 0.2)
        assert metrics.perMinute(metrics.counts()["totals"])[1]["messages"] is None
        reactor.advance(0.1)
        assert metrics.perMinute(metrics.counts()["totals"])[1]["messages"] == 6.0
    finally:
        metrics.stop()


def test_countsReadTheMetricsInstruments():
    """counts(): sessions by transport from the sessions gauge; REST requests and their 4xx/5xx; delivered/stored/offline."""
    metrics, _ = startedMetrics()
    try:
        metrics.sessions.labels("websocket").inc(2)
        for code in (200, 201, 404, 409, 500):
            restRequest(metrics, code)
        metrics.messagesDelivered.inc(3)
        metrics.messagesOffline.inc()
        counts = metrics.counts()
        assert counts["sessions"] == {"c2s": 0, "c2s-tls": 0, "websocket": 2, "bosh": 0}
        totals = counts["totals"]
        assert (totals["rest"], totals["rest4xx"], totals["rest5xx"]) == (5, 2, 1)
        assert (totals["delivered"], totals["offline"], totals["stored"]) == (3, 1, 0)
    finally:
        metrics.stop()


def fakeAPI(storage, parts, unreachable=()):
    """What overview() uses of an AdminAPI: a gather answering C{parts} (node -> its part), the storage, the host."""

    async def gather(kind, args):
        assert kind == "overview"
        return list(parts.items()), list(unreachable)

    return SimpleNamespace(agent=SimpleNamespace(gather=gather), storage=storage,
                           host=SimpleNamespace(domain="localhost", cluster=object()))


def nodePart(node, sessions, messages, uptime=5.0):
    return {"node": node, "uptime": uptime, "sessions": sessions, "window": 60.0,
            "perMinute": {"messages": messages, "rest": 1.0}}


def test_overviewSumsTheNodesAndListsTheLargestQueues(storage):  # noqa: F811
    """Sessions and rates are summed over the nodes that answered; the offline total and the largest queues come from storage."""
    for i in range(TOP_OFFLINE + 2):
        addAccount(storage, f"u{i:02}")
        for _ in range(i + 1):
            result(storage.offline.storeOffline(f"u{i:02}", "<message/>", 1.0, 100))
    api = fakeAPI(storage, {"w0": nodePart("w0", {"c2s": 2, "websocket": 1}, 12.5),
                            "w1": nodePart("w1", {"c2s": 1, "websocket": 0}, 7.5, uptime=3.0)},
                  unreachable=["w2"])
    answer = result(defer.ensureDeferred(overview(api, None, {})))
    assert answer["sessions"] == {"total": 4, "byTransport": {"c2s": 3, "websocket": 1}}
    assert answer["perMinute"] == {"messages": 20.0, "rest": 2.0}
    assert (answer["node"], answer["uptime"]) == ("w0", 5.0)
    assert answer["cluster"]["unreachable"] == ["w2"]
    assert [n["node"] for n in answer["cluster"]["nodes"]] == ["w0", "w1"]
    offline = answer["offline"]
    assert offline["total"] == sum(range(1, TOP_OFFLINE + 3))
    assert len(offline["top"]) == TOP_OFFLINE
    assert offline["top"][0] == {"jid": f"u{TOP_OFFLINE + 1:02}@localhost", "count": TOP_OFFLINE + 2}


def test_overviewSumsWhatTheNodesMeasured(storage):  # noqa: F811
    """Review 19 B7: a node that has not measured its rates yet (null) adds nothing; null when none has."""
    young = {"node": "w1", "uptime": 1.0, "sessions": {}, "window": 1.0,
             "perMinute": {"messages": None, "rest": None}}
    answer = result(defer.ensureDeferred(overview(fakeAPI(storage, {
        "w0": nodePart("w0", {"c2s": 1}, 12.5), "w1": young}), None, {})))
    assert answer["perMinute"] == {"messages": 12.5, "rest": 1.0}
    answer = result(defer.ensureDeferred(overview(fakeAPI(storage, {"w1": young}), None, {})))
    assert answer["perMinute"] == {"messages": None, "rest": None}


def test_overviewSurvivesAFailingOfflineCount(storage):  # noqa: F811
    """A storage error while counting the queues is reported in "offline"; the rest of the overview stands."""
    from xmppchat.storage.interfaces import QueryTimeout

    storage.offline.largestOfflineQueues = lambda limit: defer.fail(QueryTimeout("too slow"))
    answer = result(defer.ensureDeferred(overview(fakeAPI(storage, {None: nodePart(None, {"c2s": 1}, 0)}), None, {})))
    assert "too slow" in answer["offline"]["error"]
    assert answer["sessions"]["total"] == 1


@pytest.mark.parametrize("cost, polls", [(0.5, int(OFFLINE_CACHE_SECONDS // 5)), (0.01, 1)])
def test_offlineQueuesAreReadAtMostEvery30Seconds(storage, cost, polls):  # noqa: F811
    """
    Review 19 B2: the page polls every 5 s; an offline GROUP BY that takes
    0.5 s runs once per OFFLINE_CACHE_SECONDS, one of 10 ms at each poll.
    """
    reads = []
    clock = Clock()
    largest = storage.offline.largestOfflineQueues
    storage.offline.largestOfflineQueues = lambda limit: (reads.append(limit), clock.advance(cost),
                                                          largest(limit))[2]
    offline = OfflineQueues(fakeAPI(storage, {}), now=clock.seconds)
    api = fakeAPI(storage, {None: nodePart(None, {"c2s": 1}, 0)})
    result(storage.offline.storeOffline("amy", "<message/>", 1.0, 100))
    for _ in range(polls):
        answer = result(defer.ensureDeferred(overview(api, None, {}, offline)))
        assert answer["offline"]["total"] == 1
        result(storage.offline.storeOffline("amy", "<message/>", 1.0, 100))
        clock.advance(5)
    assert len(reads) == 1
    answer = result(defer.ensureDeferred(overview(api, None, {}, offline)))
    assert (len(reads), answer["offline"]["total"]) == (2, 1 + polls)


class FakeRequest:
    def __init__(self, admin="root", **args):
        self.adminName = admin
        self.args = {k.encode(): [str(v).encode()] for k, v in args.items()}

    def getClientAddress(self):
        return SimpleNamespace(host="127.0.0.1")


def test_announcementsAreListedOnceAndAudited():
    """Each announcement is listed once (newest first, a retry with its id is not a second one) and audited with the administrator."""
    from xmppchat.ops.adminapi import AdminAPI

    api = AdminAPI.__new__(AdminAPI)
    events = []
    observer = lambda name, fields: events.append((name, fields))  # noqa: E731
    observe.addObserver(observer)
    answers = iter([{"id": "a1", "online": 2, "unreachable": []}, {"id": "a1", "online": 2, "unreachable": []},
                    {"id": "b2", "online": 0, "unreachable": [], "stored": 5, "refused": 1}])

    async def announce(request, body):
        return next(answers)

    announcements = Announcements(api, limit=10)
    send = announcements.wrap(announce)
    try:
        result(defer.ensureDeferred(send(FakeRequest(), {"body": "hello", "subject": "Hi", "id": "a1"})))
        result(defer.ensureDeferred(send(FakeRequest(), {"body": "hello", "subject": "Hi", "id": "a1"})))
        result(defer.ensureDeferred(send(FakeRequest("ops"), {"body": "stored too", "to": "all"})))
    finally:
        observe.removeObserver(observer)
    listed = result(defer.ensureDeferred(announcements.list(FakeRequest(), {})))
    assert listed["total"] == 2
    assert [(a["id"], a["admin"], a["to"], a["online"]) for a in listed["announcements"]] == [
        ("b2", "ops", "all", 0), ("a1", "root", "online", 2)]
    assert listed["announcements"][0]["stored"] == 5 and listed["announcements"][1]["subject"] == "Hi"
    audits = [f for name, f in events if name == "admin-action"]
    assert [(f["admin"], f["action"]) for f in audits] == [("root", "announce"), ("ops", "announce")]
    assert audits[1]["details"] == "to=all id=b2 online=0 stored=5 refused=1"
    paged = result(defer.ensureDeferred(announcements.list(FakeRequest(limit=1, skip=1), {})))
    assert [a["id"] for a in paged["announcements"]] == ["a1"]


def test_announcementsListIsBounded():
    """Only the last ANNOUNCEMENTS_LISTED are kept; limit above 100 is a 400."""
    from xmppchat.ops.adminapi import AdminAPI, ApiError

    api = AdminAPI.__new__(AdminAPI)
    api.audit = lambda request, action, **details: None
    announcements = Announcements(api, limit=3)
    for i in range(5):
        announcements.record(FakeRequest(), {"body": f"n{i}"}, {"id": f"id{i}", "online": 0})
    listed = result(defer.ensureDeferred(announcements.list(FakeRequest(), {})))
    assert [a["body"] for a in listed["announcements"]] == ["n4", "n3", "n2"]
    with pytest.raises(ApiError) as info:
        result(defer.ensureDeferred(announcements.list(FakeRequest(limit=101), {})))
    assert info.value.status == 400


# -- over HTTP on a live server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    running = panelServer(tmp_path_factory)
    running.server.addusers(["alice", "bob"])
    yield running
    stopServer(running.server)


def test_liveOverview(panel):
    """
    A slixmpp client online and three messages to an offline user: the
    overview counts the session (c2s), the messages per minute and the
    offline queue; a REST 404 shows in the 4xx rate.
    """
    status, before = panel.api("GET", "overview")
    assert status == 200
    assert before["version"] and before["uptime"] >= 0 and before["cluster"]["enabled"] is False
    assert before["sessions"]["total"] == 0
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{panel.server.ports['rest']}/no-such-thing", timeout=10)

    async def scenario():
        alice = Client(panel.server, "alice@localhost/desk", "alice-pw")
        assert await alice.login()
        for i in range(3):
            alice.send_message(mto="bob@localhost", mbody=f"offline {i}", mtype="chat")
        # the rates are null for the first RATE_SAMPLE_SECONDS after the start, and the
        # offline queues are read at most every 30 s (OFFLINE_CACHE_SECONDS): wait for both
        deadline = asyncio.get_running_loop().time() + TIMEOUT + 2 * RATE_SAMPLE_SECONDS + 30
        while True:
            status, now = await asyncio.to_thread(panel.api, "GET", "overview")
            measured = None not in now["perMinute"].values()
            if now["offline"]["total"] >= 3 and measured and now["perMinute"]["offline"]:
                break
            assert asyncio.get_running_loop().time() < deadline, now
            await asyncio.sleep(0.2)
        await alice.logout()
        return now

    now = run(scenario())
    assert now["sessions"]["total"] == 1 and now["sessions"]["byTransport"]["c2s"] == 1
    assert now["offline"]["total"] == 3
    assert now["offline"]["top"] == [{"jid": "bob@localhost", "count": 3}]
    assert now["perMinute"]["messages"] > 0 and now["perMinute"]["offline"] > 0
    assert now["perMinute"]["rest4xx"] > 0 and now["perMinute"]["rest5xx"] == 0
    assert now["window"] > 0


def test_liveAnnouncementIsListedAndAudited(panel):
    """POST announce with the key, then GET announcements lists it with its counts and the log names admin-key."""
    status, sent = panel.api("POST", "announce", {"body": "Maintenance tonight", "subject": "Ops", "to": "online"})
    assert status == 200
    status, listed = panel.api("GET", "announcements")
    assert status == 200
    first = listed["announcements"][0]
    assert (first["id"], first["body"], first["subject"], first["to"], first["admin"], first["online"]) == (
        sent["id"], "Maintenance tonight", "Ops", "online", "admin-key", sent["online"])
    assert f"Admin admin-key: announce to=online id={sent['id']}" in panel.server.log()
    assert panel.api("GET", "announcements?limit=0")[0] == 400
