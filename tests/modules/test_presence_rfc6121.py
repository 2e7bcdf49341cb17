"""
RFC 6121 §3-§4 MUSTs of the presence module: self-presence reflection,
probes, the subscription state machine of Appendix A, directed presence.
https://www.rfc-editor.org/rfc/rfc6121
"""

import pytest

from tests.helpers import HostHarness, result
from xmppchat.modules.presence import inbound, outbound
from xmppchat.storage.interfaces import RosterItem

BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def presences(transport):
    return [(e.getAttribute("type"), e["from"], e.getAttribute("to"))
            for e in transport.pop() if e.name == "presence"]


def rosterOf(h, session):
    """The roster C{session} gets with a roster get (which makes it an interested resource)."""
    h.send(session, "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
    reply = [e for e in session.stream.transport.pop() if e.name == "iq" and e.getAttribute("id") == "r"][0]
    return {i["jid"]: (i["subscription"], i.getAttribute("ask")) for i in reply.query.elements()}


def stored(h, localpart):
    return {i.jid: (i.subscription, i.ask, i.pendingIn) for i in result(h.storage.roster.getRoster(localpart))}


def aliceAndBob(interested=False):
    """A harness with alice/a and bob/b available; C{interested}: both requested the roster."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    if interested:
        rosterOf(h, alice), rosterOf(h, bob)
    return h, alice, ta, bob, tb


def twoResources():
    """Two available resources of alice, nothing left to read."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    t1.pop()
    return h, a1, t1, a2, t2


def subscribe(h, user, userTransport, contact, contactTransport):
    """A completed handshake: C{user} gets a 'to' subscription to C{contact}."""
    h.send(user, f"<presence to='{contact.bare}' type='subscribe'/>")
    h.send(contact, f"<presence to='{user.bare}' type='subscribed'/>")
    userTransport.pop(), contactTransport.pop()


# -- §4.2.2, §4.4.2, §4.5.2: the user is subscribed to its own presence ---------------


def test_initialPresenceReflectedToSender():
    """Initial presence comes back to the resource that sent it (RFC 6121 §4.2.2)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a", available=False)
    h.send(alice, "<presence><show>chat</show></presence>")
    got = [e for e in ta.pop() if e.name == "presence"]
    assert [(e.getAttribute("type"), e["from"], e["to"]) for e in got] == [
        (None, "alice@localhost/a", "alice@localhost/a")]
    assert str(got[0].show) == "chat"


def test_initialPresenceToEveryOwnResource():
    """A second resource's initial presence reaches both resources, and the new one gets the first's (§4.2.2)."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two", available=False)
    h.send(a2, "<presence/>")
    assert presences(t1) == [(None, "alice@localhost/two", "alice@localhost/one")]
    assert sorted(presences(t2)) == [(None, "alice@localhost/one", "alice@localhost/two"),
                                     (None, "alice@localhost/two", "alice@localhost/two")]


def test_subsequentPresenceReflected():
    """A presence update reaches every own available resource, the sender included (§4.4.2)."""
    h, a1, t1, a2, t2 = twoResources()
    h.send(a1, "<presence><show>away</show></presence>")
    assert presences(t1) == [(None, "alice@localhost/one", "alice@localhost/one")]
    assert presences(t2) == [(None, "alice@localhost/one", "alice@localhost/two")]


def test_unavailableReflected():
    """Unavailable presence reaches the sender and the user's other available resources (§4.5.2)."""
    h, a1, t1, a2, t2 = twoResources()
    h.send(a2, "<presence type='unavailable'><status>bye</status></presence>")
    assert presences(t2) == [("unavailable", "alice@localhost/two", "alice@localhost/two")]
    assert presences(t1) == [("unavailable", "alice@localhost/two", "alice@localhost/one")]
    h.send(a2, "<presence type='unavailable'/>")
    assert presences(t1) == presences(t2) == []  # not available: nothing more to broadcast


def test_unavailableOnDisconnectToOwnResources():
    """A resource that drops gets no reflection, the others get its unavailable presence (§4.5.2)."""
    h, a1, t1, a2, t2 = twoResources()
    a2.stream.connectionLost()
    assert presences(t1) == [("unavailable", "alice@localhost/two", "alice@localhost/one")]
    assert t2.pop() == []


def test_contactsGetBroadcastNotReflection():
    """Contacts with a 'from' subscription get the broadcast addressed to their bare JID (§4.2.2, §4.4.2)."""
    h, alice, ta, bob, tb = aliceAndBob()
    subscribe(h, bob, tb, alice, ta)
    h.send(alice, "<presence><show>dnd</show></presence>")
    assert presences(tb) == [(None, "alice@localhost/a", "bob@localhost")]


# -- §4.3 probes -------------------------------------------------------------------


def test_loginProbesAnsweredFromEveryContactResource():
    """On initial presence the user gets the last presence of each available resource of its 'to' contacts (§4.3.2)."""
    h, alice, ta, bob, tb = aliceAndBob()
    bob2, tb2 = h.connect("bob", "b2")
    h.send(bob2, "<presence><status>second</status></presence>")
    subscribe(h, alice, ta, bob, tb)
    carol, tc = h.connect("carol", "c")  # no subscription: not probed
    alice2, ta2 = h.connect("alice", "a2", available=False)
    h.send(alice2, "<presence/>")
    got = presences(ta2)
    assert (None, "bob@localhost/b", "alice@localhost/a2") in got
    assert (None, "bob@localhost/b2", "alice@localhost/a2") in got
    assert not any(frm.startswith("carol@") for _, frm, _ in got)


def test_loginProbeOfflineContactNoAnswer():
    """A contact with no available resource does not answer the login probe (§4.3.2 allows no reply)."""
    h, alice, ta, bob, tb = aliceAndBob()
    subscribe(h, alice, ta, bob, tb)
    bob.stream.connectionLost()
    alice2, ta2 = h.connect("alice", "a2", available=False)
    h.send(alice2, "<presence/>")
    assert not any(frm.startswith("bob@") for _, frm, _ in presences(ta2))


def test_clientProbeAnsweredForSubscriber():
    """A probe a subscribed client sends gets the contact's presence, or unavailable when it is offline (§4.3.2)."""
    h, alice, ta, bob, tb = aliceAndBob()
    h.send(bob, "<presence><show>xa</show></presence>")
    subscribe(h, alice, ta, bob, tb)
    h.send(alice, "<presence type='probe' to='bob@localhost'/>")
    got = [e for e in ta.pop() if e.name == "presence"]
    assert [(e.getAttribute("type"), e["from"], e["to"]) for e in got] == [
        (None, "bob@localhost/b", "alice@localhost/a")]
    assert str(got[0].show) == "xa"
    assert tb.pop() == []  # the contact's client does not see the probe
    bob.stream.connectionLost()
    ta.pop()
    h.send(alice, "<presence type='probe' to='bob@localhost'/>")
    assert presences(ta) == [("unavailable", "bob@localhost", "alice@localhost/a")]


def test_clientProbeFromNonSubscriberGetsNothing():
    """A probe from a user without a subscription reveals nothing and reaches nobody (§4.3.2)."""
    h = HostHarness()
    bob, tb = h.connect("bob", "b")
    carol, tc = h.connect("carol", "c")
    h.send(carol, "<presence type='probe' to='bob@localhost'/>")
    h.send(carol, "<presence type='probe' to='bob@localhost/b'/>")
    assert tc.pop() == [] and tb.pop() == []


# -- §3 subscriptions: Appendix A state tables ----------------------------------------

STATES = {
    "None": RosterItem(jid="c@localhost"),
    "None + Pending Out": RosterItem(jid="c@localhost", ask="subscribe"),
    "None + Pending In": RosterItem(jid="c@localhost", pendingIn=True),
    "None + Pending Out+In": RosterItem(jid="c@localhost", ask="subscribe", pendingIn=True),
    "To": RosterItem(jid="c@localhost", subscription="to"),
    "To + Pending In": RosterItem(jid="c@localhost", subscription="to", pendingIn=True),
    "From": RosterItem(jid="c@localhost", subscription="from"),
    "From + Pending Out": RosterItem(jid="c@localhost", subscription="from", ask="subscribe"),
    "Both": RosterItem(jid="c@localhost", subscription="both"),
}

# (stanza type, existing state) -> (routed / delivered, new state); None: no state change
OUTBOUND_TABLE = {  # §3.1.2, §3.3.2 (always routed), Appendix A.2.1, A.2.2
    "subscribe": {"None": (True, "None + Pending Out"), "None + Pending Out": (True, None),
                  "None + Pending In": (True, "None + Pending Out+In"), "None + Pending Out+In": (True, None),
                  "To": (True, None), "To + Pending In": (True, None), "From": (True, "From + Pending Out"),
                  "From + Pending Out": (True, None), "Both": (True, None)},
    "unsubscribe": {"None": (True, None), "None + Pending Out": (True, "None"), "None + Pending In": (True, None),
                    "None + Pending Out+In": (True, "None + Pending In"), "To": (True, "None"),
                    "To + Pending In": (True, "None + Pending In"), "From": (True, None),
                    "From + Pending Out": (True, "From"), "Both": (True, "From")},
    "subscribed": {"None": (False, None), "None + Pending Out": (False, None), "None + Pending In": (True, "From"),
                   "None + Pending Out+In": (True, "From + Pending Out"), "To": (False, None),
                   "To + Pending In": (True, "Both"), "From": (False, None), "From + Pending Out": (False, None),
                   "Both": (False, None)},
    "unsubscribed": {"None": (False, None), "None + Pending Out": (False, None), "None + Pending In": (True, "None"),
                     "None + Pending Out+In": (True, "None + Pending Out"), "To": (False, None),
                     "To + Pending In": (True, "To"), "From": (True, "None"),
                     "From + Pending Out": (True, "None + Pending Out"), "Both": (True, "To")},
}

INBOUND_TABLE = {  # Appendix A.3.1-A.3.4 (a subscribe in From/Both states is auto-approved, tested below)
    "subscribe": {"None": (True, "None + Pending In"), "None + Pending Out": (True, "None + Pending Out+In"),
                  "None + Pending In": (False, None), "None + Pending Out+In": (False, None),
                  "To": (True, "To + Pending In"), "To + Pending In": (False, None)},
    "subscribed": {"None": (False, None), "None + Pending Out": (True, "To"), "None + Pending In": (False, None),
                   "None + Pending Out+In": (True, "To + Pending In"), "To": (False, None),
                   "To + Pending In": (False, None), "From": (False, None), "From + Pending Out": (True, "Both"),
                   "Both": (False, None)},
    "unsubscribe": {"None": (False, None), "None + Pending Out": (False, None), "None + Pending In": (True, "None"),
                    "None + Pending Out+In": (True, "None + Pending Out"), "To": (False, None),
                    "To + Pending In": (True, "To"), "From": (True, "None"),
                    "From + Pending Out": (True, "None + Pending Out"), "Both": (True, "To")},
    "unsubscribed": {"None": (False, None), "None + Pending Out": (True, "None"), "None + Pending In": (False, None),
                     "None + Pending Out+In": (True, "None + Pending In"), "To": (True, "None"),
                     "To + Pending In": (True, "None + Pending In"), "From": (False, None),
                     "From + Pending Out": (True, "From"), "Both": (True, "From")},
}


def _cases(table):
    return [(t, state, *expected) for t, rows in table.items() for state, expected in rows.items()]


@pytest.mark.parametrize("stanzaType,state,routed,newState", _cases(OUTBOUND_TABLE))
def test_outboundStateTable(stanzaType, state, routed, newState):
    """Outbound subscription stanzas follow RFC 6121 Appendix A.2 (and §3.1.2, §3.3.2)."""
    item, route = outbound(stanzaType, STATES[state])
    assert route is routed
    assert item == STATES[newState or state]


@pytest.mark.parametrize("stanzaType,state,delivered,newState", _cases(INBOUND_TABLE))
def test_inboundStateTable(stanzaType, state, delivered, newState):
    """Inbound subscription stanzas follow RFC 6121 Appendix A.3."""
    item, deliver = inbound(stanzaType, STATES[state])
    assert deliver is delivered
    assert item == STATES[newState or state]


# -- §3 subscriptions through the server ------------------------------------------------


def test_unsolicitedSubscribedIgnored():
    """A 'subscribed' nobody asked for changes no roster and reaches nobody (§3.1.5, §3.1.6, A.2.1, A.3.2)."""
    h = HostHarness()
    victim, tv = h.connect("victim", "v")
    attacker, tx = h.connect("attacker", "x")
    assert rosterOf(h, victim) == {} and rosterOf(h, attacker) == {}
    h.send(attacker, "<presence to='victim@localhost' type='subscribed'/>")
    h.send(attacker, "<presence><status>look at me</status></presence>")
    assert tv.pop() == []  # no presence, no roster push
    assert rosterOf(h, victim) == {} and stored(h, "victim") == {}
    assert rosterOf(h, attacker) == {} and stored(h, "attacker") == {}


def test_unsolicitedUnsubscribedAndUnsubscribeIgnored():
    """'unsubscribed' and 'unsubscribe' that cancel nothing are not delivered and change nothing (A.2.2, A.3.3, A.3.4)."""
    h = HostHarness()
    victim, tv = h.connect("victim", "v")
    other, to = h.connect("other", "o")
    rosterOf(h, victim), rosterOf(h, other)
    h.send(other, "<presence to='victim@localhost' type='unsubscribed'/>")
    h.send(other, "<presence to='victim@localhost' type='unsubscribe'/>")
    assert tv.pop() == []
    assert stored(h, "victim") == {} and stored(h, "other") == {}


def test_approvalAfterRequestCancelledIgnored():
    """Once the requester cancelled its request, a late approval is ignored (A.2.1 'None')."""
    h, alice, ta, bob, tb = aliceAndBob(interested=True)
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='unsubscribe'/>")
    assert ("unsubscribe", "alice@localhost", "bob@localhost") in presences(tb)
    assert stored(h, "bob") == {}  # the hidden pending request is gone
    ta.pop()
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    assert presences(ta) == []
    assert stored(h, "alice") == {"bob@localhost": ("none", None, False)}


def test_duplicateSubscribeDeliveredOnce():
    """A repeated request while one is pending is not delivered again (A.3.1 'None + Pending In')."""
    h, alice, ta, bob, tb = aliceAndBob()
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    assert presences(tb) == [("subscribe", "alice@localhost", "bob@localhost")]


def test_subscribeRoutedWithItsContent():
    """The request reaches the contact from the user's bare JID with its extended content (§3.1.2)."""
    h, alice, ta, bob, tb = aliceAndBob()
    h.send(alice, "<presence to='bob@localhost/b' type='subscribe' id='s1'><status>hi, it is Alice</status>"
                  "<nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></presence>")
    got = [e for e in tb.pop() if e.name == "presence"]
    assert len(got) == 1
    request = got[0]
    assert (request["from"], request["to"], request["id"]) == ("alice@localhost", "bob@localhost", "s1")
    assert str(request.status) == "hi, it is Alice" and str(request.nick) == "Alice"


def test_subscribeToAlreadySubscribedContactAutoApproved():
    """A request to a contact that already grants a subscription is answered on its behalf (§3.1.3)."""
    h, alice, ta, bob, tb = aliceAndBob(interested=True)
    subscribe(h, alice, ta, bob, tb)
    # alice's own item is lost (e.g. removed by another client without a cancellation)
    result(h.storage.roster.removeRosterItem("alice", "bob@localhost"))
    h.host.modules["roster"].cache.pop("alice", None)
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    got = presences(ta)
    assert ("subscribed", "bob@localhost", "alice@localhost") in got
    assert (None, "bob@localhost/b", "alice@localhost") in got
    assert tb.pop() == []  # the contact is not asked again
    assert stored(h, "alice")["bob@localhost"] == ("to", None, False)


def test_subscribeToUnknownAccountRefused():
    """A request to an account that does not exist is answered with 'unsubscribed' (RFC 6121 §8.5.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    rosterOf(h, alice)
    h.send(alice, "<presence to='nobody@localhost' type='subscribe'/>")
    assert presences(ta) == [("unsubscribed", "nobody@localhost", "alice@localhost")]
    assert stored(h, "alice") == {"nobody@localhost": ("none", None, False)}


def test_subscriptionStanzasGoToInterestedResources():
    """An approval is delivered to the resources that requested the roster (§3.1.6)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    alice2, ta2 = h.connect("alice", "a2")
    bob, tb = h.connect("bob", "b")
    rosterOf(h, alice)
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    ta.pop(), ta2.pop()
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    assert ("subscribed", "bob@localhost", "alice@localhost") in presences(ta)
    assert not any(t == "subscribed" for t, _, _ in presences(ta2))


def test_unsubscribeSendsContactUnavailable():
    """Unsubscribing is delivered to the contact, whose resources then send unavailable to the user (§3.3.3)."""
    h, alice, ta, bob, tb = aliceAndBob(interested=True)
    subscribe(h, alice, ta, bob, tb)
    h.send(alice, "<presence to='bob@localhost' type='unsubscribe'/>")
    assert ("unsubscribe", "alice@localhost", "bob@localhost") in presences(tb)
    assert ("unavailable", "bob@localhost/b", "alice@localhost") in presences(ta)
    assert stored(h, "alice")["bob@localhost"] == ("none", None, False)
    assert stored(h, "bob")["alice@localhost"] == ("none", None, False)


def test_denyRequestRemovesHiddenItem():
    """Denying a request from someone not in the roster leaves no trace in either roster (§3.2.2)."""
    h, alice, ta, bob, tb = aliceAndBob(interested=True)
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(bob, "<presence to='alice@localhost' type='unsubscribed'/>")
    assert ("unsubscribed", "bob@localhost", "alice@localhost") in presences(ta)
    assert stored(h, "bob") == {}
    assert stored(h, "alice") == {"bob@localhost": ("none", None, False)}
    assert rosterOf(h, bob) == {}


def test_rosterRemoveCancelsBothDirections():
    """Removing a 'both' contact sends unsubscribe and unsubscribed; the contact keeps a 'none' item (§2.5.2)."""
    h, alice, ta, bob, tb = aliceAndBob(interested=True)
    subscribe(h, alice, ta, bob, tb)
    subscribe(h, bob, tb, alice, ta)
    assert stored(h, "alice")["bob@localhost"] == ("both", None, False)
    h.send(alice, "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
                  "<item jid='bob@localhost' subscription='remove'/></query></iq>")
    got = presences(tb)
    assert ("unsubscribe", "alice@localhost", "bob@localhost") in got
    assert ("unsubscribed", "alice@localhost", "bob@localhost") in got
    assert ("unavailable", "alice@localhost/a", "bob@localhost") in got
    assert stored(h, "alice") == {}
    assert stored(h, "bob")["alice@localhost"] == ("none", None, False)


# -- §4.6 directed presence, §8.5.3.1 presence errors --------------------------------------


def test_directedPresenceBeforeInitialPresence():
    """Directed presence sent before initial presence is followed by unavailable when the stream ends (§4.6.3)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a", available=False)
    carol, tc = h.connect("carol", "c")
    h.send(alice, "<presence to='carol@localhost/c'/>")
    assert presences(tc) == [(None, "alice@localhost/a", "carol@localhost/c")]
    alice.stream.connectionLost()
    assert presences(tc) == [("unavailable", "alice@localhost/a", "carol@localhost/c")]


def test_presenceErrorToFullJIDDelivered():
    """A presence error addressed to a connected resource is delivered to it (§8.5.3.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    carol, tc = h.connect("carol", "c")
    h.send(carol, "<presence to='alice@localhost/a' type='error'><error type='cancel'>"
                  "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
    assert presences(ta) == [("error", "carol@localhost/c", "alice@localhost/a")]
    h.send(carol, "<presence to='alice@localhost' type='error'/>")
    assert presences(ta) == []
