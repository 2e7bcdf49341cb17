"""
Integration tests: three xmppchat nodes (twistd subprocesses on port 0)
sharing one SQLite file and a private redis-server, with slixmpp clients
on different nodes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import time

import pytest
from slixmpp.xmlstream import ET

from tests.cluster.live import liveCluster, workerOf
from tests.e2e.test_rosterver import login, query
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

USERS = ("alice", "bob", "carol", "dave", "eve", "frank", "gina", "hank")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("cluster")) as running:
        for i in range(3):
            running.startNode(f"node{i}")
        first = running.nodes["node0"]
        for name in USERS:
            first.adduser(name, f"{name}-pw")
        yield running


async def collect(client, count, timeout=TIMEOUT):
    """
    Bodies of the next C{count} messages (fewer if none arrive for C{timeout}).
    """
    bodies = []
    while len(bodies) < count:
        try:
            message = await asyncio.wait_for(client.messages.get(), timeout)
        except asyncio.TimeoutError:
            break
        bodies.append(message["body"])
    return bodies


async def eventually(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def test_crossNodeChat(cluster):
    """Clients on three nodes chat 1-1: bare-JID delivery reaches resources on two other nodes."""

    async def scenario():
        n = cluster.nodes
        alice0 = Client(n["node0"], "alice@localhost/zero", "alice-pw")
        alice2 = Client(n["node2"], "alice@localhost/two", "alice-pw")
        bob = Client(n["node1"], "bob@localhost", "bob-pw")
        assert await alice0.login() and await alice2.login() and await bob.login()
        await asyncio.sleep(0.3)
        bob.send_message(mto="alice@localhost", mbody="hello both", mtype="chat")
        assert await collect(alice0, 1) == ["hello both"]
        assert await collect(alice2, 1) == ["hello both"]
        alice2.send_message(mto=str(bob.boundjid), mbody="from node2", mtype="chat")
        [received] = [await asyncio.wait_for(bob.messages.get(), TIMEOUT)]
        assert received["body"] == "from node2"
        assert received["from"] == alice2.boundjid
        for c in (alice0, alice2, bob):
            await c.logout()

    run(scenario())


def test_crossNodePresence(cluster):
    """A subscription handshake and presence broadcast between clients on different nodes."""

    async def scenario():
        n = cluster.nodes
        carol = Client(n["node0"], "carol@localhost", "carol-pw")
        dave = Client(n["node1"], "dave@localhost", "dave-pw")
        assert await carol.login() and await dave.login()
        seen = {}
        dave.add_event_handler("presence_available", lambda p: seen.setdefault(p["from"].full, "on"))
        dave.add_event_handler("presence_unavailable", lambda p: seen.__setitem__(p["from"].full, "off"))
        await asyncio.sleep(0.3)
        # slixmpp approves and subscribes back by default: a mutual subscription
        dave.send_presence(pto="carol@localhost", ptype="subscribe")
        await eventually(lambda: seen.get(str(carol.boundjid)) == "on")
        carol.send_presence(pstatus="busy", pshow="dnd")
        carol3 = Client(n["node2"], "carol@localhost/third", "carol-pw")
        assert await carol3.login()
        await eventually(lambda: seen.get(str(carol3.boundjid)) == "on")
        await carol3.logout()
        await eventually(lambda: seen.get(str(carol3.boundjid)) == "off")
        for c in (carol, dave):
            await c.logout()

    run(scenario())


def test_rosterVersionAcrossNodes(cluster):
    """
    Roster versioning (RFC 6121 §2.6) with sessions of one user on three
    nodes: a change on node0 reaches node1 as a push with its version, that
    version gets an empty result on node1 and on node2, and an older one
    the full roster there.
    """

    async def scenario():
        n = cluster.nodes
        first = await login(n["node0"], user="gina")
        second = await login(n["node1"], user="gina")
        old = query(first, await first.get_roster(timeout=TIMEOUT)).get("ver")
        await second.get_roster(timeout=TIMEOUT)
        pushed = asyncio.get_event_loop().create_future()
        second.add_event_handler("roster_update", lambda iq: iq["type"] == "set" and not pushed.done()
                                 and pushed.set_result(iq["roster"]["ver"]))
        # node0 pushes to gina on node1 once the directory told it that she
        # asked for the roster: changes until one is pushed
        for attempt in range(20):
            first.update_roster("hank@localhost", name=f"Hank {attempt}")
            await asyncio.wait([pushed], timeout=0.5)
            if pushed.done():
                break
        assert await asyncio.wait_for(pushed, TIMEOUT) != old
        await asyncio.sleep(1.0)  # the pushes of earlier attempts written meanwhile have arrived
        ver = second.client_roster.version  # slixmpp keeps the version of the last push
        assert query(second, await second.get_roster(timeout=TIMEOUT)) is None
        third = await login(n["node2"], ver, user="gina")
        assert query(third, await third.get_roster(timeout=TIMEOUT)) is None
        stale = await login(n["node2"], old, user="gina")
        full = query(stale, await stale.get_roster(timeout=TIMEOUT))
        assert full.get("ver") == ver and [i.get("jid") for i in full] == ["hank@localhost"]
        for c in (first, second, third, stale):
            await c.logout()

    run(scenario())


def test_blockingAcrossNodes(cluster):
    """
    XEP-0191 across nodes: a block made on one node stops a sender on
    another (whose node had cached the old settings), and an unblock lets
    it through again.
    """

    async def scenario():
        n = cluster.nodes
        gina = Client(n["node0"], "gina@localhost", "gina-pw")
        hank = Client(n["node2"], "hank@localhost", "hank-pw")
        assert await gina.login() and await hank.login()
        await asyncio.sleep(0.3)

        async def blocking(op):
            iq = gina.make_iq_set(ito=None)
            iq.append(ET.fromstring(f"<{op} xmlns='urn:xmpp:blocking'><item jid='hank@localhost'/></{op}>"))
            await iq.send(timeout=TIMEOUT)
            await asyncio.sleep(0.3)  # the change reaches the other nodes

        async def fromHank(body):
            hank.send_message(mto="gina@localhost", mbody=body, mtype="chat")

        await fromHank("one")  # node2 now holds gina's settings
        assert await collect(gina, 1) == ["one"]
        await blocking("block")
        await fromHank("two")
        bounced = await asyncio.wait_for(hank.messages.get(), TIMEOUT)
        assert bounced["type"] == "error" and bounced["body"] == "two"
        await blocking("unblock")
        await fromHank("three")
        assert await collect(gina, 1) == ["three"]
        assert gina.messages.empty()
        for c in (gina, hank):
            await c.logout()

    run(scenario())


def test_groupChatAcrossNodes(cluster):
    """
    A ConnectyCube group dialog's room (XEP-0045) with one occupant on each
    node: every groupchat message reaches the occupants on the two other
    nodes (and its sender's echo), each exactly once.
    """
    from tests.e2e.test_muc import groupDialog, mucClient, restUsers

    n = cluster.nodes
    users = restUsers(n["node0"], ("owner", "member", "third"), prefix=f"group{time.monotonic_ns()}-")
    _, room = groupDialog(n["node0"], users, ["member", "third"])

    async def scenario():
        clients = {"owner": mucClient(n["node0"], users, "owner"),
                   "member": mucClient(n["node1"], users, "member"),
                   "third": mucClient(n["node2"], users, "third")}
        for c in clients.values():
            assert await c.login()
            await asyncio.wait_for(c.plugin["xep_0045"].join_muc_wait(room, str(c.userId), maxstanzas=0),
                                   TIMEOUT)
        await asyncio.sleep(0.3)
        for name, sender in clients.items():
            sender.send_message(mto=room, mbody=f"from {name}", mtype="groupchat")
            for other, c in clients.items():
                got = await asyncio.wait_for(c.messages.get(), TIMEOUT)  # the sender gets its echo too
                assert got["body"] == f"from {name}", (other, got["body"])
                assert got["from"] == f"{room}/{sender.userId}"
        await asyncio.sleep(0.5)
        assert all(c.messages.empty() for c in clients.values()), "a message arrived twice"
        for c in clients.values():
            await c.logout()

    run(scenario())


async def burst(sender, receiver, prefix, total, interrupt):
    """
    Send C{total} chat messages from C{sender} to C{receiver}'s bare JID,
    awaiting C{interrupt(i, received)} after each; return the list of
    bodies received live (still filling) and the receiving task.
    """
    received = []

    async def receive():
        while True:
            received.append((await receiver.messages.get())["body"])

    task = asyncio.ensure_future(receive())
    for i in range(total):
        sender.send_message(mto=receiver.boundjid.bare, mbody=f"{prefix}{i}", mtype="chat")
        await interrupt(i, received)
        await asyncio.sleep(0.002)
    return received, task


async def assertNothingLost(node, user, prefix, total, received):
    """
    Log C{user} in on C{node}: what it did not receive live must come from
    offline storage.  Returns the bodies stored offline.
    """
    client = Client(node, f"{user}@localhost", f"{user}-pw")
    assert await client.login()
    stored = await collect(client, total, timeout=3)
    missing = {f"{prefix}{i}" for i in range(total)} - set(received) - set(stored)
    assert not missing, f"{len(missing)} lost; live {len(received)}, offline {len(stored)}"
    await client.logout()
    return stored


def test_killNodeDuringBurst(cluster):
    """kill -9 of a node during a message burst: every message is delivered or stored offline."""
    victim = cluster.startNode("victim")
    total = 300

    async def scenario():
        eve = Client(cluster.nodes["node0"], "eve@localhost", "eve-pw")
        frank = Client(victim, "frank@localhost", "frank-pw")
        assert await eve.login() and await frank.login()
        await asyncio.sleep(0.3)

        async def interrupt(i, received):
            if i == total // 3:
                await eventually(lambda: len(received) >= 20)
                cluster.kill("victim")

        received, receiver = await burst(eve, frank, "m", total, interrupt)
        receiver.cancel()
        frank.disconnect()
        # eve's node processed everything once it answers a ping sent after the burst
        eve.register_plugin("xep_0199")
        await eve.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
        await asyncio.sleep(4.5)  # expiry 3 s + heartbeat: the victim's entries are gone
        stored = await assertNothingLost(cluster.nodes["node2"], "frank", "m", total, received)
        assert received and stored, f"the kill fell mid-burst: live {len(received)}, offline {len(stored)}"
        print(f"kill -9 mid-burst: {len(received)} live, {len(stored)} from offline storage")
        await eve.logout()

    run(scenario())


def test_redisRestartDuringTraffic(cluster):
    """Redis restarts during traffic: nothing is lost (offline storage meanwhile), and cross-node delivery resumes."""
    total = 200

    async def scenario():
        n = cluster.nodes
        alice = Client(n["node0"], "alice@localhost", "alice-pw")
        bob = Client(n["node1"], "bob@localhost", "bob-pw")
        assert await alice.login() and await bob.login()
        viaStorage = []  # delivered live from offline storage (another node's nudge)
        bob.add_event_handler("message", lambda m: viaStorage.append(m["body"])
                              if m.xml.find("{urn:xmpp:delay}delay") is not None else None)
        await asyncio.sleep(0.3)

        async def interrupt(i, received):
            if i == total // 4:
                await eventually(lambda: len(received) >= 10)
                cluster.redis.stop()
            elif i == total // 2:
                cluster.redis.start()
                for name in ("node0", "node1", "node2"):
                    cluster.waitOnline(name)
                await asyncio.sleep(0.5)  # reconciliation: directory entries loaded

        received, receiver = await burst(alice, bob, "r", total, interrupt)
        alice.send_message(mto="bob@localhost", mbody="after", mtype="chat")
        await eventually(lambda: "after" in received)
        receiver.cancel()
        await bob.logout()
        stored = await assertNothingLost(n["node2"], "bob", "r", total, received)
        assert stored or viaStorage, "some messages crossed the outage through offline storage"
        print(f"Redis restart: {len(received)} live ({len(viaStorage)} of them from offline storage),"
              f" {len(stored)} from offline storage at the next login")
        await alice.logout()

    run(scenario())

def _children(pid: int) -> set:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def test_workersShareOnePort(cluster):
    """--workers 2: two nodes accept on one port; clients landing on different workers chat; a dead worker is restarted."""
    supervisor = cluster.startNode("multi", args=("--workers", "2"), nodeIds=("multi-w0", "multi-w1"))
    redis = cluster.redis

    def placement(client):
        return workerOf(redis, client, ("multi-w0", "multi-w1"))

    async def scenario():
        clients = {}
        for i in range(30):
            c = Client(supervisor, f"alice@localhost/w{i}", "alice-pw")
            assert await c.login()
            await eventually(lambda c=c: placement(c) is not None)
            worker = placement(c)
            if worker in clients:
                await c.logout()
            else:
                clients[worker] = c
            if len(clients) == 2:
                break
        assert len(clients) == 2, "30 connections all went to one worker"
        first, second = clients["multi-w0"], clients["multi-w1"]
        first.send_message(mto=str(second.boundjid), mbody="across workers", mtype="chat")
        received = await asyncio.wait_for(second.messages.get(), TIMEOUT)
        assert received["body"] == "across workers"
        for c in clients.values():
            await c.logout()

    run(scenario())
    before = _children(supervisor.process.pid)
    assert len(before) == 2
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = _children(supervisor.process.pid)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, "the supervisor did not restart the worker"
        time.sleep(0.1)



def test_resumeOnAnotherNode(cluster):
    """slixmpp (xep_0198) on node0 is cut mid-burst and resumes on node2: every message once, in order, same JID."""
    from tests.e2e.test_smacks import SMClient, finishResumed

    n = cluster.nodes
    for name in ("smx-alice", "smx-bob"):
        n["node0"].adduser(name, f"{name}-pw")
    total, cutAt = 100, 30

    async def scenario():
        alice = SMClient(n["node0"], "smx-alice@localhost/phone", "smx-alice-pw", cutAt=cutAt)
        bob = Client(n["node1"], "smx-bob@localhost", "smx-bob-pw")
        assert await alice.login() and await bob.login()
        await asyncio.wait_for(alice.enabled, TIMEOUT)
        redis = cluster.redis
        await eventually(lambda: redis.command("HEXISTS", "xmppchat:localhost:node:node0:sessions",
                                               "smx-alice@localhost/phone") == 1)
        await asyncio.sleep(0.3)  # the directory event reaches node1
        for i in range(total):
            bob.send_message(mto="smx-alice@localhost/phone", mbody=f"m{i}", mtype="chat")
            if i % 10 == 9:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(alice.cut, TIMEOUT)
        assert alice.plugin["xep_0198"].sm_id
        # node0 notices the cut and keeps the session for resumption
        await eventually(lambda: "s for resumption" in n["node0"].log())
        # each test node has its own CA, all with the same name: a fresh context
        alice.ssl_context = ssl.create_default_context()
        alice.ca_certs = n["node2"].ca
        alice.connect("127.0.0.1", n["node2"].ports["c2s"])
        await finishResumed(alice, bob, "smx-alice@localhost/phone", total)

    run(scenario())
    assert "smx-alice@localhost/phone handed over to node2" in n["node0"].log()
    assert "smx-alice@localhost/phone resumed here, taken over from node0" in n["node2"].log()


def test_roomSurvivesOwnerKill(cluster):
    """kill -9 of a room's owner node: the occupants on node1 and node2 stay in the room (no rejoin) and chat."""
    from tests.e2e.test_muc import groupDialog, mucClient, restUsers, statusCodes
    from tests.e2e.test_rest import call

    n = cluster.nodes
    victim = cluster.startNode(f"roomowner{time.monotonic_ns()}")
    victimId = next(k for k, v in cluster.nodes.items() if v is victim)
    users = restUsers(n["node1"], ("owner", "member", "third"), prefix=f"room{time.monotonic_ns()}-")
    dialogId, room = groupDialog(n["node1"], users, ["member", "third"])
    key = f"xmppchat:localhost:room:{room}"

    async def scenario():
        owner = mucClient(victim, users, "owner")
        member = mucClient(n["node1"], users, "member")
        third = mucClient(n["node2"], users, "third")
        for c in (owner, member, third):
            assert await c.login()
        await asyncio.wait_for(owner.plugin["xep_0045"].join_muc_wait(room, str(owner.userId), maxstanzas=0),
                               TIMEOUT)
        assert cluster.redis.command("GET", key) == victimId.encode()
        for c in (member, third):
            await asyncio.wait_for(c.plugin["xep_0045"].join_muc_wait(room, str(c.userId), maxstanzas=0),
                                   TIMEOUT)
        await asyncio.sleep(0.3)
        member.presences.clear()
        third.presences.clear()
        killed = time.monotonic()
        cluster.kill(victimId)
        owner.disconnect()

        async def occupants():
            iq = await third.plugin["xep_0030"].get_items(jid=room, timeout=TIMEOUT)
            return sorted(item[0].rpartition("/")[2] for item in iq["disco_items"]["items"])

        await eventually(lambda: cluster.redis.command("GET", key) in (b"node1", b"node2"), timeout=15)
        expected = sorted([str(member.userId), str(third.userId)])
        deadline = time.monotonic() + 15
        while await occupants() != expected:
            assert time.monotonic() < deadline, "the room was not rebuilt"
            await asyncio.sleep(0.1)
        rebuilt = time.monotonic() - killed
        await asyncio.sleep(max(0.0, 4.5 - rebuilt))  # both survivors past the expiry
        member.send_message(mto=room, mbody="after the kill", mtype="groupchat")
        got = await asyncio.wait_for(third.messages.get(), TIMEOUT)
        assert got["body"] == "after the kill" and got["from"] == f"{room}/{member.userId}"
        # the occupant lost with the owner node is announced gone, once; no other join/leave
        # presence, at most one self-presence each
        gone = str(owner.userId)
        for c in (member, third):
            await eventually(lambda c=c: [p for p in c.presences if str(p["from"].resource) == gone])
        await asyncio.sleep(0.5)
        for c in (member, third):
            seen = [(str(p["from"].resource), p["type"]) for p in c.presences]
            assert seen.count((gone, "unavailable")) == 1
            assert set(seen) <= {(gone, "unavailable"), (str(c.userId), "available")}, seen
            assert len(seen) <= 2, seen
        newOwner = cluster.redis.command("GET", key).decode()
        print(f"room failover: rebuilt {rebuilt:.2f} s after kill -9 (owner now {newOwner})")

        # a REST change through the node that does not own the room reaches the room: a kick
        def kicked(c):
            return [p for p in c.presences if p["type"] == "unavailable"
                    and str(p["from"].resource) == str(third.userId) and 307 in statusCodes(p)]

        status, body = call(n["node2" if newOwner == "node1" else "node1"], "PUT",
                            f"/chat/Dialog/{dialogId}.json",
                            {"pull_all": {"occupants_ids": [third.userId]}}, token=users["owner"][0])
        assert status == 200, body
        await eventually(lambda: kicked(third) and kicked(member))
        assert 110 in statusCodes(kicked(third)[0])
        for c in (member, third):
            await c.logout()
def test_killNodeWithUnackedQueue(cluster):
    """kill -9 of the node holding a client's unacknowledged XEP-0198 queue: a survivor stores it offline, none lost."""
    from tests.e2e.test_smacks import SMClient

    n = cluster.nodes
    redis = cluster.redis
    victim = cluster.startNode("smq-victim")
    for name in ("smq-rcpt", "smq-sender"):
        n["node0"].adduser(name, f"{name}-pw")
    total = 50

    async def scenario():
        rcpt = SMClient(victim, "smq-rcpt@localhost/phone", "smq-rcpt-pw")
        rcpt.plugin["xep_0198"].send_ack = lambda: None  # receives, never acknowledges
        sender = Client(n["node0"], "smq-sender@localhost", "smq-sender-pw")
        assert await rcpt.login() and await sender.login()
        await asyncio.wait_for(rcpt.enabled, TIMEOUT)
        smid = rcpt.plugin["xep_0198"].sm_id
        assert smid
        key = f"xmppchat:localhost:smq:{smid}"
        await eventually(lambda: redis.command("HEXISTS", "xmppchat:localhost:node:smq-victim:sessions",
                                               "smq-rcpt@localhost/phone") == 1)
        await asyncio.sleep(0.3)  # the directory event reaches node0
        rcpt.wanted = f"u{total - 1}"
        for i in range(total):
            sender.send_message(mto="smq-rcpt@localhost", mbody=f"u{i}", mtype="chat")
        await asyncio.wait_for(rcpt.everything, TIMEOUT)
        assert rcpt.bodies == [f"u{i}" for i in range(total)]

        def mirrored():
            entries = redis.command("LRANGE", key, 0, -1) or []
            return sum(1 for e in entries if e != b"-") == total

        await eventually(mirrored)  # every unacknowledged message is in Redis ...
        await asyncio.sleep(0.3)  # ... and acknowledged on the bus: node0 forgot them
        cluster.kill("smq-victim")
        rcpt.transport.abort()
        # the client logs in again at once, on another node ...
        again = Client(n["node2"], "smq-rcpt@localhost/laptop", "smq-rcpt-pw")
        again.register_plugin("xep_0203")
        assert await again.login()
        # ... a survivor notices (alive key expired) and moves the queue to
        # offline storage, and from there to the new session
        await eventually(lambda: redis.command("EXISTS", key) == 0, timeout=20)
        stored = []
        while len(stored) < total:
            try:
                stored.append(await asyncio.wait_for(again.messages.get(), 5))
            except asyncio.TimeoutError:
                break
        bodies = [m["body"] for m in stored]
        assert sorted(bodies) == sorted(f"u{i}" for i in range(total)), f"{len(bodies)} of {total}"
        assert all(m["delay"]["stamp"] is not None for m in stored)
        await again.logout()
        await sender.logout()

    run(scenario())
