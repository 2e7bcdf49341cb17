"""
Integration test of issue 16 item 5 under C{--workers 2}: two worker
processes on one port (a private redis-server, one SQLite file), a stock
client on each making and joining an open instant room with its own nick.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.live import liveCluster, workerOf
from tests.cluster.test_live import eventually
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

ROOM = "workers-lobby@muc.localhost"


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("mucworkers")) as running:
        supervisor = running.startNode("multi", args=("--workers", "2"), nodeIds=("multi-w0", "multi-w1"))
        for name in ("alice", "bob"):
            supervisor.adduser(name, f"{name}-pw")
        yield running, supervisor


def test_openInstantRoomFromTwoWorkers(workers):
    """alice (one worker) makes an instant room as Alice; bob (the other worker) joins as Bobby and talks."""
    running, supervisor = workers
    redis = running.redis

    def placement(client):
        return workerOf(redis, client, ("multi-w0", "multi-w1"))

    async def connect(name, avoid=None):
        for i in range(30):
            c = Client(supervisor, f"{name}@localhost/m{i}", f"{name}-pw")
            c.register_plugin("xep_0045")
            c.register_plugin("xep_0004")
            assert await c.login()
            await eventually(lambda c=c: placement(c) is not None)
            if placement(c) != avoid:
                return c
            await c.logout()
        raise AssertionError("30 connections all went to one worker")

    async def scenario():
        alice = await connect("alice")
        bob = await connect("bob", avoid=placement(alice))
        muc = alice.plugin["xep_0045"]
        joined = await asyncio.wait_for(muc.join_muc_wait(ROOM, "Alice", maxstanzas=0), TIMEOUT)
        assert 201 in joined[0]["muc"]["status_codes"]
        await asyncio.wait_for(muc.set_room_config(ROOM, alice.plugin["xep_0004"].make_form(ftype="submit")),
                               TIMEOUT)
        joined = await asyncio.wait_for(bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bobby", maxstanzas=0),
                                        TIMEOUT)
        assert joined[0]["from"] == f"{ROOM}/Bobby"
        assert "Alice" in {p["from"].resource for p in joined[2]}
        await eventually(lambda: "Bobby" in muc.get_roster(ROOM))
        bob.send_message(mto=ROOM, mbody="from the other worker", mtype="groupchat")
        got = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        while got["body"] != "from the other worker":
            got = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        assert got["from"] == f"{ROOM}/Bobby"
        await alice.logout()
        await bob.logout()

    run(scenario())
