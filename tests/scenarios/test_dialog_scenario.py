"""
A scripted three-user scenario across a private, a group and a public
dialog: alice, bob (who hides typing and read receipts) and carol (offline
until the end).  Asserts exactly what each session receives and the stored
unread counts.
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import chat, group, room
from tests.modules.test_correction import edit
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC

P1, G1, G2, U1 = "6b026913da64a53358000a01", "6b026913da64a53358000b01", "6b026913da64a53358000b02", \
    "6b026913da64a53358000c01"
COMPOSING = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def summary(transport):
    """What a session received, as (kind, id or marker, from) tuples."""
    out = []
    for e in transport.pop():
        if e.name != "message":
            out.append((e.name, e.getAttribute("type")))
        elif e.replace is not None:
            out.append(("edit", e.replace["id"], e["from"]))
        elif e.composing is not None:
            out.append(("typing", e["from"]))
        elif e.displayed is not None or e.received is not None:
            out.append(("marker", (e.displayed or e.received).name, e["from"]))
        else:
            out.append(("message", e["id"], e["from"], e.delay is not None))
    return out


def test_threeUsersThreeDialogs():
    """Private, group and public traffic with an offline user and a user hiding typing and read receipts."""
    h = HostHarness()
    private = h.addDialog(DIALOG_PRIVATE, "alice", ["bob"])
    grp = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    public = h.addDialog(DIALOG_PUBLIC, "alice")
    ids = {name: h.accountId(name) for name in ("alice", "bob", "carol")}
    for name in ("alice", "bob", "carol"):
        result(h.storage.dialogs.subscribe(public.id, ids[name]))
    result(h.storage.accounts.updateAccount(ids["bob"], profile={"privacy_settings": {
        "typing_indicators": {"enabled": False}, "read_receipts": {"enabled": False}}}))
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    assert not bob.account.profile["privacy_settings"]["read_receipts"]["enabled"]
    gRoom, uRoom = room(grp), room(public)

    # private: alice -> bob; bob's typing and read receipt never reach alice
    h.send(alice, chat("bob@localhost", private, mid=P1))
    h.send(bob, f"<message to='alice@localhost' type='chat'>{COMPOSING}</message>")
    h.send(bob, f"<message to='alice@localhost' type='chat' id='r1'><displayed xmlns='urn:xmpp:chat-markers:0' "
                f"id='{P1}'/><extraParams xmlns='jabber:client'><dialog_id>{private.id}</dialog_id></extraParams></message>")
    assert summary(ta) == []
    assert summary(tb) == [("message", P1, alice.full, False)]

    # group: alice posts (reflected), types; bob types (hidden), posts; alice edits
    h.send(alice, group(grp, mid=G1))
    h.send(alice, f"<message to='{gRoom}' type='groupchat'>{COMPOSING}</message>")
    h.send(bob, f"<message to='{gRoom}' type='groupchat'>{COMPOSING}</message>")
    h.send(bob, group(grp, body="hi", mid=G2))
    h.send(alice, edit(gRoom, grp, body="hi all (edited)", original=G1, kind="groupchat"))
    aliceOcc, bobOcc = f"{gRoom}/{ids['alice']}", f"{gRoom}/{ids['bob']}"
    assert summary(ta) == [("message", G1, aliceOcc, False), ("message", G2, bobOcc, False),
                           ("edit", G1, aliceOcc)]
    assert summary(tb) == [("message", G1, aliceOcc, False), ("typing", aliceOcc),
                           ("message", G2, bobOcc, False), ("edit", G1, aliceOcc)]

    # public: bob posts to the subscribers
    h.send(bob, group(public, body="public hello", mid=U1))
    assert summary(ta) == [("message", U1, f"{uRoom}/{ids['bob']}", False)]
    assert summary(tb) == [("message", U1, f"{uRoom}/{ids['bob']}", False)]

    def unread(name):
        dialogs = [private.id, grp.id, public.id] if name != "carol" else [grp.id, public.id]
        return result(h.storage.messages.unreadCounts(ids[name], dialogs))

    assert unread("alice") == {private.id: 0, grp.id: 1, public.id: 1}
    assert unread("bob") == {private.id: 0, grp.id: 1, public.id: 0}
    assert unread("carol") == {grp.id: 2, public.id: 1}

    # carol comes online: the group messages, the edit and the public message, delayed, no typing
    carol, tc = h.connect("carol", available=False)
    h.send(carol, "<presence/>")
    assert summary(tc) == [("message", G1, aliceOcc, True), ("message", G2, bobOcc, True),
                           ("edit", G1, aliceOcc), ("message", U1, f"{uRoom}/{ids['bob']}", True),
                           ("presence", None)]  # her own, reflected (RFC 6121 §4.2.2)
    stored = result(h.storage.messages.getMessage(G1))
    assert stored.body == "hi all (edited)" and stored.edited

    # carol reads the group up to the newest message: a marker for G2 covers G1
    h.send(carol, f"<message to='bob@localhost' type='chat' id='r2'><displayed xmlns='urn:xmpp:chat-markers:0' "
                  f"id='{G2}'/><extraParams xmlns='jabber:client'><dialog_id>{grp.id}</dialog_id></extraParams></message>")
    assert summary(tb) == [("marker", "displayed", carol.full)]
    assert unread("carol") == {grp.id: 0, public.id: 1}
    assert summary(ta) == [] and summary(tc) == []
