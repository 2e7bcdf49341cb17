"""
Memory bounds under hostile input (RFC 6120 §13.12: resource exhaustion):
what a client can make the server keep is capped by a configured limit,
or not kept at all.
"""

from __future__ import annotations

import gc
import tracemalloc

from twisted.internet import error
from twisted.python import failure
from twisted.words.protocols.jabber import jid as twistedJID

from tests.fuzz.helpers import HEADER, LoggedFailures, TCPClient, tcpFactory
from tests.fuzz.test_tcp_stream import Pair, expectStreamError
from tests.helpers import HostHarness
from xmppchat import jid


def lost(client: TCPClient) -> None:
    client.proto.connectionLost(failure.Failure(error.ConnectionDone()))


def test_tricklingStanzaBounded():
    """A never-ending stanza trickled in 1 KiB pieces is cut at max_stanza_bytes; the parser never holds much more."""
    pair = Pair(limits={"max_stanza_bytes": 20000, "ping_interval": 0})
    client = pair.connect()
    client.login("mallory", "mallory-pw")
    client.send("<message to='alice@localhost'><body>")
    tracemalloc.start()
    try:
        sent = 0
        while not client.closed and sent < 200_000:
            client.send("x" * 1024)
            sent += 1024
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert expectStreamError(client, {"policy-violation"})
    assert sent <= 20000 + 1024
    assert peak < 20 * 20000, peak


def test_unansweredIQsKeepNoState():
    """Thousands of IQs to a client that never answers leave nothing behind on the server."""
    pair = Pair()
    iq = "<iq to='{}' type='get' id='q{}'><query xmlns='jabber:iq:version'/></iq>"
    tracemalloc.start()
    try:
        for i in range(200):  # warm up caches and allocator pools
            pair.alice.send(iq.format(pair.bobJID, i))
        pair.bob.transport.clear()
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for i in range(5000):
            pair.alice.proto.dataReceived(iq.format(pair.bobJID, i).encode())
            pair.bob.transport.clear()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 100_000, after - before
    pair.stillRoutes()


def test_slowReaderStopsBeingRead():
    """When a client's write buffer is full, the server stops reading from it (no more answers queued)."""
    pair = Pair()
    pair.alice.proto.pauseProducing()  # what Twisted does when its buffer passes 64 KiB
    assert pair.alice.transport.producerState == "paused"
    pair.alice.proto.resumeProducing()
    assert pair.alice.transport.producerState == "producing"
    assert pair.alice.transport.producer is pair.alice.proto


def test_slowReaderDropped():
    """A client that stops reading is dropped once max_unsent_bytes more are queued for it."""
    pair = Pair(limits={"max_unsent_bytes": 50_000, "ping_interval": 0})
    with LoggedFailures() as failures:
        pair.bob.proto.pauseProducing()
        pair.bob.transport.clear()
        body = "y" * 1000
        for i in range(100):
            pair.alice.send(f"<message to='bob@localhost' type='chat' id='{i}'><body>{body}</body></message>")
            if pair.bob.transport.disconnected:
                break
        assert pair.bob.transport.disconnected  # aborted, not a graceful close
        assert 45_000 < len(pair.bob.transport.value()) <= 50_000
        lost(pair.bob)
        assert not pair.h.host.sessions.isConnected("bob@localhost")
        # bob's messages now go offline, alice is unaffected
        pair.alice.send("<message to='bob@localhost' type='chat'><body>later</body></message>")
        assert pair.alice.streamError() is None and not pair.alice.closed
    assert not failures.events, failures.describe()


def test_readerThatCatchesUpIsKept():
    """A client that drains its buffer in time is kept: the count restarts at each pause."""
    pair = Pair(limits={"max_unsent_bytes": 50_000, "ping_interval": 0})
    for _round in range(5):
        pair.bob.proto.pauseProducing()
        for _ in range(30):
            pair.alice.send(f"<message to='bob@localhost' type='chat'><body>{'z' * 1000}</body></message>")
        pair.bob.proto.resumeProducing()
    assert not pair.bob.transport.disconnected and not pair.bob.closed


def test_halfOpenConnectionsTimeOut():
    """Hundreds of connections stuck in negotiation are closed after negotiation_seconds and leave no timers."""
    h = HostHarness()
    h.addUser("alice", "pw")
    factory = tcpFactory(h, directTLS=False)
    idle = h.clock.getDelayedCalls()
    clients = []
    for i in range(300):
        client = TCPClient(factory, peer=f"10.0.{i // 250}.{i % 250}")
        if i % 3 == 1:
            client.send(HEADER)
        elif i % 3 == 2:
            client.send(HEADER + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'")  # never finished
        clients.append(client)
    assert len(factory.connections) == 300
    h.clock.advance(h.config.limits.negotiation_seconds)
    for client in clients:
        assert expectStreamError(client, {"connection-timeout"})
    h.clock.advance(5)
    assert all(c.transport.disconnected for c in clients)
    for client in clients:
        lost(client)
    assert factory.connections == set()
    assert len(h.clock.getDelayedCalls()) == len(idle)


def test_manyDistinctJIDsBounded(monkeypatch):
    """Stanzas to thousands of distinct JIDs: the JID cache stays at its size, nothing else grows, no interning."""
    from functools import lru_cache

    from xmppchat.config import SECTIONS

    monkeypatch.setattr(jid, "_cachedPrepare", lru_cache(maxsize=500)(jid._prepare))
    # Other bounded caches keyed by addresses (privacy settings, dialog
    # accounts, where those modules are present) are made small too, so
    # that the warm-up fills them and only unbounded growth shows.
    small = {"privacy": {"cache_size": 100}, "dialogs": {"account_cache_size": 100}}
    h = HostHarness(**{name: values for name, values in small.items() if name in SECTIONS})
    session, transport = h.connect("alice")
    interned = len(vars(twistedJID)["__internJIDs"]) if "__internJIDs" in vars(twistedJID) else None
    targets = ("nobody{0}@localhost", "user{0}@remote{0}.example/r{0}", "alice@localhost/res{0}", "x{0}@localhost/r")

    def burst(first, count):
        for i in range(first, first + count):
            to = targets[i % 4].format(i)
            h.send(session, f"<message to='{to}' type='chat' id='m{i}'><body>hi</body></message>")
            h.send(session, f"<iq to='{to}' type='get' id='i{i}'><ping xmlns='urn:xmpp:ping'/></iq>")
            transport.pop()

    tracemalloc.start()  # before the warm-up, so that evictions are counted too
    try:
        burst(0, 600)  # fills the cache
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        burst(600, 800)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert jid._cachedPrepare.cache_info().currsize == 500
    assert after - before < 60_000, after - before
    if interned is not None:
        assert len(vars(twistedJID)["__internJIDs"]) == interned
    assert set(h.host.modules["roster"].cache) <= {"alice"}
    from xmppchat.admin import result

    assert result(h.storage.offline.countOffline("nobody0")) == 0


def test_directedPresenceBounded():
    """Directed presence is remembered for at most directed_presences_per_session recipients; more is refused."""
    h = HostHarness(limits={"directed_presences_per_session": 10, "ping_interval": 0})
    alice, transport = h.connect("alice")
    bob, bobTransport = h.connect("bob")
    for i in range(9):
        h.send(alice, f"<presence to='user{i}@localhost/r'/>")
    h.send(alice, f"<presence to='{bob.full}'/>")
    assert len(alice.directed) == 10 and not [e for e in transport.pop() if e.getAttribute("type") == "error"]
    assert [e.name for e in bobTransport.pop()] == ["presence"]
    for i in range(100):
        h.send(alice, f"<presence to='flood{i}@localhost/r'/>")
    errors = [e for e in transport.pop() if e.getAttribute("type") == "error"]
    assert len(errors) == 100 and len(alice.directed) == 10
    assert errors[0].error.firstChildElement().name == "policy-violation"
    # an already known recipient still gets updates, and unavailable frees a slot
    h.send(alice, f"<presence to='{bob.full}'><show>away</show></presence>")
    assert [e.name for e in bobTransport.pop()] == ["presence"]
    h.send(alice, "<presence to='user0@localhost/r' type='unavailable'/>")
    h.send(alice, "<presence to='newcomer@localhost/r'/>")
    assert "newcomer@localhost/r" in alice.directed and len(alice.directed) == 10
    assert not [e for e in transport.pop() if e.getAttribute("type") == "error"]


def test_presenceFloodToManyRecipientsOverTCP():
    """A presence flood to thousands of distinct full JIDs keeps Session.directed at its limit, over TCP."""
    pair = Pair()
    limit = pair.h.config.limits.directed_presences_per_session
    session = pair.h.host.sessions.get("alice@localhost", pair.aliceJID.split("/")[1])
    data = "".join(f"<presence to='u{i}@localhost/r{i}'/>" for i in range(limit + 500))
    pair.alice.send(data)
    assert len(session.directed) == limit
    assert sum(1 for e in pair.alice.elements if e.getAttribute("type") == "error") == 500
    pair.stillRoutes()


def rosterSet(h, session, contact, id):
    h.send(session, f"<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{contact}'/></query></iq>")


def test_rosterBounded():
    """Roster sets past roster_items_per_user get not-allowed; updates and removals still work."""
    from xmppchat.admin import result

    h = HostHarness(limits={"roster_items_per_user": 5, "ping_interval": 0})
    alice, transport = h.connect("alice")
    for i in range(5):
        rosterSet(h, alice, f"c{i}@localhost", f"s{i}")
    replies = {e["id"]: e for e in transport.pop() if e.name == "iq"}
    assert all(replies[f"s{i}"]["type"] == "result" for i in range(5))
    for i in range(5, 50):
        rosterSet(h, alice, f"c{i}@localhost", f"s{i}")
    errors = [e for e in transport.pop() if e.name == "iq"]
    assert len(errors) == 45 and {e["type"] for e in errors} == {"error"}
    assert errors[0].error.firstChildElement().name == "not-allowed"
    assert len(result(h.storage.roster.getRoster("alice"))) == 5
    assert len(h.host.modules["roster"].cache["alice"]) == 5
    h.send(alice, "<iq type='set' id='u'><query xmlns='jabber:iq:roster'><item jid='c0@localhost' name='Zero'/></query></iq>")
    assert [e["type"] for e in transport.pop() if e.name == "iq" and e["id"] == "u"] == ["result"]
    h.send(alice, "<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='c1@localhost' subscription='remove'/></query></iq>")
    rosterSet(h, alice, "newcomer@localhost", "n")
    assert [e["type"] for e in transport.pop() if e.name == "iq" and e["id"] in ("r", "n")] == ["result", "result"]


def test_subscriptionFloodBounded():
    """Subscription requests to thousands of distinct JIDs stop adding roster items at the limit."""
    from xmppchat.admin import result

    h = HostHarness(limits={"roster_items_per_user": 20, "ping_interval": 0})
    alice, transport = h.connect("alice")
    with LoggedFailures() as failures:
        for i in range(500):
            h.send(alice, f"<presence to='stranger{i}@localhost' type='subscribe'/>")
    errors = [e for e in transport.pop() if e.name == "presence" and e.getAttribute("type") == "error"]
    assert len(errors) == 480 and errors[0].error.firstChildElement().name == "not-allowed"
    assert len(result(h.storage.roster.getRoster("alice"))) == 20
    assert not failures.events, failures.describe()


def test_fullRosterRefusesInboundRequests():
    """A subscription request to a user whose roster is full is refused; the user's roster is not grown."""
    from xmppchat.admin import result

    h = HostHarness(limits={"roster_items_per_user": 3, "ping_interval": 0})
    bob, bobTransport = h.connect("bob")
    for i in range(3):
        rosterSet(h, bob, f"c{i}@localhost", f"s{i}")
    bobTransport.pop()
    mallory, transport = h.connect("mallory")
    h.send(mallory, "<presence to='bob@localhost' type='subscribe'/>")
    errors = [e for e in transport.pop() if e.name == "presence" and e.getAttribute("type") == "error"]
    assert len(errors) == 1
    assert len(result(h.storage.roster.getRoster("bob"))) == 3
    assert not [e for e in bobTransport.pop() if e.getAttribute("type") == "subscribe"]


def test_webSocketSlowReaderDropped():
    """A WebSocket client that stops reading is not read, and is dropped past max_unsent_bytes."""
    from tests.c2s.test_websocket import WSClient, plain
    from tests.c2s.test_websocket import harness as wsHarness

    h, factory = wsHarness()
    h.config.limits.max_unsent_bytes = 20_000
    h.addUser("carol", "pw")
    bob, bobTransport = h.connect("bob")
    client = WSClient(factory)
    client.open()
    client.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain('carol', 'pw')}</auth>")
    client.open()
    client.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    client.send("<presence xmlns='jabber:client'/>")
    client.frames()
    assert client.transport.producer is client.proto
    client.proto.pauseProducing()
    assert client.transport.producerState == "paused"
    for _ in range(40):
        h.send(bob, f"<message to='carol@localhost' type='chat'><body>{'w' * 1000}</body></message>")
    assert client.transport.disconnected
    assert len(client.transport.value()) <= 20_000 + 200
