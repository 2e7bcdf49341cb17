"""
C{GET /health} (L{xmppchat.ops.health}, issue 18): 200 while storage (and
Redis in a cluster) answers, 503 naming the part that does not, and 200
again once it is back; on both storage backends.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from types import SimpleNamespace

import pymongo.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.helpers import harnessStorage, makeConfig
from xmppchat.admin import result
from xmppchat.cluster.resp import RedisClient
from xmppchat.ops.health import check
from xmppchat.service import XMPPChatService

BOTH_BACKENDS = True


def fakeService(storage, cluster=None, timeoutMs=200):
    return SimpleNamespace(config=makeConfig(ops={"health_timeout_ms": timeoutMs}), reactor=reactor,
                           storage=storage, cluster=cluster)


@pytest.fixture
def storage(harnessBackend):
    running = harnessStorage(harnessBackend)
    result(running.start())
    yield running
    running.stop()


def test_storageAnswering(storage):
    """A started storage answers the health query."""
    assert result(check(fakeService(storage))) == {"storage": "ok"}


def test_storageDownAndBack(storage, harnessBackend, monkeypatch):
    """A storage that fails (SQLite closed, MongoDB unreachable) is reported with why, then ok again."""
    if harnessBackend == "sqlite":
        result(storage.stop())
    else:
        def unreachable(*args, **kwargs):
            raise pymongo.errors.ServerSelectionTimeoutError("no servers found")

        monkeypatch.setattr("mongomock.collection.Collection.find_one", unreachable)
    checks = result(check(fakeService(storage)))
    assert checks["storage"] != "ok" and checks["storage"]
    if harnessBackend == "sqlite":
        result(storage.start())
    else:
        monkeypatch.undo()
    assert result(check(fakeService(storage))) == {"storage": "ok"}


def test_redisNotConnected(storage):
    """In a cluster, a Redis that is not connected fails the check while storage is fine."""
    redis = RedisClient(reactor, "redis://127.0.0.1:1/0", [], None, None, None)
    checks = result(check(fakeService(storage, cluster=SimpleNamespace(redis=redis))))
    assert checks["storage"] == "ok" and checks["redis"] == "error"


def test_failureTextIsLoggedNotAnswered(storage, monkeypatch):
    """
    Security review finding 3: the exception text of a failed check (which
    can name hosts or credentials) goes to the log; /health says "error".
    """
    from twisted.logger import globalLogPublisher

    def failing(*args):
        raise RuntimeError("mongodb://admin:s3cret@db.internal:27017 refused")

    monkeypatch.setattr(storage.accounts, "getAccount", failing)
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        checks = result(check(fakeService(storage)))
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert checks == {"storage": "error"}
    assert any(e.get("part") == "storage" and "s3cret" in e.get("error", "") for e in events)


class HealthOverHTTPTests(TestCase):
    """
    A real service on port 0: C{/health} and C{/metrics} over loopback.
    """

    @defer.inlineCallbacks
    def setUp(self):
        dataDir = tempfile.mkdtemp(prefix="xmppchat-health-")  # not trial's mktemp: under the cwd
        self.addCleanup(shutil.rmtree, dataDir, True)
        config = makeConfig(server={"data_dir": dataDir}, c2s={"port": 0, "direct_tls": False},
                            ops={"enabled": True, "port": 0, "health_timeout_ms": 200})
        self.service = XMPPChatService(config, reactor)
        yield self.service.startService()
        self.addCleanup(self.service.stopService)

    @defer.inlineCallbacks
    def get(self, path):
        port = self.service.portNumber("ops")
        response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}{path}".encode())
        body = yield readBody(response)
        return response.code, response.headers.getRawHeaders(b"content-type")[0].decode(), body

    @defer.inlineCallbacks
    def test_healthTurns503WhileStorageHangs(self):
        """/health is 200, then 503 naming storage while its query never answers, then 200 again."""
        code, contentType, body = yield self.get("/health")
        self.assertEqual((code, contentType), (200, "application/json"))
        self.assertEqual(json.loads(body), {"status": "ok", "checks": {"storage": "ok"}})
        held = []
        accounts = self.service.storage.accounts
        original = accounts.getAccount

        def hanging(*args):
            held.append(defer.Deferred())
            return held[-1]

        accounts.getAccount = hanging
        code, _, body = yield self.get("/health")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body), {"status": "unavailable",
                                            "checks": {"storage": "no answer within 0.2 s"}})
        accounts.getAccount = original
        code, _, body = yield self.get("/health")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_metricsParse(self):
        """/metrics is the Prometheus text format, every metric family of the README present."""
        code, contentType, body = yield self.get("/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(contentType.startswith("text/plain; version="))
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        for name in ("xmppchat_sessions", "xmppchat_logins", "xmppchat_logouts", "xmppchat_lockouts",
                     "xmppchat_rate_limited", "xmppchat_rooms", "xmppchat_cluster_node_changes",
                     "xmppchat_stanzas", "xmppchat_messages_delivered", "xmppchat_messages_offline",
                     "xmppchat_messages_stored", "xmppchat_pushes", "xmppchat_rest_requests",
                     "xmppchat_storage_seconds", "xmppchat_cluster_bus_backlog_frames",
                     "xmppchat_cluster_bus_backlog_bytes", "process_resident_memory_bytes"):
            self.assertIn(name, names)
