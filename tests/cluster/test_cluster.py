"""
Unit tests of the cluster directory, bus and registry: three nodes in one
process on a fake Redis and a fake clock.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from tests.helpers import StubTransport, result, sentMessages, xml
from xmppchat.c2s.backpressure import SlowReaderGuard


def test_remoteSessionVisible():
    """A session bound on one node is found by the others, and forgotten when it ends."""
    c = ClusterHarness()
    a, b, _ = c.nodes
    session, _ = a.connect("alice", "phone")
    c.pump()
    remote = b.host.sessions.get("alice@localhost", "phone")
    assert remote is not None and remote.node == "node0"
    assert remote.available
    assert b.host.sessions.isConnected("alice@localhost")
    assert b.host.sessions.resourceCount("alice@localhost") == 1
    assert list(b.host.sessions.all()) == []
    a.host.endSession(session)
    c.pump()
    assert b.host.sessions.get("alice@localhost", "phone") is None
    assert not b.host.sessions.isConnected("alice@localhost")


def test_messageToBareJIDAcrossNodes():
    """A message to a bare JID reaches resources on two other nodes, serialised once per stanza."""
    c = ClusterHarness()
    a, b, d = c.nodes
    _, t1 = a.connect("alice", "one")
    _, t2 = d.connect("alice", "two")
    bob, _ = b.connect("bob")
    c.pump()
    c.chat(b, bob, "alice@localhost", "hi", "m1")
    c.pump()
    for transport in (t1, t2):
        messages = sentMessages(transport)
        assert [str(m.body) for m in messages] == ["hi"]
        assert messages[0]["from"] == bob.full
    assert b.node.bus.sent == 2


def test_iqToRemoteFullJID():
    """An IQ to a full JID on another node is delivered, and its result comes back."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair("r")
    b.send(bob, '<iq to="alice@localhost/r" type="get" id="q1"><query xmlns="jabber:iq:version"/></iq>')
    c.pump()
    [iq] = [e for e in ta.pop() if e.name == "iq"]
    assert iq["from"] == "bob@localhost/r"
    a.send(alice, '<iq to="bob@localhost/r" type="result" id="q1"/>')
    c.pump()
    [reply] = [e for e in tb.pop() if e.name == "iq"]
    assert reply["type"] == "result" and reply["id"] == "q1"


def test_presenceBroadcastAcrossNodes():
    """Initial presence reaches a contact on another node, and probes are answered from the directory."""
    c = ClusterHarness()
    c.befriend("alice", "bob")
    a, b, _ = c.nodes
    alice, ta = a.connect("alice", "r", available=False)
    bob, tb = b.connect("bob", "r")
    c.pump()
    tb.pop()
    a.send(alice, "<presence><show>away</show></presence>")
    c.pump()
    presences = [e for e in tb.pop() if e.name == "presence"]
    assert [p["from"] for p in presences] == ["alice@localhost/r"]
    # alice's probe of bob was answered from bob's directory entry
    probed = [e for e in ta.pop() if e.name == "presence"]
    assert "bob@localhost/r" in [p["from"] for p in probed]
    # bob now sees alice as available through the directory
    assert b.host.sessions.get("alice@localhost", "r").presence is not None
    a.host.endSession(alice)
    c.pump()
    gone = [e for e in tb.pop() if e.name == "presence"]
    assert [(p["from"], p.getAttribute("type")) for p in gone] == [("alice@localhost/r", "unavailable")]


def test_killedNodeExpires():
    """A node that dies without a word is dropped within expiry + heartbeat; messages for its users go offline."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair()
    a.node.redis.kill()
    a.node.heartbeat.stop()
    # the next publish to node0's channel reaches nobody: dropped at once
    c.chat(b, bob, "alice@localhost", "one", "m1")
    c.pump()
    assert b.host.sessions.get("alice@localhost", "r") is None
    assert len(c.offline("alice")) == 1
    assert not [e for e in tb.pop() if e.getAttribute("type") == "error"]


def test_silentNodeExpiresByHeartbeat():
    """A node whose heartbeat stops (but whose connection lingers) is dropped after expiry_seconds."""
    c = ClusterHarness()
    a, b, third = c.nodes
    a.connect("alice", "r")
    c.pump()
    a.node.heartbeat.stop()
    c.pump(2.0)
    assert b.host.sessions.get("alice@localhost", "r") is not None
    c.pump(2.5)  # expiry 3 s + one heartbeat
    assert b.host.sessions.get("alice@localhost", "r") is None
    assert third.host.sessions.get("alice@localhost", "r") is None
    assert b"node0" not in c.redis.data.get(b"xmppchat:localhost:nodes", set())


def test_unacknowledgedMessagesStoredWhenNodeLost():
    """Messages published but not yet acknowledged by a node that then dies are stored offline."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair()
    # node0 dies after Redis accepted the publishes, before it could ack
    for i in range(3):
        c.chat(b, bob, "alice@localhost", f"{i}", f"m{i}")
    assert len(b.node.bus.pending["node0"]) == 3
    a.node.redis.kill()
    a.node.heartbeat.stop()
    c.pump(4.5)
    stored = c.offline("alice")
    assert len(stored) == 3 and all("<body>" in s for s in stored)


def test_acknowledgedMessagesLeaveTheWindow():
    """Acks from the receiving node empty the sender's pending window."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair()
    c.chat(b, bob, "alice@localhost", "x", "m1")
    c.pump(0.2)
    assert not b.node.bus.pending.get("node0")


def test_redisOutageAndReconcile():
    """Without Redis, local delivery works, remote messages go offline, IQs get an error; sessions come back after."""
    c = ClusterHarness()
    a, b, _ = c.nodes
    a.connect("alice", "r")
    carol, tc = b.connect("carol")
    bob, tb = b.connect("bob")
    c.pump()
    c.redis.stop()
    c.chat(b, bob, "carol@localhost", "local", "l1")
    assert [str(m.body) for m in sentMessages(tc)] == ["local"]
    c.chat(b, bob, "alice@localhost", "remote", "r1")
    assert len(c.offline("alice")) == 1
    b.send(bob, '<iq to="alice@localhost/r" type="get" id="q1"><ping xmlns="urn:xmpp:ping"/></iq>')
    errors = [e for e in tb.pop() if e.getAttribute("type") == "error"]
    assert [e.name for e in errors] == ["iq"]
    assert errors[0].error.firstChildElement().name == "service-unavailable"
    c.redis.start()
    c.pump()
    assert b.host.sessions.get("alice@localhost", "r") is not None
    assert a.host.sessions.get("carol@localhost", carol.resource) is not None


def test_sameFullJIDOnTwoNodes():
    """Binding a full JID already bound on another node replaces the older session (conflict)."""
    c = ClusterHarness()
    a, b, _ = c.nodes
    _, ta = a.connect("alice", "r")
    c.pump()
    b.connect("alice", "r")
    c.pump()
    assert "conflict" in ta.closed.toXml()


def test_targetGoneFallsBackToOffline():
    """A stanza that arrives after its session ended is stored offline."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair()
    c.chat(b, bob, "alice@localhost/r", "late", "m1")
    a.host.sessions.remove(alice)  # ended on node0 before the bus delivered
    c.pump()
    assert len(c.offline("alice")) == 1


def test_rosterCacheInvalidated():
    """A roster written on one node is dropped from the other nodes' caches."""
    c = ClusterHarness()
    a, b, _ = c.nodes
    a.connect("alice", "r")
    b.connect("alice", "s")
    c.pump()
    roster = b.host.modules["roster"]
    assert "alice" in roster.cache
    a.send(a.host.sessions.localGet("alice@localhost", "r"),
           '<iq type="set" id="r1"><query xmlns="jabber:iq:roster"><item jid="zed@localhost"/></query></iq>')
    c.pump()
    assert "alice" not in roster.cache


def test_rosterVersionSharedAcrossNodes():
    """
    Roster versioning (RFC 6121 §2.6) with two sessions of one user on two
    nodes: a change made on one node reaches the other as a push with its
    version, and that version is current on both (an empty result there).
    """
    c = ClusterHarness()
    a, b, _ = c.nodes
    r, tr = a.connect("alice", "r")
    s, ts = b.connect("alice", "s")
    c.pump()
    get = '<iq type="get" id="g"><query xmlns="jabber:iq:roster" ver="{}"/></iq>'
    b.send(s, get.format(""))
    c.pump()  # node0 learns that alice/s asked for the roster
    ts.pop()
    a.send(r, '<iq type="set" id="r1"><query xmlns="jabber:iq:roster"><item jid="zed@localhost"/></query></iq>')
    c.pump()
    push = [e for e in ts.pop() if e.name == "iq" and e.getAttribute("type") == "set"]
    assert len(push) == 1 and push[0].query.item["jid"] == "zed@localhost"
    ver = push[0].query["ver"]
    for node, session, transport in ((b, s, ts), (a, r, tr)):
        transport.pop()
        node.send(session, get.format(ver))
        reply = [e for e in transport.pop() if e.getAttribute("id") == "g"][0]
        assert reply["type"] == "result" and reply.firstChildElement() is None


def test_rosterCacheOfRemoteUserEvicted():
    """A roster cached for a user on another node is dropped when their last session ends."""
    c = ClusterHarness()
    c.befriend("alice", "bob")
    a, b, _ = c.nodes
    alice, _ = a.connect("alice", "r")
    b.connect("bob", "r")
    c.pump()
    roster = b.host.modules["roster"]
    result(roster.getRoster("alice"))  # as a subscription handshake on node1 would
    assert "alice" in roster.cache
    a.host.endSession(alice)
    c.pump()
    assert "alice" not in roster.cache


def test_burstIsBatched():
    """Stanzas for one node within one reactor turn cross in one PUBLISH, in order.  (Archived
    chat, issue 16 XEP-0313, leaves the reactor turn for its store write first, so the batch is
    measured with dialogs.archive_chat off; with it on, order is still kept.)"""
    for archive in (False, True):
        c = ClusterHarness(dialogs={"archive_chat": archive})
        a, b, alice, ta, bob, tb = c.pair()
        del c.redis.commands[:]
        for i in range(20):
            c.chat(b, bob, "alice@localhost", f"{i}", f"m{i}")
        c.pump()
        assert [str(m.body) for m in sentMessages(ta)] == [str(i) for i in range(20)]
        if not archive:
            assert c.redis.commands.count("PUBLISH") == 2  # the batch, and one acknowledgement for all 20


def test_unreadableBatchIgnored():
    """A malformed batch or frame from the bus is logged and ignored."""
    c = ClusterHarness()
    a = c.nodes[0]
    a.node.bus.messageReceived(b"b\nxx\ngarbage")
    a.node.bus.messageReceived(b"s only-a-header")
    a.node.bus.messageReceived(b"s n 1 0 alice@localhost/r\n<unclosed")
    assert a.node.bus.received == 1


def test_lostNodeUnavailablePresence():
    """When a node dies, the other nodes send unavailable presence for its users to their local contacts."""
    c = ClusterHarness()
    c.befriend("alice", "bob")
    a, b, alice, ta, bob, tb = c.pair("r")
    tb.pop()
    a.node.redis.kill()
    a.node.heartbeat.stop()
    c.pump(4.5)
    gone = [e for e in tb.pop() if e.name == "presence"]
    assert [(p["from"], p.getAttribute("type")) for p in gone] == [("alice@localhost/r", "unavailable")]


def test_nodeStartsBeforeRedis():
    """A node started while Redis is down serves local sessions and joins when Redis comes up."""
    c = ClusterHarness()
    c.redis.stop()
    a, b, _ = c.nodes
    carol, tc = b.connect("carol")
    bob, _ = b.connect("bob")
    c.chat(b, bob, "carol@localhost", "local", "l1")
    assert [str(m.body) for m in sentMessages(tc)] == ["local"]
    c.redis.start()
    c.pump(1.5)
    assert a.host.sessions.get("carol@localhost", carol.resource) is not None


def test_restartedNodeIdFlushesPending():
    """A node that comes back under the same id with a new incarnation never acks the old one's window: stored offline."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair()
    c.chat(b, bob, "alice@localhost", "x", "m1")
    assert len(b.node.bus.pending["node0"]) == 1
    b.node.directory.eventReceived(b'{"o":"sync","n":"node0","i":"another-process"}')
    assert not b.node.bus.pending.get("node0")
    assert len(c.offline("alice")) == 1


def test_pendingWindowBounded():
    """The pending window never holds more than max_pending messages; overflow is counted, logged once."""
    c = ClusterHarness(cluster={"max_pending": 5})
    a, b, alice, ta, bob, tb = c.pair()
    for i in range(12):
        c.chat(b, bob, "alice@localhost", f"{i}", f"m{i}")
    assert len(b.node.bus.pending["node0"]) == 5
    assert b.node.bus.untracked == 7
    assert b.node.bus._overflowing == {"node0"}
    c.pump(0.2)
    assert not b.node.bus.pending["node0"] and not b.node.bus._overflowing


def test_privacyCacheFollowsTheCluster():
    """
    A node's cached copy of a remote user's privacy settings is reloaded
    when they change on the user's node, and dropped when the user leaves
    the cluster (no unbounded cache of everyone ever seen).
    """
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair("r")
    privacyB = b.host.modules["privacy"]
    c.chat(b, bob, "alice@localhost", "hi")
    c.pump()
    assert "alice" in privacyB.pinned and "alice" not in privacyB.restrictive
    a.send(alice, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
    c.pump()
    assert "alice" not in privacyB.pinned  # stale: dropped, reloaded when next needed
    ta.pop()
    c.chat(b, bob, "alice@localhost", "blocked", "m2")
    c.pump()
    assert [m for m in ta.pop() if m.name == "message"] == []
    assert "alice" in privacyB.restrictive
    a.host.endSession(alice)
    c.pump()
    assert "alice" not in privacyB.pinned and "alice" not in privacyB.recent
    assert "alice" not in privacyB.restrictive


class _TCP:
    """What L{SlowReaderGuard} calls on a Twisted transport."""

    def __init__(self):
        self.reading = True

    def pauseProducing(self):
        self.reading = False

    def resumeProducing(self):
        self.reading = True


class _GuardedStub(SlowReaderGuard, StubTransport):
    """A stub stream transport that, like the TCP one, can stop reading."""

    def __init__(self):
        StubTransport.__init__(self)
        self.transport = _TCP()
        self._closing = False


def guardedPair(maxPending, sent):
    """
    alice on node0, bob on node1 with a transport that can stop reading,
    after bob sent C{sent} messages to alice (not pumped yet).
    """
    c = ClusterHarness(cluster={"max_pending": maxPending})
    a, b, alice, ta, bob, tb = c.pair("r")
    guard = _GuardedStub()
    bob.stream.transport = guard
    for i in range(sent):
        c.chat(b, bob, "alice@localhost", f"{i}", f"m{i}")
    return c, a, b, ta, bob, guard


def test_flowControlHoldsClientsUntilAcknowledged():
    """
    A destination node max_pending/2 frames behind makes the sending node
    stop reading from its clients; its acknowledgement lets them read again.
    """
    c, a, b, ta, bob, guard = guardedPair(8, 3)
    assert guard.transport.reading and not b.node.bus.congested
    c.chat(b, bob, "alice@localhost", "3", "m3")
    assert b.node.bus.congested == {"node0"} and not guard.transport.reading
    c.pump()
    assert [str(m.body) for m in sentMessages(ta)] == ["0", "1", "2", "3"]
    assert not b.node.bus.congested and guard.transport.reading
    assert not b.node.bus.inFlight["node0"] and b.node.bus.inFlightBytes["node0"] == 0


def test_flowControlEndsWithTheDestination():
    """Clients held for a node that dies read again when it is dropped."""
    c, a, b, ta, bob, guard = guardedPair(4, 2)
    assert not guard.transport.reading
    b.node.bus.nodeLost("node0")
    assert guard.transport.reading and not b.node.bus.congested


def test_readHoldsCombine():
    """Reading resumes only when neither a full write buffer nor the bus holds it."""
    guard = _GuardedStub()
    guard.pauseProducing()  # Twisted: the client does not read what we write
    guard.holdReading("cluster bus")
    guard.resumeProducing()
    assert not guard.transport.reading
    guard.releaseReading("cluster bus")
    assert guard.transport.reading
    guard.releaseReading("cluster bus")  # twice: no effect
    assert guard.transport.reading


def test_flowControlGivesUpOnAStalledDestination():
    """A destination that stays alive but never acknowledges holds the clients expiry_seconds at most."""
    c, a, b, ta, bob, guard = guardedPair(4, 2)
    a.node.bus._sendAcks = lambda: None  # node0 handles frames but never acknowledges
    c.pump(2.5)
    assert not guard.transport.reading
    c.pump(1.0)  # expiry_seconds = 3 in the harness
    assert guard.transport.reading and b.node.bus.congested == {"node0"}


def test_offlineStoredElsewhereReachesANewSession():
    """
    A node that stored a message offline for a user it did not yet know to
    be online (the directory is eventually consistent) makes the user's node
    deliver it at once, not at the next login.
    """
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair("r")
    ta.pop()
    stanza = xml("<message xmlns='jabber:client' to='alice@localhost' from='bob@localhost/r' type='chat'>"
                 "<body>stored</body></message>")
    result(b.host.modules["offline"].storeFor("alice", stanza))
    c.pump()
    [message] = sentMessages(ta)
    assert str(message.body) == "stored" and message.delay is not None
    assert result(c.storage.offline.fetchOffline("alice")) == []


def test_pausedPresenceAnnouncedOnceHandled():
    """
    A presence paused in the router (its sender's privacy lists still
    loading) is announced to the other nodes once handled, so they see the
    session available (else they never send it presence: RFC 6121 §4.2.2).
    """
    from twisted.internet import defer

    c = ClusterHarness()
    a, b = c.nodes[0], c.nodes[1]
    held = []
    real = c.storage.privacy.getPrivacy

    def getPrivacy(localpart):
        d = defer.Deferred()
        held.append(lambda: real(localpart).chainDeferred(d))
        return d

    c.storage.privacy.getPrivacy = getPrivacy
    alice, _ = a.connect("alice", "r", available=False)
    a.send(alice, "<presence/>")
    c.pump()
    assert held and [s.available for s in b.host.sessions.sessionsOf("alice@localhost")] == [False]
    c.storage.privacy.getPrivacy = real
    for release in held:
        release()
    c.pump()
    assert [s.available for s in b.host.sessions.sessionsOf("alice@localhost")] == [True]


def test_avatarHashFollowsTheCluster():
    """
    Issue 16 item 7: a vCard photo set through one node reaches the
    XEP-0153 hash that the user's session on another node puts in its
    presence (that node's cached hash is dropped, not left stale).
    """
    import base64
    import hashlib

    c = ClusterHarness()
    c.befriend("alice", "bob")
    a, b, _ = c.nodes
    alicePhone, tp = a.connect("alice", "phone")
    aliceDesk, td = b.connect("alice", "desk")
    bob, tb = a.connect("bob", "r")
    c.pump()
    assert b.host.modules["vcard"].hashes["alice"] == ""
    image = b"avatar bytes"
    a.send(alicePhone, "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
                       f"<BINVAL>{base64.b64encode(image).decode()}</BINVAL></PHOTO></vCard></iq>")
    c.pump()
    tb.pop()
    b.send(aliceDesk, "<presence/>")
    c.pump()
    [presence] = [e for e in tb.pop() if e.name == "presence" and e["from"] == "alice@localhost/desk"]
    assert presence.x.uri == "vcard-temp:x:update"
    assert str(presence.x.photo) == hashlib.sha1(image).hexdigest()
