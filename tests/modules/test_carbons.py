"""
Tests for XEP-0280 message carbons.
"""

from tests.helpers import HostHarness
from tests.helpers import sentMessages as messages

NS = "urn:xmpp:carbons:2"


def enable(h, session, transport):
    h.send(session, f"<iq type='set' id='c1'><enable xmlns='{NS}'/></iq>")
    [reply] = [e for e in transport.pop() if e.name == "iq"]
    assert reply["type"] == "result"


def setup():
    h = HostHarness()
    a1, ta1 = h.connect("alice", "one")
    a2, ta2 = h.connect("alice", "two")
    a3, ta3 = h.connect("alice", "three")
    b1, tb1 = h.connect("bob", "b1")
    b2, tb2 = h.connect("bob", "b2")
    for s, t in ((a1, ta1), (a2, ta2), (b1, tb1), (b2, tb2)):
        enable(h, s, t)
    ta3.pop()
    return h, (a1, ta1), (a2, ta2), (a3, ta3), (b1, tb1), (b2, tb2)


def test_sentCarbons():
    """A chat message is copied as a sent carbon to the sender's other carbon-enabled resources only."""
    h, (a1, ta1), (a2, ta2), (a3, ta3), (b1, tb1), (b2, tb2) = setup()
    h.send(a1, "<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
    assert messages(ta1) == [] and messages(ta3) == []
    [carbon] = messages(ta2)
    assert carbon["from"] == "alice@localhost" and carbon["to"] == a2.full
    inner = carbon.sent.forwarded.message
    assert carbon.sent.uri == NS and inner["id"] == "m1" and inner["to"] == "bob@localhost"
    assert inner["from"] == a1.full and str(inner.body) == "hi"
    assert "<body>hi</body>" in carbon.toXml()
    # bob's resources get the message itself, no received carbons for a bare-JID message
    for t in (tb1, tb2):
        [m] = messages(t)
        assert m.body is not None and m.received is None


def test_receivedCarbonsOnlyForFullJID():
    """A message to one full JID is copied as a received carbon to the recipient's other enabled resources."""
    h, (a1, ta1), (a2, ta2), _, (b1, tb1), (b2, tb2) = setup()
    h.send(a1, f"<message to='{b1.full}' type='chat' id='m2'><body>just b1</body></message>")
    [direct] = messages(tb1)
    assert str(direct.body) == "just b1"
    [carbon] = messages(tb2)
    assert carbon.received is not None and carbon.received.uri == NS
    assert carbon.received.forwarded.message["id"] == "m2" and carbon["from"] == "bob@localhost"


def test_privateAndNoCopy():
    """<private/> and the no-copy hint prevent carbons."""
    h, (a1, ta1), (a2, ta2), _, _, (b2, tb2) = setup()
    h.send(a1, f"<message to='bob@localhost' type='chat'><body>p</body><private xmlns='{NS}'/></message>")
    h.send(a1, "<message to='bob@localhost' type='chat'><body>n</body><no-copy xmlns='urn:xmpp:hints'/></message>")
    assert messages(ta2) == []


def test_notificationsAndOtherTypesNotCopied():
    """Standalone chat states and markers, and non-chat messages, are not carbon-copied."""
    h, (a1, ta1), (a2, ta2), _, _, _ = setup()
    h.send(a1, "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    h.send(a1, "<message to='bob@localhost' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>")
    h.send(a1, "<message to='bob@localhost' type='normal'><body>n</body></message>")
    h.send(a1, "<message to='bob@localhost' type='headline'><body>h</body></message>")
    assert messages(ta2) == []


def test_disable():
    """After disable, a resource no longer receives carbons."""
    h, (a1, ta1), (a2, ta2), _, _, _ = setup()
    h.send(a2, f"<iq type='set' id='d'><disable xmlns='{NS}'/></iq>")
    assert ta2.pop()[0]["type"] == "result"
    h.send(a1, "<message to='bob@localhost' type='chat'><body>hi</body></message>")
    assert messages(ta2) == []


def test_sdkEnableWithFrom():
    """The SDK's enable IQ (from its full JID, no to) is answered with a result carrying its id."""
    h = HostHarness()
    a, ta = h.connect("alice")
    h.send(a, f"<iq type='set' from='{a.full}' id='u:enableCarbons'><enable xmlns='{NS}'/></iq>")
    [reply] = ta.pop()
    assert reply["type"] == "result" and reply["id"] == "u:enableCarbons"
    assert a.state["carbons"] is True
