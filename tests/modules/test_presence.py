"""
Tests for the roster (RFC 6121 §2) and presence (RFC 6121 §3-§4) modules.
"""

from twisted.internet import defer

from tests.helpers import HostHarness, result


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def roster(h, user, transport=None):
    session = h.host.sessions.sessionsOf(f"{user}@localhost")[0]
    h.send(session, "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
    t = transport or session.stream.transport
    reply = [e for e in t.pop() if e.name == "iq" and e.getAttribute("id") == "r"][0]
    return {i["jid"]: (i["subscription"], i.getAttribute("ask")) for i in reply.query.elements()}


def presences(transport):
    return [(e.getAttribute("type"), e["from"]) for e in transport.pop() if e.name == "presence"]


def test_rosterSetGetRemove():
    """Roster set adds an item with name and groups, pushes it, and remove deletes it (RFC 6121 §2.3-§2.5)."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
    ta.pop()
    h.send(alice, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>")
    sent = ta.pop()
    push = [e for e in sent if e["type"] == "set"][0]
    assert push.query.item["jid"] == "bob@localhost" and push.query.item["name"] == "Bob"
    assert any(e["type"] == "result" and e["id"] == "s1" for e in sent)
    assert roster(h, "alice") == {"bob@localhost": ("none", None)}
    h.send(alice, "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
    ta.pop()
    assert roster(h, "alice") == {}
    assert result(h.storage.roster.getRoster("alice")) == []


def test_rosterSetErrors():
    """Roster sets with two items, a bad JID or duplicate groups are refused."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='a@localhost'/><item jid='b@localhost'/></query></iq>")
    h.send(alice, "<iq type='set' id='2'><query xmlns='jabber:iq:roster'><item jid='@@'/></query></iq>")
    h.send(alice, "<iq type='set' id='3'><query xmlns='jabber:iq:roster'><item jid='b@localhost'><group>g</group><group>g</group></item></query></iq>")
    conditions = [e.error.firstChildElement().name for e in ta.pop()]
    assert conditions == ["bad-request", "jid-malformed", "bad-request"]


def test_subscriptionHandshake():
    """subscribe + subscribed gives alice 'to' and bob 'from', and alice then sees bob's presence (RFC 6121 §3.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    roster(h, "alice"), roster(h, "bob")
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    assert ("subscribe", "alice@localhost") in presences(tb)
    assert roster(h, "alice") == {"bob@localhost": ("none", "subscribe")}
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    got = presences(ta)
    assert ("subscribed", "bob@localhost") in got
    assert (None, "bob@localhost/b") in got
    assert roster(h, "alice") == {"bob@localhost": ("to", None)}
    assert roster(h, "bob") == {"alice@localhost": ("from", None)}
    h.send(bob, "<presence><show>away</show></presence>")
    assert presences(ta) == [(None, "bob@localhost/b")]


def test_pendingRequestDeliveredAtLogin():
    """A subscription request to an offline user is delivered with their next initial presence (RFC 6121 §3.1.3)."""
    h = HostHarness()
    h.addUser("bob")
    alice, ta = h.connect("alice")
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence/>")
    assert ("subscribe", "alice@localhost") in presences(tb)
    assert roster(h, "bob") == {}


def test_unsubscribeAndUnsubscribed():
    """unsubscribed cancels the contact's subscription and sends unavailable; unsubscribe drops ours."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    roster(h, "alice"), roster(h, "bob")  # interested resources get subscription stanzas (RFC 6121 §3.2.3)
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    ta.pop(), tb.pop()
    h.send(bob, "<presence to='alice@localhost' type='unsubscribed'/>")
    got = presences(ta)
    assert ("unsubscribed", "bob@localhost") in got and ("unavailable", "bob@localhost/b") in got
    assert roster(h, "alice") == {"bob@localhost": ("none", None)}
    h.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    h.send(bob, "<presence to='alice@localhost' type='unsubscribe'/>")
    assert roster(h, "bob")["alice@localhost"] == ("none", None)
    assert roster(h, "alice")["bob@localhost"] == ("none", None)


def test_probesOnLogin():
    """A new available resource receives the presence of contacts it is subscribed to."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    alice2, ta2 = h.connect("alice", "second", available=False)
    h.send(alice2, "<presence/>")
    got = presences(ta2)
    assert (None, "bob@localhost/b") in got and (None, "alice@localhost/a") in got


def test_directedPresence():
    """Directed presence reaches a non-contact, who gets unavailable when the sender disconnects (RFC 6121 §4.6)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    carol, tc = h.connect("carol", "c")
    h.send(alice, "<presence to='carol@localhost/c'/>")
    assert presences(tc) == [(None, "alice@localhost/a")]
    alice.stream.connectionLost()
    assert presences(tc) == [("unavailable", "alice@localhost/a")]


def test_ownResourcesSeeEachOther():
    """A user's other available resources receive its presence broadcasts."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    assert (None, "alice@localhost/two") in presences(t1)
    h.send(a2, "<presence type='unavailable'/>")
    assert presences(t1) == [("unavailable", "alice@localhost/two")]


def test_interleavedHandshakeWithSlowStorage():
    """With asynchronous storage, an approval followed at once by a counter-request still ends in 'both' on both sides."""
    h = HostHarness()
    h.addUser("dave")
    store = h.storage.roster
    write = store.setRosterItem
    pending = []

    def slowWrite(*args):
        d = defer.Deferred()
        pending.append((d, args))
        return d

    def flush():
        while pending:
            d, args = pending.pop(0)
            write(*args).chainDeferred(d)

    store.setRosterItem = slowWrite
    carol, _ = h.connect("carol")
    dave, _ = h.connect("dave")
    h.send(carol, "<presence to='dave@localhost' type='subscribe'/>")
    flush()
    h.send(dave, "<presence to='carol@localhost' type='subscribed'/>")
    h.send(dave, "<presence to='carol@localhost' type='subscribe'/>")
    flush()
    h.send(carol, "<presence to='dave@localhost' type='subscribed'/>")
    flush()
    assert result(store.getRosterItem("carol", "dave@localhost")).subscription == "both"
    assert result(store.getRosterItem("dave", "carol@localhost")).subscription == "both"
