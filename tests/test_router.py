"""
Tests for L{xmppchat.router}: addressing, events and RFC 6120/6121 delivery defaults.
"""

from tests.helpers import HostHarness, result


def names(transport):
    return [(e.name, e.getAttribute("type")) for e in transport.pop()]


def test_fromIsStamped():
    """The server stamps 'from' with the sender's full JID, whatever the client wrote (RFC 6120 §8.1.2.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "phone")
    bob, tb = h.connect("bob", "laptop")
    h.send(alice, '<message to="bob@localhost/laptop" from="mallory@localhost/x" type="chat"><body>hi</body></message>')
    [msg] = tb.pop()
    assert msg["from"] == "alice@localhost/phone"
    assert str(msg.body) == "hi"


def test_bareDeliveryToNonNegativePriority():
    """A message to a bare JID reaches every available resource with priority >= 0 (RFC 6121 §8.5.2.1.1)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    b1, t1 = h.connect("bob", "one")
    b2, t2 = h.connect("bob", "two")
    b3, t3 = h.connect("bob", "three", available=False)
    h.send(b2, "<presence><priority>-1</priority></presence>")
    t1.pop(), t2.pop()
    h.send(alice, '<message to="bob@localhost" type="chat"><body>x</body></message>')
    assert [m.name for m in t1.pop()] == ["message"]
    assert t2.pop() == []
    assert t3.pop() == []


def test_fullJIDGoneFallsBackToBare():
    """A chat message to a resource that is gone is treated as sent to the bare JID (RFC 6121 §8.5.3.2.1)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob", "laptop")
    h.send(alice, '<message to="bob@localhost/gone" type="chat"><body>x</body></message>')
    assert names(tb) == [("message", "chat")]


def test_headlineToGoneResourceDropped():
    """A headline to a missing resource is silently dropped."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob", "laptop")
    h.send(alice, '<message to="bob@localhost/gone" type="headline"><body>x</body></message>')
    assert tb.pop() == [] and ta.pop() == []


def test_unknownUserMessage():
    """A chat message to an account that does not exist gets service-unavailable."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<message id="m1" to="nobody@localhost" type="chat"><body>x</body></message>')
    [err] = ta.pop()
    assert err["type"] == "error" and err["id"] == "m1"
    assert err.error.firstChildElement().name == "service-unavailable"
    assert err.error["code"] == "503"


def test_iqToUnknownNamespace():
    """An IQ get nobody handles gets service-unavailable; results nobody claims are dropped."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<iq type="get" id="q1"><query xmlns="urn:example:nothing"/></iq>')
    [err] = ta.pop()
    assert err["type"] == "error" and err.error.firstChildElement().name == "service-unavailable"
    h.send(alice, '<iq type="result" id="q2"/>')
    assert ta.pop() == []


def test_iqForwardedToFullJID():
    """An IQ to a connected full JID is passed to that session; to a missing one, service-unavailable."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, '<iq type="get" id="v1" to="bob@localhost/b"><query xmlns="jabber:iq:version"/></iq>')
    [iq] = tb.pop()
    assert iq["from"] == "alice@localhost/a" and iq["id"] == "v1"
    h.send(alice, '<iq type="get" id="v2" to="bob@localhost/zzz"><query xmlns="jabber:iq:version"/></iq>')
    [err] = ta.pop()
    assert err["type"] == "error" and err["from"] == "bob@localhost/zzz"


def test_badAddressesAndTypes():
    """Malformed 'to', IQs without id or payload get the matching stanza error; an unknown message type is 'normal' (RFC 6121 §5.2.2)."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<message id="1" to="@@bad" type="chat"><body>x</body></message>')
    h.send(alice, '<message id="2" to="alice@localhost" type="shout"><body>x</body></message>')
    h.send(alice, '<iq type="get"><ping xmlns="urn:xmpp:ping"/></iq>')
    h.send(alice, '<iq type="set" id="3"/>')
    sent = ta.pop()
    assert [e["id"] for e in sent if e.name == "message" and e.getAttribute("type") == "shout"] == ["2"]
    errors = [e.error.firstChildElement().name for e in sent if e.getAttribute("type") == "error"]
    assert errors == ["jid-malformed", "bad-request", "bad-request"]


def test_remoteDomain():
    """Without server-to-server, a stanza for another domain gets remote-server-not-found."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<message id="r" to="bob@elsewhere.example" type="chat"><body>x</body></message>')
    [err] = ta.pop()
    assert err.error.firstChildElement().name == "remote-server-not-found"


def test_errorsAreNotAnsweredWithErrors():
    """An error stanza that cannot be delivered is dropped (RFC 6120 §8.3.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<message to="nobody@localhost" type="error"/>')
    h.send(alice, '<iq to="nobody@localhost/x" type="error" id="e"/>')
    assert ta.pop() == []


def test_preHookStops():
    """A pre- hook returning true stops the stanza before delivery."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.host.hooks.add("pre-message/bare", lambda event: True)
    h.send(alice, '<message to="bob@localhost" type="chat"><body>x</body></message>')
    assert tb.pop() == []


def test_pingServer():
    """The server answers XEP-0199 pings."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<iq type="get" id="p" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>')
    [reply] = ta.pop()
    assert reply["type"] == "result" and reply["id"] == "p" and reply["to"] == alice.full


def test_versionTimeDisco():
    """Version, time and disco#info answer from the server, disco listing each module's features."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, '<iq type="get" id="v" to="localhost"><query xmlns="jabber:iq:version"/></iq>')
    h.send(alice, '<iq type="get" id="t" to="localhost"><time xmlns="urn:xmpp:time"/></iq>')
    h.send(alice, '<iq type="get" id="d" to="localhost"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>')
    version, when, disco = ta.pop()
    assert {c.name: str(c) for c in version.query.elements()}["name"] == "xmppchat"
    assert str(when.time.utc).endswith("Z")
    features = {f["var"] for f in disco.query.elements() if f.name == "feature"}
    assert {"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time",
            "http://jabber.org/protocol/disco#info"} <= features
    identity = [i for i in disco.query.elements() if i.name == "identity"][0]
    assert (identity["category"], identity["type"]) == ("server", "im")


def test_serverPingsSilentClients():
    """A silent session is pinged, and closed with connection-timeout when it stays silent."""
    h = HostHarness(limits={"ping_interval": 30, "ping_timeout": 10})
    alice, ta = h.connect("alice")
    ta.lastReceived = h.clock.seconds()
    h.clock.advance(31)
    [ping] = [e for e in ta.pop() if e.name == "iq"]
    assert ping.ping.uri == "urn:xmpp:ping" and ping["to"] == alice.full
    h.clock.advance(15)
    assert ta.closed is not None and ta.closed.firstChildElement().name == "connection-timeout"
    result(h.storage.stop())


# -- the message pipeline (HookBus.run, per-sender order, one delivery rule) --------


class Paused:
    """
    alice and bob online, and a pre-message handler that pauses alice's
    first stanza on a Deferred the test fires (later ones pass).
    """

    def __init__(self):
        from twisted.internet import defer

        self.h = h = HostHarness(limits={"message_rate": 0, "ping_interval": 0})
        self.alice, self.ta = h.connect("alice")
        self.bob, self.tb = h.connect("bob")
        self.held = []

        def pause(event):
            h.host.hooks.remove("pre-message/bare", pause)
            self.held.append(defer.Deferred())
            return self.held[0]

        h.host.hooks.add("pre-message/bare", pause, priority=5000)

    def send(self, text):
        self.h.send(self.alice, text)


def test_pausedMessageGoesOn():
    """A pre-message handler's Deferred pauses the message; fired with a false value, the next handlers and delivery run."""
    p = Paused()
    p.send('<message to="bob@localhost" type="chat"><body>x</body></message>')
    assert p.tb.pop() == []
    p.held[0].callback(None)
    assert names(p.tb) == [("message", "chat")]


def test_pausedMessageStopped():
    """Fired with a true value, the paused message goes no further."""
    p = Paused()
    p.send('<message to="bob@localhost" type="chat"><body>x</body></message>')
    p.held[0].callback(True)
    assert p.tb.pop() == []


def test_senderOrderKept():
    """While one stanza of a client waits, its next stanzas (of any kind) wait behind it and keep their order."""
    p = Paused()
    p.send('<message to="bob@localhost" type="chat" id="1"><body>1</body></message>')
    p.send('<message to="bob@localhost" type="chat" id="2"><body>2</body></message>')
    p.send('<iq type="get" id="ping"><ping xmlns="urn:xmpp:ping"/></iq>')
    assert p.tb.pop() == [] and p.ta.pop() == [] and len(p.alice.backlog) == 2
    p.held[0].callback(None)
    assert [m["id"] for m in p.tb.pop()] == ["1", "2"]
    assert [e["id"] for e in p.ta.pop()] == ["ping"] and p.alice.backlog is None


def test_otherSendersNotHeld():
    """One client's waiting stanza does not hold another client's."""
    p = Paused()
    carol, _ = p.h.connect("carol")
    p.send('<message to="bob@localhost" type="chat" id="a"><body>a</body></message>')
    p.h.send(carol, '<message to="bob@localhost" type="chat" id="c"><body>c</body></message>')
    assert [m["id"] for m in p.tb.pop()] == ["c"]
    p.held[0].callback(None)
    assert [m["id"] for m in p.tb.pop()] == ["a"]


def test_longBacklogHoldsReading():
    """RFC 6120 §13.12: a client with a long backlog is not read from until it is handled."""
    from xmppchat.router import BACKLOG_HOLD

    from xmppchat.c2s.backpressure import SlowReaderGuard

    class RecordingReader(SlowReaderGuard):
        """The stub transport, as a connection whose reading can be held."""

        _closing = False

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def holdReading(self, reason):
            holds.append(("hold", reason))

        def releaseReading(self, reason):
            holds.append(("release", reason))

    p = Paused()
    holds = []
    p.alice.stream.transport = RecordingReader(p.alice.stream.transport)
    for i in range(BACKLOG_HOLD + 1):
        p.send(f'<message to="bob@localhost" type="chat"><body>{i}</body></message>')
    assert holds == [("hold", "pipeline")]
    p.held[0].callback(None)
    assert holds == [("hold", "pipeline"), ("release", "pipeline")]
    assert len(p.tb.pop()) == BACKLOG_HOLD + 1


def test_failedStageAnswersAndStops():
    """A paused handler that fails with a stanza error answers the sender and the message is not delivered."""
    from twisted.internet import defer

    from xmppchat.modules.base import Module, hook
    from xmppchat.stanzas import StanzaError

    class Refuse(Module):
        name = "refuse"

        @hook("message/bare", priority=500)
        def later(self, event):
            return defer.fail(StanzaError("not-acceptable", text="no"))

    h = HostHarness()
    Refuse(h.host).load()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, '<message to="bob@localhost" type="chat" id="m"><body>x</body></message>')
    [error] = ta.pop()
    assert error["type"] == "error" and error.error.firstChildElement().name == "not-acceptable"
    assert tb.pop() == []


def test_recipientsRule():
    """One rule (RFC 6121 §8.5): available non-negative resources; headlines to every bound one; a bound full JID as addressed."""
    from xmppchat.router import recipients

    h = HostHarness()
    one, _ = h.connect("bob", "one")
    low, _ = h.connect("bob", "low")
    quiet, _ = h.connect("bob", "quiet", available=False)
    h.send(low, "<presence><priority>-5</priority></presence>")
    sessions = h.host.sessions
    assert recipients(sessions, "bob@localhost", "chat") == [one]
    assert set(recipients(sessions, "bob@localhost", "headline")) == {one, low, quiet}
    assert recipients(sessions, "bob@localhost", "chat", "quiet") == [quiet]
    assert recipients(sessions, "bob@localhost", "chat", "gone") == [one]
    assert recipients(sessions, "bob@localhost", "headline", "gone") == []
