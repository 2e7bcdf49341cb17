"""
Tests for offline storage and delivery (XEP-0160, XEP-0203).
"""

from tests.helpers import HostHarness, result


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def test_storedAndDeliveredWithDelay():
    """A message to an offline user is stored and delivered, in order, with a delay stamp at next login."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    for i in range(3):
        h.send(alice, f"<message to='bob@localhost' type='chat' id='m{i}'><body>hello {i}</body></message>")
    assert ta.pop() == []
    assert result(h.storage.offline.countOffline("bob")) == 3
    bob, tb = h.connect("bob", "b", available=False)
    h.send(bob, "<presence/>")
    messages = [e for e in tb.pop() if e.name == "message"]
    assert [str(m.body) for m in messages] == ["hello 0", "hello 1", "hello 2"]
    assert all(m.delay is not None and m.delay.uri == "urn:xmpp:delay" for m in messages)
    assert messages[0]["from"].startswith("alice@localhost/")
    assert result(h.storage.offline.countOffline("bob")) == 0


def test_chatStatesNotStored():
    """A chat-state-only message to an offline user is dropped, not stored (XEP-0085 §5.6)."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    assert result(h.storage.offline.countOffline("bob")) == 0
    assert ta.pop() == []


def test_quota():
    """Past the per-user limit the sender gets service-unavailable and nothing more is stored."""
    h = HostHarness(limits={"offline_messages_per_user": 2, "ping_interval": 0})
    h.addUser("bob")
    alice, ta = h.connect("alice")
    for i in range(3):
        h.send(alice, f"<message to='bob@localhost' type='chat' id='q{i}'><body>{i}</body></message>")
    [err] = ta.pop()
    assert err["id"] == "q2" and err.error.firstChildElement().name == "service-unavailable"
    assert result(h.storage.offline.countOffline("bob")) == 2


def test_negativePriorityDoesNotReceive():
    """A resource with negative priority neither receives bare messages nor triggers offline delivery."""
    h = HostHarness()
    h.addUser("bob")
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence><priority>-5</priority></presence>")
    h.send(alice, "<message to='bob@localhost' type='chat'><body>x</body></message>")
    assert [e for e in tb.pop() if e.name == "message"] == []
    assert result(h.storage.offline.countOffline("bob")) == 1


def test_headlineNotStored():
    """Headline (system) messages to offline users are not stored."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, "<message to='bob@localhost' type='headline'><body>sys</body></message>")
    assert result(h.storage.offline.countOffline("bob")) == 0
