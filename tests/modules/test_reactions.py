"""
Tests for reactions in dialogs: XEP-0444 over XMPP, REST reactions, and
the SDK-shaped pushes (xmppchat.modules.reactions).
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import MID, chat, group, messages, private, room
from xmppchat.storage.interfaces import DIALOG_GROUP

NS_CC = "https://connectycube.com/protocol/reactions"


def react(to, emojis, kind="chat", mid=MID):
    inner = "".join(f"<reaction>{e}</reaction>" for e in emojis)
    return (f"<message to='{to}' type='{kind}' id='6b026913da64a533580000f1'>"
            f"<reactions xmlns='urn:xmpp:reactions:0' id='{mid}'>{inner}</reactions></message>")


def sdkReactions(stanza):
    [element] = [c for c in stanza.elements() if c.name == "reactions" and c.uri == NS_CC]
    return element


def test_groupReactionStoredAndPushed():
    """A XEP-0444 reaction is stored and pushed to the occupants in the SDK shape, first, from room/userId."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    h.send(alice, group(dialog))
    ta.pop(), tb.pop(), tc.pop()
    bobId = h.accountId("bob")
    h.send(bob, react(room(dialog), ["👍", "🔥"], kind="groupchat"))
    [got] = messages(tc)
    assert got["type"] == "groupchat" and got["from"] == f"{room(dialog)}/{bobId}"
    first = next(got.elements())
    assert first.name == "reactions" and first.uri == NS_CC
    sdk = sdkReactions(got)
    assert (sdk["message_id"], sdk["user_id"]) == (MID, str(bobId))
    assert sorted((r["type"], r.getAttribute("add")) for r in sdk.elements()) == [("👍", "true"), ("🔥", "true")]
    assert str(got.extraParams.dialog_id) == dialog.id
    assert len(messages(ta)) == 1 and tb.pop() == []
    assert result(h.storage.messages.getMessage(MID)).reactions == {"👍": {bobId}, "🔥": {bobId}}
    h.send(bob, react(room(dialog), ["🔥"], kind="groupchat"))
    sdk = sdkReactions(messages(tc)[0])
    assert [(r["type"], r.getAttribute("remove")) for r in sdk.elements()] == [("👍", "true")]
    assert result(h.storage.messages.getMessage(MID)).reactions == {"🔥": {bobId}}
    assert h.unread("alice", dialog) == 0 and h.unread("carol", dialog) == 1


def test_privateReaction():
    """In a private dialog the reaction push comes from the reacting user's JID, type chat."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog))
    tb.pop()
    h.send(bob, react("alice@localhost", ["❤"]))
    [got] = messages(ta)
    assert got["type"] == "chat" and got["from"] == bob.full
    assert sdkReactions(got)["user_id"] == str(h.accountId("bob"))


def test_reactionRefusals():
    """Reactions to unknown messages, from strangers, or to another dialog's message are refused."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    other = h.addDialog(DIALOG_GROUP, "alice", ["dave"])
    alice, _ = h.connect("alice")
    dave, td = h.connect("dave")
    h.send(alice, group(dialog))
    h.send(dave, react(room(dialog), ["👍"], kind="groupchat"))
    h.send(dave, react(room(other), ["👍"], kind="groupchat"))
    h.send(dave, react(room(other), ["👍"], kind="groupchat", mid="6b026913da64a5335800ffff"))
    errors = [e.error.firstChildElement().name for e in td.pop() if e.getAttribute("type") == "error"]
    assert errors == ["forbidden", "not-acceptable", "item-not-found"]
    assert result(h.storage.messages.getMessage(MID)).reactions == {}


def test_restReactionPushed():
    """A REST reaction (rest-message-reacted) is pushed to the occupants in the SDK shape."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    h.send(alice, group(dialog))
    ta.pop()
    bobId = h.accountId("bob")
    message = result(h.storage.messages.getMessage(MID))
    reactions = result(h.storage.messages.react(MID, bobId, add="🔥"))
    h.host.hooks.fire("rest-message-reacted", (message, dialog, bobId, {"add": "🔥"}, reactions))
    [got] = messages(ta)
    sdk = sdkReactions(got)
    assert sdk["user_id"] == str(bobId) and [r["type"] for r in sdk.elements()] == ["🔥"]
    assert got["from"] == f"{room(dialog)}/{bobId}"
