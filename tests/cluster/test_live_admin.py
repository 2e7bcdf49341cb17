"""
Issue 18 item 4 in a real cluster: a supervisor with two workers (two
cluster nodes sharing every port, the C{[ops]} listener included) and a
private redis-server.  Whichever worker answers an admin API request, it
acts on the sessions of both: listing, counting, announcing, kicking.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.live import liveCluster, workerOf
from tests.cluster.test_live import eventually
from tests.e2e.test_adminapi import KEY, api, streamErrors
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

WORKERS = ("admin-w0", "admin-w1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("admincluster")) as running:
        # session_recheck_seconds far away: what ends a stream here is the API
        supervisor = running.startNode("admin", args=("--workers", "2"), nodeIds=WORKERS, extra=f"""
[limits]
session_recheck_seconds = 3600

[ops]
enabled = true
interface = "127.0.0.1"
port = 0
admin_key = "{KEY}"
""")
        supervisor.addusers(["alice", "bob"])
        yield running, supervisor


async def onePerWorker(supervisor, redis, user):
    """
    Two sessions of C{user}, one on each worker.
    """
    clients = {}
    for i in range(40):
        client = Client(supervisor, f"{user}@localhost/r{i}", f"{user}-pw")
        assert await client.login()
        await eventually(lambda c=client: workerOf(redis, c, WORKERS) is not None)
        worker = workerOf(redis, client, WORKERS)
        if worker in clients:
            await client.logout()
        else:
            clients[worker] = client
        if len(clients) == 2:
            return clients
    raise AssertionError("40 connections all went to one worker")


def test_adminActsOnBothWorkers(cluster):
    """sessions/stats/announce see both workers' sessions; one kick ends the sessions on both workers."""
    running, supervisor = cluster

    async def scenario():
        clients = await onePerWorker(supervisor, running.redis, "alice")
        fulls = {worker: str(c.boundjid) for worker, c in clients.items()}
        errors = {worker: streamErrors(c) for worker, c in clients.items()}
        for _ in range(4):  # whichever worker answers
            status, body, _ = await asyncio.to_thread(api, supervisor, "GET", "sessions?user=alice@localhost")
            assert status == 200 and body["unreachable"] == []
            assert {(s["jid"], s["node"]) for s in body["sessions"]} == {
                (full, worker) for worker, full in fulls.items()}
            status, stats, _ = await asyncio.to_thread(api, supervisor, "GET", "stats")
            assert stats["sessions"]["total"] == 2
            assert sorted(n["node"] for n in stats["nodes"]) == list(WORKERS)
        status, body, _ = await asyncio.to_thread(api, supervisor, "POST", "announce", {"body": "hello all"})
        assert (status, body["online"]) == (200, 2)
        for client in clients.values():
            message = await asyncio.wait_for(client.messages.get(), TIMEOUT)
            assert (message["type"], message["body"]) == ("headline", "hello all")
        done = await asyncio.to_thread(supervisor.admin, "kick", "alice@localhost", "--reason", "bye")
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.split()) == sorted(["kicked"] * 2 + list(fulls.values()))
        for worker in WORKERS:  # one of them was on the other worker
            assert await asyncio.wait_for(errors[worker], TIMEOUT) == "policy-violation", worker

    run(scenario())


def test_deluserEndsASessionOnTheOtherWorker(cluster):
    """admin deluser through the API ends the user's sessions on both workers at once."""
    running, supervisor = cluster

    async def scenario():
        clients = await onePerWorker(supervisor, running.redis, "bob")
        errors = [streamErrors(c) for c in clients.values()]
        done = await asyncio.to_thread(supervisor.admin, "deluser", "bob")
        assert done.returncode == 0, done.stderr
        for error in errors:
            assert await asyncio.wait_for(error, 5) == "not-authorized"

    run(scenario())
