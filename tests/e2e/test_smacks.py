"""
Real-client tests of XEP-0198: slixmpp (plugin xep_0198) against a real
server over loopback, its TCP connection cut in the middle of a burst.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

RESUME_TIMEOUT = 3
BURST = 100
CUT_AT = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("smacks"), f"""
[smacks]
resume_timeout = {RESUME_TIMEOUT}
request_every = 5
""")
    names = ("sm-alice", "sm-bob", "sm-carol", "sm-dave", "sm-erin", "sm-frank")
    done = running.admin("import-users", "-", stdin="".join(f"{n} {n}-pw\n" for n in names))
    assert done.returncode == 0, done.stderr
    yield running
    stopServer(running)


class SMClient(Client):
    """
    A slixmpp client with stream management (and resumption) that cuts its
    own TCP connection, without closing the stream, after C{cutAt} messages.
    """

    def __init__(self, server, jid, password, cutAt=None):
        Client.__init__(self, server, jid, password, "SCRAM-SHA-256")
        self.register_plugin("xep_0198")
        self.register_plugin("xep_0203")
        self.cutAt = cutAt
        self.bodies: list[str] = []
        self.wanted = None
        self.everything = asyncio.get_event_loop().create_future()
        self.enabled = asyncio.get_event_loop().create_future()
        self.resumed = asyncio.get_event_loop().create_future()
        self.cut = asyncio.get_event_loop().create_future()
        self.add_event_handler("message", self._message)
        self.add_event_handler("sm_enabled", lambda _: self._settle(self.enabled))
        self.add_event_handler("session_resumed", lambda _: self._settle(self.resumed))
        self.add_event_handler("disconnected", lambda _: self._settle(self.cut))

    @staticmethod
    def _settle(future):
        if not future.done():
            future.set_result(True)

    def _message(self, message):
        body = message["body"]
        if not body:
            return
        self.bodies.append(body)
        if self.cutAt is not None and len(self.bodies) == self.cutAt and self.transport is not None:
            self.transport.abort()  # no </stream>: the stream is left unfinished
        if body == self.wanted:
            self._settle(self.everything)


def offlineCount(server, localpart):
    with sqlite3.connect(server.directory / "data" / "db.sqlite3") as db:
        return db.execute("SELECT count(*) FROM offline WHERE localpart = ?", (localpart,)).fetchone()[0]


async def offlineSettled(server, localpart):
    """Wait until the user has offline messages and their number stops changing."""
    previous = -1
    for _ in range(100):
        count = offlineCount(server, localpart)
        if count and count == previous:
            return
        previous = count
        await asyncio.sleep(0.25)
    raise AssertionError(f"offline storage of {localpart} did not settle: {previous}")


async def cutMidBurst(server, receiver, sender, to):
    """
    Log C{receiver} in (resource C{phone}, stream management with
    resumption) and C{sender}; the sender sends BURST numbered messages to
    C{to}, yielding to the loop every ten, and the receiver's connection is
    cut after CUT_AT of them.  Returns both clients.
    """
    receiving = SMClient(server, f"{receiver}@localhost/phone", f"{receiver}-pw", cutAt=CUT_AT)
    sending = Client(server, f"{sender}@localhost", f"{sender}-pw", "SCRAM-SHA-256")
    assert await receiving.login() and await sending.login()
    await asyncio.wait_for(receiving.enabled, TIMEOUT)
    for i in range(BURST):
        sending.send_message(mto=to, mbody=f"m{i}", mtype="chat")
        if i % 10 == 9:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(receiving.cut, TIMEOUT)
    seen = receiving.bodies
    assert len(seen) >= CUT_AT and seen == [f"m{i}" for i in range(len(seen))]
    return receiving, sending


async def finishResumed(alice, bob, jid, total):
    """
    After C{alice} (an L{SMClient}) reconnected: it resumes as C{jid}, one
    more message from C{bob} arrives, and it received m0..m<total-1> then
    that one, each once, in order; both log out.
    """
    await asyncio.wait_for(alice.resumed, TIMEOUT)
    assert str(alice.boundjid) == jid
    alice.wanted = "end"
    bob.send_message(mto=jid, mbody="end", mtype="chat")
    await asyncio.wait_for(alice.everything, TIMEOUT)
    assert alice.bodies == [f"m{i}" for i in range(total)] + ["end"]
    await alice.logout()
    await bob.logout()


def test_resumeAfterCutDeliversExactlyOnceInOrder(server):
    """A client cut off mid-burst resumes: all 100 messages arrive exactly once, in order, none from offline."""

    async def scenario():
        alice, bob = await cutMidBurst(server, "sm-alice", "sm-bob", "sm-alice@localhost/phone")
        assert alice.plugin["xep_0198"].sm_id
        alice.connect("127.0.0.1", server.ports["c2s"])
        await finishResumed(alice, bob, "sm-alice@localhost/phone", BURST)

    run(scenario())
    assert "resumed with" in server.log()


def test_neverResumedGoesToOfflineStorage(server):
    """A client cut off mid-burst never comes back: after the window, the rest comes from offline storage at next login."""

    async def scenario():
        carol, dave = await cutMidBurst(server, "sm-carol", "sm-dave", "sm-carol@localhost")
        first = list(carol.bodies)
        # the window passes; the unacknowledged rest lands in offline storage
        await asyncio.sleep(RESUME_TIMEOUT)
        await offlineSettled(server, "sm-carol")
        later = SMClient(server, "sm-carol@localhost/laptop", "sm-carol-pw")
        later.wanted = f"m{BURST - 1}"
        delays = []
        later.add_event_handler("message", lambda m: delays.append(m["delay"]["stamp"]))
        assert await later.login()
        await asyncio.wait_for(later.everything, TIMEOUT)
        offline = later.bodies
        start = int(offline[0][1:])
        # what was never acknowledged comes back (some of it may have been seen before the cut)
        assert start <= len(first)
        assert offline == [f"m{i}" for i in range(start, BURST)]
        assert all(stamp is not None for stamp in delays)
        await later.logout()
        await dave.logout()

    run(scenario())


def test_ackMeansStored(server):
    """A message to an offline user is acknowledged (<a/>) only once it is committed to the database."""

    async def scenario():
        erin = SMClient(server, "sm-erin@localhost/phone", "sm-erin-pw")
        assert await erin.login()
        await asyncio.wait_for(erin.enabled, TIMEOUT)
        acked = asyncio.get_running_loop().create_future()

        def onAck(a):
            if a["h"] >= 1 and not acked.done():
                # read the server's database the moment the ack arrives
                acked.set_result(offlineCount(server, "sm-frank"))

        erin.register_handler(Callback("ack watch", MatchXPath("{urn:xmpp:sm:3}a"), onAck, instream=True))
        # the message and the request in one write, so the request arrives at once
        erin.send_raw("<message type='chat' to='sm-frank@localhost' id='k1'><body>keep this</body></message>"
                      "<r xmlns='urn:xmpp:sm:3'/>")
        assert await asyncio.wait_for(acked, TIMEOUT) == 1
        await erin.logout()

    run(scenario())
