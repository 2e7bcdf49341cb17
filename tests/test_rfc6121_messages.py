"""
RFC 6121 message-delivery MUSTs the compliance audit found broken (§5.2.2,
§8.5.2.1.1).  They fail on purpose: message delivery is being rewritten as
one pipeline (issue 14), which makes them pass.
https://www.rfc-editor.org/rfc/rfc6121#section-8.5
"""

from tests.helpers import HostHarness, result

BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def test_errorMessageToBareJIDIgnored():
    """A message of type error to a bare JID with available resources is silently ignored (RFC 6121 §8.5.2.1.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, "<message to='bob@localhost' type='error' id='e1'><body>x</body>"
                  "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
    assert tb.pop() == []
    assert ta.pop() == []  # never an error answering an error (RFC 6120 §8.3.1)


def test_unknownMessageTypeTreatedAsNormal():
    """A message with a type the server does not know is handled as type normal, not refused (RFC 6121 §5.2.2)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, "<message to='bob@localhost' type='fancy' id='m1'><body>hello</body></message>")
    assert ta.pop() == []
    [message] = [e for e in tb.pop() if e.name == "message"]
    assert str(message.body) == "hello"
    bob.stream.connectionLost()
    h.send(alice, "<message to='bob@localhost' type='fancy' id='m2'><body>later</body></message>")
    assert ta.pop() == []
    assert len(result(h.storage.offline.fetchOffline("bob"))) == 1  # stored like a normal message
