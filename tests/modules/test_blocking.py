"""
Tests for the XEP-0191 blocking command and its mapping onto the default
privacy list (XEP-0016).
"""

from __future__ import annotations

from tests.helpers import HostHarness, result
from tests.modules.test_privacy import blockList, chat, condition, iq, messages, sdkItems

B = "urn:xmpp:blocking"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def command(h, session, payload, iqType="set", ident="b"):
    h.send(session, f"<iq type='{iqType}' id='{ident}'>{payload}</iq>")
    sent = session.stream.transport.pop()
    replies = [e for e in sent if e.name == "iq" and e.getAttribute("id") == ident]
    assert len(replies) == 1
    return replies[0], [e for e in sent if e is not replies[0]]


def blocklist(h, session):
    reply, _ = command(h, session, f"<blocklist xmlns='{B}'/>", "get", "bl")
    assert reply["type"] == "result"
    return [item["jid"] for item in reply.blocklist.elements()]


def pushes(transport):
    out = []
    for e in transport.pop():
        if e.name == "iq" and e["type"] == "set":
            payload = e.firstChildElement()
            if payload.uri == B:
                out.append((payload.name, [i["jid"] for i in payload.elements()]))
    return out


def test_blockCreatesDefaultList():
    """Blocking with no default list creates @ConnectyCube/blockList, makes it default, items deny-all."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert blocklist(h, alice) == []
    reply, _ = command(h, alice, f"<block xmlns='{B}'><item jid='bob@localhost'/><item jid='Evil.Example'/></block>")
    assert reply["type"] == "result"
    assert blocklist(h, alice) == ["bob@localhost", "evil.example"]
    record = result(h.storage.privacy.getPrivacy("alice"))
    assert record.default == "@ConnectyCube/blockList"
    assert record.lists[record.default] == [
        {"type": "jid", "value": "bob@localhost", "action": "deny", "order": 1, "stanzas": []},
        {"type": "jid", "value": "evil.example", "action": "deny", "order": 2, "stanzas": []}]


def test_blockGoesFirstInExistingDefault():
    """Blocked items are put first in an existing default list, which keeps its other items in order."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    blockList(h, alice, "<item type='jid' value='bob@localhost' action='allow' order='5'/>"
                        "<item type='jid' value='carol@localhost' action='deny' order='7'/>", "mine")
    command(h, alice, f"<block xmlns='{B}'><item jid='bob@localhost'/></block>")
    items = result(h.storage.privacy.getPrivacy("alice")).lists["mine"]
    assert [(i["value"], i["action"], i["order"]) for i in items] == [
        ("bob@localhost", "deny", 1), ("bob@localhost", "allow", 2), ("carol@localhost", "deny", 3)]
    bob, tb = h.connect("bob")
    chat(h, bob, "alice@localhost")
    assert condition(messages(tb)[0]) == "service-unavailable"


def test_pushesToRequestingResources():
    """Block and unblock are pushed to the resources that requested the blocklist, and only those (§3.3)."""
    h = HostHarness()
    a1, t1 = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    a3, t3 = h.connect("alice", "three")
    blocklist(h, a2)
    blocklist(h, a3)
    _, other = command(h, a1, f"<block xmlns='{B}'><item jid='bob@localhost'/><item jid='carol@localhost'/></block>")
    assert pushes(t2) == pushes(t3) == [("block", ["bob@localhost", "carol@localhost"])]
    assert [e for e in other if e.firstChildElement() is not None and e.firstChildElement().uri == B] == []
    command(h, a1, f"<block xmlns='{B}'><item jid='bob@localhost'/></block>")
    assert pushes(t2) == []
    command(h, a1, f"<unblock xmlns='{B}'><item jid='bob@localhost'/></unblock>")
    assert pushes(t2) == [("unblock", ["bob@localhost"])]
    assert blocklist(h, a1) == ["carol@localhost"]
    command(h, a1, f"<block xmlns='{B}'><item jid='dave@localhost'/></block>")
    t2.pop()
    command(h, a1, f"<unblock xmlns='{B}'/>")
    assert pushes(t2) == [("unblock", [])]
    assert blocklist(h, a1) == []


def test_badCommands():
    """An empty block is bad-request, a bad JID jid-malformed; unblocking without a list succeeds."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    reply, _ = command(h, alice, f"<block xmlns='{B}'/>")
    assert condition(reply) == "bad-request"
    reply, _ = command(h, alice, f"<block xmlns='{B}'><item jid='a@@b'/></block>")
    assert condition(reply) == "jid-malformed"
    reply, _ = command(h, alice, f"<block xmlns='{B}'><thing/></block>")
    assert condition(reply) == "bad-request"
    reply, _ = command(h, alice, f"<unblock xmlns='{B}'><item jid='bob@localhost'/></unblock>")
    assert reply["type"] == "result"


def test_privacyListBlocksShowInBlocklist():
    """An SDK block (four children or none) in the default list shows in the blocklist; allow items do not."""
    h = HostHarness()
    alice, _ = h.connect("alice", "one")
    a2, t2 = h.connect("alice", "two")
    blocklist(h, a2)
    blockList(h, alice, sdkItems("bob") + sdkItems("carol", mutual=True, start=10)
              + "<item type='jid' value='dave@localhost' action='allow' order='20'/>"
              + "<item type='jid' value='erin@localhost' action='deny' order='21'><message/></item>")
    expected = ["bob@localhost", "muc.localhost/bob", "carol@localhost", "muc.localhost/carol"]
    assert blocklist(h, alice) == expected
    assert pushes(t2) == [("block", expected)]
    # an SDK-style update removing bob is an unblock push
    blockList(h, alice, sdkItems("carol", mutual=True))
    assert pushes(t2) == [("unblock", ["bob@localhost", "muc.localhost/bob"])]


def test_blockedByCommandIsMutual():
    """A XEP-0191 block refuses the blocker's own messages with not-acceptable + <blocked/> (§3.3)."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    bob, tb = h.connect("bob", "b")
    command(h, alice, f"<block xmlns='{B}'><item jid='bob@localhost'/></block>")
    chat(h, alice, "bob@localhost")
    assert messages(tb) == []
    error = messages(ta)[0]
    assert condition(error) == "not-acceptable"
    assert [c.name for c in error.error.elements() if c.uri == "urn:xmpp:blocking:errors"] == ["blocked"]
    command(h, alice, f"<unblock xmlns='{B}'/>")
    chat(h, alice, "bob@localhost")
    assert len(messages(tb)) == 1


def test_privacyViewAgrees():
    """The privacy-list view of a XEP-0191 block is the default list with the blocked JIDs."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    command(h, alice, f"<block xmlns='{B}'><item jid='bob@localhost'/></block>")
    names = iq(h, alice, "", "get")
    assert [(c.name, c["name"]) for c in names.query.elements()] == [
        ("default", "@ConnectyCube/blockList"), ("list", "@ConnectyCube/blockList")]
    got = iq(h, alice, "<list name='@ConnectyCube/blockList'/>", "get").query.list
    assert [(i["type"], i["value"], i["action"]) for i in got.elements()] == [("jid", "bob@localhost", "deny")]
