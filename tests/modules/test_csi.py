"""
Tests for XEP-0352 client state indication and the Tigase mobile v2 IQ.
"""

from twisted.words.xish import domish

from tests.helpers import HostHarness, xml
from xmppchat.c2s.negotiation import AUTHENTICATED, StreamEvent

NS_CSI = "urn:xmpp:csi:0"
NS_MOBILE = "http://tigase.org/protocol/mobile#v2"
CHATSTATE = "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"


def subscribed(h, a, b):
    """Make a and b subscribed to each other's presence."""
    sa, _ = h.connect(a, available=False)
    sb, _ = h.connect(b, available=False)
    h.send(sa, f"<presence to='{b}@localhost' type='subscribe'/>")
    h.send(sb, f"<presence to='{a}@localhost' type='subscribed'/>")
    h.send(sb, f"<presence to='{a}@localhost' type='subscribe'/>")
    h.send(sa, f"<presence to='{b}@localhost' type='subscribed'/>")
    h.host.endSession(sa)
    h.host.endSession(sb)


def test_streamFeature():
    """The csi stream feature is offered after authentication."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    stream = alice.stream
    features = domish.Element(("http://etherx.jabber.org/streams", "features"))
    stream.phase = AUTHENTICATED
    h.host.hooks.fire("stream-features", StreamEvent(stream, features=features))
    assert any(c.uri == NS_CSI and c.name == "csi" for c in features.elements())


def test_inactiveHoldsPresenceKeepsLatestAndFlushes():
    """While inactive, presence is held (latest per contact) and flushed in order on active; messages pass."""
    h = HostHarness()
    subscribed(h, "alice", "bob")
    subscribed(h, "carol", "bob")
    bob, tb = h.connect("bob", "phone")
    alice, _ = h.connect("alice", "a")
    carol, _ = h.connect("carol", "c")
    tb.pop()
    bob.stream.elementReceived(xml(f"<inactive xmlns='{NS_CSI}'/>"))
    assert bob.inactive
    h.send(alice, "<presence><show>away</show></presence>")
    h.send(carol, "<presence><show>dnd</show></presence>")
    h.send(alice, "<presence><show>xa</show></presence>")
    h.send(alice, "<message to='bob@localhost' type='chat'><body>still here</body></message>")
    h.send(alice, CHATSTATE)
    sent = tb.pop()
    assert [e.name for e in sent] == ["message"] and str(sent[0].body) == "still here"
    bob.stream.elementReceived(xml(f"<active xmlns='{NS_CSI}'/>"))
    assert not bob.inactive
    flushed = tb.pop()
    assert [(p.name, p["from"], str(p.show)) for p in flushed] == [
        ("presence", carol.full, "dnd"), ("presence", alice.full, "xa")]
    h.send(alice, CHATSTATE)
    assert [e.name for e in tb.pop()] == ["message"]


def test_subscriptionRequestsNotHeld():
    """Subscription requests reach an inactive session at once."""
    h = HostHarness()
    bob, tb = h.connect("bob")
    alice, _ = h.connect("alice")
    bob.stream.elementReceived(xml(f"<inactive xmlns='{NS_CSI}'/>"))
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    assert [p.getAttribute("type") for p in tb.pop() if p.name == "presence"] == ["subscribe"]


def test_heldPresencesBounded():
    """Past csi_held_presences senders, everything held is flushed so memory stays bounded."""
    h = HostHarness(limits={"ping_interval": 0, "csi_held_presences": 2})
    bob, tb = h.connect("bob")
    csi = h.host.modules["csi"]
    csi.setInactive(bob)
    for i in range(3):
        bob.send(xml(f"<presence from='u{i}@localhost/r'/>"))
    assert [p["from"] for p in tb.pop()] == ["u0@localhost/r", "u1@localhost/r"]
    assert list(bob.state["csi"].held) == ["u2@localhost/r"]


def test_mobileIQ():
    """The SDK's mobile v2 IQ: enable=true makes the session inactive, false active; both get empty results."""
    h = HostHarness()
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='set' id='x:markActive'><mobile xmlns='{NS_MOBILE}' enable='true'/></iq>")
    [reply] = tb.pop()
    assert reply["type"] == "result" and reply["id"] == "x:markActive" and reply.firstChildElement() is None
    assert bob.inactive
    h.send(bob, f"<iq type='set' id='y:markActive'><mobile xmlns='{NS_MOBILE}' enable='false'/></iq>")
    assert tb.pop()[0]["type"] == "result" and not bob.inactive


def test_mobileIQBadValue():
    """A mobile IQ with a bad enable value gets bad-request."""
    h = HostHarness()
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='set' id='z'><mobile xmlns='{NS_MOBILE}' enable='maybe'/></iq>")
    [reply] = tb.pop()
    assert reply["type"] == "error" and reply.error.firstChildElement().name == "bad-request"
