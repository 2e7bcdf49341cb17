"""
Tests for XEP-0085 chat states: routing, no offline storage, the typing
privacy setting.
"""

from types import SimpleNamespace

from tests.helpers import HostHarness, result
from tests.helpers import sentMessages as messages

NS = "http://jabber.org/protocol/chatstates"
HIDE_TYPING = {"privacy_settings": {"typing_indicators": {"enabled": False}}}


def hideTyping(h, localpart):
    account = result(h.storage.accounts.getAccountByLocalpart(localpart)) or h.addUser(localpart)
    return result(h.storage.accounts.updateAccount(account.id, profile=HIDE_TYPING))


def test_routedToOnlineResources():
    """A standalone composing notification reaches every available resource of the recipient."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb1 = h.connect("bob", "one")
    _, tb2 = h.connect("bob", "two")
    h.send(alice, f"<message to='bob@localhost' type='chat'><composing xmlns='{NS}'/></message>")
    for t in (tb1, tb2):
        [m] = messages(t)
        assert m.composing is not None and m.composing.uri == NS


def test_notStoredOfflineEvenWithExtras():
    """Chat states with thread/extraParams/hints are still not stored for an offline user (XEP-0085 §5.6)."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, f"<message to='bob@localhost' type='chat'><paused xmlns='{NS}'/><thread>t</thread>"
                  "<extraParams xmlns='jabber:client'><dialog_id>d1</dialog_id></extraParams>"
                  "<no-store xmlns='urn:xmpp:hints'/></message>")
    assert result(h.storage.offline.countOffline("bob")) == 0
    assert ta.pop() == []
    h.send(alice, f"<message to='bob@localhost' type='chat'><active xmlns='{NS}'/><body>hi</body></message>")
    assert result(h.storage.offline.countOffline("bob")) == 1


def test_hiddenTypingDropped():
    """A user who hides typing has standalone chat states dropped by the server."""
    h = HostHarness()
    hideTyping(h, "alice")
    alice, ta = h.connect("alice")
    _, tb = h.connect("bob")
    h.send(alice, f"<message to='bob@localhost' type='chat'><composing xmlns='{NS}'/></message>")
    assert messages(tb) == [] and ta.pop() == []


def test_hiddenTypingStrippedFromBodyMessage():
    """Chat states embedded in a message with a body are stripped for users who hide typing; the body arrives."""
    h = HostHarness()
    hideTyping(h, "alice")
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    h.send(alice, f"<message to='bob@localhost' type='chat' id='m1'><body>hello</body><active xmlns='{NS}'/></message>")
    [m] = messages(tb)
    assert str(m.body) == "hello"
    assert [c for c in m.elements() if c.uri == NS] == []


def test_visibleByDefaultAndOthersUnaffected():
    """Without the setting (or with it enabled) chat states pass; one user's setting does not affect another."""
    h = HostHarness()
    hideTyping(h, "carol")
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    h.connect("carol")
    h.send(alice, f"<message to='bob@localhost' type='chat'><composing xmlns='{NS}'/></message>")
    assert len(messages(tb)) == 1


def test_accountUpdatedAppliesToLiveSession():
    """The account-updated event makes a changed typing setting apply without reconnecting."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    account = hideTyping(h, "alice")
    h.host.hooks.fire("account-updated", SimpleNamespace(account=account))
    h.send(alice, f"<message to='bob@localhost' type='chat'><composing xmlns='{NS}'/></message>")
    assert messages(tb) == []


def test_discoFeature():
    """The server advertises chat states in disco#info."""
    h = HostHarness()
    assert NS in h.host.features()


def test_hostileChildNamesHarmless():
    """A child element named like the cached attribute does not confuse the message analysis."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    _, tb = h.connect("bob")
    h.send(alice, f"<message to='bob@localhost' type='chat'><_messageInfo/><composing xmlns='{NS}'/></message>")
    [m] = messages(tb)
    assert m.composing is not None
