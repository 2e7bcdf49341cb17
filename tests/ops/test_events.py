"""
The operational events of L{xmppchat.observe} where they happen (issue 18
item 2): logins on every client transport and over REST, failed logins,
logouts with their reason, rate limits, rooms created and destroyed,
cluster membership.  Each happens once per occurrence (the metrics count
the same events).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.api.helpers import SECRET, ApiHarness
from tests.c2s.test_negotiation import HEADER, NS_SASL, newStream, plain
from tests.cluster.harness import ClusterHarness
from tests.helpers import HostHarness, result, xml
from tests.modules.test_smacks import ENABLE, cut, enable, resume
from xmppchat import observe
from xmppchat.api.sessions import encodeJWT
from xmppchat.c2s.bosh import BOSHSession
from xmppchat.c2s.tcp import C2STCPProtocol
from xmppchat.c2s.websocket import XMPPWebSocketProtocol
from xmppchat.dialogs.events import DialogEvent
from xmppchat.ratelimit import ConnectionLimiter
from xmppchat.storage.interfaces import DIALOG_GROUP

MUC = "http://jabber.org/protocol/muc"
OWNER = "http://jabber.org/protocol/muc#owner"
APP = {"application_id": 1, "auth_key": "test-key"}


@pytest.fixture
def events():
    """The operational events emitted during the test, as (name, fields)."""
    seen = []

    def record(name, fields):
        seen.append((name, dict(fields)))

    observe.addObserver(record)
    yield seen
    observe.removeObserver(record)


def named(events, name):
    return [fields for n, fields in events if n == name]


def login(h, stream, t, user="alice", password="pw", resource="phone"):
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain(user, password)}</auth>"))
    stream.streamStarted(dict(HEADER))
    stream.elementReceived(xml("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                               f"<resource>{resource}</resource></bind></iq>"))
    t.pop()
    return stream.session


# -- c2s ---------------------------------------------------------------------------------


def test_saslLoginThenLogout(events):
    """SASL then bind is one login (full JID, transport, mechanism, address); closing is one logout."""
    h = HostHarness()
    h.addUser("alice", "pw")
    stream, t = newStream(h, secure=True, peer="203.0.113.5")
    session = login(h, stream, t)
    assert events == [("login", {"jid": "alice@localhost/phone", "transport": "c2s", "mechanism": "PLAIN",
                                 "address": "203.0.113.5", "resumed": False})]
    stream.streamEnded()
    stream.connectionLost()
    assert events[1:] == [("logout", {"jid": session.full, "transport": "c2s", "reason": "client closed"})]


def test_transportNames():
    """Each transport names itself: c2s (STARTTLS), c2s-tls (direct TLS), websocket, bosh."""
    host = SimpleNamespace()
    assert C2STCPProtocol(SimpleNamespace(host=host, directTLS=False)).kind == "c2s"
    assert C2STCPProtocol(SimpleNamespace(host=host, directTLS=True)).kind == "c2s-tls"
    assert XMPPWebSocketProtocol.kind == "websocket"
    assert BOSHSession.kind == "bosh"


def test_failedLogin(events):
    """A wrong password is a login-failed naming the account, mechanism, address and condition."""
    h = HostHarness()
    h.addUser("alice", "pw")
    stream, t = newStream(h, secure=True, peer="198.51.100.9")
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain('alice', 'nope')}</auth>"))
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='X-NONE'>=</auth>"))
    stream.elementReceived(xml(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'/>"))
    stream.elementReceived(xml(f"<abort xmlns='{NS_SASL}'/>"))
    assert events == [
        ("login-failed", {"account": "alice@localhost", "transport": "c2s", "mechanism": "PLAIN",
                          "address": "198.51.100.9", "condition": "not-authorized"}),
        ("login-failed", {"account": None, "transport": "c2s", "mechanism": None,
                          "address": "198.51.100.9", "condition": "invalid-mechanism"}),
    ]  # an abort is the client's choice, not a failure


@pytest.mark.parametrize("end, reason", [
    (lambda s: s.stream.connectionLost(), "connection lost"),
    (lambda s: (s.close("policy-violation", "Kicked"), s.stream.connectionLost()), "stream error policy-violation"),
    (lambda s: (s.close("system-shutdown"), s.stream.connectionLost()), "shutdown"),
    (lambda s: (s.close("connection-timeout"), s.stream.connectionLost()), "timeout"),
    (lambda s: (s.state.__setitem__("logout", "kicked"), s.close("policy-violation"),
                s.stream.connectionLost()), "kicked"),
])
def test_logoutReasons(events, end, reason):
    """A logout says why: the connection broke, a stream error, shutdown, timeout, or what its ender said."""
    h = HostHarness()
    session, _ = h.connect("alice", "phone")
    events.clear()
    end(session)
    assert events == [("logout", {"jid": "alice@localhost/phone", "transport": "c2s", "reason": reason})]


def test_replacedSession(events):
    """A bind of the same full JID logs the old session out as replaced, the new one in."""
    h = HostHarness()
    old, _ = h.connect("alice", "phone")
    events.clear()
    h.connect("alice", "phone")
    old.stream.connectionLost()
    assert [(n, f.get("reason")) for n, f in events] == [("logout", "replaced"), ("login", None)]


def test_resumptionIsALoginNotALogout(events):
    """XEP-0198: a cut stream waiting for resumption is no logout; the resumption is a login (resumed)."""
    h = HostHarness()
    h.addUser("alice")
    session, transport = h.connect("alice", "phone")
    smid = enable(h, session, transport, ENABLE)["id"]
    events.clear()
    cut(session)
    assert events == []
    resume(h, "alice", smid, 0)
    h.clock.advance(0)
    assert [(n, f["jid"], f.get("resumed")) for n, f in events] == [("login", "alice@localhost/phone", True)]
    cut(session)
    h.clock.advance(h.config.smacks.resume_timeout + 1)
    assert events[1:] == [("logout", {"jid": "alice@localhost/phone", "transport": "c2s",
                                      "reason": "resumption timeout"})]


def test_messageRateLimited(events):
    """A message over the per-user rate is a rate-limited event keyed by the sender."""
    h = HostHarness(limits={"message_rate": 1, "message_burst": 2})
    alice, _ = h.connect("alice")
    h.connect("bob")
    for i in range(4):
        h.send(alice, f"<message to='bob@localhost' type='chat' id='m{i}'><body>{i}</body></message>")
    assert named(events, "rate-limited") == [{"scope": "messages", "key": "alice@localhost"}] * 2


def test_connectionLimits(events):
    """Connections refused per address (open count, then rate) are rate-limited events keyed by address."""
    limiter = ConnectionLimiter(SimpleNamespace(seconds=lambda: 0.0), maxPerAddress=1, rate=1, burst=2)
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is not None
    limiter.release("192.0.2.1")
    assert limiter.admit("192.0.2.1") is None
    limiter.release("192.0.2.1")
    assert limiter.admit("192.0.2.1") is not None
    assert events == [("rate-limited", {"scope": "connections", "key": "192.0.2.1"}),
                      ("rate-limited", {"scope": "connection-rate", "key": "192.0.2.1"})]


# -- REST --------------------------------------------------------------------------------


def test_restLoginEvents(events):
    """REST session creation with a password or a JWT is a login (transport rest); ending it a logout."""
    api = ApiHarness()
    user = api.signup("alice")
    r = api.post("/session.json", {**APP, "user": {"login": "alice", "password": "password1"}})
    assert r.status == 201
    jid = f"{user['id']}-1@localhost"
    jwt = encodeJWT({"user_id": "ext-7", "exp": 1_700_003_600}, SECRET)
    assert api.post("/session.json", {**APP, "provider": "jwt", "keys": {"token": jwt}}).status == 201
    assert api.delete("/session.json", token=r.json["session"]["token"]).status == 200
    logins = named(events, "login")
    assert logins[0] == {"jid": jid, "transport": "rest", "mechanism": "password", "address": "127.0.0.1",
                         "resumed": False}
    assert logins[1]["mechanism"] == "jwt" and logins[1]["transport"] == "rest"
    assert named(events, "logout") == [{"jid": jid, "transport": "rest", "reason": "client closed"}]
    assert named(events, "login-failed") == []


def test_restFailedLogins(events):
    """A wrong REST password, a bad JWT and a refusal while locked out are login-failed events."""
    api = ApiHarness(limits={"failed_logins_lockout": 2, "failed_logins_free": 5})
    api.signup("alice")
    for _ in range(3):
        api.post("/session.json", {**APP, "user": {"login": "alice", "password": "wrong"}})
    api.post("/session.json", {**APP, "provider": "jwt", "keys": {"token": "a.b.c"}})
    failed = [(f["account"], f["mechanism"], f["condition"]) for f in named(events, "login-failed")]
    assert failed == [("alice", "password", "not-authorized"), ("alice", "password", "not-authorized"),
                      ("alice", "password", "temporary-auth-failure"), (None, "jwt", "not-authorized")]
    assert named(events, "lockout") and not named(events, "login")


def test_rest429(events):
    """A REST 429 is a rate-limited event: by address, or by session with the token's hash, never the token."""
    api = ApiHarness(rest={"address_rate_per_minute": 60, "address_burst": 1,
                           "token_rate_per_minute": 60, "token_burst": 1})
    token = api.post("/session.json", APP).json["session"]["token"]
    assert api.post("/session.json", APP).status == 429
    api.clock.advance(60)
    api.get("/session.json", token=token)
    api.get("/session.json", token=token)
    api.get("/session.json", token=token)
    limited = named(events, "rate-limited")
    assert limited[0] == {"scope": "rest-address", "key": "127.0.0.1"}
    assert limited[-1]["scope"] == "rest-session" and len(limited[-1]["key"]) == 12
    assert token not in repr(events)


# -- rooms and cluster ------------------------------------------------------------------


def test_roomCreatedAndDestroyed(events):
    """A room created by a join is room-created (owner); destroying it is room-destroyed (reason)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    aid = h.accountId("alice")
    h.send(alice, f"<presence to='tmp@muc.localhost/{aid}'><x xmlns='{MUC}'/></presence>")
    h.send(alice, f"<iq type='set' id='c' to='tmp@muc.localhost'><query xmlns='{OWNER}'>"
                  "<x xmlns='jabber:x:data' type='cancel'/></query></iq>")
    h.send(alice, f"<presence to='team@muc.localhost/{aid}'><x xmlns='{MUC}'/></presence>")
    h.send(alice, f"<iq type='set' id='s' to='team@muc.localhost'><query xmlns='{OWNER}'>"
                  "<x xmlns='jabber:x:data' type='submit'/></query></iq>")
    h.send(alice, f"<presence type='unavailable' to='team@muc.localhost/{aid}'/>")
    assert [(n, f) for n, f in events if n.startswith("room-")] == [
        ("room-created", {"room": "tmp@muc.localhost", "owner": "alice@localhost"}),
        ("room-destroyed", {"room": "tmp@muc.localhost", "reason": "Creation cancelled"}),
        ("room-created", {"room": "team@muc.localhost", "owner": "alice@localhost"}),
    ]  # a persistent room is only closed when left empty


def test_dialogRoomDestroyed(events):
    """A deleted dialog destroys its open room once."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    bob, _ = h.connect("bob")
    h.send(bob, f"<presence to='1_{dialog.id}@muc.localhost/{h.accountId('bob')}'><x xmlns='{MUC}'/></presence>")
    h.host.hooks.fire("rest-dialog-updated", DialogEvent(dialog, h.accountId("alice"), 1, [], [], deleted=True))
    assert named(events, "room-destroyed") == [{"room": f"1_{dialog.id}@muc.localhost", "reason": "The dialog was deleted"}]
    assert named(events, "room-created") == []


def test_clusterMembership(events):
    """Each node joining is cluster-node joined; a clean stop is left, and so is another node's expiry."""
    c = ClusterHarness()
    assert sorted(f["node"] for f in named(events, "cluster-node")) == ["node0", "node1", "node2"]
    assert {f["state"] for f in named(events, "cluster-node")} == {"joined"}
    events.clear()
    result(c.nodes[2].node.stop())
    assert events == [("cluster-node", {"node": "node2", "state": "left"})]
    events.clear()
    c.nodes[0].node.heartbeat.stop()
    c.pump(5)
    assert ("cluster-node", {"node": "node0", "state": "left"}) in events
