"""
Tests for XEP-0012 last activity and ConnectyCube status streaming.
"""

from types import SimpleNamespace

import pytest
from twisted.internet import defer

from tests.helpers import HostHarness, result
from xmppchat.storage.interfaces import DIALOG_GROUP, RosterItem

NS = "jabber:iq:last"
NS_SS = "https://connectycube.com/protocol/status_streaming"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def contacts(h, user, contact, subscription="to"):
    """Give user a roster item for contact with the given subscription."""
    result(h.storage.roster.setRosterItem(user, RosterItem(jid=f"{contact}@localhost", subscription=subscription)))


def query(h, session, transport, to):
    h.send(session, f"<iq type='get' to='{to}' id='q:lastActivity'><query xmlns='{NS}'/></iq>")
    [reply] = [e for e in transport.pop() if e.name == "iq"]
    return reply


def condition(reply):
    return reply.error.firstChildElement().name


def test_serverUptime():
    """The server answers with its uptime in seconds."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.clock.advance(42)
    reply = query(h, alice, ta, "localhost")
    assert reply["type"] == "result" and reply.query["seconds"] == "42" and reply["from"] == "localhost"


def test_onlineContactIsZero():
    """A subscribed contact with a bound session answers 0, from the contact's bare JID."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob", "both")
    alice, ta = h.connect("alice")
    h.connect("bob", available=False)
    h.clock.advance(100)
    reply = query(h, alice, ta, "bob@localhost")
    assert reply["type"] == "result" and reply.query["seconds"] == "0" and reply["from"] == "bob@localhost"


def test_offlineSecondsAndStatus():
    """After the last resource goes, the seconds since logout and the last status are answered."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    bob1, _ = h.connect("bob", "one")
    bob2, _ = h.connect("bob", "two")
    h.clock.advance(10)
    h.host.endSession(bob1)
    h.send(bob2, "<presence type='unavailable'><status>gone fishing</status></presence>")
    h.host.endSession(bob2)
    h.clock.advance(30)
    reply = query(h, alice, ta, "bob@localhost")
    assert reply.query["seconds"] == "30" and str(reply.query) == "gone fishing"
    stamp, status = result(h.storage.lastActivity.getLastActivity("bob"))
    assert stamp == 10 and status == "gone fishing"


def test_justLoggedOutIsNotZero():
    """A user who logged out less than a second ago answers 1, never the online value 0."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    bob, _ = h.connect("bob")
    h.clock.advance(5)
    h.host.endSession(bob)
    h.clock.advance(0.3)
    assert query(h, alice, ta, "bob@localhost").query["seconds"] == "1"


def test_notSubscribedIsForbidden():
    """Without a subscription or shared dialog the answer is forbidden; a 'from' subscription is not enough."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob", "from")
    alice, ta = h.connect("alice")
    reply = query(h, alice, ta, "bob@localhost")
    assert reply["type"] == "error" and condition(reply) == "forbidden"


def test_dialogConsentHook():
    """A dialog-consent answer of True authorises a user without a subscription."""
    h = HostHarness()
    h.addUser("bob")
    asked = []

    def sharesDialog(q):
        asked.append((q.user, q.peer))
        q.answer(True)

    h.host.hooks.add("dialog-consent", sharesDialog)
    alice, ta = h.connect("alice")
    reply = query(h, alice, ta, "bob@localhost")
    assert reply["type"] == "result" and asked == [("alice@localhost", "bob@localhost")]


def test_unknownUser():
    """Last activity of a non-existent account gets service-unavailable."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert condition(query(h, alice, ta, "nobody@localhost")) == "service-unavailable"


def test_selfQuery():
    """A user asking about their own bare JID gets 0."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert query(h, alice, ta, "alice@localhost").query["seconds"] == "0"


def subscribeStatus(h, session, transport, target, enable="true"):
    h.send(session, f"<iq type='set' id='s:statusStreaming'><subscribe xmlns='{NS_SS}' "
                    f"user_jid='{target}' enable='{enable}'/></iq>")
    return [e for e in transport.pop() if e.name == "iq"]


def test_statusStreamingPushes():
    """A subscriber gets seconds=0 when the user comes online and a non-zero value when they go."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    [reply] = subscribeStatus(h, alice, ta, "bob@localhost")
    assert reply["type"] == "result" and reply["id"] == "s:statusStreaming"
    bob, _ = h.connect("bob", available=False)
    h.connect("bob", "second", available=False)
    [push] = [e for e in ta.pop() if e.name == "iq"]
    assert (push["type"], push["from"], push["to"], push.query.uri, push.query["seconds"]) == (
        "result", "bob@localhost", alice.full, NS, "0")
    for session in list(h.host.sessions.sessionsOf("bob@localhost")):
        h.host.endSession(session)
    [push2] = [e for e in ta.pop() if e.name == "iq"]
    assert push2.query["seconds"] != "0" and push2["id"] != push["id"]
    subscribeStatus(h, alice, ta, "bob@localhost", "false")
    h.connect("bob", available=False)
    assert [e for e in ta.pop() if e.name == "iq"] == []


def test_statusStreamingForbidden():
    """Subscribing to a user one may not watch is forbidden and no pushes follow."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    [reply] = subscribeStatus(h, alice, ta, "bob@localhost")
    assert reply["type"] == "error" and condition(reply) == "forbidden"
    h.connect("bob")
    assert [e for e in ta.pop() if e.name == "iq"] == []


def test_statusStreamingLimit():
    """Beyond status_subscriptions_per_session, subscriptions get resource-constraint."""
    h = HostHarness(limits={"ping_interval": 0, "status_subscriptions_per_session": 2})
    alice, ta = h.connect("alice")
    for name in ("b1", "b2", "b3"):
        h.addUser(name)
        contacts(h, "alice", name)
    assert subscribeStatus(h, alice, ta, "b1@localhost")[0]["type"] == "result"
    assert subscribeStatus(h, alice, ta, "b2@localhost")[0]["type"] == "result"
    assert condition(subscribeStatus(h, alice, ta, "b3@localhost")[0]) == "resource-constraint"


def test_subscriptionsEndWithSession():
    """A subscriber's session ending removes its subscriptions."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    subscribeStatus(h, alice, ta, "bob@localhost")
    h.host.endSession(alice)
    assert h.host.modules["last"].watchers == {}


def test_badUserJID():
    """An invalid user_jid gets jid-malformed."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert condition(subscribeStatus(h, alice, ta, "@@bad")[0]) == "jid-malformed"


def test_dialogConsentAsyncAndFailing():
    """A Deferred answer is waited for; a failing answer is logged and counts as no (forbidden), without crashing."""
    h = HostHarness()
    h.addUser("bob")
    pending = defer.Deferred()
    h.host.hooks.add("dialog-consent", lambda q: q.answer(pending))
    alice, ta = h.connect("alice")
    h.send(alice, f"<iq type='get' to='bob@localhost' id='a1'><query xmlns='{NS}'/></iq>")
    assert [e for e in ta.pop() if e.name == "iq"] == []
    pending.callback(True)
    [reply] = [e for e in ta.pop() if e.name == "iq"]
    assert reply["type"] == "result"
    h2 = HostHarness()
    h2.addUser("bob")
    h2.host.hooks.add("dialog-consent", lambda q: q.answer(defer.fail(RuntimeError("dialog store down"))))
    alice2, ta2 = h2.connect("alice")
    assert condition(query(h2, alice2, ta2, "bob@localhost")) == "forbidden"


# -- issue 15 finding 9: the target's privacy lists win ------------------------------------

INVISIBLE = ("<iq type='set' id='{id}'><query xmlns='jabber:iq:privacy'>{body}</query></iq>")


def goInvisible(h, session, to="alice@localhost"):
    """XEP-0126 §3.3 style: a default list denying presence-out to one contact."""
    h.send(session, INVISIBLE.format(id="p1", body="<list name='inv'><item type='jid' value='" + to
                                     + "' action='deny' order='1'><presence-out/></item></list>"))
    h.send(session, INVISIBLE.format(id="p2", body="<default name='inv'/>"))
    replies = [e["type"] for e in session.stream.transport.pop() if e.getAttribute("id") in ("p1", "p2")]
    assert replies == ["result", "result"]


def pushes(transport):
    return [e.query["seconds"] for e in transport.pop() if e.name == "iq" and e.getAttribute("id", "").startswith("last-")]


def test_invisibleTargetHidesActivityFromSubscriber():
    """Even a subscribed contact gets no last activity and no status pushes from a user invisible to him (XEP-0012 §7, XEP-0126)."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob", "both")
    alice, ta = h.connect("alice")
    h.send(alice, f"<iq type='set' id='s'><subscribe xmlns='{NS_SS}' user_jid='bob@localhost'/></iq>")
    assert [e["type"] for e in ta.pop()] == ["result"]
    bob, _ = h.connect("bob")
    assert pushes(ta) == ["0"]  # visible: the login push
    goInvisible(h, bob)
    assert query(h, alice, ta, "bob@localhost")["type"] == "error"
    assert condition(query(h, alice, ta, "bob@localhost")) == "forbidden"
    bob.stream.connectionLost()
    assert pushes(ta) == []  # nor the logout push
    assert condition(query(h, alice, ta, "bob@localhost")) == "forbidden"
    bob, _ = h.connect("bob")  # invisible by his default list from the start
    assert pushes(ta) == []


def test_blockingTargetHidesActivity():
    """A user who blocked the asker (the SDK's one-way block) is forbidden to him although they are subscribed."""
    h = HostHarness()
    h.addUser("bob")
    contacts(h, "alice", "bob", "both")
    bob, tb = h.connect("bob")
    items = "".join(f"<item type='jid' value='{v}' action='deny' order='{o}'><message/><presence-in/>"
                    f"<presence-out/><iq/></item>" for o, v in ((1, "alice@localhost"), (2, "muc.localhost/alice")))
    h.send(bob, INVISIBLE.format(id="b1", body=f"<list name='block'>{items}</list>"))
    h.send(bob, INVISIBLE.format(id="b2", body="<default name='block'/>"))
    tb.pop()
    alice, ta = h.connect("alice")
    assert query(h, alice, ta, "bob@localhost")["type"] == "error"
    h.send(alice, f"<iq type='set' id='s'><subscribe xmlns='{NS_SS}' user_jid='bob@localhost'/></iq>")
    [refused] = ta.pop()
    assert condition(refused) == "forbidden"


# -- issue 17 item 4: the last-seen privacy setting --------------------------------------------

def setLastSeen(h, localpart, visibility):
    """Store bob's last-seen choice (None: none) and tell the live modules, as the REST layer does."""
    account = result(h.storage.accounts.getAccountByLocalpart(localpart)) or h.addUser(localpart)
    settings = {} if visibility is None else {"last_seen": {"visibility": visibility}}
    account = result(h.storage.accounts.updateAccount(account.id, profile={"privacy_settings": settings}))
    h.host.hooks.fire("account-updated", SimpleNamespace(account=account, localpart=account.localpart))
    return account


def relate(h, relation):
    """Make alice stand to bob in C{relation}; returns alice's session and transport."""
    h.addUser("bob")
    if relation == "subscribed":
        contacts(h, "alice", "bob", "to")
    elif relation in ("wrote-in-dialog", "silent-dialog"):
        dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
        writer = "bob" if relation == "wrote-in-dialog" else "alice"
        result(h.storage.messages.createMessage(dialog.id, h.accountId(writer), "hi"))
    elif relation == "invisible-to-alice":
        contacts(h, "alice", "bob", "both")
        bob, _ = h.connect("bob", available=False)
        goInvisible(h, bob)
    return h.connect("alice")


RELATIONS = ("subscribed", "wrote-in-dialog", "silent-dialog", "stranger", "invisible-to-alice")
#: (bob's setting, server default) -> whether alice, in each of RELATIONS, sees bob's last activity
LAST_SEEN_TABLE = {
    ("everyone", "contacts"): (True, True, True, True, False),
    ("contacts", "everyone"): (True, True, False, False, False),
    ("nobody", "everyone"): (False, False, False, False, False),
    (None, "contacts"): (True, True, False, False, False),
    (None, "everyone"): (True, True, True, True, False),
    (None, "nobody"): (False, False, False, False, False),
}


@pytest.mark.parametrize("setting,default,relation,allowed", [
    (s, d, r, a) for (s, d), row in LAST_SEEN_TABLE.items() for r, a in zip(RELATIONS, row, strict=True)])
def test_lastSeenTable(setting, default, relation, allowed):
    """XEP-0012 and status streaming follow bob's last-seen setting (or the server default) for alice's relation to him."""
    h = HostHarness(privacy={"last_seen_default": default})
    alice, ta = relate(h, relation)
    setLastSeen(h, "bob", setting)
    reply = query(h, alice, ta, "bob@localhost")
    assert (reply["type"] == "result") is allowed, reply.toXml()
    if not allowed:
        assert condition(reply) == "forbidden"
    [subscribed] = subscribeStatus(h, alice, ta, "bob@localhost")
    assert (subscribed["type"] == "result") is allowed


def test_lastSeenNobodyStillSelf():
    """A user whose last seen is 'nobody' still gets his own last activity."""
    h = HostHarness()
    setLastSeen(h, "alice", "nobody")
    alice, ta = h.connect("alice")
    assert query(h, alice, ta, "alice@localhost").query["seconds"] == "0"


def test_lastSeenEveryoneLetsProfileScreensWork():
    """With 'everyone', a user who shares nothing with bob subscribes and gets his pushes (the seed's Contacts / User Profile screens)."""
    h = HostHarness()
    setLastSeen(h, "bob", "everyone")
    alice, ta = h.connect("alice")
    assert subscribeStatus(h, alice, ta, "bob@localhost")[0]["type"] == "result"
    h.connect("bob")
    assert pushes(ta) == ["0"]


def test_settingChangeDropsSubscribers():
    """A stricter setting drops at once the subscribers it refuses; those it still allows keep their pushes."""
    h = HostHarness()
    setLastSeen(h, "bob", "everyone")
    contacts(h, "carol", "bob")
    alice, ta = h.connect("alice")
    carol, tc = h.connect("carol")
    assert subscribeStatus(h, alice, ta, "bob@localhost")[0]["type"] == "result"
    assert subscribeStatus(h, carol, tc, "bob@localhost")[0]["type"] == "result"
    setLastSeen(h, "bob", "contacts")
    bob, _ = h.connect("bob")
    assert pushes(ta) == [] and pushes(tc) == ["0"]
    assert "bob@localhost" not in alice.state["last-watching"]
    setLastSeen(h, "bob", "nobody")
    h.host.endSession(bob)
    assert pushes(tc) == []
    assert h.host.modules["last"].watchers == {}


def test_nobodyPushesNothingBeforeTheRecheck():
    """A target whose setting is 'nobody' pushes to nobody, even to a subscriber not yet re-checked."""
    h = HostHarness()
    account = h.addUser("bob")
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    assert subscribeStatus(h, alice, ta, "bob@localhost")[0]["type"] == "result"
    result(h.storage.accounts.updateAccount(account.id, profile={
        "privacy_settings": {"last_seen": {"visibility": "nobody"}}}))
    h.connect("bob")  # logs in with the new setting; no account-updated was fired
    assert pushes(ta) == []
