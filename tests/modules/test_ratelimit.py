"""
Tests for the per-account message rate limit (xmppchat.modules.ratelimit).
"""

from tests.helpers import HostHarness

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def _limited(**limits):
    return HostHarness(limits={"ping_interval": 0, **limits})


def _message(i, to="bob@localhost"):
    return f"<message to='{to}' type='chat' id='m{i}'><body>{i}</body></message>"


def test_burstThenResourceConstraint():
    """Past the burst the sender gets resource-constraint (type wait, with text) and nothing is delivered."""
    h = _limited(message_rate=1, message_burst=3)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    for i in range(5):
        h.send(alice, _message(i))
    assert [m["id"] for m in tb.pop() if m.name == "message"] == ["m0", "m1", "m2"]
    errors = ta.pop()
    assert [e["id"] for e in errors] == ["m3", "m4"]
    error = errors[0].error
    assert errors[0]["type"] == "error" and error["type"] == "wait"
    assert error.firstChildElement().name == "resource-constraint"
    text = [c for c in error.elements() if c.name == "text"][0]
    assert "at most 1 per second" in str(text)


def test_refillsAtRate():
    """After waiting 1/rate seconds the user may send one more message."""
    h = _limited(message_rate=2, message_burst=1)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, _message(0))
    h.send(alice, _message(1))
    h.clock.advance(0.5)
    h.send(alice, _message(2))
    assert [m["id"] for m in tb.pop() if m.name == "message"] == ["m0", "m2"]
    assert [e["id"] for e in ta.pop()] == ["m1"]


def test_sharedByResourcesAndPerUser():
    """All resources of an account share one bucket; other accounts have their own."""
    h = _limited(message_rate=1, message_burst=2)
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    carol, tc = h.connect("carol")
    bob, tb = h.connect("bob")
    h.send(a1, _message(0))
    h.send(a2, _message(1))
    h.send(a2, _message(2))
    h.send(carol, _message(3))
    assert [m["id"] for m in tb.pop() if m.name == "message"] == ["m0", "m1", "m3"]
    assert [e["id"] for e in t2.pop() if e.name == "message"] == ["m2"]


def test_errorsAreNotAnswered():
    """A message error over the limit is dropped without an error in reply (RFC 6120 §8.3.1)."""
    h = _limited(message_rate=1, message_burst=1)
    alice, ta = h.connect("alice")
    h.connect("bob")
    h.send(alice, _message(0))
    h.send(alice, "<message to='bob@localhost' type='error' id='e'><error type='cancel'>"
                  f"<item-not-found xmlns='{NS_STANZAS}'/></error></message>")
    assert ta.pop() == []


def test_zeroRateDisables():
    """message_rate = 0 turns the limit off."""
    h = _limited(message_rate=0)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    for i in range(200):
        h.send(alice, _message(i))
    assert len([m for m in tb.pop() if m.name == "message"]) == 200
    assert ta.pop() == []


def test_bucketDroppedWithLastSession():
    """The account's bucket is forgotten when its last session ends, not before."""
    h = _limited(message_rate=1, message_burst=1)
    module = h.host.modules["ratelimit"]
    a1, _ = h.connect("alice", "one")
    a2, _ = h.connect("alice", "two")
    h.connect("bob")
    h.send(a1, _message(0))
    assert "alice@localhost" in module.buckets
    a1.stream.connectionLost()
    assert "alice@localhost" in module.buckets
    a2.stream.connectionLost()
    assert "alice@localhost" not in module.buckets
