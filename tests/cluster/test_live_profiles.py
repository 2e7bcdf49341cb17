"""
Issue 16 item 7 on a real cluster: two xmppchat nodes (twistd, one SQLite
file, a private redis-server).  A vCard photo set through one node is in
the XEP-0153 hash that the user's session on the other node puts in its
presence: the other node's cached hash does not go stale.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.live import Cluster, RedisProcess, requireRedis
from tests.differential.observe import befriend
from tests.e2e.test_profiles import NS_UPDATE, PHOTO_VCARD, SHA1, request
from tests.e2e.test_slixmpp import TIMEOUT, Client, run


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    requireRedis()
    directory = tmp_path_factory.mktemp("profiles-cluster")
    redis = RedisProcess(directory).start()
    running = Cluster(directory, redis)
    try:
        for i in range(2):
            running.startNode(f"node{i}")
        running.nodes["node0"].addusers(["live-alice", "live-bob"])
        yield running
    finally:
        running.stop()
        redis.stop()


def test_avatarHashFreshOnTheOtherNode(cluster):
    """alice sets a vCard photo on node0; her presence from node1 carries its hash to bob."""
    node0, node1 = cluster.nodes["node0"], cluster.nodes["node1"]

    async def scenario():
        await befriend(node0, "live", "alice", "bob")
        phone = Client(node0, "live-alice@localhost/phone", "live-alice-pw")
        desk = Client(node1, "live-alice@localhost/desk", "live-alice-pw")
        bob = Client(node0, "live-bob@localhost", "live-bob-pw")
        hashes: asyncio.Queue = asyncio.Queue()
        bob.add_event_handler("presence_available", lambda p: hashes.put_nowait(
            (str(p["from"]), p.xml.findtext(f"{{{NS_UPDATE}}}x/{{{NS_UPDATE}}}photo"))))
        assert await bob.login() and await phone.login() and await desk.login()
        await asyncio.sleep(0.5)  # node1 has read alice's (empty) hash
        await request(phone, "set", PHOTO_VCARD)
        await asyncio.sleep(0.5)  # the change reaches node1 through Redis
        desk.send_presence(pstatus="from the desk")
        while True:
            sender, photo = await asyncio.wait_for(hashes.get(), TIMEOUT)
            if sender == str(desk.boundjid) and photo is not None:
                break
        for client in (phone, desk, bob):
            await client.logout()
        return photo

    assert run(scenario()) == SHA1
