"""
Real-client stress test of the offline/online transition (issue 14): B logs
in and sends initial presence while A sends B a message to B's bare JID at
once; every message must reach B's live session, never wait in offline
storage for B's next login.  Run against one xmppchat process, against
C{--workers 2} (cluster mode, private redis-server) and, as the reference,
against a private Prosody.

Each iteration: B connects (STARTTLS, SASL PLAIN, bind), asks for its
roster (RFC 6121 §2.2) and sends initial presence, and A sends B a message:
- C{on-presence}: when B's new resource's presence reaches A;
- C{after-send}: right after B sent its presence;
- C{with-presence}: at the same instant, A's message first on the wire, so
  it may reach the server just before B's presence (the issue's race:
  stored offline while B is becoming available, it must still be
  delivered to that session).
B waits for that message (counted as slow after L{WAIT} seconds, as not
delivered after L{SLOW} more), then disconnects.  The five message kinds
of the issue rotate.  Pairs of accounts run side by side (L{PAIRS}) so
that the bound on waiting does not add up; each pair's A stays connected
throughout.  The clients are L{tests.e2e.rawclient}:
slixmpp costs ~60 ms of CPU per login, which would turn 600 logins per
server into minutes.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import xml.etree.ElementTree as ET

import pytest

from tests.cluster.live import Cluster, RedisProcess, requireRedis
from tests.differential.observe import befriend
from tests.differential.prosody import ProsodyServer, requireProsody
from tests.e2e.conftest import startServer, stopServer
from tests.e2e.rawclient import NS_CLIENT, RawClient, body
from tests.e2e.test_slixmpp import run

ITERATIONS = 200
PAIRS = 20
WAIT = 1.0  # seconds: loopback delivery takes milliseconds; later counts as slow
SLOW = 2.0  # seconds more B waits before it counts its message as not delivered

# (kind, payload beside the body): XEP-0333, XEP-0085, XEP-0308 and an
# extension no server knows.
KINDS = [
    ("chat", None),
    ("markable", "<markable xmlns='urn:xmpp:chat-markers:0'/>"),
    ("chatstate", "<active xmlns='http://jabber.org/protocol/chatstates'/>"),
    ("correction", "<replace xmlns='urn:xmpp:message-correct:0' id='stress-original'/>"),
    ("unknown", "<thing xmlns='urn:example:stress:unknown'><inner/></thing>"),
]


MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"


class Target:
    """
    A server under test and how to read what its offline storage holds.
    """

    def __init__(self, name, server, offline):
        self.name = name
        self.server = server
        self.offline = offline

    def leftovers(self, settle: float = 3.0) -> list:
        """
        What is still in offline storage once the server is quiet: the
        stored rows of messages delivered from storage are deleted after
        the delivery, so wait up to C{settle} seconds for them to go.
        """
        deadline = time.monotonic() + settle
        while (left := self.offline()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def sqliteOffline(path) -> list:
    """
    The bodies of the rows of xmppchat's C{offline} table
    (xmppchat/storage/sqlite.py), read only.
    """
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT stanza FROM offline ORDER BY id").fetchall()
    return [next((e.text for e in ET.fromstring(stanza).iter() if e.tag.rpartition("}")[2] == "body"),
                 stanza[:80]) for (stanza,) in rows]


def prosodyOffline(server: ProsodyServer) -> list:
    """
    One entry per item of Prosody's offline archives (C{item(...)} in its
    files, a file going when it is emptied).
    """
    folder = server.directory / "data" / "localhost" / "offline"
    return [f"{path.stem}: item" for path in folder.glob("*.list")
            for _ in re.findall(r"^item\(", path.read_text(), re.M)]


@pytest.fixture(scope="module", params=["xmppchat", "xmppchat-workers2", "prosody"])
def target(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "xmppchat":
        server = startServer(directory)
        try:
            yield Target(request.param, server, lambda: sqliteOffline(directory / "data" / "db.sqlite3"))
        finally:
            stopServer(server)
    elif request.param == "xmppchat-workers2":
        requireRedis()
        redis = RedisProcess(directory).start()
        cluster = Cluster(directory, redis)
        try:
            server = cluster.startNode("stress", args=("--workers", "2"), nodeIds=("stress-w0", "stress-w1"))
            yield Target(request.param, server, lambda: sqliteOffline(cluster.database))
        finally:
            cluster.stop()
            redis.stop()
    else:
        requireProsody()
        server = ProsodyServer(directory).start()
        try:
            yield Target(request.param, server, lambda: prosodyOffline(server))
        finally:
            server.stop()


@pytest.fixture(scope="module")
def pairs(target):
    """
    PAIRS pairs of accounts C{stress<k>-a} and C{stress<k>-b}, subscribed
    to each other's presence.
    """
    prefixes = [f"stress{k}" for k in range(PAIRS)]
    target.server.addusers([f"{prefix}-{who}" for prefix in prefixes for who in ("a", "b")])

    async def befriendAll():
        await asyncio.gather(*(befriend(target.server, prefix, "a", "b") for prefix in prefixes))

    run(befriendAll())
    return prefixes


class Tally:
    """
    Where each message went: B's live session (within L{WAIT} seconds, or
    later but before B gave up at L{WAIT} + L{SLOW}), a later session of B
    (it waited in offline storage), or nowhere seen; and the rounds in
    which A never saw B's presence (so never sent, C{on-presence} only).
    """

    def __init__(self):
        self.sent = set()
        self.live = set()
        self.slow = set()
        self.late = set()
        self.payloadLost = set()
        self.noPresence = []
        self.latencies = []

    def summary(self) -> str:
        missing = self.sent - self.live
        order = sorted(missing, key=lambda text: int(text.split()[-1]))
        slowest = max(self.latencies, default=0)
        return (f"{len(self.live)}/{len(self.sent)} reached B's live session "
                f"({len(self.slow)} after more than {WAIT} s, slowest {slowest:.2f} s); "
                f"{len(missing)} did not ({len(missing & self.late)} of them seen at a later login), "
                f"first: {order[:3]}; payload lost on {len(self.payloadLost)}; "
                f"{len(self.noPresence)} rounds in which A never saw B's presence")


def messageXML(to: str, text: str, kind: str) -> str:
    payload = dict(KINDS)[kind] or ""
    return (f"<message to='{to}' type='chat' id='{text.replace(' ', '-')}'>"
            f"<body>{text}</body>{payload}</message>")


def payloadKept(stanza, kind) -> bool:
    payload = dict(KINDS)[kind]
    return payload is None or stanza.find(ET.fromstring(payload).tag) is not None


async def runPair(server, prefix, variant, iterations, tally):
    """
    C{iterations} rounds of B logging in while A sends it a message.
    """
    bBare = f"{prefix}-b@{server.domain}"
    a = RawClient(server)
    await a.login(f"{prefix}-a", f"{prefix}-a-pw")
    a.send("<presence/>")
    current = {}

    def onStanza(stanza):
        # on-presence: A sends as soon as B's new resource is seen available.
        if variant == "on-presence" and stanza.tag == PRESENCE and stanza.get("type") is None \
                and stanza.get("from") == current.get("b") and not current["sent"]:
            current["sent"] = True
            a.send(current["message"])

    a.onStanza = onStanza
    loop = asyncio.get_running_loop()
    for i in range(iterations):
        kind = KINDS[i % len(KINDS)][0]
        text = f"{prefix} {variant} {i}"
        b = RawClient(server)
        current.update(b=None, sent=False, message=messageXML(bBare, text, kind))
        current["b"] = await b.login(f"{prefix}-b", f"{prefix}-b-pw")
        # RFC 6121 §2.2: a client asks for the roster before initial presence.
        await b.request("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>", "roster")
        if variant == "with-presence":  # A's message and B's presence leave together
            current["sent"] = True
            a.send(current["message"])
        b.send("<presence/>")
        if variant == "after-send":
            current["sent"] = True
            a.send(current["message"])
        started = loop.time()
        while text not in tally.live:
            waited = loop.time() - started
            if not current["sent"] and waited >= WAIT:
                tally.noPresence.append(i)
                break
            if waited >= WAIT + SLOW:
                break
            limit = (WAIT + SLOW if current["sent"] else WAIT) - waited
            try:
                stanza = await asyncio.wait_for(b.stanzas.get(), limit)
            except asyncio.TimeoutError:
                continue
            got = body(stanza) if stanza.tag == MESSAGE else None
            if got == text:
                tally.live.add(got)
                tally.latencies.append(loop.time() - started)
                if loop.time() - started > WAIT:
                    tally.slow.add(got)
                if not payloadKept(stanza, kind):
                    tally.payloadLost.add(got)
            elif got is not None:
                tally.late.add(got)
        if current["sent"]:
            tally.sent.add(text)
        current["b"] = None
        await b.close()
    await a.close()


@pytest.mark.parametrize("variant", ["on-presence", "after-send", "with-presence"])
def test_messageReachesSessionComingOnline(target, pairs, variant):
    """RFC 6121 §8.5.2.1.1 and XEP-0160: a message to a bare JID sent while B comes online reaches B's live session, and none is left in offline storage."""
    tally = Tally()
    perPair = ITERATIONS // len(pairs)

    async def stress():
        await asyncio.gather(*(runPair(target.server, prefix, variant, perPair, tally) for prefix in pairs))

    run(stress())
    leftovers = target.leftovers()
    print(f"{target.name}, {variant}: {tally.summary()}; {len(leftovers)} left in offline storage")
    # A leftover of a message B got live is a second copy (delivered twice).
    copies = [text for text in leftovers if text in tally.live]
    delivered = tally.live == tally.sent and not tally.noPresence and not leftovers
    assert delivered, (f"{target.name}, {variant}: {tally.summary()}; {len(leftovers)} left in offline "
                       f"storage ({len(copies)} of them already delivered live): {leftovers[:5]}")
