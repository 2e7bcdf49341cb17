"""
Tests for L{xmppchat.api.dialogs}: creation rules per type, lists with
filters, updates, admins, deletion, public subscriptions, occupants,
notifications, history clearing, and every refusal.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness
from tests.helpers import result


@pytest.fixture
def api():
    api = ApiHarness()
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob")
    api.carol, api.carolId = api.user("carol")
    api.events = []
    api.hooks.add("rest-dialog-updated", api.events.append)
    return api


def group(api, token=None, occupants=None, **fields):
    body = {"type": 2, "name": "team",
            "occupants_ids": ", ".join(map(str, occupants if occupants is not None else [api.bobId])),
            **fields}
    r = api.post("/chat/Dialog.json", body, token=token or api.alice)
    assert r.status == 201, r
    return r.json


def test_createGroup(api):
    """A group dialog from the SDK's comma string; owner included; room JID set."""
    d = group(api, occupants=[api.bobId, api.carolId])
    assert d["type"] == 2 and d["user_id"] == api.aliceId
    assert d["occupants_ids"] == sorted([api.aliceId, api.bobId, api.carolId])
    assert d["xmpp_room_jid"] == f"1_{d['_id']}@muc.localhost"
    assert d["unread_messages_count"] == 0 and len(d["_id"]) == 24
    assert api.events and api.events[-1].dialog.id == d["_id"]


@pytest.mark.parametrize("ids", [["²"], ["9" * 30], ["--5"]])
def test_createRefusesIdsNoStoreHolds(api, ids):
    """Review 19 B1: non-ASCII digits or a number beyond 64 bits are 422, not 500."""
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "team", "occupants_ids": [api.bobId],
                                       "admins_ids": ids}, token=api.alice)
    assert r.status == 422 and "admins_ids" in r.json["errors"], r


def test_createPrivateNotDuplicated(api):
    """The private dialog between two users is returned again, not duplicated, from either side."""
    r1 = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(api.bobId)}, token=api.alice)
    assert r1.status == 201
    r2 = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": [api.aliceId]}, token=api.bob)
    assert r2.status == 200 and r2.json["_id"] == r1.json["_id"]


def test_createPrivateValidation(api):
    """A private dialog needs exactly one other existing user."""
    for occupants in ("", f"{api.bobId},{api.carolId}", str(api.aliceId), "99999"):
        r = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": occupants}, token=api.alice)
        assert r.status == 422, occupants


def test_createBroadcastRefused(api):
    """Users cannot create broadcast (type 1) dialogs: 403."""
    r = api.post("/chat/Dialog.json", {"type": 1, "name": "news", "occupants_ids": str(api.bobId)},
                 token=api.alice)
    assert r.status == 403


def test_createValidation(api):
    """Bad types, unknown fields, wrong shapes and too many admins are refused."""
    cases = [
        {"type": 9, "name": "x"}, {"type": "group", "name": "x"}, {"name": "x"},
        {"type": 2, "occupants_ids": str(api.bobId)},  # no name
        {"type": 2, "name": "x", "color": "red"},
        {"type": 2, "name": "x", "extensions": "nope"},
        {"type": 2, "name": "x", "permissions": {"allow_everything": True}},
        {"type": 2, "name": "x", "occupants_ids": {"a": 1}},
        {"type": 2, "name": "x", "admins_ids": [api.carolId], "occupants_ids": str(api.bobId)},
        {"type": 2, "name": ["x"]},
    ]
    for body in cases:
        r = api.post("/chat/Dialog.json", body, token=api.alice)
        assert r.status == 422, (body, r)
        assert "errors" in r.json


def test_createNeedsUserSession(api):
    """Dialog calls need a session (401) and a user session (403)."""
    assert api.post("/chat/Dialog.json", {"type": 2, "name": "x"}).status == 401
    assert api.get("/chat/Dialog.json", token=api.appToken()).status == 403


def test_listOnlyOwnDialogs(api):
    """A user lists only the dialogs they occupy."""
    d1 = group(api)
    group(api, token=api.carol, occupants=[api.aliceId])
    r = api.get("/chat/Dialog.json", token=api.bob)
    assert r.status == 200
    assert [d["_id"] for d in r.json["items"]] == [d1["_id"]]
    assert r.json["total_entries"] == 1


def test_listFiltersSortCount(api):
    """Filters with operators, sort, limit/skip and count=1."""
    a = group(api, name="alpha")
    b = group(api, name="beta", occupants=[api.carolId])
    p = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(api.bobId)}, token=api.alice).json
    r = api.get("/chat/Dialog.json?type[in]=2%2C3&sort_asc=created_at&limit=2&skip=0", token=api.alice)
    assert [d["_id"] for d in r.json["items"]] == [a["_id"], b["_id"]]
    assert r.json["total_entries"] == 3 and r.json["limit"] == 2
    r = api.get("/chat/Dialog.json?type=3", token=api.alice)
    assert [d["_id"] for d in r.json["items"]] == [p["_id"]]
    r = api.get(f"/chat/Dialog.json?_id={b['_id']}", token=api.alice)
    assert [d["name"] for d in r.json["items"]] == ["beta"]
    r = api.get("/chat/Dialog.json?name[start_with]=al", token=api.alice)
    assert [d["name"] for d in r.json["items"]] == ["alpha"]
    r = api.get("/chat/Dialog.json?count=1", token=api.alice)
    assert r.json["items"] == {"count": 3}
    assert api.get("/chat/Dialog.json?type=abc", token=api.alice).status == 400
    assert api.get("/chat/Dialog.json?name[regex]=a", token=api.alice).status == 400


def test_showOtherUsersDialogRefused(api):
    """Another user's dialog is 403; an unknown one 404."""
    d = group(api)
    assert api.get(f"/chat/Dialog/{d['_id']}.json", token=api.bob).status == 200
    assert api.get(f"/chat/Dialog/{d['_id']}.json", token=api.carol).status == 403
    assert api.get("/chat/Dialog/" + "0" * 24 + ".json", token=api.bob).status == 404
    assert api.get("/chat/Dialog/nothex.json", token=api.bob).status == 404


def test_updateByOwner(api):
    """The owner renames and adds occupants with push_all; the hook sees who was added."""
    d = group(api)
    r = api.put(f"/chat/Dialog/{d['_id']}.json",
                {"name": "renamed", "push_all": {"occupants_ids": [api.carolId]}}, token=api.alice)
    assert r.status == 200, r
    assert r.json["name"] == "renamed" and api.carolId in r.json["occupants_ids"]
    assert api.events[-1].added == [api.carolId]
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"pull_all": {"occupants_ids": [api.carolId]}},
                token=api.alice)
    assert api.carolId not in r.json["occupants_ids"]
    assert api.events[-1].removed == [api.carolId]


def test_updateByOccupantRefused(api):
    """A plain occupant cannot rename, add or remove others: 403."""
    d = group(api, occupants=[api.bobId, api.carolId])
    for body in ({"name": "mine"}, {"push_all": {"occupants_ids": [api.carolId]}},
                 {"pull_all": {"occupants_ids": [api.carolId]}},
                 {"push_all": {"admins_ids": [api.bobId]}}):
        r = api.put(f"/chat/Dialog/{d['_id']}.json", body, token=api.bob)
        assert r.status == 403, body


def test_updateByOutsiderRefused(api):
    """A non-occupant cannot update: 403."""
    d = group(api)
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"name": "x"}, token=api.carol)
    assert r.status == 403


def test_occupantLeavesWithPull(api):
    """An occupant may pull themselves out."""
    d = group(api, occupants=[api.bobId, api.carolId])
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"pull_all": {"occupants_ids": [api.bobId]}},
                token=api.bob)
    assert r.status == 200 and api.bobId not in r.json["occupants_ids"]


def test_updateValidation(api):
    """Unknown fields and private-dialog occupant changes are 422."""
    d = group(api)
    assert api.put(f"/chat/Dialog/{d['_id']}.json", {"colour": 1}, token=api.alice).status == 422
    assert api.put(f"/chat/Dialog/{d['_id']}.json", {"push_all": {"members": [1]}},
                   token=api.alice).status == 422
    p = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(api.bobId)}, token=api.alice).json
    r = api.put(f"/chat/Dialog/{p['_id']}.json", {"push_all": {"occupants_ids": [api.carolId]}},
                token=api.alice)
    assert r.status == 422


def test_admins(api):
    """Only the owner adds admins, at most five, and they must be occupants."""
    d = group(api, occupants=[api.bobId, api.carolId])
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"push_all": {"admins_ids": [api.bobId]}},
                token=api.alice)
    assert r.status == 200 and r.json["admins_ids"] == [api.bobId]
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"push_all": {"admins_ids": [api.carolId]}},
                token=api.bob)
    assert r.status == 403
    # an admin may rename
    assert api.put(f"/chat/Dialog/{d['_id']}.json", {"name": "n"}, token=api.bob).status == 200
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"push_all": {"admins_ids": [99999]}},
                token=api.alice)
    assert r.status == 422
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"pull_all": {"admins_ids": [api.bobId]}},
                token=api.alice)
    assert r.json["admins_ids"] == []
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"name": "x"}, token=api.alice)
    assert r.status == 422


def test_tooManyAdmins(api):
    """A sixth admin is refused."""
    others = [api.user(f"user{i}")[1] for i in range(6)]
    d = group(api, occupants=others)
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"push_all": {"admins_ids": others[:5]}},
                token=api.alice)
    assert r.status == 200
    r = api.put(f"/chat/Dialog/{d['_id']}/admins.json", {"push_all": {"admins_ids": [others[5]]}},
                token=api.alice)
    assert r.status == 422


def test_deleteForCaller(api):
    """Delete without force: an occupant leaves the group; the dialog remains for others."""
    d = group(api, occupants=[api.bobId, api.carolId])
    r = api.delete(f"/chat/Dialog/{d['_id']}.json", token=api.bob)
    assert r.status == 200 and r.raw == b""
    assert api.get("/chat/Dialog.json", token=api.bob).json["items"] == []
    r = api.get(f"/chat/Dialog/{d['_id']}.json", token=api.alice)
    assert api.bobId not in r.json["occupants_ids"]


def test_deletePrivateHides(api):
    """Deleting a private dialog hides it for the caller only."""
    p = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(api.bobId)}, token=api.alice).json
    assert api.delete(f"/chat/Dialog/{p['_id']}.json", token=api.alice).status == 200
    assert api.get("/chat/Dialog.json", token=api.alice).json["items"] == []
    assert len(api.get("/chat/Dialog.json", token=api.bob).json["items"]) == 1


def test_forceDeleteOwnerOnly(api):
    """force=1 (form-encoded body) deletes for everyone, only by the owner."""
    d = group(api)
    r = api.delete(f"/chat/Dialog/{d['_id']}.json", form={"force": "1"}, token=api.bob)
    assert r.status == 403
    r = api.delete(f"/chat/Dialog/{d['_id']}.json", form={"force": "1"}, token=api.alice)
    assert r.status == 200
    assert result(api.storage.dialogs.getDialog(d["_id"])) is None
    assert api.events[-1].deleted


def test_deleteSeveral(api):
    """Several ids answer the JSON summary."""
    d1 = group(api)
    d2 = group(api, token=api.carol, occupants=[api.aliceId])
    missing = "0" * 24
    r = api.delete(f"/chat/Dialog/{d1['_id']},{d2['_id']},{missing}.json", form={"force": "1"},
                   token=api.alice)
    assert r.status == 200
    assert r.json == {"SuccessfullyDeleted": {"ids": [d1["_id"]]}, "NotFound": {"ids": [missing]},
                      "WrongPermissions": {"ids": [d2["_id"]]}}


def test_deleteOutsiderRefused(api):
    """A non-occupant deleting a group dialog is 403."""
    d = group(api)
    assert api.delete(f"/chat/Dialog/{d['_id']}.json", token=api.carol).status == 403


def test_publicSubscribe(api):
    """Public dialogs: anyone reads, subscribes, lists occupants, unsubscribes."""
    r = api.post("/chat/Dialog.json", {"type": 4, "name": "lobby"}, token=api.alice)
    assert r.status == 201
    d = r.json
    assert api.get(f"/chat/Dialog/{d['_id']}.json", token=api.carol).status == 200
    r = api.post(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.carol)
    assert r.status == 200 and r.json["_id"] == d["_id"]
    ids = [x["_id"] for x in api.get("/chat/Dialog.json", token=api.carol).json["items"]]
    assert d["_id"] in ids
    r = api.get(f"/chat/Dialog/{d['_id']}/occupants.json?limit=10&skip=0", token=api.bob)
    assert [u["id"] for u in r.json["items"]] == [api.carolId]
    assert api.delete(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.carol).status == 200
    r = api.get(f"/chat/Dialog/{d['_id']}/occupants.json", token=api.bob)
    assert r.json["items"] == []


def test_subscribeNonPublicRefused(api):
    """Subscribing to a group dialog is refused."""
    d = group(api)
    assert api.post(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.bob).status == 403
    assert api.post(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.carol).status == 403


def test_allowPreviewReadOnly(api):
    """allow_preview lets outsiders read a group dialog but not change it."""
    d = group(api, permissions={"allow_preview": True})
    assert api.get(f"/chat/Dialog/{d['_id']}.json", token=api.carol).status == 200
    assert api.put(f"/chat/Dialog/{d['_id']}.json", {"name": "x"}, token=api.carol).status == 403


def test_notifications(api):
    """Notification settings round-trip per user; bad values 422; outsiders 403."""
    d = group(api)
    r = api.get(f"/chat/Dialog/{d['_id']}/notifications.json", token=api.bob)
    assert r.json == {"notifications": {"enabled": 1}}
    r = api.put(f"/chat/Dialog/{d['_id']}/notifications.json", {"enabled": 0}, token=api.bob)
    assert r.json == {"notifications": {"enabled": 0}}
    assert api.get(f"/chat/Dialog/{d['_id']}/notifications.json", token=api.bob).json == {
        "notifications": {"enabled": 0}}
    assert api.get(f"/chat/Dialog/{d['_id']}/notifications.json", token=api.alice).json == {
        "notifications": {"enabled": 1}}
    assert api.put(f"/chat/Dialog/{d['_id']}/notifications.json", {"enabled": "maybe"},
                   token=api.bob).status == 422
    assert api.get(f"/chat/Dialog/{d['_id']}/notifications.json", token=api.carol).status == 403


def test_clearHistory(api):
    """clearHistory hides the existing messages from the caller only."""
    d = group(api)
    api.post("/chat/Message.json", {"chat_dialog_id": d["_id"], "message": "hi"}, token=api.alice)
    r = api.delete(f"/chat/Dialog/clearHistory/{d['_id']}.json", token=api.bob)
    assert r.status == 200
    assert api.get(f"/chat/Message.json?chat_dialog_id={d['_id']}", token=api.bob).json["items"] == []
    assert len(api.get(f"/chat/Message.json?chat_dialog_id={d['_id']}", token=api.alice).json["items"]) == 1
    assert api.delete(f"/chat/Dialog/clearHistory/{d['_id']}.json", token=api.carol).status == 403


def test_unreadCountInDialog(api):
    """unread_messages_count is the caller's."""
    d = group(api)
    for text in ("one", "two"):
        api.post("/chat/Message.json", {"chat_dialog_id": d["_id"], "message": text}, token=api.alice)
    bob = api.get(f"/chat/Dialog/{d['_id']}.json", token=api.bob).json
    alice = api.get(f"/chat/Dialog/{d['_id']}.json", token=api.alice).json
    assert bob["unread_messages_count"] == 2 and alice["unread_messages_count"] == 0
    assert bob["last_message"] == "two" and bob["last_message_user_id"] == api.aliceId
    assert alice["last_message_status"] == "sent"


def test_publicOwnerManages(api):
    """The owner of a public dialog (not an occupant) renames it; others cannot."""
    d = api.post("/chat/Dialog.json", {"type": 4, "name": "lobby"}, token=api.alice).json
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"name": "hall"}, token=api.alice)
    assert r.status == 200 and r.json["name"] == "hall"
    api.post(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.bob)
    assert api.put(f"/chat/Dialog/{d['_id']}.json", {"name": "mine"}, token=api.bob).status == 403


def test_publicUnreadForSubscriber(api):
    """A subscriber of a public dialog has unread counts and can mark read."""
    d = api.post("/chat/Dialog.json", {"type": 4, "name": "lobby"}, token=api.alice).json
    api.post(f"/chat/Dialog/{d['_id']}/subscribe.json", token=api.bob)
    api.post("/chat/Message.json", {"chat_dialog_id": d["_id"], "message": "hi all"}, token=api.alice)
    r = api.get(f"/chat/Message/unread.json?chat_dialog_ids={d['_id']}", token=api.bob)
    assert r.json[d["_id"]] == 1
    assert api.put("/chat/Message.json", {"read": 1, "chat_dialog_id": d["_id"]}, token=api.bob).status == 200
    r = api.get(f"/chat/Message/unread.json?chat_dialog_ids={d['_id']}", token=api.bob)
    assert r.json[d["_id"]] == 0
