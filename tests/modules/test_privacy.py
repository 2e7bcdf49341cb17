"""
Tests for XEP-0016 privacy lists: the protocol, the ConnectyCube flows, and
enforcement for messages, presence and IQs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import HostHarness, result, xml
from xmppchat.modules.privacy import (
    OTHER,
    STANZA_KINDS,
    compileItems,
    evaluate,
    listElement,
    parseItems,
)
from xmppchat.storage.interfaces import SUBSCRIPTIONS, RosterItem

Q = "<query xmlns='jabber:iq:privacy'>{}</query>"
ALL4 = "<message/><presence-in/><presence-out/><iq/>"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def sdkItems(*users, mutual=False, start=1):
    """The two items per blocked user the ConnectyCube SDK writes (§5.18)."""
    children = "" if mutual else ALL4
    out = []
    for k, user in enumerate(users):
        order = start + 2 * k
        for value, o in ((f"{user}@localhost", order), (f"muc.localhost/{user}", order + 1)):
            out.append(f"<item type='jid' value='{value}' action='deny' order='{o}'>{children}</item>")
    return "".join(out)


def iq(h, session, payload, iqType="set", ident="q"):
    """Send a privacy IQ and return the reply to it."""
    h.send(session, f"<iq type='{iqType}' id='{ident}'>{Q.format(payload)}</iq>")
    replies = [e for e in session.stream.transport.pop() if e.name == "iq" and e.getAttribute("id") == ident]
    assert len(replies) == 1
    return replies[0]


def condition(reply):
    assert reply["type"] == "error", reply.toXml()
    return [c.name for c in reply.error.elements() if c.name != "text"][0]


def blockList(h, session, items, name="block", default=True):
    assert iq(h, session, f"<list name='{name}'>{items}</list>")["type"] == "result"
    if default:
        assert iq(h, session, f"<default name='{name}'/>")["type"] == "result"


def messages(transport):
    return [e for e in transport.pop() if e.name == "message"]


def chat(h, frm, to, body="hi", ident="m1"):
    h.send(frm, f"<message to='{to}' type='chat' id='{ident}'><body>{body}</body></message>")


# -- protocol ---------------------------------------------------------------------


def test_createGetAndNames():
    """A created list comes back exactly as stored, in order; names list active and default (§2.3)."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    blockList(h, alice, "<item action='allow' order='9'/><item type='subscription' value='none' action='deny' order='3'><message/></item>", "one", default=False)
    blockList(h, alice, sdkItems("bob"), "two")
    assert iq(h, alice, "<active name='one'/>")["type"] == "result"
    names = iq(h, alice, "", "get")
    assert [(c.name, c["name"]) for c in names.query.elements()] == [
        ("active", "one"), ("default", "two"), ("list", "one"), ("list", "two")]
    got = iq(h, alice, "<list name='one'/>", "get").query.list
    assert got.toXml() == ("<list xmlns='jabber:iq:privacy' name='one'><item type='subscription' value='none' action='deny' order='3'>"
                           "<message/></item><item action='allow' order='9'/></list>")
    got = iq(h, alice, "<list name='two'/>", "get").query.list
    items = list(got.elements())
    assert [i["value"] for i in items] == ["bob@localhost", "muc.localhost/bob"]
    assert [[c.name for c in i.elements()] for i in items] == [["message", "presence-in", "presence-out", "iq"]] * 2


def test_getErrors():
    """A missing list is item-not-found; asking for two lists is bad-request (§2.3)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert condition(iq(h, alice, "<list name='nope'/>", "get")) == "item-not-found"
    blockList(h, alice, sdkItems("bob"), "a", default=False)
    assert condition(iq(h, alice, "<list name='a'/><list name='a'/>", "get")) == "bad-request"


@pytest.mark.parametrize("payload", [
    "<list name='x'><item order='1'/></list>",
    "<list name='x'><item action='block' order='1'/></list>",
    "<list name='x'><item action='deny'/></list>",
    "<list name='x'><item action='deny' order='-1'/></list>",
    "<list name='x'><item action='deny' order='4294967296'/></list>",
    "<list name='x'><item action='deny' order='1'/><item action='allow' order='1'/></list>",
    "<list name='x'><item type='jid' action='deny' order='1'/></list>",
    "<list name='x'><item value='a@b' action='deny' order='1'/></list>",
    "<list name='x'><item type='colour' value='red' action='deny' order='1'/></list>",
    "<list name='x'><item type='subscription' value='maybe' action='deny' order='1'/></list>",
    "<list name='x'><item type='jid' value='a@@b' action='deny' order='1'/></list>",
    "<list name='x'><item action='deny' order='1'><body/></item></list>",
    "<list name='x'><item action='deny' order='1'><iq/><iq/></item></list>",
    "<list name='x'><foo/></list>",
    "<active/><default/>",
    "<list/>",
    "",
])
def test_malformedIsBadRequest(payload):
    """Malformed items and queries are refused with bad-request and nothing is stored (§2.2)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert condition(iq(h, alice, payload)) == "bad-request"
    assert result(h.storage.privacy.getPrivacy("alice")).lists == {}


def test_limits():
    """Too many items is not-acceptable, too many lists resource-constraint, long names not-acceptable."""
    h = HostHarness(privacy={"max_items": 3, "max_lists": 2, "max_name_length": 30})
    alice, _ = h.connect("alice")
    assert condition(iq(h, alice, f"<list name='a'>{sdkItems('b', 'c')}</list>")) == "not-acceptable"
    blockList(h, alice, sdkItems("b"), "a", default=False)
    blockList(h, alice, sdkItems("b"), "b", default=False)
    assert condition(iq(h, alice, f"<list name='c'>{sdkItems('b')}</list>")) == "resource-constraint"
    assert condition(iq(h, alice, "<list name='c'/>")) == "resource-constraint"
    assert iq(h, alice, f"<list name='a'>{sdkItems('x')}</list>")["type"] == "result"
    assert condition(iq(h, alice, f"<list name='{'n' * 31}'>{sdkItems('b')}</list>")) == "not-acceptable"


def test_connectyCubeInitialisationFlow():
    """create({items: []}) on a missing list then setAsDefault works; emptying the default keeps it (§5.18, §7)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    name = "@ConnectyCube/blockList"
    assert condition(iq(h, alice, f"<list name='{name}'/>", "get")) == "item-not-found"
    assert iq(h, alice, f"<list name='{name}'/>")["type"] == "result"
    assert iq(h, alice, f"<default name='{name}'/>")["type"] == "result"
    assert list(iq(h, alice, f"<list name='{name}'/>", "get").query.list.elements()) == []
    assert iq(h, alice, f"<list name='{name}'>{sdkItems('bob', mutual=True)}</list>")["type"] == "result"
    assert len(list(iq(h, alice, f"<list name='{name}'/>", "get").query.list.elements())) == 2
    # unblocking the last user sends the same empty list: it stays, empty and default
    assert iq(h, alice, f"<list name='{name}'/>")["type"] == "result"
    record = result(h.storage.privacy.getPrivacy("alice"))
    assert record.default == name and record.lists == {name: []}
    # decline the default, then the empty list really deletes it
    assert iq(h, alice, "<default/>")["type"] == "result"
    assert iq(h, alice, f"<list name='{name}'/>")["type"] == "result"
    assert result(h.storage.privacy.getPrivacy("alice")).lists == {}


def test_defaultAndActiveNeedExistingList():
    """Setting a missing list as active or default is item-not-found (§2.4, §2.5)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert condition(iq(h, alice, "<active name='x'/>")) == "item-not-found"
    assert condition(iq(h, alice, "<default name='x'/>")) == "item-not-found"
    assert iq(h, alice, "<active/>")["type"] == "result"
    assert iq(h, alice, "<default/>")["type"] == "result"


def test_deleteListActiveElsewhereIsConflict():
    """Deleting a list another resource uses as active is conflict; its own active list can go (§2.8)."""
    h = HostHarness()
    a1, _ = h.connect("alice", "one")
    a2, _ = h.connect("alice", "two")
    blockList(h, a1, sdkItems("bob"), "x", default=False)
    assert iq(h, a2, "<active name='x'/>")["type"] == "result"
    assert condition(iq(h, a1, "<list name='x'/>")) == "conflict"
    assert iq(h, a2, "<list name='x'/>")["type"] == "result"
    names = iq(h, a2, "", "get")
    assert list(names.query.elements()) == []


def test_replacingDefaultInUseIsConflict():
    """Changing or declining the default list while another resource relies on it is conflict (§2.5)."""
    h = HostHarness()
    a1, _ = h.connect("alice", "one")
    a2, _ = h.connect("alice", "two")
    blockList(h, a1, sdkItems("bob"), "a")
    blockList(h, a1, sdkItems("carol"), "b", default=False)
    assert condition(iq(h, a1, "<default name='b'/>")) == "conflict"
    assert condition(iq(h, a1, "<default/>")) == "conflict"
    assert iq(h, a1, "<default name='a'/>")["type"] == "result"  # no change
    assert iq(h, a2, "<active name='b'/>")["type"] == "result"
    assert iq(h, a1, "<default/>")["type"] == "result"
    assert iq(h, a1, "<default name='b'/>")["type"] == "result"
    assert result(h.storage.privacy.getPrivacy("alice")).default == "b"


def test_editPushesToEveryResource():
    """Creating or editing a list pushes its name to every connected resource (§2.2 rule 10)."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two", available=False)
    payload = Q.format("<list name='x'>" + sdkItems("bob") + "</list>")
    h.send(a1, f"<iq type='set' id='e'>{payload}</iq>")
    for transport in (t1, t2):
        pushes = [e for e in transport.pop() if e.name == "iq" and e["type"] == "set"]
        assert len(pushes) == 1 and pushes[0].query.list["name"] == "x"
        assert list(pushes[0].query.list.elements()) == []


def test_listsSurviveReconnect():
    """Lists and the default are stored; a new session gets them from storage."""
    h = HostHarness()
    alice, _ = h.connect("alice", "one")
    blockList(h, alice, sdkItems("bob"), "x")
    h.host.endSession(alice)
    h.host.modules["privacy"].recent.clear()
    alice, _ = h.connect("alice", "two")
    names = iq(h, alice, "", "get")
    assert [(c.name, c["name"]) for c in names.query.elements()] == [("default", "x"), ("list", "x")]


# -- enforcement -------------------------------------------------------------------


def test_oneWayBlock():
    """One-way block: the blocked user's message bounces with 503 and a text, the blocker can still write."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    blockList(h, alice, sdkItems("bob"))
    ta.pop()
    chat(h, bob, "alice@localhost")
    assert messages(ta) == []
    error = messages(tb)[0]
    assert error["type"] == "error" and error["id"] == "m1" and error["from"] == "alice@localhost"
    assert error.error["code"] == "503" and condition(error) == "service-unavailable"
    assert str(error.error.text) == "Service not available."
    chat(h, bob, "alice@localhost/a")
    assert messages(ta) == [] and condition(messages(tb)[0]) == "service-unavailable"
    chat(h, alice, "bob@localhost", "still talking")
    got = messages(tb)
    assert [str(m.body) for m in got] == ["still talking"]


def test_mutualBlock():
    """Mutual block (no children): the blocker's messages are refused too, with not-acceptable and <blocked/>."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    blockList(h, alice, sdkItems("bob", mutual=True))
    ta.pop()
    chat(h, alice, "bob@localhost")
    assert messages(tb) == []
    error = messages(ta)[0]
    assert condition(error) == "not-acceptable" and error.error["code"] == "406"
    assert any(c.name == "blocked" and c.uri == "urn:xmpp:blocking:errors" for c in error.error.elements())
    chat(h, bob, "alice@localhost")
    assert messages(ta) == [] and condition(messages(tb)[0]) == "service-unavailable"


def test_unblockRestoresDelivery():
    """After the block is removed (list edited while default) messages flow again at once."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    blockList(h, alice, sdkItems("bob"))
    blockList(h, alice, sdkItems("carol"))
    ta.pop()
    chat(h, bob, "alice@localhost")
    assert [str(m.body) for m in messages(ta)] == ["hi"]


def _friends(h):
    """alice and bob with a mutual subscription, both online and available."""
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    h.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    ta.pop(), tb.pop()
    return alice, ta, bob, tb


def presences(transport):
    return [(e.getAttribute("type"), e["from"]) for e in transport.pop() if e.name == "presence"]


def test_presenceHiddenFromBlocked():
    """Blocking sends the blocked user unavailable presence; later broadcasts and probe answers are hidden."""
    h = HostHarness()
    alice, ta, bob, tb = _friends(h)
    blockList(h, alice, sdkItems("bob"), default=False)
    payload = Q.format("<default name='block'/>")
    h.send(alice, f"<iq type='set' id='d'>{payload}</iq>")
    assert ("unavailable", "bob@localhost/b") in presences(ta)
    assert ("unavailable", "alice@localhost/a") in presences(tb)
    h.send(alice, "<presence><show>away</show></presence>")
    assert presences(tb) == []
    assert presences(ta) == [(None, "alice@localhost/a")]  # her own reflection (RFC 6121 §4.4.2)
    h.send(bob, "<presence><show>dnd</show></presence>")
    assert presences(ta) == []
    bob2, tb2 = h.connect("bob", "b2", available=False)
    h.send(bob2, "<presence/>")
    assert [p for p in presences(tb2) if p[1].startswith("alice")] == []
    # unblock: presence is shown again
    assert iq(h, alice, "<list name='block'><item action='allow' order='1'/></list>")["type"] == "result"
    assert (None, "alice@localhost/a") in presences(tb)


def test_iqToBlockerBareJIDRefused():
    """A blocked user's IQ to the blocker's bare JID (e.g. jabber:iq:last) is refused before any handler runs."""
    h = HostHarness()
    seen = []

    def last(event):
        seen.append(event.origin.localpart)
        h.host.router.sendError(event.origin, event.stanza, "feature-not-implemented")
        return True

    h.host.hooks.add("iq-get/bare/jabber:iq:last:query", last, 100)  # before the last module
    alice, _ = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    carol, tc = h.connect("carol", "c")
    blockList(h, alice, sdkItems("bob"))
    lastIQ = "<iq type='get' to='alice@localhost' id='l1'><query xmlns='jabber:iq:last'/></iq>"
    h.send(bob, lastIQ)
    h.send(carol, lastIQ)
    assert seen == ["carol"]
    reply = [e for e in tb.pop() if e.name == "iq"][0]
    assert condition(reply) == "service-unavailable" and reply["from"] == "alice@localhost"


def test_iqToBlockerFullJIDRefused():
    """A blocked user's IQ to a blocker's resource is refused; its results to the blocker are dropped."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    carol, _ = h.connect("carol", "c")
    blockList(h, alice, sdkItems("bob"))
    ta.pop()
    version = "<iq type='get' to='alice@localhost/a' id='v1'><query xmlns='jabber:iq:version'/></iq>"
    h.send(bob, version)
    assert ta.pop() == [] and condition(tb.pop()[0]) == "service-unavailable"
    h.send(carol, version)
    assert [e["id"] for e in ta.pop()] == ["v1"]
    h.send(bob, "<iq type='result' to='alice@localhost/a' id='v2'/>")
    assert ta.pop() == [] and tb.pop() == []


def test_offlineMessageFromBlockedNotStored():
    """A message from a blocked sender to an offline blocker bounces and is not stored offline."""
    h = HostHarness()
    alice, _ = h.connect("alice", "a")
    blockList(h, alice, sdkItems("bob"))
    h.host.endSession(alice)
    bob, tb = h.connect("bob", "b")
    carol, _ = h.connect("carol", "c")
    chat(h, bob, "alice@localhost")
    assert condition(messages(tb)[0]) == "service-unavailable"
    chat(h, carol, "alice@localhost")
    stored = result(h.storage.offline.fetchOffline("alice"))
    assert [m.stanza.count("carol@localhost/c") for m in stored] == [1]


def test_offlineBlockerNotInCacheIsLoadedFirst():
    """A stanza for an offline user whose lists are not cached waits for one load, then is judged."""
    h = HostHarness()
    result(h.storage.privacy.setPrivacyList("alice", "x", [
        {"type": "jid", "value": "bob@localhost", "action": "deny", "order": 1, "stanzas": []}]))
    result(h.storage.privacy.setDefaultPrivacyList("alice", "x"))
    h.addUser("alice")
    calls = []
    real = h.storage.privacy.getPrivacy
    h.storage.privacy.getPrivacy = lambda lp: (calls.append(lp), real(lp))[1]
    bob, tb = h.connect("bob", "b")
    for n in range(5):
        chat(h, bob, "alice@localhost", ident=f"m{n}")
    assert [condition(m) for m in messages(tb)] == ["service-unavailable"] * 5
    assert calls == ["bob", "alice"]
    assert result(h.storage.offline.countOffline("alice")) == 0


def test_activeListAppliesPerSession():
    """An active list filters only its own session; a message to the bare JID still reaches the others (§2.2)."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    blockList(h, a1, sdkItems("bob"), default=False)
    assert iq(h, a1, "<active name='block'/>")["type"] == "result"
    bob, tb = h.connect("bob", "b")
    t1.pop(), t2.pop()
    chat(h, bob, "alice@localhost")
    assert messages(t1) == [] and len(messages(t2)) == 1
    assert messages(tb) == []
    chat(h, bob, "alice@localhost/one")
    assert messages(t1) == [] and condition(messages(tb)[0]) == "service-unavailable"
    # when every available resource refuses, the sender gets the error
    assert iq(h, a2, "<active name='block'/>")["type"] == "result"
    chat(h, bob, "alice@localhost")
    assert messages(t1) == messages(t2) == [] and condition(messages(tb)[0]) == "service-unavailable"


def test_groupAndSubscriptionRules():
    """Group items match the sender's roster groups; subscription items its state (none if absent)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    carol, tc = h.connect("carol", "c")
    dave, td = h.connect("dave", "d")
    h.send(alice, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group>Enemies</group></item></query></iq>")
    h.send(alice, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'><group>Friends</group></item></query></iq>")
    blockList(h, alice, "<item type='group' value='Enemies' action='deny' order='1'><message/></item>"
                        "<item type='group' value='Friends' action='allow' order='2'/>"
                        "<item type='subscription' value='none' action='deny' order='3'><message/></item>")
    ta.pop()
    for who in (bob, carol, dave):
        chat(h, who, "alice@localhost", f"from {who.localpart}")
    assert [str(m.body) for m in messages(ta)] == ["from carol"]
    assert condition(messages(tb)[0]) == condition(messages(td)[0]) == "service-unavailable"
    # a roster change applies at once (§2.2 rule 9)
    h.send(alice, "<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'><group>Friends</group></item></query></iq>")
    ta.pop()
    chat(h, bob, "alice@localhost", "friends now")
    assert [str(m.body) for m in messages(ta)] == ["friends now"]


def test_jidMatchingForms():
    """jid items match full JID, bare JID, domain/resource and domain (§2.1)."""
    h = HostHarness()
    privacy = h.host.modules["privacy"]
    cases = [
        ("bob@localhost/b", ("bob", "localhost", "b"), True),
        ("bob@localhost/b", ("bob", "localhost", "c"), False),
        ("bob@localhost", ("bob", "localhost", "x"), True),
        ("bob@localhost", ("carol", "localhost", "x"), False),
        ("muc.localhost/5", ("1_abc", "muc.localhost", "5"), True),
        ("muc.localhost/5", ("1_abc", "muc.localhost", "6"), False),
        ("evil.example", ("anyone", "evil.example", "r"), True),
        ("evil.example", ("anyone", "sub.evil.example", "r"), False),
    ]
    for value, peer, denied in cases:
        rules = compileItems([{"type": "jid", "value": value, "action": "deny", "order": 0, "stanzas": []}])
        assert evaluate(rules, "message", peer, None) is denied, (value, peer)
    assert privacy is not None


def test_mucOccupantFilteredOnDelivery():
    """The SDK's second item (muc domain/userId) drops group traffic from that occupant on delivery."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    blockList(h, alice, sdkItems("5"))
    ta.pop()
    for sender in ("1_dialog@muc.localhost/5", "1_dialog@muc.localhost/6"):
        alice.send(xml(f"<message type='groupchat' from='{sender}' to='alice@localhost/a'><body>x</body></message>"))
    assert [m["from"] for m in messages(ta)] == ["1_dialog@muc.localhost/6"]


def test_blocksFunctionForGroupFanOut():
    """blocks(receiver, sender, kind) answers from the cache for one-way and mutual blocks."""
    h = HostHarness()
    alice, _ = h.connect("alice", "a")
    carol, _ = h.connect("carol", "c")
    privacy = h.host.modules["privacy"]
    assert privacy.blocks("alice@localhost", "bob@localhost") is False
    blockList(h, alice, sdkItems("bob"))
    blockList(h, carol, sdkItems("bob", mutual=True))
    assert privacy.blocks("alice@localhost", "bob@localhost", "message") is True
    assert privacy.blocks("bob@localhost", "alice@localhost", "message") is False
    assert privacy.blocks("bob@localhost", "carol@localhost", "message") is True
    assert privacy.blocks("alice@localhost", "dave@localhost", "message") is False


def test_noStorageReadPerStanza():
    """Once cached, stanzas are judged without storage reads; a change applies immediately."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    blockList(h, alice, sdkItems("bob"))
    calls = []
    h.storage.privacy.getPrivacy = lambda lp: calls.append(lp)
    for n in range(20):
        chat(h, bob, "alice@localhost", ident=f"m{n}")
    assert calls == [] and len(messages(tb)) == 20 and messages(ta) == []
    blockList(h, alice, sdkItems("carol"), default=False)
    chat(h, bob, "alice@localhost")
    assert len(messages(ta)) == 1


def test_cacheIsBounded():
    """Settings of users without a session live in an LRU of privacy.cache_size entries."""
    h = HostHarness(privacy={"cache_size": 2})
    privacy = h.host.modules["privacy"]
    for name in ("u1", "u2", "u3"):
        result(privacy.settingsOf(name))
    assert list(privacy.recent) == ["u2", "u3"]


# -- the evaluator against a straightforward reference -----------------------------------

USERS = ["a", "b", None]
HOSTS = ["localhost", "other.example"]
RESOURCES = ["r1", "r2", None]
GROUPS = ["G1", "G2"]


def jidText(user, host, resource):
    return (f"{user}@" if user else "") + host + (f"/{resource}" if resource else "")


def referenceDenies(items, kind, peer, roster):
    """XEP-0016 §2.1-§2.2 read literally: first matching item by ascending order decides."""
    user, host, resource = peer
    bare = f"{user}@{host}" if user else host
    for item in sorted(items, key=lambda i: i["order"]):
        if item["stanzas"] and kind not in item["stanzas"]:
            continue
        if item["type"] == "jid":
            value = item["value"]
            rest, _, itemResource = value.partition("/")
            itemUser, _, itemHost = rest.rpartition("@")
            if itemHost != host:
                continue
            if itemUser and itemUser != user:
                continue
            if "/" in value and itemResource != resource:
                continue
        elif item["type"] == "group":
            if bare not in roster or item["value"] not in roster[bare].groups:
                continue
        elif item["type"] == "subscription":
            if (roster[bare].subscription if bare in roster else "none") != item["value"]:
                continue
        return item["action"] == "deny"
    return False


jids = st.builds(jidText, st.sampled_from(["a", "b"]), st.sampled_from(HOSTS), st.sampled_from(RESOURCES)) | \
    st.builds(jidText, st.just(None), st.sampled_from(HOSTS), st.sampled_from(RESOURCES))
itemStrategy = st.one_of(
    st.fixed_dictionaries({"type": st.just("jid"), "value": jids}),
    st.fixed_dictionaries({"type": st.just("group"), "value": st.sampled_from(GROUPS)}),
    st.fixed_dictionaries({"type": st.just("subscription"), "value": st.sampled_from(SUBSCRIPTIONS)}),
    st.fixed_dictionaries({"type": st.none(), "value": st.none()}),
).flatmap(lambda base: st.fixed_dictionaries({
    "type": st.just(base["type"]), "value": st.just(base["value"]),
    "action": st.sampled_from(["allow", "deny"]),
    "stanzas": st.lists(st.sampled_from(STANZA_KINDS), unique=True, max_size=4),
}))
rosterStrategy = st.dictionaries(
    st.sampled_from(["a@localhost", "b@localhost", "a@other.example", "other.example"]),
    st.builds(lambda groups, sub: RosterItem(jid="", groups=groups, subscription=sub),
              st.lists(st.sampled_from(GROUPS), unique=True), st.sampled_from(SUBSCRIPTIONS)))


@settings(max_examples=300, deadline=None)
@given(st.lists(itemStrategy, max_size=8), st.randoms(use_true_random=False),
       st.sampled_from(list(STANZA_KINDS) + [OTHER]),
       st.tuples(st.sampled_from(USERS), st.sampled_from(HOSTS), st.sampled_from(RESOURCES)),
       rosterStrategy)
def test_evaluatorMatchesReference(items, rng, kind, peer, roster):
    """The compiled evaluator agrees with a literal reading of the spec on random lists, stanzas and rosters."""
    orders = rng.sample(range(100), len(items))
    items = [dict(item, order=order) for item, order in zip(items, orders, strict=True)]
    assert evaluate(compileItems(items), kind, peer, roster) == referenceDenies(items, kind, peer, roster)
    # and the list survives the wire format unchanged (in order order)
    wire = xml(listElement("x", items).toXml())
    assert parseItems(wire, 100, 100) == sorted(items, key=lambda i: i["order"])


def test_discoFeaturesAndConfig():
    """Both namespaces are advertised; bad [privacy] values are reported with their keys."""
    from xmppchat.config import ConfigError, buildConfig

    h = HostHarness()
    features = h.host.features()
    assert "jabber:iq:privacy" in features and "urn:xmpp:blocking" in features
    with pytest.raises(ConfigError) as info:
        buildConfig({"privacy": {"max_items": 0, "blocklist_name": ""}})
    assert "privacy.max_items" in str(info.value) and "privacy.blocklist_name" in str(info.value)


denseJIDItems = st.lists(st.fixed_dictionaries({
    "type": st.just("jid"),
    "value": st.sampled_from(["a@localhost/r1", "a@localhost", "localhost/r1", "localhost"]),
    "action": st.sampled_from(["allow", "deny"]),
    "stanzas": st.lists(st.sampled_from(["message", "iq"]), unique=True, max_size=2),
}), min_size=2, max_size=6)


@settings(max_examples=300, deadline=None)
@given(denseJIDItems, st.randoms(use_true_random=False), st.sampled_from(["message", "iq", OTHER]),
       st.sampled_from([("a", "localhost", "r1"), ("a", "localhost", "r2"), (None, "localhost", "r1"),
                        ("b", "localhost", None)]))
def test_jidIndexMatchesReference(items, rng, kind, peer):
    """Overlapping jid items (full, bare, domain/resource, domain) resolve by order as the reference does."""
    orders = rng.sample(range(20), len(items))
    items = [dict(item, order=order) for item, order in zip(items, orders, strict=True)]
    assert evaluate(compileItems(items), kind, peer, None) == referenceDenies(items, kind, peer, {})
