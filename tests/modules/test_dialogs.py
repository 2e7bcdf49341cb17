"""
Tests for dialog messaging over XMPP (xmppchat.modules.dialogs and the MUC
component): checks, stamps, history, fan-out, broadcast, markers, REST
delivery and the dialog question hooks.
"""

import time

from tests.helpers import HostHarness, result
from tests.modules.test_push import Recorder
from xmppchat.dialogs.events import MessageEvent
from xmppchat.hooks import Query as HookQuery, ask
from xmppchat.dialogs.addressing import AccountDirectory
from xmppchat.dialogs.wire import paramsToDict
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC
from xmppchat.storage.interfaces import Query as StoreQuery
from tests.helpers import xml

MID = "6b026913da64a53358000000"
MID2 = "6b026913da64a53358000001"
NS_SID = "urn:xmpp:sid:0"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def messages(transport):
    return [e for e in transport.pop() if e.name == "message"]


def params(stanza):
    return {c.name: str(c) for c in stanza.extraParams.elements() if c.name != "attachment"}


def room(dialog):
    return f"1_{dialog.id}@muc.localhost"


def private(h, a="alice", b="bob"):
    return h.addDialog(DIALOG_PRIVATE, a, [b])


def stanza(to, kind, mid, dialog, payload="", save=None, extra=""):
    """A dialog message: C{payload}, then extraParams with save_to_history (if given) and dialog_id."""
    saved = "" if save is None else f"<save_to_history>{save}</save_to_history>"
    return (f"<message to='{to}' type='{kind}' id='{mid}'>{payload}<extraParams xmlns='jabber:client'>"
            f"{saved}<dialog_id>{dialog.id}</dialog_id>{extra}</extraParams></message>")


def chat(to, dialog, body="hello", mid=MID, save=1, extra=""):
    return stanza(to, "chat", mid, dialog, f"<body>{body}</body>", save, extra)


def group(dialog, body="hi all", mid=MID, save=1, kind="groupchat"):
    return stanza(room(dialog), kind, mid, dialog, f"<body>{body}</body>", save)


# -- private dialogs ------------------------------------------------------------------


def test_privateMessageStampedStoredDelivered():
    """A 1-1 dialog message is stored with the client's id, stamped (date_sent, stanza-id) and reaches bob."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.clock.advance(1700000000)
    h.send(alice, chat("bob@localhost", dialog, extra="<attachment type='image' uid='u1' size='12'/>"
                       "<custom><nested>v</nested></custom>"))
    [got] = messages(tb)
    assert got["id"] == MID and got["from"] == alice.full and str(got.body) == "hello"
    assert params(got)["date_sent"] == "1700000000" and params(got)["dialog_id"] == dialog.id
    [sid] = [c for c in got.elements() if c.name == "stanza-id"]
    assert sid.uri == NS_SID and sid["by"] == "bob@localhost" and sid["id"] == MID
    assert ta.pop() == []
    stored = result(h.storage.messages.getMessage(MID))
    assert (stored.body, stored.senderId, stored.recipientId) == ("hello", h.accountId("alice"), h.accountId("bob"))
    assert stored.attachments == [{"type": "image", "uid": "u1", "size": 12}]
    assert stored.custom == {"custom": {"nested": "v"}} and stored.dateSent == 1700000000
    assert h.unread("bob", dialog) == 1 and h.unread("alice", dialog) == 0
    assert result(h.storage.dialogs.getDialog(dialog.id)).lastMessageId == MID


def test_privateWaitsForInitialPresence():
    """A dialog message to a resource bound without presence (RFC 6121 §8.5.2.1.1) is stored and reaches it once, at its initial presence."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob", available=False)
    h.send(alice, chat("bob@localhost", dialog))
    assert messages(tb) == [] and result(h.storage.offline.countOffline("bob")) == 1
    h.send(bob, "<presence/>")
    [got] = messages(tb)
    assert got["id"] == MID and got.delay is not None
    assert result(h.storage.offline.countOffline("bob")) == 0


def test_privateWithoutSaveNotStored():
    """save_to_history=0 routes the message but keeps it out of the history."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog, save=0))
    assert len(messages(tb)) == 1
    assert result(h.storage.messages.getMessage(MID)) is None and h.unread("bob", dialog) == 0


def test_privateOfflineStoredWithDelay():
    """An offline recipient gets the dialog message, with a delay, at next login."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    h.send(alice, chat("bob@localhost", dialog))
    assert result(h.storage.offline.countOffline("bob")) == 1
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence/>")
    [got] = messages(tb)
    assert got["id"] == MID and got.delay is not None


def test_privateDialogOfOthersForbidden():
    """A chat naming a dialog the sender is not in gets forbidden with code 403 and text."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_PRIVATE, "bob", ["carol"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog))
    [err] = ta.pop()
    assert err["type"] == "error" and err["id"] == MID
    assert err.error["code"] == "403" and err.error.firstChildElement().name == "forbidden"
    assert "not an occupant" in str(err.error.text)
    assert messages(tb) == [] and result(h.storage.messages.getMessage(MID)) is None


def test_privateToNonOccupantNotAcceptable():
    """A chat to a user who is not in the named dialog, or naming a group dialog, is not-acceptable."""
    h = HostHarness()
    dialog = private(h, "alice", "carol")
    grp = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog))
    h.send(alice, chat("bob@localhost", grp, mid=MID2))
    errors = ta.pop()
    assert [e.error.firstChildElement().name for e in errors] == ["not-acceptable", "not-acceptable"]
    assert [e.error["code"] for e in errors] == ["406", "406"]


def test_saveWithoutDialogCreatesPrivateDialog():
    """save_to_history without dialog_id finds or creates the pair's private dialog and names it."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, f"<message to='bob@localhost' type='chat' id='{MID}'><body>x</body>"
                  "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>")
    dialog = result(h.storage.dialogs.findPrivateDialog(h.accountId("alice"), h.accountId("bob")))
    assert dialog is not None
    [got] = messages(tb)
    assert params(got)["dialog_id"] == dialog.id
    assert result(h.storage.messages.getMessage(MID)).dialogId == dialog.id


def test_generatedIdAndSpoofedStanzaIdDropped():
    """A non-hex client id is replaced by a 24-hex one; a client's own stanza-id is removed."""
    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, chat("bob@localhost", dialog, mid="abc", extra="").replace(
        "<body>", f"<stanza-id xmlns='{NS_SID}' by='bob@localhost' id='fake'/><body>"))
    [got] = messages(tb)
    assert len(got["id"]) == 24 and got["id"] != "abc"
    assert [c["id"] for c in got.elements() if c.name == "stanza-id"] == [got["id"]]
    assert result(h.storage.messages.getMessage(got["id"])) is not None


def test_plainChatArchivedIdKept():
    """A chat without extraParams (a stock client) keeps its id and gets no extraParams; it is
    archived (issue 16, XEP-0313) and stamped with stanza-ids; with dialogs.archive_chat off it is
    neither stored nor stamped."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, "<message to='bob@localhost' type='chat' id='x1'><body>plain</body></message>")
    [got] = messages(tb)
    assert got["id"] == "x1" and got.extraParams is None
    [sid] = [c["id"] for c in got.elements() if c.name == "stanza-id" and c["by"] == "bob@localhost"]
    assert result(h.storage.messages.getMessage(sid)).body == "plain"
    h = HostHarness(dialogs={"archive_chat": False})
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, "<message to='bob@localhost' type='chat' id='x1'><body>plain</body></message>")
    [got] = messages(tb)
    assert got["id"] == "x1" and not [c for c in got.elements() if c.name == "stanza-id"]


# -- group dialogs -------------------------------------------------------------------


def test_groupFanOutWithoutJoin():
    """A groupchat to the room JID reaches every occupant resource from room/senderId, reflected to the sender."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    alice, ta = h.connect("alice")
    alice2, ta2 = h.connect("alice", "phone")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol", available=False)
    h.send(alice, group(dialog))
    aliceId = h.accountId("alice")
    assert messages(tc) == []  # no presence yet: from offline storage at the initial one
    h.send(carol, "<presence/>")
    for transport, session in ((ta, alice), (ta2, alice2), (tb, bob), (tc, carol)):
        [got] = messages(transport)
        assert got["from"] == f"{room(dialog)}/{aliceId}" and got["to"] == session.full
        assert got["type"] == "groupchat" and got["id"] == MID and str(got.body) == "hi all"
        assert params(got)["dialog_id"] == dialog.id and "date_sent" in params(got)
        [sid] = [c for c in got.elements() if c.name == "stanza-id"]
        assert sid["by"] == room(dialog)
    assert h.unread("bob", dialog) == 1 and h.unread("carol", dialog) == 1 and h.unread("alice", dialog) == 0


def test_groupNonOccupantForbidden():
    """A non-occupant's groupchat is refused with forbidden (403) from the room and not delivered."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    dave, td = h.connect("dave")
    bob, tb = h.connect("bob")
    h.send(dave, group(dialog))
    [err] = td.pop()
    assert err["from"] == room(dialog) and err.error["code"] == "403"
    assert messages(tb) == []


def test_groupOfflineOccupantAtNextLogin():
    """An occupant with no session gets the group message from the offline store at next login."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, _ = h.connect("alice")
    h.send(alice, group(dialog))
    assert result(h.storage.offline.countOffline("bob")) == 1
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence/>")
    [got] = messages(tb)
    assert got["from"].endswith(f"/{h.accountId('alice')}") and got.delay is not None and got["to"] == bob.full


def test_unknownRoomAndPresence():
    """Unknown dialogs get item-not-found, messages to unknown named rooms and joins of unknown dialog rooms too."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, f"<message to='1_{'0' * 24}@muc.localhost' type='groupchat'><body>x</body></message>")
    h.send(alice, "<message to='lobby@muc.localhost' type='groupchat'><body>x</body></message>")
    h.send(alice, f"<presence to='1_{'0' * 24}@muc.localhost/5'/>")
    errors = ta.pop()
    assert [e.error.firstChildElement().name for e in errors] == [
        "item-not-found", "item-not-found", "item-not-found"]
    assert errors[2].name == "presence" and "No dialog" in str(errors[2].error.text)


def test_publicOpenToAll():
    """Anyone may post in a public dialog (issue 17: the ConnectyCube docs' "open dialog", as over REST); subscribers receive."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_PUBLIC, "alice")
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    h.send(bob, group(dialog))
    assert [e for e in tb.pop() if e.error is not None] == []
    assert [m.body for m in result(h.storage.messages.listMessages(dialog.id, None, StoreQuery()))] == ["hi all"]
    result(h.storage.dialogs.subscribe(dialog.id, h.accountId("bob")))
    result(h.storage.dialogs.subscribe(dialog.id, h.accountId("carol")))
    h.send(bob, group(dialog, mid=MID2))
    assert [m["id"] for m in messages(tc)] == [MID2] and [m["id"] for m in messages(tb)] == [MID2]


def test_groupTypingToOthersOnly():
    """Group typing reaches the other occupants only, is never stored, and is dropped for users hiding typing."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    typing = (f"<message to='{room(dialog)}' type='groupchat'>"
              "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    h.send(alice, typing)
    [got] = messages(tb)
    assert got.composing is not None and got["from"].endswith(f"/{h.accountId('alice')}")
    assert ta.pop() == [] and result(h.storage.offline.countOffline("bob")) == 0
    alice.account.profile = {"privacy_settings": {"typing_indicators": {"enabled": False}}}
    h.send(alice, typing)
    assert tb.pop() == []


def test_roomSystemMessage():
    """A headline to a room goes to the occupants from the sender's JID, with date_sent, and is never stored."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, f"<message to='{room(dialog)}' type='headline' id='{MID}'><body>renamed</body>"
                  "<extraParams xmlns='jabber:client'><moduleIdentifier>SystemNotifications</moduleIdentifier>"
                  "</extraParams></message>")
    [got] = messages(tb)
    assert got["type"] == "headline" and got["from"] == alice.full
    assert params(got)["moduleIdentifier"] == "SystemNotifications" and "date_sent" in params(got)
    assert ta.pop() == [] and result(h.storage.offline.countOffline("carol")) == 0
    assert result(h.storage.messages.getMessage(MID)) is None


# -- broadcast ------------------------------------------------------------------------


def test_broadcastOnlyFromManagers():
    """Only the owner and admins may post in a broadcast dialog."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_BROADCAST, "alice", ["bob"], admins=["carol"])
    bob, tb = h.connect("bob")
    carol, tc = h.connect("carol")
    h.send(bob, group(dialog))
    assert tb.pop()[0].error.firstChildElement().name == "forbidden"
    h.send(carol, group(dialog, mid=MID2))
    assert [m["id"] for m in messages(tc)] == [MID2] and [m["id"] for m in messages(tb)] == [MID2]


def test_broadcastBatchesAndCatchUp():
    """A broadcast reaches every online user in cooperative batches and offline users at next login, without offline rows."""
    h = HostHarness(dialogs={"fanout_batch": 2})
    h.clock.advance(time.time())  # the host clock and the storage's (real) clock agree, as in production
    dialog = h.addDialog(DIALOG_BROADCAST, "alice")
    h.addUser("zoe")
    alice, ta = h.connect("alice")
    online = [h.connect(f"user{i}") for i in range(5)]
    h.send(alice, group(dialog))
    received = sum(len(messages(t)) for _, t in online) + len(messages(ta))
    assert received == 2  # the first batch only, the rest on later reactor turns
    for _ in range(5):
        h.clock.advance(0)
    assert sum(len(messages(t)) for _, t in online) == 4
    assert result(h.storage.offline.countOffline("zoe")) == 0
    zoe, tz = h.connect("zoe", available=False)
    h.send(zoe, "<presence/>")
    [got] = messages(tz)
    assert got["id"] == MID and got.delay is not None and got["from"] == f"{room(dialog)}/{h.accountId('alice')}"


def test_broadcastCatchUpOnlySinceLogout():
    """Catch-up sends only broadcasts created after the user's last logout."""
    h = HostHarness()
    h.clock.advance(time.time())
    h.addUser("carol")
    dialog = h.addDialog(DIALOG_BROADCAST, "alice")
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, group(dialog))
    assert len(messages(tb)) == 1
    h.clock.advance(10)
    h.host.endSession(bob)
    carol, tc = h.connect("carol", available=False)
    h.send(carol, "<presence/>")
    assert [m["id"] for m in messages(tc)] == [MID]  # never logged out since it was sent
    bob, tb = h.connect("bob", available=False)
    h.send(bob, "<presence/>")
    assert messages(tb) == []


# -- markers ----------------------------------------------------------------------------


def marker(kind, to, mid, dialog):
    return stanza(to, "chat", MID2[:-1] + "9", dialog, f"<{kind} xmlns='urn:xmpp:chat-markers:0' id='{mid}'/>")


def test_markersPersistWatermarks():
    """received/displayed markers move the reader's watermarks; a marker for X marks the earlier messages too."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    for i in range(3):
        h.send(alice, chat("bob@localhost", dialog, body=f"m{i}", mid=f"{MID[:-1]}{i}"))
    assert h.unread("bob", dialog) == 3
    h.send(bob, marker("received", "alice@localhost", f"{MID[:-1]}1", dialog))
    first = result(h.storage.messages.getMessage(f"{MID[:-1]}0"))
    assert h.accountId("bob") in first.deliveredIds and h.unread("bob", dialog) == 3
    h.send(bob, marker("displayed", "alice@localhost", f"{MID[:-1]}1", dialog))
    assert h.unread("bob", dialog) == 1
    assert [m.displayed is not None for m in messages(ta)] == [False, True]


def test_hiddenReadReceiptsStoredNotForwarded():
    """A user hiding read receipts has reads stored for their own unread count, but alice gets no displayed marker."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    bob.account.profile = {"privacy_settings": {"read_receipts": {"enabled": False}}}
    h.send(alice, chat("bob@localhost", dialog))
    h.send(bob, marker("displayed", "alice@localhost", MID, dialog))
    assert h.unread("bob", dialog) == 0
    assert ta.pop() == []


def test_multiDeviceRead():
    """A read on one device counts for the user: the unread count is per account, not per resource."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, _ = h.connect("alice")
    phone, _ = h.connect("bob", "phone")
    laptop, _ = h.connect("bob", "laptop")
    h.send(alice, group(dialog))
    h.send(alice, group(dialog, mid=MID2))
    assert h.unread("bob", dialog) == 2
    h.send(laptop, marker("displayed", "alice@localhost", MID2, dialog))
    assert h.unread("bob", dialog) == 0


# -- question hooks, REST ---------------------------------------------------------------


def test_dialogConsent():
    """dialog-consent answers True once the peer has written in a dialog both are in, False before and for strangers."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    h.addUser("dave")

    def consent(user, peer):
        return result(ask(h.host.hooks, "dialog-consent", HookQuery(h.host, user=user, peer=peer)))

    assert consent("alice@localhost", "bob@localhost") == [False]
    result(h.storage.messages.createMessage(dialog.id, h.accountId("bob"), "hi"))
    assert consent("alice@localhost", "bob@localhost") == [True]
    assert consent("bob@localhost", "alice@localhost") == [False]
    assert consent("alice@localhost", "dave@localhost") == [False]


def test_lastActivityNeedsTheTargetsConsent():
    """A stranger who opens a private dialog with Bob gets no last activity (nor status pushes) until Bob writes in it (issue 15 finding 9)."""
    h = HostHarness()
    h.addUser("bob")
    mallory, tm = h.connect("mallory")
    dialog = None
    for i in range(2):
        # opening the dialog (save_to_history creates it) and writing in it consents to nothing
        h.send(mallory, f"<message to='bob@localhost' type='chat' id='o{i}'><body>hi</body>"
                        "<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
                        "</extraParams></message>")
        dialog = dialog or result(h.storage.dialogs.findPrivateDialog(h.accountId("mallory"), h.accountId("bob")))
    tm.pop()
    assert dialog is not None
    h.send(mallory, "<iq type='get' to='bob@localhost' id='l1'><query xmlns='jabber:iq:last'/></iq>")
    h.send(mallory, "<iq type='set' id='s1'><subscribe xmlns='https://connectycube.com/protocol/status_streaming'"
                    " user_jid='bob@localhost' enable='true'/></iq>")
    last, stream = tm.pop()
    assert last.error.firstChildElement().name == "forbidden"
    assert stream.error.firstChildElement().name == "forbidden"
    bob, tb = h.connect("bob")
    assert [e for e in tm.pop() if e.name == "iq"] == []  # no login push either
    h.send(bob, chat("mallory@localhost", dialog, body="hello back", mid="b" * 24))
    tm.pop()
    h.send(mallory, "<iq type='get' to='bob@localhost' id='l2'><query xmlns='jabber:iq:last'/></iq>")
    [reply] = tm.pop()
    assert reply["type"] == "result" and reply.query["seconds"] == "0"


def test_notificationsVeto():
    """A dialog whose notifications a user turned off answers notifications-enabled with False."""
    h = HostHarness()
    dialog = private(h)
    result(h.storage.dialogs.setNotifications(dialog.id, h.accountId("bob"), False))
    query = HookQuery(h.host, user="bob@localhost", peer="alice@localhost", dialogId=dialog.id, stanza=None)
    assert result(ask(h.host.hooks, "notifications-enabled", query)) == [False]
    query = HookQuery(h.host, user="alice@localhost", peer="bob@localhost", dialogId=dialog.id, stanza=None)
    assert result(ask(h.host.hooks, "notifications-enabled", query)) == [True]


def test_restMessageSentToChat():
    """A REST message with send_to_chat=1 reaches the occupants over XMPP like an XMPP one."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    bob, tb = h.connect("bob")
    message = result(h.storage.messages.createMessage(dialog.id, h.accountId("alice"), "via rest"))
    h.host.hooks.fire("rest-message-created", MessageEvent(message, dialog, 7, True))
    [got] = messages(tb)
    assert got["from"] == f"7_{dialog.id}@muc.localhost/{h.accountId('alice')}" and str(got.body) == "via rest"
    assert params(got)["dialog_id"] == dialog.id
    pair = private(h, "alice", "carol")
    message = result(h.storage.messages.createMessage(pair.id, h.accountId("alice"), "1-1",
                                                      recipientId=h.accountId("carol")))
    h.host.hooks.fire("rest-message-created", MessageEvent(message, pair, 7, True))
    assert result(h.storage.offline.countOffline("carol")) == 1
    h.host.hooks.fire("rest-message-created", MessageEvent(message, dialog, 7, False))
    assert tb.pop() == []


def test_restSystemMessage():
    """A REST system message arrives as a SystemNotifications headline with the custom parameters."""
    h = HostHarness()
    h.addUser("alice")
    bob, tb = h.connect("bob", available=False)
    h.host.hooks.fire("rest-system-message", (MID, h.accountId("alice"), h.accountId("bob"),
                                              {"dialogId": "d1", "obj": {"a": 1}}))
    [got] = messages(tb)
    assert got["type"] == "headline" and got["from"] == "alice@localhost" and got["id"] == MID
    assert params(got)["moduleIdentifier"] == "SystemNotifications" and params(got)["dialogId"] == "d1"
    custom, _ = paramsToDict(got.extraParams)
    assert custom["obj"] == {"a": "1"}


def test_directoryBounded():
    """The account directory caches at most its size and still answers for evicted ids."""
    h = HostHarness()
    ids = [h.accountId(f"u{i}") for i in range(5)]
    directory = AccountDirectory(h.storage.accounts, "localhost", 2)
    assert result(directory.jidsOf(ids)) == {i: f"u{n}@localhost" for n, i in enumerate(ids)}
    assert len(directory._byId) == 2 and len(directory._byLocalpart) == 2
    assert result(directory.idOf("u0@localhost")) == ids[0]
    assert result(directory.idOf("nobody@localhost")) is None and result(directory.idOf("u0@other")) is None


def test_paramsParsing():
    """extraParams parse as the SDK does: nested objects, attachments with int size, empty and reserved keys dropped."""
    element = xml("<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><a>x</a><e/>"
                  "<n><m>1</m><k><j>2</j></k></n><attachment type='file' uid='u' size='5'/></extraParams>")
    custom, attachments = paramsToDict(element)
    assert custom == {"a": "x", "n": {"m": "1", "k": {"j": "2"}}}
    assert attachments == [{"type": "file", "uid": "u", "size": 5}]


def test_groupPushAndVeto():
    """Offline occupants of a group get a push per message, unless they turned the dialog's notifications off."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob", "carol"])
    recorder = Recorder()
    h.host.modules["push"].notifier = recorder
    result(h.storage.dialogs.setNotifications(dialog.id, h.accountId("carol"), False))
    alice, _ = h.connect("alice")
    h.send(alice, group(dialog))
    [p] = recorder.payloads
    assert (p["to"], p["dialog_id"], p["type"], p["reason"], p["message_id"]) == (
        "bob@localhost", dialog.id, "groupchat", "offline", MID)
    h.send(alice, f"<message to='{room(dialog)}' type='groupchat'>"
                  "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    assert len(recorder.payloads) == 1


def test_standardMarkerInRoom():
    """A XEP-0333 displayed marker sent to the room persists the read and reaches the other occupants."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, group(dialog))
    ta.pop(), tb.pop()
    h.send(bob, f"<message to='{room(dialog)}' type='groupchat'>"
                f"<displayed xmlns='urn:xmpp:chat-markers:0' id='{MID}'/></message>")
    assert h.unread("bob", dialog) == 0
    [got] = messages(ta)
    assert got.displayed["id"] == MID and tb.pop() == []


def test_configValidation():
    """[dialogs] values below 1, or a default MAM page above the cap, are configuration errors."""
    import pytest

    from xmppchat.config import ConfigError, buildConfig

    with pytest.raises(ConfigError) as e:
        buildConfig({"dialogs": {"fanout_batch": 0, "mam_default_page": 500}})
    assert "dialogs.fanout_batch" in str(e.value) and "dialogs.mam_default_page" in str(e.value)
    assert buildConfig({"dialogs": {"mam_max_page": 500}}).dialogs.mam_max_page == 500


def test_deletedAccountForgotten():
    """rest-user-deleted drops the account from the directory cache."""
    h = HostHarness()
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, _ = h.connect("alice")
    h.send(alice, group(dialog))
    directory = h.host.modules["dialogs"].directory
    bob = result(h.storage.accounts.getAccountByLocalpart("bob"))
    assert bob.id in directory._byId
    result(h.storage.accounts.deleteAccount(bob.id))
    h.host.hooks.fire("rest-user-deleted", bob)
    assert bob.id not in directory._byId and result(directory.jidOf(bob.id)) is None


def test_orderKeptWithSlowStorage():
    """With asynchronous storage a session's messages are delivered in order and an edit never overtakes its message."""
    from twisted.internet import defer

    h = HostHarness()
    dialog = private(h)
    alice, _ = h.connect("alice")
    bob, tb = h.connect("bob")
    store = h.storage.messages
    realCreate, realGet = store.createMessage, store.getMessage
    delays = iter([5, 1])

    def slow(real, delay):
        def call(*args, **kwargs):
            d = defer.Deferred()
            h.clock.callLater(next(delays, 0) if delay is None else delay, lambda: real(*args, **kwargs).chainDeferred(d))
            return d
        return call

    store.createMessage, store.getMessage = slow(realCreate, None), slow(realGet, 0)
    h.send(alice, chat("bob@localhost", dialog, body="first", mid=MID))
    h.send(alice, chat("bob@localhost", dialog, body="second", mid=MID2))
    h.send(alice, f"<message to='bob@localhost' type='chat' id='6b026913da64a533580000e1'><body>first!</body>"
                  f"<replace xmlns='urn:xmpp:message-correct:0' id='{MID}'/>"
                  f"<extraParams xmlns='jabber:client'><dialog_id>{dialog.id}</dialog_id></extraParams></message>")
    assert messages(tb) == []
    for _ in range(20):
        h.clock.advance(1)
    got = messages(tb)
    assert [m["id"] for m in got] == [MID, MID2, "6b026913da64a533580000e1"]
    store.createMessage, store.getMessage = realCreate, realGet
    assert result(store.getMessage(MID)).body == "first!" and result(store.getMessage(MID2)).body == "second"


def test_roomOfAnotherApplication():
    """A user of application 1 cannot address a dialog through application 2's room JID."""
    h = HostHarness()
    user = h.addUser("7-1")
    dialog = result(h.storage.dialogs.createDialog(DIALOG_GROUP, user.id))
    session, transport = h.connect("7-1")
    h.send(session, group(dialog).replace(f"1_{dialog.id}", f"2_{dialog.id}"))
    [err] = transport.pop()
    assert err.error.firstChildElement().name == "item-not-found"
    h.send(session, group(dialog))
    assert [m["from"] for m in messages(transport)] == [f"{room(dialog)}/{user.id}"]


def test_restMessageThroughPreMessageChecks():
    """A REST 1-1 message enters the router's pipeline: a recipient who blocked the sender (XEP-0191) gets nothing, live or offline."""
    h = HostHarness()
    pair = private(h)
    bob, tb = h.connect("bob")
    h.send(bob, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>")
    tb.pop()
    message = result(h.storage.messages.createMessage(pair.id, h.accountId("alice"), "blocked?",
                                                      recipientId=h.accountId("bob")))
    h.host.hooks.fire("rest-message-created", MessageEvent(message, pair, 7, True))
    assert messages(tb) == [] and result(h.storage.offline.countOffline("bob")) == 0
