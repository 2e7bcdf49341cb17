"""
Cluster workers' logs (issue 18 item 2): with C{--workers 2} the
supervisor's log has each worker's lines as readable lines of its own
format, with the worker's level, namespace and index, instead of the raw
Twisted JSON records the workers write to their stdout.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster.live import liveCluster, workerOf
from tests.e2e.test_slixmpp import Client, run

TIMEOUT = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("cluster-logs")) as running:
        yield running


def test_workerLinesKeepLevelAndNamespace(cluster):
    """A login on a worker reaches the supervisor's log as that worker's xmppchat.events info line."""
    supervisor = cluster.startNode("multi", args=("--workers", "2"), nodeIds=("multi-w0", "multi-w1"))
    supervisor.adduser("alice", "alice-pw")

    async def scenario():
        client = Client(supervisor, "alice@localhost/desk", "alice-pw")
        assert await client.login()
        deadline = time.monotonic() + TIMEOUT
        while (worker := workerOf(cluster.redis, client, ("multi-w0", "multi-w1"))) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        await client.logout()
        return worker[-1]

    index = run(scenario())
    pattern = (rf"\[xmppchat\.events#info\] \[worker {index}\] login alice@localhost/desk via c2s "
               r"\(SCRAM-SHA-[0-9]+\) from 127\.0\.0\.1$")
    deadline = time.monotonic() + TIMEOUT
    while not any(re.search(pattern, line) for line in supervisor.log().splitlines()):
        assert time.monotonic() < deadline, supervisor.log()
        time.sleep(0.05)
    log = supervisor.log()
    for worker in (0, 1):
        assert re.search(rf"\[xmppchat\.service\.XMPPChatService#info\] \[worker {worker}\] xmppchat serving "
                         r"localhost on c2s=", log), log
        assert f"[xmppchat.events#info] [worker {worker}] cluster node multi-w{worker} joined" in log
    assert "\x1e" not in log and '"log_format"' not in log and "Starting factory" not in log
