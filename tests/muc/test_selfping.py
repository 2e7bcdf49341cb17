"""
Tests for XEP-0410 MUC self-ping (xmppchat.modules.mucselfping).
"""

from tests.helpers import HostHarness
from tests.muc.test_room import join, room
from xmppchat.storage.interfaces import DIALOG_GROUP

PING = "<iq type='get' id='p' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>"


def answer(h, session, to):
    h.send(session, PING.format(to))
    reply = [e for e in session.stream.transport.pop() if e.name == "iq" and e.getAttribute("id") == "p"][0]
    if reply["type"] == "result":
        return "result", reply["from"]
    return reply.error.firstChildElement().name, reply["from"]


def test_selfPingWhileJoined():
    """A joined session's ping to its own occupant JID is answered by the service (§4)."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    me = f"{room(dialog)}/{h.accountId('alice')}"
    join(h, alice, me)
    ta.pop()
    assert answer(h, alice, me) == ("result", me)


def test_selfPingNotJoined():
    """A session that is not joined (left, never joined, or another's nick) gets not-acceptable (§3)."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    me = f"{room(dialog)}/{h.accountId('alice')}"
    assert answer(h, alice, me)[0] == "not-acceptable"
    join(h, alice, me)
    ta.pop()
    other, _ = h.connect("alice")
    assert answer(h, other, me)[0] == "not-acceptable"  # another session of the same account
    assert answer(h, bob, me)[0] == "not-acceptable"
    h.send(alice, f"<presence type='unavailable' to='{me}'/>")
    ta.pop()
    assert answer(h, alice, me)[0] == "not-acceptable"


def test_roomAdvertisesOptimisation():
    """Rooms list muc#self-ping-optimization in disco#info."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    h.send(alice, f"<iq type='get' id='i' to='{room(dialog)}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    reply = [e for e in ta.pop() if e.getAttribute("id") == "i"][0]
    features = {f["var"] for f in reply.query.elements() if f.name == "feature"}
    assert "http://jabber.org/protocol/muc#self-ping-optimization" in features
