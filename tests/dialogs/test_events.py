"""
Changes made over REST produce the chat events an XMPP change produces,
and the other way round (issue 17 item 2), on one host with the REST site
beside it, on SQLite and MongoDB (mongomock): REST edits reach XMPP
sessions as XEP-0308 C{<replace/>}, REST deletes for everyone as the
SDK's C{<remove/>}, REST read/delivered marks reach the sender as
XEP-0333 markers (C{displayed} only when the reader shows read receipts);
an XMPP edit is what REST then lists.
"""

from __future__ import annotations

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import messages, params
from tests.modules.test_dialogs_rest import APPS, restOn
from xmppchat.storage.interfaces import DIALOG_GROUP, DIALOG_PRIVATE

BOTH_BACKENDS = True
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_DELETE = "urn:xmpp:message-delete:0"
NS_MARKERS = "urn:xmpp:chat-markers:0"


def setUp(dialogType):
    h = HostHarness(rest={"enabled": True, "port": 0, "apps": APPS})
    h.clock.advance(1_700_000_000)
    api = restOn(h)
    users = {name: api.user(name) for name in ("alice", "bob")}
    occupants = [users["bob"][1]]
    dialog = result(h.storage.dialogs.createDialog(dialogType, users["alice"][1], occupantIds=occupants,
                                                   name="team"))
    r = api.post("/chat/Message.json", {"chat_dialog_id": dialog.id, "message": "first"},
                 token=users["alice"][0])
    assert r.status == 201, r
    return h, api, users, dialog, r.json["_id"]


def child(stanza, uri, name):
    return next((c for c in stanza.elements() if c.uri == uri and c.name == name), None)


def test_restEditReachesXMPP(harnessBackend):
    """A REST edit reaches the other occupant's and the sender's sessions as a XEP-0308 correction (SDK §5.7)."""
    for dialogType in (DIALOG_PRIVATE, DIALOG_GROUP):
        h, api, users, dialog, messageId = setUp(dialogType)
        (aliceToken, aliceId), (_, bobId) = users["alice"], users["bob"]
        alice, ta = h.connect(f"{aliceId}-1")
        bob, tb = h.connect(f"{bobId}-1")
        r = api.put(f"/chat/Message/{messageId}.json", {"chat_dialog_id": dialog.id, "message": "fixed"},
                    token=aliceToken)
        assert r.status == 200, r
        for transport in (tb, ta):
            [got] = messages(transport)
            replace = child(got, NS_CORRECT, "replace")
            assert replace is not None and replace["id"] == messageId and replace["last"] == "true"
            assert str(got.body) == "fixed" and params(got)["dialog_id"] == dialog.id
            if dialogType == DIALOG_PRIVATE:
                assert got["type"] == "chat" and got["from"] == f"{aliceId}-1@localhost"
            else:
                assert got["type"] == "groupchat" and got["from"] == f"1_{dialog.id}@muc.localhost/{aliceId}"


def test_restDeleteReachesXMPP(harnessBackend):
    """A REST delete for everyone reaches the occupants as the SDK's <remove/> (§5.8); a delete for oneself does not."""
    h, api, users, dialog, messageId = setUp(DIALOG_GROUP)
    (aliceToken, aliceId), (bobToken, bobId) = users["alice"], users["bob"]
    bob, tb = h.connect(f"{bobId}-1")
    api.delete(f"/chat/Message/{messageId}.json", token=bobToken)  # for bob only
    assert messages(tb) == []
    api.delete(f"/chat/Message/{messageId}.json?force=1", token=aliceToken)
    [got] = messages(tb)
    remove = child(got, NS_DELETE, "remove")
    assert remove is not None and remove["id"] == messageId and params(got)["dialog_id"] == dialog.id
    assert got["from"] == f"1_{dialog.id}@muc.localhost/{aliceId}"


def test_restMarksReachSender(harnessBackend):
    """REST delivered and read marks reach the sender as XEP-0333 markers (§5.5); with read receipts off only 'received'."""
    h, api, users, dialog, messageId = setUp(DIALOG_PRIVATE)
    (_aliceToken, aliceId), (bobToken, bobId) = users["alice"], users["bob"]
    alice, ta = h.connect(f"{aliceId}-1")
    for body, kind in (({"delivered": 1}, "received"), ({"read": 1}, "displayed")):
        r = api.put(f"/chat/Message/{messageId}.json", {"chat_dialog_id": dialog.id, **body}, token=bobToken)
        assert r.status == 200, r
        [got] = messages(ta)
        marker = child(got, NS_MARKERS, kind)
        assert marker is not None and marker["id"] == messageId, got.toXml()
        assert got["type"] == "chat" and got["from"] == f"{bobId}-1@localhost"
        assert params(got)["dialog_id"] == dialog.id
    r = api.put(f"/users/{bobId}.json", {"user": {"privacy_settings": {"read_receipts": {"enabled": False}}}},
                token=bobToken)
    assert r.status == 200, r
    api.put("/chat/Message.json", {"chat_dialog_id": dialog.id, "read": 1}, token=bobToken)
    [got] = messages(ta)
    assert child(got, NS_MARKERS, "displayed") is None and child(got, NS_MARKERS, "received") is not None


def test_xmppEditVisibleOverRest(harnessBackend):
    """An XMPP correction and retraction show in the REST history."""
    h, api, users, dialog, messageId = setUp(DIALOG_GROUP)
    (_aliceToken, aliceId), (bobToken, _) = users["alice"], users["bob"]
    alice, ta = h.connect(f"{aliceId}-1")
    extra = f"<extraParams xmlns='jabber:client'><dialog_id>{dialog.id}</dialog_id></extraParams>"
    h.send(alice, f"<message to='1_{dialog.id}@muc.localhost' type='groupchat' id='6b026913da64a53358000e01'>"
                  f"<body>edited</body><replace xmlns='{NS_CORRECT}' id='{messageId}'/>{extra}</message>")
    items = api.get(f"/chat/Message.json?chat_dialog_id={dialog.id}&mark_as_read=0", token=bobToken).json["items"]
    assert [(i["message"], i["edited"]) for i in items] == [("edited", True)]
    h.send(alice, f"<message to='1_{dialog.id}@muc.localhost' type='groupchat' id='6b026913da64a53358000e02'>"
                  f"<remove xmlns='{NS_DELETE}' id='{messageId}'/>{extra}</message>")
    items = api.get(f"/chat/Message.json?chat_dialog_id={dialog.id}&mark_as_read=0", token=bobToken).json["items"]
    assert items == []


def test_restDialogChangesNotify(harnessBackend):
    """A REST rename, an occupant removal and a delete reach the other users as SDK system messages (§5.10)."""
    h, api, users, dialog, _ = setUp(DIALOG_GROUP)
    (aliceToken, aliceId), (_, bobId) = users["alice"], users["bob"]
    alice, ta = h.connect(f"{aliceId}-1")
    bob, tb = h.connect(f"{bobId}-1")
    r = api.put(f"/chat/Dialog/{dialog.id}.json", {"name": "renamed"}, token=aliceToken)
    assert r.status == 200, r
    [got] = messages(tb)
    assert got["type"] == "headline" and got["from"] == f"{aliceId}-1@localhost"
    fields = params(got)
    assert fields["moduleIdentifier"] == "SystemNotifications"
    assert (fields["notification_type"], fields["dialog_id"], fields["name"]) == ("dialog_updated", dialog.id, "renamed")
    assert messages(ta) == []  # not to the one who made the change
    api.put(f"/chat/Dialog/{dialog.id}.json", {"pull_all": {"occupants_ids": [bobId]}}, token=aliceToken)
    [got] = messages(tb)
    assert params(got)["removed_occupant_ids"] == str(bobId)
    api.delete(f"/chat/Dialog/{dialog.id}.json?force=1", token=aliceToken)
    assert messages(tb) == []  # no longer an occupant
    h, api, users, dialog, _ = setUp(DIALOG_GROUP)
    bob, tb = h.connect(f"{bobId}-1")
    api.delete(f"/chat/Dialog/{dialog.id}.json?force=1", token=users["alice"][0])
    assert [params(m)["notification_type"] for m in messages(tb)] == ["dialog_deleted"]
