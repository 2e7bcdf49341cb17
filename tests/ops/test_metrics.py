"""
The Prometheus instruments of L{xmppchat.ops.metrics} (issue 18, "Metrics
and health"), one by one: the observers of L{xmppchat.observe} fed with
C{observe.emit} as the catalogue names them, and the direct
instrumentation driven through a host on both storage backends.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from tests.helpers import HostHarness, StubTransport, harnessStorage
from xmppchat import observe
from xmppchat.admin import result
from xmppchat.ops.metrics import MAX_LABEL_VALUES, Metrics, resetMultiprocessDir, workerDied
from xmppchat.storage.interfaces import DIALOG_PRIVATE, AlreadyExists

BOTH_BACKENDS = True


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def started():
    metrics = Metrics()
    metrics.start(SimpleNamespace(reactor=Clock(), cluster=None))
    yield metrics
    metrics.stop()


def test_loginsByResultAndMechanism(started):
    """login and login-failed events count by result, mechanism and transport."""
    observe.emit("login", jid="a@localhost/r", transport="c2s", mechanism="SCRAM-SHA-256",
                 address="127.0.0.1", resumed=False)
    for _ in range(2):
        observe.emit("login-failed", account="a", transport="websocket", mechanism="PLAIN",
                     address="127.0.0.1", condition="not-authorized")
    assert sample(started, "xmppchat_logins_total", result="success", mechanism="SCRAM-SHA-256",
                  transport="c2s") == 1
    assert sample(started, "xmppchat_logins_total", result="failure", mechanism="PLAIN",
                  transport="websocket") == 2


def test_resumptionsAreNotLogins(started):
    """Review 18 #6: a XEP-0198 resumption counts in its own counter, not as a login."""
    observe.emit("login", jid="a@localhost/r", transport="c2s", mechanism="SCRAM-SHA-256",
                 address="127.0.0.1", resumed=True)
    assert sample(started, "xmppchat_resumptions_total", transport="c2s") == 1
    assert not sample(started, "xmppchat_logins_total", result="success", mechanism="SCRAM-SHA-256",
                      transport="c2s")


def test_otherOperationalEvents(started):
    """logout, lockout, rate-limited, rooms and cluster membership each have their counter."""
    observe.emit("logout", jid="a@localhost/r", transport="bosh", reason="client closed")
    observe.emit("lockout", what="source 192.0.2.1 for account a@localhost", scope="pair", seconds=300)
    observe.emit("rate-limited", scope="rest", key="127.0.0.1")
    observe.emit("rate-limited", scope="rest", key="127.0.0.2")
    observe.emit("room-created", room="r@muc.localhost", owner="a@localhost")
    observe.emit("room-destroyed", room="r@muc.localhost", reason="empty")
    observe.emit("cluster-node", node="n1", state="joined")
    assert sample(started, "xmppchat_logouts_total", transport="bosh", reason="client_closed") == 1
    assert sample(started, "xmppchat_lockouts_total", scope="pair") == 1
    assert sample(started, "xmppchat_rate_limited_total", scope="rest") == 2
    assert sample(started, "xmppchat_rooms_total", event="created") == 1
    assert sample(started, "xmppchat_rooms_total", event="destroyed") == 1
    assert sample(started, "xmppchat_cluster_node_changes_total", state="joined") == 1


def test_stoppedMetricsNoLongerObserve():
    """After stop() an event is not counted (no observer left behind by a stopped service)."""
    metrics = Metrics()
    metrics.start(SimpleNamespace(reactor=Clock(), cluster=None))
    metrics.stop()
    observe.emit("lockout", what="source 192.0.2.1 for account a@localhost", scope="pair", seconds=300)
    assert sample(metrics, "xmppchat_lockouts_total", scope="pair") == 0


def test_labelValuesAreBounded(started):
    """Made-up mechanisms past MAX_LABEL_VALUES, and values that are not short tokens, count as other."""
    for n in range(MAX_LABEL_VALUES + 10):
        observe.emit("login-failed", account="a", transport="c2s", mechanism=f"X-MADE-UP-{n}",
                     address="::1", condition="invalid-mechanism")
    observe.emit("logout", jid="a@localhost/r", transport="c2s", reason="text with spaces and <xml>")
    families = {f.name: f for f in text_string_to_metric_families(
        __import__("prometheus_client").generate_latest(started.registry).decode())}
    logins = families["xmppchat_logins"].samples
    assert len(logins) <= MAX_LABEL_VALUES + 1
    assert sum(s.value for s in logins) == MAX_LABEL_VALUES + 10
    assert sample(started, "xmppchat_logouts_total", transport="c2s", reason="other") == 1


def test_stanzasAndDelivery():
    """A message between two online users counts one stanza in, one out and one delivery."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    bob, bobTransport = h.connect("bob")
    metrics = h.host.metrics
    before = sample(metrics, "xmppchat_stanzas_total", kind="presence", direction="in")
    h.send(alice, '<message to="bob@localhost" type="chat"><body>hi</body></message>')
    h.send(alice, '<presence type="unavailable"/>')
    assert [e.name for e in bobTransport.pop()] == ["message"]
    assert sample(metrics, "xmppchat_stanzas_total", kind="message", direction="in") == 1
    assert sample(metrics, "xmppchat_stanzas_total", kind="message", direction="out") == 1
    assert sample(metrics, "xmppchat_stanzas_total", kind="presence", direction="in") == before + 1
    assert sample(metrics, "xmppchat_messages_delivered_total") == 1


def test_sessionsByTransport(monkeypatch):
    """Bound sessions count under their transport's name until they end."""
    monkeypatch.setattr(StubTransport, "transportName", "websocket", raising=False)
    h = HostHarness()
    first, _ = h.connect("alice")
    h.connect("bob")
    metrics = h.host.metrics
    assert sample(metrics, "xmppchat_sessions", transport="websocket") == 2
    h.host.endSession(first)
    assert sample(metrics, "xmppchat_sessions", transport="websocket") == 1


def test_offlineMessagesAndStorageLatency():
    """A message to an offline user counts once as offline, and the offline store's calls are timed."""
    h = HostHarness()
    metrics = h.host.metrics
    metrics.instrumentStorage(h.storage)
    h.addUser("carol")
    alice, _ = h.connect("alice")
    h.send(alice, '<message to="carol@localhost" type="chat"><body>later</body></message>')
    assert sample(metrics, "xmppchat_messages_offline_total") == 1
    assert sample(metrics, "xmppchat_messages_delivered_total") == 0
    assert sample(metrics, "xmppchat_storage_seconds_count", store="offline") >= 1
    assert sample(metrics, "xmppchat_storage_seconds_bucket", store="offline", le="+Inf") >= 1


def test_storedMessagesCountSuccessOnly(harnessBackend):
    """createMessage counts a stored message when it succeeds, not when it fails; each call is timed."""
    storage = harnessStorage(harnessBackend)
    result(storage.start())
    metrics = Metrics()
    metrics.instrumentStorage(storage)
    alice = result(storage.accounts.createAccount("alice", None))
    bob = result(storage.accounts.createAccount("bob", None))
    dialog = result(storage.dialogs.createDialog(DIALOG_PRIVATE, alice.id, occupantIds=[bob.id]))
    result(storage.messages.createMessage(dialog.id, alice.id, "one", messageId="a" * 24))
    with pytest.raises(AlreadyExists):
        result(storage.messages.createMessage(dialog.id, alice.id, "again", messageId="a" * 24))
    assert sample(metrics, "xmppchat_messages_stored_total") == 1
    assert sample(metrics, "xmppchat_storage_seconds_count", store="messages") == 2
    assert sample(metrics, "xmppchat_storage_seconds_count", store="accounts") == 2


def test_pushesBySentAndDropped():
    """The push module's notifier counts pushes sent, failed and dropped in the host's metrics."""
    h = HostHarness()
    notifier = h.host.modules["push"].notifier
    notifier.notify({"to": "a@localhost", "reason": "offline", "message_id": "m1"})
    notifier.count("dropped")
    metrics = h.host.metrics
    assert sample(metrics, "xmppchat_pushes_total", result="sent") == 1
    assert sample(metrics, "xmppchat_pushes_total", result="dropped") == 1


def test_webhookCountsDropped():
    """A full webhook queue counts the push it drops."""
    from xmppchat.modules.push import WebhookNotifier

    seen = []
    notifier = WebhookNotifier("http://127.0.0.1:1/", Clock(), agent=object(), queueSize=1, concurrency=0)
    notifier.count = seen.append
    notifier.notify({"n": 1})
    notifier.notify({"n": 2})
    assert seen == ["dropped"]


def test_restRouteWithoutPattern():
    """A REST request no route matched is counted as unmatched; upload and http-bind by their path."""
    metrics = Metrics()
    for prepath, code in (([b"nothing.json"], 404), ([b"upload", b"x"], 200), ([b"http-bind"], 200)):
        metrics.restRequest(SimpleNamespace(prepath=prepath, code=code))
    metrics.restRequest(SimpleNamespace(prepath=[b"users"], code=200, route=("GET", "/users/{userId}")))
    requests = "xmppchat_rest_requests_total"
    assert sample(metrics, requests, method="other", route="unmatched", status="404") == 1
    assert sample(metrics, requests, method="other", route="/upload", status="200") == 1
    assert sample(metrics, requests, method="other", route="/http-bind", status="200") == 1
    assert sample(metrics, requests, method="GET", route="/users/{userId}", status="200") == 1


def test_clusterBusBacklogSampled():
    """The bus backlog gauges show the frames and bytes sent and not yet acknowledged when sampled."""
    metrics = Metrics()
    bus = SimpleNamespace(inFlight={"n1": deque([(1, 10), (2, 20)]), "n2": deque([(1, 5)])},
                          inFlightBytes={"n1": 30, "n2": 5})
    metrics.service = SimpleNamespace(cluster=SimpleNamespace(bus=bus))
    metrics.sample()
    assert sample(metrics, "xmppchat_cluster_bus_backlog_frames") == 3
    assert sample(metrics, "xmppchat_cluster_bus_backlog_bytes") == 35


def test_processMetricsInTheRegistry():
    """A single process exposes prometheus_client's process metrics in its own registry."""
    assert sample(Metrics(), "process_resident_memory_bytes") > 0


def test_multiprocessDirectory(tmp_path):
    """The supervisor empties the directory at start; a dead worker's live gauges go, its counters stay."""
    stale = tmp_path / "metrics"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old")
    path = resetMultiprocessDir(str(tmp_path))
    assert path == str(stale) and list(stale.iterdir()) == []
    (stale / "gauge_livesum_42.db").write_bytes(b"")
    (stale / "counter_42.db").write_bytes(b"")
    workerDied(path, 42)
    assert sorted(p.name for p in stale.iterdir()) == ["counter_42.db"]


def test_boundedChildrenCacheStaysBounded():
    """
    Security review (minor): label values a client made up (SASL mechanism
    names, logout reasons) do not grow the children cache without bound.
    """
    from prometheus_client import CollectorRegistry, Counter

    from xmppchat.ops.metrics import BoundedChildren

    counter = Counter("probe_total", "x", ["mechanism"], registry=CollectorRegistry())
    children = BoundedChildren(counter, limit=8)
    for n in range(5000):
        children(f"made up mechanism {n}" if n % 2 else f"TOKEN-{n}").inc()
    cached = sum(len(d) for d in vars(children).values() if isinstance(d, dict))
    assert cached <= 5 * 8 + 1
    assert len(counter.collect()[0].samples) <= 2 * (8 + 1)  # _total and _created per child
