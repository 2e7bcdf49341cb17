"""
Tests for system (headline) message delivery and date_sent stamping.
"""

from tests.helpers import HostHarness, result
from tests.helpers import sentMessages as messages

SYSTEM = ("<message type='headline' id='s1' to='bob@localhost'><body>sys</body>"
          "<extraParams xmlns='jabber:client'><moduleIdentifier>SystemNotifications</moduleIdentifier>"
          "<param1>value1</param1>{extra}</extraParams></message>")


def test_headlineToEveryBoundResource():
    """A system message reaches every bound resource, also one without initial presence."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb1 = h.connect("bob", "one")
    _, tb2 = h.connect("bob", "two", available=False)
    h.send(alice, SYSTEM.format(extra=""))
    for t in (tb1, tb2):
        [m] = messages(t)
        assert m["type"] == "headline" and m["from"] == alice.full
        assert str(m.extraParams.moduleIdentifier) == "SystemNotifications"


def test_headlineNeverStored():
    """A system message to an offline user is dropped silently, not stored."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, SYSTEM.format(extra=""))
    assert result(h.storage.offline.countOffline("bob")) == 0 and ta.pop() == []


def test_largeSignallingPayload():
    """A headline with a 60 KB SDP payload is delivered whole."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    sdp = "a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\n" * 1000
    h.send(alice, SYSTEM.format(extra=f"<sdp>{sdp}</sdp>").replace("SystemNotifications", "WebRTCVideoChat"))
    [m] = messages(tb)
    assert len(str(m.extraParams.sdp)) == len(sdp) > 50000


def test_dateSentStamped():
    """Chat messages with a body and system messages get the server's date_sent in extraParams."""
    h = HostHarness()
    h.clock.advance(1700000000.7)
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    h.send(alice, "<message to='bob@localhost' type='chat' id='c1'><body>hi</body>"
                  "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
                  "<date_sent>12</date_sent></extraParams></message>")
    h.send(alice, SYSTEM.format(extra=""))
    chat, system = messages(tb)
    for m in (chat, system):
        stamps = [str(c) for c in m.extraParams.elements() if c.name == "date_sent"]
        assert stamps == ["1700000000"]


def test_noStampWithoutExtraParamsOrBody():
    """Messages without extraParams are left alone, and so are chat states and markers."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    h.send(alice, "<message to='bob@localhost' type='chat'><body>plain</body></message>")
    h.send(alice, "<message to='bob@localhost' type='chat'><received xmlns='urn:xmpp:chat-markers:0' id='x'/>"
                  "<extraParams xmlns='jabber:client'><dialog_id>d</dialog_id></extraParams></message>")
    plain, marker = messages(tb)
    assert plain.extraParams is None
    assert [c.name for c in marker.extraParams.elements()] == ["dialog_id"]
