"""
PEP across cluster nodes (issue 16 item 7): a resource's +notify interest,
learned on its own node from its caps, travels in its directory entry, so
the node where its contact publishes notifies it through the bus.
"""

from __future__ import annotations

from tests.cluster.harness import ClusterHarness
from tests.modules.test_pep import NICK, events, iq, publishXML, withCaps


def test_publishNotifiesContactOnAnotherNode():
    """bob publishes on node1; alice's +notify resource on node0 gets the event, her plain one does not."""
    c = ClusterHarness(count=2)
    c.befriend("alice", "bob")
    a, b = c.nodes
    alice, ta = a.connect("alice", "notify", available=False)
    plain, tp = a.connect("alice", "plain")
    bob, _ = b.connect("bob", "r")
    c.pump()
    withCaps(a, alice, [NICK + "+notify"])
    c.pump()
    ta.pop(), tp.pop()
    remote = b.host.sessions.get("alice@localhost", "notify")
    assert remote.state["pep"] == frozenset([NICK])
    reply, _ = iq(b, bob, publishXML(NICK, f"<nick xmlns='{NICK}'>Bob</nick>"))
    assert reply["type"] == "result"
    c.pump()
    got = events(ta)
    assert len(got) == 1 and got[0]["from"] == "bob@localhost"
    assert str(got[0].event.items.item.nick) == "Bob"
    assert events(tp) == []


def test_lastItemForResourceOnAnotherNode():
    """A resource coming online on node0 gets the last item its contact published on node1."""
    c = ClusterHarness(count=2)
    c.befriend("alice", "bob")
    a, b = c.nodes
    bob, _ = b.connect("bob", "r")
    iq(b, bob, publishXML(NICK, f"<nick xmlns='{NICK}'>Bob</nick>"))
    c.pump()
    alice, ta = a.connect("alice", "late", available=False)
    _, rest = withCaps(a, alice, [NICK + "+notify"])
    c.pump()
    got = [e for e in rest + ta.pop() if e.name == "message"]
    assert [str(m.event.items.item.nick) for m in got] == ["Bob"]


def test_lastItemWhenApprovedOnAnotherNode():
    """alice approves bob's subscription on node0; bob's +notify resource on node1 gets her last nick."""
    c = ClusterHarness(count=2)
    a, b = c.nodes
    alice, _ = a.connect("alice", "r")
    iq(a, alice, publishXML(NICK, f"<nick xmlns='{NICK}'>Alice</nick>"))
    bob, tb = b.connect("bob", "r", available=False)
    withCaps(b, bob, [NICK + "+notify"])
    c.pump()
    tb.pop()
    b.send(bob, "<presence to='alice@localhost' type='subscribe'/>")
    c.pump()
    a.send(alice, "<presence to='bob@localhost' type='subscribed'/>")
    c.pump()
    got = [e for e in tb.pop() if e.name == "message" and e.event is not None]
    assert [str(m.event.items.item.nick) for m in got] == ["Alice"]
