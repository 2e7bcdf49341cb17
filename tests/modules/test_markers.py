"""
Tests for XEP-0333 chat markers and XEP-0184 receipts: routing, the
marker-received event, the read-receipts privacy setting, offline storage.
"""

from tests.helpers import HostHarness, result
from tests.helpers import sentMessages as messages

NS = "urn:xmpp:chat-markers:0"
HIDE_READS = {"privacy_settings": {"read_receipts": {"enabled": False}}}


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def marker(kind, to="alice@localhost", dialog="d1", extra=""):
    return (f"<message to='{to}' type='chat' id='mk-{kind}'><{kind} xmlns='{NS}' id='orig1'/>"
            f"<extraParams xmlns='jabber:client'><dialog_id>{dialog}</dialog_id></extraParams>{extra}</message>")


def recordMarkers(h):
    seen = []
    h.host.hooks.add("marker-received", seen.append)
    return seen


def test_markersForwardedToSender():
    """received/displayed/acknowledged markers sent by bob reach alice's resources, unchanged."""
    h = HostHarness()
    _, ta = h.connect("alice")
    bob, _ = h.connect("bob")
    for kind in ("received", "displayed", "acknowledged"):
        h.send(bob, marker(kind))
        [m] = messages(ta)
        child = m.firstChildElement()
        assert (child.name, child.uri, child["id"]) == (kind, NS, "orig1")
        assert m["from"] == bob.full


def test_eventFired():
    """marker-received fires with user, peer, kind, message id and dialog id."""
    h = HostHarness()
    h.connect("alice")
    bob, _ = h.connect("bob")
    seen = recordMarkers(h)
    h.send(bob, marker("displayed"))
    [e] = seen
    assert (e.user, e.peer, e.kind, e.messageId, e.dialogId, e.receipt, e.forwarded) == (
        "bob@localhost", "alice@localhost", "displayed", "orig1", "d1", False, True)


def test_receiptForwardedAndEvent():
    """A XEP-0184 receipt is forwarded and reported as a received marker with receipt=True."""
    h = HostHarness()
    _, ta = h.connect("alice")
    bob, _ = h.connect("bob")
    seen = recordMarkers(h)
    h.send(bob, "<message to='alice@localhost' type='chat'><received xmlns='urn:xmpp:receipts' id='r1'/></message>")
    [m] = messages(ta)
    assert m.received["id"] == "r1"
    assert (seen[0].kind, seen[0].receipt, seen[0].messageId) == ("received", True, "r1")


def test_hiddenReadsNotForwardedButEventFires():
    """With read receipts disabled, bob's displayed marker is not forwarded, yet the event fires."""
    h = HostHarness()
    h.addUser("bob")
    account = result(h.storage.accounts.getAccountByLocalpart("bob"))
    result(h.storage.accounts.updateAccount(account.id, profile=HIDE_READS))
    _, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    seen = recordMarkers(h)
    h.send(bob, marker("displayed"))
    assert messages(ta) == [] and tb.pop() == []
    [e] = seen
    assert e.kind == "displayed" and e.forwarded is False and e.dialogId == "d1"
    h.send(bob, marker("received"))
    assert len(messages(ta)) == 1


def test_hiddenReadsNotStoredOffline():
    """A suppressed displayed marker is not stored for an offline sender either."""
    h = HostHarness()
    h.addUser("alice")
    h.addUser("bob")
    account = result(h.storage.accounts.getAccountByLocalpart("bob"))
    result(h.storage.accounts.updateAccount(account.id, profile=HIDE_READS))
    bob, _ = h.connect("bob")
    h.send(bob, marker("displayed"))
    assert result(h.storage.offline.countOffline("alice")) == 0


def test_markersStoredOffline():
    """A marker for an offline sender is stored and delivered at next login (the sender learns of the read)."""
    h = HostHarness()
    h.addUser("alice")
    bob, _ = h.connect("bob")
    h.send(bob, marker("displayed"))
    assert result(h.storage.offline.countOffline("alice")) == 1
    alice, ta = h.connect("alice", available=False)
    h.send(alice, "<presence/>")
    [m] = messages(ta)
    assert m.displayed["id"] == "orig1" and m.delay is not None


def test_noStoreHintRespected():
    """A marker with a XEP-0334 no-store hint is dropped, not stored, when the sender is offline."""
    h = HostHarness()
    h.addUser("alice")
    bob, _ = h.connect("bob")
    h.send(bob, marker("received", extra="<no-store xmlns='urn:xmpp:hints'/>"))
    assert result(h.storage.offline.countOffline("alice")) == 0


def test_discoFeatures():
    """Markers and receipts are advertised."""
    features = HostHarness().host.features()
    assert NS in features and "urn:xmpp:receipts" in features


def test_markerOverQuotaDroppedSilently():
    """A marker for an offline sender whose queue is full is dropped without an error to the reader."""
    h = HostHarness(limits={"ping_interval": 0, "offline_messages_per_user": 1})
    h.addUser("alice")
    bob, tb = h.connect("bob")
    h.send(bob, "<message to='alice@localhost' type='chat' id='b1'><body>fills the queue</body></message>")
    h.send(bob, marker("received"))
    h.send(bob, marker("received", to="nobody@localhost"))
    assert tb.pop() == []
    assert result(h.storage.offline.countOffline("alice")) == 1
