"""
Tests for XEP-0163 PEP (L{xmppchat.modules.pep}): publish, auto-create,
publish-options preconditions, retrieval and access models, retract,
delete, configure, +notify filtering through entity caps, last-item
delivery, quotas, blocking, and the internal API other modules use.
"""

from __future__ import annotations

from tests.helpers import HeldRead, HostHarness, result, xml
from xmppchat.caps import capsHash
from xmppchat.storage.interfaces import RosterItem

BOTH_BACKENDS = True

PS = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"
ERRORS = "http://jabber.org/protocol/pubsub#errors"
DISCO = "http://jabber.org/protocol/disco#info"
NICK = "http://jabber.org/protocol/nick"


def options(**fields):
    values = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in fields.items())
    return ("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{PS}#publish-options</value></field>{values}</x></publish-options>")


def publishXML(node, payload, itemId="current", **fields):
    return (f"<pubsub xmlns='{PS}'><publish node='{node}'><item id='{itemId}'>{payload}</item></publish>"
            f"{options(**fields) if fields else ''}</pubsub>")


def iq(h, session, payload, iqType="set", to=None, ident="p"):
    target = f" to='{to}'" if to else ""
    h.send(session, f"<iq type='{iqType}' id='{ident}'{target}>{payload}</iq>")
    sent = session.stream.transport.pop()
    replies = [e for e in sent if e.name == "iq" and e.getAttribute("id") == ident]
    assert len(replies) == 1, [e.toXml() for e in sent]
    return replies[0], [e for e in sent if e is not replies[0]]


def errorOf(reply):
    assert reply["type"] == "error", reply.toXml()
    conditions = [c.name for c in reply.error.elements() if c.name != "text"]
    return conditions


def events(transport):
    out = []
    for e in transport.pop():
        if e.name == "message" and e.getAttribute("type") == "headline":
            out.append(e)
    return out


def disco(features):
    query = f"<query xmlns='{DISCO}'><identity category='client' type='pc' name='t'/>" + "".join(
        f"<feature var='{f}'/>" for f in features) + "</query>"
    return query, capsHash(xml(query))


def withCaps(h, session, features):
    """Send presence with caps and answer the server's disco#info query."""
    query, ver = disco(features)
    h.send(session, f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='{ver}'/></presence>")
    sent = session.stream.transport.pop()
    asks = [e for e in sent if e.name == "iq" and e.getAttribute("type") == "get"]
    for ask in asks:
        h.send(session, f"<iq type='result' id='{ask['id']}' to='localhost'>{query.replace('<query ', f'<query node={chr(39)}n#{ver}{chr(39)} ', 1)}</iq>")
    return asks, [e for e in sent if e not in asks]


def befriend(h, owner, contact):
    """C{contact} is subscribed to C{owner}'s presence (owner: from, contact: to)."""
    result(h.storage.roster.setRosterItem(owner, RosterItem(jid=f"{contact}@localhost", subscription="from")))
    result(h.storage.roster.setRosterItem(contact, RosterItem(jid=f"{owner}@localhost", subscription="to")))


def test_publishAutoCreatesAndNotifiesInterestedContact():
    """A publish creates the node; a contact resource with nick+notify gets the event, one without does not."""
    h = HostHarness()
    befriend(h, "alice", "bob")
    alice, _ = h.connect("alice")
    bob1, t1 = h.connect("bob", "one", available=False)
    bob2, t2 = h.connect("bob", "two", available=False)
    withCaps(h, bob1, [NICK + "+notify"])
    withCaps(h, bob2, [NICK])
    t1.pop(), t2.pop()
    reply, _ = iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    assert reply["type"] == "result"
    assert reply.pubsub.publish.item["id"] == "current"
    got = events(t1)
    assert len(got) == 1 and got[0]["from"] == "alice@localhost"
    assert str(got[0].event.items.item.nick) == "Alice"
    assert events(t2) == []


def test_preconditionNotMet():
    """Publishing with publish-options that differ from the node's config is conflict + precondition-not-met."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    reply, _ = iq(h, alice, publishXML("urn:xmpp:bookmarks:1", "<conference xmlns='urn:xmpp:bookmarks:1'/>",
                                       access_model="whitelist", max_items="max", persist_items="true"))
    assert reply["type"] == "result"
    reply, _ = iq(h, alice, publishXML("urn:xmpp:bookmarks:1", "<conference xmlns='urn:xmpp:bookmarks:1'/>",
                                       itemId="x", access_model="open"))
    assert errorOf(reply) == ["conflict", "precondition-not-met"]
    assert result(h.storage.pep.getItems("alice", "urn:xmpp:bookmarks:1"))[0][0] == "current"


def test_accessModels():
    """Presence: contacts read, others get presence-subscription-required; whitelist: even contacts refused; open: anyone."""
    h = HostHarness()
    befriend(h, "alice", "bob")
    alice, _ = h.connect("alice")
    bob, _ = h.connect("bob")
    eve, _ = h.connect("eve")
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>A</nick>"))
    iq(h, alice, publishXML("b", "<b xmlns='b'/>", access_model="whitelist"))
    iq(h, alice, publishXML("o", "<o xmlns='o'/>", access_model="open"))
    get = "<pubsub xmlns='" + PS + "'><items node='{}'/></pubsub>"
    reply, _ = iq(h, bob, get.format(NICK), "get", "alice@localhost")
    assert reply["type"] == "result" and reply.pubsub.items.item["id"] == "current"
    reply, _ = iq(h, eve, get.format(NICK), "get", "alice@localhost")
    assert errorOf(reply) == ["not-authorized", "presence-subscription-required"]
    reply, _ = iq(h, bob, get.format("b"), "get", "alice@localhost")
    assert errorOf(reply) == ["not-allowed", "closed-node"]
    reply, _ = iq(h, eve, get.format("o"), "get", "alice@localhost")
    assert reply["type"] == "result"
    reply, _ = iq(h, eve, get.format("missing"), "get", "alice@localhost")
    assert errorOf(reply) == ["item-not-found"]
    reply, _ = iq(h, eve, get.format("missing"), "get", "nobody@localhost")
    assert errorOf(reply) == ["service-unavailable"]
    reply, _ = iq(h, bob, publishXML("o", "<o xmlns='o'/>"), "set", "alice@localhost")
    assert errorOf(reply) == ["forbidden"]


def test_itemsByIdAndMax():
    """Items come newest first, limited by max_items or selected by id."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    for n in range(3):
        iq(h, alice, publishXML("n", f"<v xmlns='v'>{n}</v>", itemId=f"i{n}", max_items="10"))
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}'><items node='n' max_items='2'/></pubsub>", "get")
    assert [i["id"] for i in reply.pubsub.items.elements()] == ["i2", "i1"]
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}'><items node='n'><item id='i0'/></items></pubsub>", "get")
    assert [i["id"] for i in reply.pubsub.items.elements()] == ["i0"]


def test_retractAndDeleteNotify():
    """Retract and node delete reach the interested resources; unknown items/nodes are item-not-found."""
    h = HostHarness()
    alice, _ = h.connect("alice", "a1", available=False)
    other, t = h.connect("alice", "a2", available=False)
    withCaps(h, other, ["n+notify"])
    withCaps(h, alice, [])
    iq(h, alice, publishXML("n", "<v xmlns='v'/>"))
    t.pop()
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}'><retract node='n' notify='true'><item id='current'/></retract></pubsub>")
    assert reply["type"] == "result"
    assert events(t)[0].event.items.retract["id"] == "current"
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}'><retract node='n'><item id='current'/></retract></pubsub>")
    assert errorOf(reply) == ["item-not-found"]
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}#owner'><delete node='n'/></pubsub>")
    assert reply["type"] == "result"
    assert events(t)[0].event.delete["node"] == "n"
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}#owner'><delete node='n'/></pubsub>")
    assert errorOf(reply) == ["item-not-found"]


def test_configureRoundTrip():
    """The owner reads the node config form and changes the access model."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    iq(h, alice, publishXML("n", "<v xmlns='v'/>"))
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}#owner'><configure node='n'/></pubsub>", "get")
    fields = {f["var"]: str(f.value) for f in reply.pubsub.configure.x.elements() if f.name == "field"
              and f.getAttribute("var") != "FORM_TYPE" and f.value}
    assert fields["pubsub#access_model"] == "presence"
    form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>"
            f"{PS}#node_config</value></field><field var='pubsub#access_model'><value>open</value></field></x>")
    reply, _ = iq(h, alice, f"<pubsub xmlns='{PS}#owner'><configure node='n'>{form}</configure></pubsub>")
    assert reply["type"] == "result"
    assert result(h.storage.pep.getNode("alice", "n"))["access_model"] == "open"


def test_quotas():
    """Too many nodes is resource-constraint + max-nodes-exceeded; a too big item not-acceptable + payload-too-big."""
    h = HostHarness(pep={"max_nodes_per_user": 1, "max_item_bytes": 100})
    alice, _ = h.connect("alice")
    assert iq(h, alice, publishXML("a", "<v xmlns='v'/>"))[0]["type"] == "result"
    assert errorOf(iq(h, alice, publishXML("b", "<v xmlns='v'/>"))[0]) == ["resource-constraint", "max-nodes-exceeded"]
    big = "<v xmlns='v'>" + "x" * 200 + "</v>"
    assert errorOf(iq(h, alice, publishXML("a", big))[0]) == ["not-acceptable", "payload-too-big"]


def test_lastItemOnInterest():
    """A contact's resource coming online with +notify gets the last item of the contact's node."""
    h = HostHarness()
    befriend(h, "alice", "bob")
    alice, _ = h.connect("alice")
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    bob, t = h.connect("bob", available=False)
    _, rest = withCaps(h, bob, [NICK + "+notify"])
    got = [e for e in rest + t.pop() if e.name == "message"]
    assert len(got) == 1 and str(got[0].event.items.item.nick) == "Alice"


def test_capsCachedAcrossResources():
    """A second resource with the same verified caps is not queried again."""
    h = HostHarness()
    one, _ = h.connect("bob", "one", available=False)
    two, _ = h.connect("bob", "two", available=False)
    asks, _ = withCaps(h, one, [NICK + "+notify"])
    assert len(asks) == 1
    asks, _ = withCaps(h, two, [NICK + "+notify"])
    assert asks == []
    assert two.state["pep"] == frozenset([NICK])


def capsPresence(h, session, ver):
    """An available presence with caps C{ver}; returns the server's disco#info queries."""
    h.send(session, f"<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='{ver}'/></presence>")
    return [e for e in session.stream.transport.pop() if e.name == "iq" and e.getAttribute("type") == "get"]


def answerCaps(h, session, ask, query, ver):
    h.send(session, f"<iq type='result' id='{ask['id']}' to='localhost'>"
                    f"{query.replace('<query ', f'<query node={chr(39)}n#{ver}{chr(39)} ', 1)}</iq>")


def test_attackCapsFloodKeepsOthersQueries():
    """
    Security review finding 2: eve sends as many presences with new vers
    as the server keeps queries; bob's query is not evicted (one query per
    session), so his answer still tells his interest and he gets the event.
    """
    h = HostHarness()
    befriend(h, "alice", "bob")
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob", "one", available=False)
    eve, _ = h.connect("eve", "x", available=False)
    query, ver = disco([NICK + "+notify"])
    [ask] = capsPresence(h, bob, ver)
    interest = h.host.modules["pep"].interest
    for i in range(interest.maxPending):
        capsPresence(h, eve, f"junk{i}")
    assert len(interest.pending) == 2
    answerCaps(h, bob, ask, query, ver)
    assert bob.state["pep"] == frozenset([NICK])
    tb.pop()
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    assert len(events(tb)) == 1


def test_attackEvictedOrExpiredQueryAsksAgain():
    """
    Finding 2: a query dropped by the global bound, or unanswered for
    QUERY_SECONDS, forgets the session's ver: its next presence asks again.
    """
    h = HostHarness()
    interest = h.host.modules["pep"].interest
    interest.maxPending = 2
    sessions = [h.connect(f"u{i}", "r", available=False)[0] for i in range(3)]
    _, ver = disco([NICK + "+notify"])
    for session in sessions:
        assert len(capsPresence(h, session, ver)) == 1
    assert len(interest.pending) == 2
    assert len(capsPresence(h, sessions[0], ver)) == 1  # evicted: asked again
    from xmppchat.pep.interest import QUERY_SECONDS

    h.clock.advance(QUERY_SECONDS + 1)
    late, _ = h.connect("late", "r", available=False)
    capsPresence(h, late, "other")
    assert len(interest.pending) == 1
    assert all(len(capsPresence(h, session, ver)) == 1 for session in sessions)


def test_attackCapsCacheKeepsNotifyNodesOnly():
    """
    Finding 3: a verified answer with more than MAX_CAPS_FEATURES features
    is not cached; what is cached is the +notify node set; a resource's
    interest holds at most MAX_INTEREST_NODES nodes of MAX_NOTIFY_NODE characters.
    """
    h = HostHarness()
    eve, _ = h.connect("eve", "x", available=False)
    interest = h.host.modules["pep"].interest
    query, ver = disco([f"urn:x:{j:06d}" for j in range(2000)] + [NICK + "+notify"])
    [ask] = capsPresence(h, eve, ver)
    answerCaps(h, eve, ask, query, ver)
    assert len(interest.cache) == 0 and eve.state["pep"] == frozenset([NICK])
    from xmppchat.pep.interest import MAX_CAPS_FEATURES, MAX_INTEREST_NODES, MAX_NOTIFY_NODE

    assert MAX_CAPS_FEATURES < 2000
    notify = [f"urn:n:{j:04d}+notify" for j in range(MAX_INTEREST_NODES * 2)]
    query, ver = disco(["urn:x:plain", "x" * (MAX_NOTIFY_NODE + 1) + "+notify", *notify])
    [ask] = capsPresence(h, eve, ver)
    answerCaps(h, eve, ask, query, ver)
    assert interest.cache.get(ver) == eve.state["pep"]
    assert len(eve.state["pep"]) == MAX_INTEREST_NODES and "urn:x:plain" not in eve.state["pep"]
    assert all(len(node) <= MAX_NOTIFY_NODE for node in eve.state["pep"])


def test_attackMalformedMaxItems():
    """
    Security review finding 4: a huge max_items (it overflowed the store's
    64-bit integers: internal-server-error) is all the node keeps; one in
    '²' or other scripts' digits is bad-request.
    """
    h = HostHarness()
    alice, _ = h.connect("alice")
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>A</nick>", access_model="open"))
    eve, _ = h.connect("eve")
    get = f"<pubsub xmlns='{PS}'><items node='{NICK}' max_items='{{}}'/></pubsub>"
    got, _ = iq(h, eve, get.format("99999999999999999999999"), iqType="get", to="alice@localhost")
    assert got["type"] == "result" and str(got.pubsub.items.item.nick) == "A"
    for value in ("²", "٣", "-1"):
        got, _ = iq(h, eve, get.format(value), iqType="get", to="alice@localhost")
        assert errorOf(got)[0] == "bad-request"
    got, _ = iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>B</nick>", max_items="²"))
    assert got["type"] == "error"


def test_blockedContactGetsNothing():
    """A contact the owner blocked gets no event and cannot read even an open node."""
    h = HostHarness()
    befriend(h, "alice", "bob")
    alice, _ = h.connect("alice")
    bob, t = h.connect("bob", available=False)
    withCaps(h, bob, ["o+notify"])
    reply, _ = iq(h, alice, "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>", ident="blk")
    assert reply["type"] == "result"
    t.pop()
    iq(h, alice, publishXML("o", "<o xmlns='o'/>", access_model="open"))
    assert events(t) == []
    reply, _ = iq(h, bob, f"<pubsub xmlns='{PS}'><items node='o'/></pubsub>", "get", "alice@localhost")
    assert errorOf(reply)[0] == "service-unavailable"


def test_internalAPIAndHooks():
    """publish/getItems/retract/deleteNode work for other modules and fire the pep-* hooks."""
    h = HostHarness()
    seen = []
    for name in ("pep-published", "pep-retracted", "pep-node-deleted"):
        h.host.hooks.add(name, lambda e, n=name: seen.append((n, e.owner, e.node, getattr(e, "publisher", None))))
    pep = h.host.modules["pep"]
    itemId = result(pep.publish("alice", "urn:xmpp:avatar:data", xml("<data xmlns='urn:xmpp:avatar:data'>AA==</data>"),
                                "abc", {"pubsub#access_model": "open"}))
    assert itemId == "abc"
    items = result(pep.getItems("alice", "urn:xmpp:avatar:data"))
    assert [(i, p.name) for i, p in items] == [("abc", "data")]
    assert result(pep.getItems("alice", "nothing")) == []
    result(pep.retract("alice", "urn:xmpp:avatar:data", "abc"))
    result(pep.deleteNode("alice", "urn:xmpp:avatar:data"))
    assert seen == [("pep-published", "alice", "urn:xmpp:avatar:data", None),
                    ("pep-retracted", "alice", "urn:xmpp:avatar:data", None),
                    ("pep-node-deleted", "alice", "urn:xmpp:avatar:data", None)]


def test_accountDisco():
    """The account's disco#info has identity pubsub/pep and the publish-options feature."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    reply, _ = iq(h, alice, f"<query xmlns='{DISCO}'/>", "get", "alice@localhost")
    identities = [(i["category"], i["type"]) for i in reply.query.elements() if i.name == "identity"]
    features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
    assert ("pubsub", "pep") in identities
    assert {PS + "#publish-options", PS + "#publish", PS + "#auto-create", PS + "#access-whitelist"} <= features


def test_ownerListsNodes():
    """The owner's disco#items on its bare JID lists its nodes (XEP-0060 §5.2)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    iq(h, alice, publishXML("b", "<v xmlns='v'/>"))
    iq(h, alice, publishXML("a", "<v xmlns='v'/>"))
    reply, _ = iq(h, alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "alice@localhost")
    assert [(i["jid"], i["node"]) for i in reply.query.elements()] == [("alice@localhost", "a"), ("alice@localhost", "b")]


def test_lastItemWhenSubscriptionApproved():
    """A resource with nick+notify gets the contact's last nick when the contact approves its subscription, once."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    bob, tb = h.connect("bob", available=False)
    withCaps(h, bob, [NICK + "+notify"])
    assert events(tb) == []
    h.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    got = [e for e in events(tb) if e.event is not None]
    assert [str(m.event.items.item.nick) for m in got] == ["Alice"]
    h.send(alice, "<presence><show>away</show></presence>")
    assert events(tb) == []


def test_rosterAccessModel():
    """Access model roster: a contact in an allowed group reads the node, one in another group is refused."""
    h = HostHarness()
    result(h.storage.roster.setRosterItem("alice", RosterItem(jid="bob@localhost", subscription="none",
                                                              groups=["Family"])))
    result(h.storage.roster.setRosterItem("alice", RosterItem(jid="carol@localhost", subscription="both",
                                                              groups=["Work"])))
    alice, _ = h.connect("alice")
    bob, _ = h.connect("bob")
    carol, _ = h.connect("carol")
    iq(h, alice, publishXML("n", "<v xmlns='v'/>", access_model="roster", roster_groups_allowed="Family"))
    get = f"<pubsub xmlns='{PS}'><items node='n'/></pubsub>"
    assert iq(h, bob, get, "get", "alice@localhost")[0]["type"] == "result"
    assert errorOf(iq(h, carol, get, "get", "alice@localhost")[0]) == ["not-authorized", "not-in-roster-group"]


def test_lastItemsReadInOneStoreCall():
    """
    Review finding 3: a resource with many contacts shows +notify interest: the
    contacts' nodes come from one store read (not one per contact), and only the
    roster of a contact with a wanted node is read.
    """
    h = HostHarness()
    contacts = [f"c{i}" for i in range(6)]
    for contact in contacts:
        befriend(h, contact, "bob")
    owner, _ = h.connect("c0")
    iq(h, owner, publishXML(NICK, f"<nick xmlns='{NICK}'>Zero</nick>"))
    iq(h, owner, publishXML("urn:other", "<x xmlns='urn:other'/>"))
    store, rosters = h.host.storage.pep, h.host.storage.roster
    calls = []
    for obj, name in ((store, "listNodes"), (store, "findNodes"), (rosters, "getRoster")):
        real = getattr(obj, name)
        setattr(obj, name, lambda *a, _real=real, _name=name: calls.append((_name, a[0])) or _real(*a))
    bob, t = h.connect("bob", available=False)
    calls.clear()
    _, rest = withCaps(h, bob, [NICK + "+notify"])
    got = [e for e in rest + t.pop() if e.name == "message"]
    assert [str(m.event.items.item.nick) for m in got] == ["Zero"]
    assert [n for n, _ in calls if n != "getRoster"] == ["findNodes"]
    assert {a for n, a in calls if n == "getRoster"} <= {"bob", "c0"}


def test_lastItemsWhenApprovedDuringRosterRead():
    """
    Review finding 4c: bob's resource shows interest; while its roster is being
    read, alice approves his subscription: he still gets alice's last nick, once.
    """
    h = HostHarness()
    alice, ta = h.connect("alice")
    iq(h, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    bob, tb = h.connect("bob", available=False)
    # the roster as storage held it when the read started (the cache is shared and changes)
    read = HeldRead(h.host.modules["pep"].service, "_roster", when=lambda owner: owner == "bob", snapshot=dict)
    withCaps(h, bob, [NICK + "+notify"])
    assert read.called
    h.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    read.release()
    got = [e for e in events(tb) if e.event is not None]
    assert [str(m.event.items.item.nick) for m in got] == ["Alice"]
