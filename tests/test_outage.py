"""
Storage outage behaviour: a host and a REST site on MongoDB (mongomock)
whose database starts raising pymongo C{AutoReconnect} /
C{ServerSelectionTimeoutError} answer REST 503 and XMPP
C{internal-server-error} (type C{wait}), never acknowledge (XEP-0198) or
silently drop a message they could not store, and work again without a
restart once the database is back, with nothing acknowledged lost.
"""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from tests.api import helpers as apihelpers
from tests.api.helpers import ApiHarness
from tests.helpers import HostHarness, result

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class _Down:
    """
    Stands in for a pymongo collection while the database is down: every
    method raises what pymongo raises when no server answers.
    """

    def __init__(self, outage, name):
        self._outage = outage
        self._name = name

    def __getattr__(self, attr):
        real = getattr(self._outage.real[self._name], attr)
        if not callable(real):
            return real

        def call(*args, **kwargs):
            if self._outage.down:
                self._outage.calls += 1
                raise self._outage.error(f"{self._name}.{attr}: No servers available")
            return real(*args, **kwargs)

        return call


class Outage:
    """
    Wraps a L{MongoStorage}'s database so collection calls fail while
    C{down} is true.
    """

    def __init__(self, storage, error=AutoReconnect):
        self.storage = storage
        self.real = storage.db.db
        self.error = error
        self.down = False
        self.calls = 0
        storage.db.db = self

    def __getattr__(self, name):
        return _Down(self, name)

    def __getitem__(self, name):
        return _Down(self, name)

    def __enter__(self):
        self.down = True
        return self

    def __exit__(self, *exc):
        self.down = False


def stanzaError(element):
    """
    C{(condition, type)} of an error stanza.
    """
    assert element.getAttribute("type") == "error", element.toXml()
    error = element.error
    condition = [c.name for c in error.elements() if c.uri == NS_STANZAS and c.name != "text"][0]
    return condition, error.getAttribute("type")


# -- REST ------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setattr(apihelpers, "backend", "mongomock")
    api = ApiHarness()
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob")
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "team", "occupants_ids": str(api.bobId)},
                 token=api.alice)
    assert r.status == 201, r
    api.dialog = r.json["_id"]
    api.outage = Outage(api.storage, ServerSelectionTimeoutError)
    return api


def postMessage(api, text):
    return api.post("/chat/Message.json", {"chat_dialog_id": api.dialog, "message": text},
                    token=api.alice)


def historyOf(api):
    r = api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}&mark_as_read=0", token=api.alice)
    assert r.status == 200, r
    return [m["message"] for m in r.json["items"]]


def test_restAnswers503DuringOutage(api):
    """Reads and writes answer 503 with a JSON errors body while MongoDB is unreachable."""
    assert postMessage(api, "before").status == 201
    with api.outage:
        for r in (api.get("/chat/Dialog.json", token=api.alice), postMessage(api, "during"),
                  api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}", token=api.alice)):
            assert r.status == 503, r
            assert r.header("Content-Type").startswith("application/json")
            assert r.json == {"errors": {"base": ["Storage unavailable, try again"]}}
    assert api.outage.calls >= 3


def test_restRecoversWithoutRestart(api):
    """After the outage the same site answers again, keeping what was acknowledged before it."""
    assert postMessage(api, "before").status == 201
    with api.outage:
        assert postMessage(api, "during").status == 503
    assert postMessage(api, "after").status == 201
    assert sorted(historyOf(api)) == ["after", "before"]
    r = api.get("/chat/Dialog.json", token=api.bob)
    assert r.status == 200 and [d["_id"] for d in r.json["items"]] == [api.dialog]


def test_restSessionCreationDuringOutage(api):
    """Logging in needs the accounts store: 503, then it works when MongoDB is back."""
    with api.outage:
        r = api.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                       "user": {"login": "alice", "password": "password1"}})
        assert r.status == 503, r
        assert "errors" in r.json
    assert api.login("alice")[1] == api.aliceId


# -- XMPP ------------------------------------------------------------------


@pytest.fixture
def h(monkeypatch):
    monkeypatch.setattr(HostHarness, "backend", "mongomock")
    harness = HostHarness()
    harness.addUser("alice")
    harness.addUser("bob")
    harness.outage = Outage(harness.storage)
    return harness


def enableSM(h, session, transport):
    h.send(session, f"<enable xmlns='{NS_SM}'/>")
    [enabled] = transport.pop()
    assert enabled.name == "enabled", enabled.toXml()


def ackCount(h, session, transport):
    """
    Ask with C{<r/>} and return the C{h} of the C{<a/>} (and what came
    before it).
    """
    h.send(session, f"<r xmlns='{NS_SM}'/>")
    sent = transport.pop()
    acks = [e for e in sent if e.name == "a" and e.uri == NS_SM]
    assert len(acks) == 1, [e.toXml() for e in sent]
    return int(acks[0]["h"]), sent


def saved(to, mid, body):
    return (f"<message to='{to}' type='chat' id='{mid}'><body>{body}</body>"
            "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"
            "</message>")


def test_iqNeedingStorageFailsWithWait(h):
    """A roster set during the outage gets internal-server-error of type wait; after it, a result."""
    alice, ta = h.connect("alice")
    with h.outage:
        h.send(alice, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                      "<item jid='bob@localhost' name='Bob'/></query></iq>")
        [reply] = ta.pop()
    assert reply.name == "iq" and reply["id"] == "r1"
    assert stanzaError(reply) == ("internal-server-error", "wait")
    assert h.outage.calls >= 1
    h.send(alice, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'>"
                  "<item jid='bob@localhost' name='Bob'/></query></iq>")
    results = [e for e in ta.pop() if e.name == "iq" and e.getAttribute("id") == "r2"]
    assert [e["type"] for e in results] == ["result"]
    assert [i.jid for i in result(h.storage.roster.getRoster("alice"))] == ["bob@localhost"]


def test_savedMessageDuringOutageIsBouncedNotLost(h):
    """A save_to_history message that cannot be stored is not delivered and comes back as an error."""
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, saved("bob@localhost", "a" * 24, "before"))
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["before"]
    ta.pop()
    with h.outage:
        h.send(alice, saved("bob@localhost", "b" * 24, "during"))
    [error] = ta.pop()
    assert error.name == "message" and error["id"] == "b" * 24
    assert stanzaError(error) == ("internal-server-error", "wait")
    assert str(error.body) == "during"  # the payload comes back: the client can resend it
    assert [e for e in tb.pop() if e.name == "message"] == []
    assert result(h.storage.messages.getMessage("b" * 24)) is None
    # back again: the resend is stored and delivered; the earlier one is still there
    h.send(alice, saved("bob@localhost", "b" * 24, "during"))
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["during"]
    assert result(h.storage.messages.getMessage("a" * 24)) is not None
    assert result(h.storage.messages.getMessage("b" * 24)) is not None


def test_streamManagementNeverAcknowledgesBeforeTheError(h):
    """XEP-0198: the <a/> counting a message that failed to store comes only after its error."""
    alice, ta = h.connect("alice")
    enableSM(h, alice, ta)
    h.connect("bob")
    h.send(alice, saved("bob@localhost", "a" * 24, "stored"))
    ta.pop()
    count, _ = ackCount(h, alice, ta)
    assert count == 1
    with h.outage:
        h.send(alice, saved("bob@localhost", "b" * 24, "lost?"))
        sent = ta.pop()
        count, afterR = ackCount(h, alice, ta)
    # the stanza is handled by bouncing it, so h counts it, but only once the error is out
    errors = [e for e in sent if e.name == "message" and e.getAttribute("type") == "error"]
    assert [e["id"] for e in errors] == ["b" * 24]
    assert count == 2
    assert result(h.storage.messages.getMessage("a" * 24)) is not None


def test_offlineMessageDuringOutageIsBounced(h):
    """A message to an offline user that cannot be stored offline comes back as an error."""
    alice, ta = h.connect("alice")
    with h.outage:
        h.send(alice, "<message to='bob@localhost' type='chat' id='o1'><body>hi</body></message>")
    [error] = ta.pop()
    assert error["id"] == "o1"
    assert stanzaError(error) == ("internal-server-error", "wait")
    h.send(alice, "<message to='bob@localhost' type='chat' id='o2'><body>again</body></message>")
    assert ta.pop() == []
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence/>")
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["again"]


def test_offlineMessagesStoredBeforeOutageSurviveIt(h):
    """Offline messages accepted before the outage survive a failed initial presence and come after it."""
    alice, ta = h.connect("alice")
    h.send(alice, "<message to='bob@localhost' type='chat' id='o1'><body>kept</body></message>")
    assert ta.pop() == []
    bob, tb = h.connect("bob", available=False)
    with h.outage:
        h.send(bob, "<presence/>")
        sent = tb.pop()
    assert [e for e in sent if e.name == "message"] == []
    assert [stanzaError(e) for e in sent if e.name == "presence"] == [("internal-server-error", "wait")]
    assert not bob.available  # so the retry below is the initial presence again
    h.send(bob, "<presence/>")
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["kept"]
    assert result(h.storage.offline.fetchOffline("bob")) == []


def test_outageErrorIsNotAnErrorLoop(h):
    """An error stanza sent during the outage is not answered with another error."""
    alice, ta = h.connect("alice")
    with h.outage:
        h.send(alice, "<message to='bob@localhost' type='error' id='e1'><error type='cancel'>"
                      f"<item-not-found xmlns='{NS_STANZAS}'/></error></message>")
    assert [e for e in ta.pop() if e.getAttribute("type") == "error"] == []


def test_pymongoErrorsBecomeStorageErrors(h):
    """The outage wrapper raises real pymongo errors, which the storage turns into StorageError."""
    from xmppchat.storage.interfaces import StorageError

    with h.outage:
        d = h.storage.accounts.getAccountByLocalpart("alice")
        failure = []
        d.addErrback(failure.append)
    assert failure and failure[0].check(StorageError)
    assert "AutoReconnect" in str(failure[0].value)
    assert result(h.storage.accounts.getAccountByLocalpart("alice")) is not None


def test_pendingWriteHoldsTheAckUntilItFails(h, monkeypatch):
    """While the history write hangs, <r/> gets no <a/>; when it fails, the error goes out before it."""
    from twisted.internet import defer

    from xmppchat.storage.interfaces import StorageError

    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    enableSM(h, alice, ta)
    h.send(alice, saved("bob@localhost", "a" * 24, "stored"))
    ta.pop()
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["stored"]
    assert ackCount(h, alice, ta)[0] == 1
    hanging = defer.Deferred()
    monkeypatch.setattr(h.storage.messages, "createMessage", lambda *a, **kw: hanging)
    h.send(alice, saved("bob@localhost", "b" * 24, "hangs"))
    h.send(alice, f"<r xmlns='{NS_SM}'/>")
    assert ta.pop() == []  # no <a/>: the message is not handled yet
    assert [e for e in tb.pop() if e.name == "message"] == []
    hanging.errback(StorageError("MongoDB: ServerSelectionTimeoutError: No servers available"))
    sent = ta.pop()
    assert [(e.name, e.getAttribute("type")) for e in sent] == [("message", "error"), ("a", None)]
    assert stanzaError(sent[0]) == ("internal-server-error", "wait")
    assert sent[1]["h"] == "2"
    assert [e for e in tb.pop() if e.name == "message"] == []


def test_offlineStoreFailureIsBounced(h):
    """With the recipient's privacy lists cached, a failing offline write itself comes back as an error."""
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    bob.stream.connectionLost()
    assert h.host.modules["privacy"].cached("bob") is not None
    with h.outage:
        h.send(alice, "<message to='bob@localhost' type='chat' id='o3'><body>hi</body></message>")
    [error] = ta.pop()
    assert error["id"] == "o3" and str(error.body) == "hi"
    assert stanzaError(error) == ("internal-server-error", "wait")
    assert "Storage unavailable" in str(error.error.text)
    assert result(h.storage.offline.fetchOffline("bob")) == []


def test_groupMessageDuringOutageIsBounced(h):
    """A saved groupchat to a dialog room during the outage reaches nobody and comes back as an error."""
    from xmppchat.storage.interfaces import DIALOG_GROUP

    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    roomJID = f"1_{dialog.id}@muc.localhost"
    text = (f"<message to='{roomJID}' type='groupchat' id='{'c' * 24}'><body>team</body>"
            "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
            f"<dialog_id>{dialog.id}</dialog_id></extraParams></message>")
    with h.outage:
        h.send(alice, text)
    [error] = ta.pop()
    assert error["id"] == "c" * 24 and error["from"] == roomJID
    assert stanzaError(error) == ("internal-server-error", "wait")
    assert [e for e in tb.pop() if e.name == "message"] == []
    h.send(alice, text)
    assert [str(m.body) for m in tb.pop() if m.name == "message"] == ["team"]
    assert result(h.storage.messages.getMessage("c" * 24)).dialogId == dialog.id
