"""
Router defaults the RFC 6120 §8/§10 and RFC 6121 §8 audit relies on that no
other test showed: stanzas with no 'to', IQs nobody handles.
https://www.rfc-editor.org/rfc/rfc6120#section-10
"""

from tests.helpers import HostHarness

BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def errors(transport):
    return [(e.name, e.getAttribute("id"), e.error.firstChildElement().name)
            for e in transport.pop() if e.getAttribute("type") == "error"]


def test_messageWithoutToGoesToOwnBareJID():
    """A message with no 'to' is handled as sent to the sender's bare JID (RFC 6120 §10.3.1, RFC 6121 §8.2.1)."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    t1.pop()
    h.send(a1, "<message type='chat' id='m'><body>note to self</body></message>")
    for transport in (t1, t2):
        [message] = transport.pop()
        assert str(message.body) == "note to self" and message["from"] == "alice@localhost/one"


def test_iqToAnotherUsersBareJIDUnhandled():
    """An IQ get to another user's bare JID that no module handles gets service-unavailable (RFC 6121 §8.5.2.1.3)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, "<iq type='get' id='q' to='bob@localhost'><query xmlns='urn:example:nothing'/></iq>")
    assert errors(ta) == [("iq", "q", "service-unavailable")]
    assert tb.pop() == []


def test_iqToServerResourceUnhandled():
    """An IQ to the server's domain with a resource nobody serves gets service-unavailable (RFC 6120 §10.5.2)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    h.send(alice, "<iq type='get' id='q' to='localhost/anything'><query xmlns='urn:example:nothing'/></iq>")
    assert errors(ta) == [("iq", "q", "service-unavailable")]


def test_presenceToUnknownAccountIgnored():
    """Presence to an account that does not exist is silently ignored (RFC 6121 §8.5.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    h.send(alice, "<presence to='nobody@localhost'/>")
    h.send(alice, "<presence to='nobody@localhost/x' type='unavailable'/>")
    assert ta.pop() == []
