"""
C{/metrics} and C{/health} of a real two-worker cluster (issue 18,
"Metrics and health"): the ops socket is shared by the workers, so a
scrape reaches one of them; it must answer for both.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.cluster.live import liveCluster, onePerWorker
from tests.cluster.test_live import _children, eventually
from tests.e2e.conftest import startServer
from tests.e2e.test_metrics import scrape, value
from tests.e2e.test_slixmpp import TIMEOUT, run

WORKERS = ("multi-w0", "multi-w1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("metrics")) as running:
        path = running.directory / "multi"
        path.mkdir()
        node = startServer(path, f"""
[cluster]
redis_uri = "{running.redis.uri}"
node_id = "multi"
heartbeat_seconds = 1
expiry_seconds = 3

[ops]
enabled = true
port = 0
health_timeout_ms = 1000
""", storage=str(running.database), args=("--workers", "2"))
        running.nodes["multi"] = node
        for nodeId in WORKERS:
            running.waitOnline(nodeId, node)
        node.addusers(["alice", "bob"])
        yield running


def scrapes(node, count=12) -> list:
    """
    C{count} scrapes, each on a new connection (the kernel spreads them
    over the workers' sockets).
    """
    return [scrape(node) for _ in range(count)]


def health(node):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.ports['ops']}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_everyScrapeCoversBothWorkers(cluster):
    """With one session on each worker, every scrape counts both sessions and the messages across them."""
    node = cluster.nodes["multi"]

    async def scenario():
        clients = await onePerWorker(node, cluster.redis, WORKERS, "alice@localhost", "alice-pw")
        # the logged-out extra connections are gone from the gauge on their worker
        await eventually(lambda: value(scrape(node), "xmppchat_sessions", transport="c2s") == 2)
        first, second = clients["multi-w0"], clients["multi-w1"]
        for n in range(3):
            first.send_message(mto=str(second.boundjid), mbody=f"across {n}", mtype="chat")
        for _ in range(3):
            await asyncio.wait_for(second.messages.get(), TIMEOUT)
        for samples in scrapes(node):
            assert value(samples, "xmppchat_sessions", transport="c2s") == 2
            assert value(samples, "xmppchat_stanzas_total", kind="message", direction="in") == 3
            assert value(samples, "xmppchat_stanzas_total", kind="message", direction="out") == 3
            assert value(samples, "xmppchat_messages_delivered_total") == 3
            pids = {dict(labels)["pid"] for name, labels in samples if name == "process_resident_memory_bytes"}
            assert len(pids) == 2, pids

        # worker 1 dies: its session leaves the gauge, the counters keep what it counted
        victim = _pidOfWorker(_children(node.process.pid))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len(_children(node.process.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, "the supervisor did not restart the worker"
            await asyncio.sleep(0.1)
        for samples in scrapes(node):
            assert value(samples, "xmppchat_sessions", transport="c2s") == 1
            assert value(samples, "xmppchat_stanzas_total", kind="message", direction="out") == 3
        await first.logout()

    run(scenario())


def _pidOfWorker(pids) -> int:
    """
    The worker process of C{multi-w1}: the one whose command line has
    C{--worker-index 1}.
    """
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"--worker-index\x001" in f.read():
                return pid
    raise AssertionError("no worker 1")


def test_healthNamesRedis(cluster):
    """/health is 200 with storage and Redis answering, 503 naming Redis once it is gone."""
    node = cluster.nodes["multi"]
    assert health(node) == (200, {"status": "ok", "checks": {"storage": "ok", "redis": "ok"}})
    cluster.redis.stop()
    status, body = health(node)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["storage"] == "ok" and body["checks"]["redis"] != "ok"
