"""
Tests for L{xmppchat.api.messages}: history lists, creation (and the
C{rest-message-created} hook for XMPP delivery), read/delivered marks,
edits, deletion, unread counts, reactions, system messages and search.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness


@pytest.fixture
def api():
    api = ApiHarness()
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob", full_name="Bobby Tables")
    api.carol, api.carolId = api.user("carol")
    api.created = []
    api.marked = []
    api.hooks.add("rest-message-created", api.created.append)
    api.hooks.add("rest-messages-marked", api.marked.append)
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "team", "occupants_ids": str(api.bobId)},
                 token=api.alice)
    api.dialog = r.json["_id"]
    return api


def send(api, text, token=None, **extra):
    r = api.post("/chat/Message.json", {"chat_dialog_id": api.dialog, "message": text, **extra},
                 token=token or api.alice)
    assert r.status == 201, r
    return r.json


def history(api, token, query=""):
    r = api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}&mark_as_read=0{query}", token=token)
    assert r.status == 200, r
    return r.json["items"]


def test_createAndList(api):
    """A created message is listed with its fields and custom keys."""
    m = send(api, "hello", send_to_chat=1, markable=1, attachments=[{"type": "image", "uid": "u1"}])
    assert m["message"] == "hello" and m["sender_id"] == api.aliceId
    assert m["chat_dialog_id"] == api.dialog and isinstance(m["date_sent"], int)
    assert m["markable"] == 1 and "send_to_chat" not in m
    items = history(api, api.bob)
    assert [i["_id"] for i in items] == [m["_id"]]
    assert items[0]["attachments"] == [{"type": "image", "uid": "u1"}]


def test_createFiresHook(api):
    """Creation fires rest-message-created with send_to_chat for the chat layer."""
    send(api, "one", send_to_chat=1)
    send(api, "two")
    assert [(e.message.body, e.sendToChat) for e in api.created] == [("one", True), ("two", False)]
    assert api.created[0].dialog.id == api.dialog and api.created[0].appId == 1


def test_createToRecipient(api):
    """recipient_id creates (once) the private dialog."""
    r1 = api.post("/chat/Message.json", {"recipient_id": api.carolId, "message": "psst"}, token=api.alice)
    r2 = api.post("/chat/Message.json", {"recipient_id": api.carolId, "message": "again"}, token=api.alice)
    assert r1.status == 201 and r1.json["chat_dialog_id"] == r2.json["chat_dialog_id"]
    assert r1.json["recipient_id"] == api.carolId


def test_createRefused(api):
    """Outsiders cannot post (403); bad bodies are 422; no token is 401."""
    r = api.post("/chat/Message.json", {"chat_dialog_id": api.dialog, "message": "x"}, token=api.carol)
    assert r.status == 403
    for body in ({"message": "no dialog"}, {"chat_dialog_id": api.dialog},
                 {"chat_dialog_id": api.dialog, "message": {"a": 1}},
                 {"chat_dialog_id": api.dialog, "message": "x", "attachments": "nope"},
                 {"chat_dialog_id": api.dialog, "message": "x", "nested": {"a": 1}},
                 {"chat_dialog_id": api.dialog, "message": "x", "_id": "short"},
                 {"recipient_id": api.aliceId, "message": "self"}):
        r = api.post("/chat/Message.json", body, token=api.alice)
        assert r.status == 422, (body, r)
    assert api.post("/chat/Message.json", {"chat_dialog_id": "0" * 24, "message": "x"},
                    token=api.alice).status == 404
    assert api.post("/chat/Message.json", {"chat_dialog_id": api.dialog, "message": "x"}).status == 401


def test_listRefused(api):
    """Listing another users' dialog is 403; without chat_dialog_id 400."""
    assert api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}", token=api.carol).status == 403
    assert api.get("/chat/Message.json", token=api.alice).status == 400


def test_listFiltersAndSort(api):
    """date_sent filters, sort_desc, limit and skip."""
    ids = [send(api, f"m{i}")["_id"] for i in range(4)]
    items = history(api, api.bob, "&sort_desc=date_sent&limit=2")
    assert len(items) == 2
    items = history(api, api.bob, "&limit=2&skip=1")
    assert [i["_id"] for i in items] == ids[1:3]
    first = history(api, api.bob)[0]["date_sent"]
    assert len(history(api, api.bob, f"&date_sent[gt]={first - 1}")) == 4
    assert history(api, api.bob, f"&date_sent[gt]={first + 10}") == []
    assert api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}&date_sent[gt]=soon",
                   token=api.bob).status == 400


def test_markAsReadOnList(api):
    """Listing marks read by default; the unread count drops."""
    send(api, "a")
    send(api, "b")
    unread = api.get(f"/chat/Message/unread.json?chat_dialog_ids={api.dialog}", token=api.bob).json
    assert unread == {"total": 2, api.dialog: 2}
    r = api.get(f"/chat/Message.json?chat_dialog_id={api.dialog}", token=api.bob)
    assert all(api.bobId in i["read_ids"] for i in r.json["items"])
    unread = api.get(f"/chat/Message/unread.json?chat_dialog_ids={api.dialog}", token=api.bob).json
    assert unread == {"total": 0, api.dialog: 0}
    assert api.marked and api.marked[-1].userId == api.bobId


def test_markReadOne(api):
    """PUT /chat/Message/<id>.json read=1 marks up to that message."""
    m1 = send(api, "a")
    send(api, "b")
    r = api.put(f"/chat/Message/{m1['_id']}.json", {"read": 1, "chat_dialog_id": api.dialog}, token=api.bob)
    assert r.status == 200 and r.raw == b""
    assert api.get("/chat/Message/unread.json", token=api.bob).json["total"] == 1
    read = {i["_id"]: i["read"] for i in history(api, api.bob)}
    assert read[m1["_id"]] == 1


def test_markDialogRead(api):
    """PUT /chat/Message.json {read:1, chat_dialog_id} (the apps' hook) marks the whole dialog."""
    send(api, "a")
    send(api, "b")
    r = api.put("/chat/Message.json", {"read": 1, "chat_dialog_id": api.dialog}, token=api.bob)
    assert r.status == 200
    assert api.get("/chat/Message/unread.json", token=api.bob).json["total"] == 0


def test_markDelivered(api):
    """delivered=1 fills delivered_ids."""
    m = send(api, "a")
    api.put(f"/chat/Message/{m['_id']}.json", {"delivered": 1, "chat_dialog_id": api.dialog}, token=api.bob)
    item = history(api, api.alice)[0]
    assert api.bobId in item["delivered_ids"] and api.bobId not in item["read_ids"]


def test_markRefused(api):
    """Marking in another users' dialog is 403; unknown message 404; nothing to do 422."""
    m = send(api, "a")
    assert api.put(f"/chat/Message/{m['_id']}.json", {"read": 1, "chat_dialog_id": api.dialog},
                   token=api.carol).status == 403
    assert api.put("/chat/Message/" + "0" * 24 + ".json", {"read": 1}, token=api.bob).status == 404
    assert api.put(f"/chat/Message/{m['_id']}.json", {"chat_dialog_id": api.dialog},
                   token=api.bob).status == 422
    assert api.put(f"/chat/Message/{m['_id']}.json", {"read": 1, "bogus": 1},
                   token=api.bob).status == 422


def test_edit(api):
    """Only the sender edits a message body."""
    m = send(api, "tpyo")
    assert api.put(f"/chat/Message/{m['_id']}.json", {"message": "hack", "chat_dialog_id": api.dialog},
                   token=api.bob).status == 403
    r = api.put(f"/chat/Message/{m['_id']}.json", {"message": "typo", "chat_dialog_id": api.dialog},
                token=api.alice)
    assert r.status == 200
    item = history(api, api.bob)[0]
    assert item["message"] == "typo" and item["edited"] is True


def test_deleteForMeAndForce(api):
    """Delete without force hides for the caller; force=1 deletes for all, sender only."""
    m1 = send(api, "a")
    m2 = send(api, "b")
    r = api.delete(f"/chat/Message/{m1['_id']}.json", token=api.bob)
    assert r.json["SuccessfullyDeleted"]["ids"] == [m1["_id"]]
    assert [i["_id"] for i in history(api, api.bob)] == [m2["_id"]]
    assert len(history(api, api.alice)) == 2
    r = api.delete(f"/chat/Message/{m2['_id']}.json", form={"force": "1"}, token=api.bob)
    assert r.json["WrongPermissions"]["ids"] == [m2["_id"]]
    r = api.delete(f"/chat/Message/{m2['_id']}.json", form={"force": "1"}, token=api.alice)
    assert r.json["SuccessfullyDeleted"]["ids"] == [m2["_id"]]
    assert [i["_id"] for i in history(api, api.alice)] == [m1["_id"]]


def test_deleteOutsider(api):
    """An outsider's delete is refused per id; unknown ids are reported."""
    m = send(api, "a")
    r = api.delete(f"/chat/Message/{m['_id']},{'0' * 24}.json", token=api.carol)
    assert r.json["WrongPermissions"]["ids"] == [m["_id"]] and r.json["NotFound"]["ids"] == ["0" * 24]


def test_unreadOnlyOwnDialogs(api):
    """Unread counts of dialogs the caller is not in are 0."""
    send(api, "a")
    r = api.get(f"/chat/Message/unread.json?chat_dialog_ids={api.dialog}%2C%20{'1' * 24}", token=api.carol)
    assert r.json == {"total": 0, api.dialog: 0, "1" * 24: 0}


def test_reactions(api):
    """Reactions are added, listed, removed; outsiders refused; bad input 422."""
    m = send(api, "a")
    assert api.put(f"/chat/Message/{m['_id']}/reactions.json", {"add": "👍"}, token=api.bob).status == 200
    api.put(f"/chat/Message/{m['_id']}/reactions.json", {"add": "👍"}, token=api.alice)
    r = api.get(f"/chat/Message/{m['_id']}/reactions.json", token=api.alice)
    assert r.json == {"👍": sorted([api.aliceId, api.bobId])}
    api.put(f"/chat/Message/{m['_id']}/reactions.json", {"add": "🔥", "remove": "👍"}, token=api.bob)
    r = api.get(f"/chat/Message/{m['_id']}/reactions.json", token=api.alice)
    assert r.json == {"👍": [api.aliceId], "🔥": [api.bobId]}
    item = history(api, api.bob)[0]
    assert item["reactions"] == {"own": ["🔥"], "total": {"👍": 1, "🔥": 1}}
    assert api.put(f"/chat/Message/{m['_id']}/reactions.json", {"add": "👍"}, token=api.carol).status == 403
    assert api.get(f"/chat/Message/{m['_id']}/reactions.json", token=api.carol).status == 403
    assert api.put(f"/chat/Message/{m['_id']}/reactions.json", {"add": 5}, token=api.bob).status == 422
    assert api.put(f"/chat/Message/{m['_id']}/reactions.json", {}, token=api.bob).status == 422


def test_systemMessage(api):
    """System messages are handed to the chat layer through a hook."""
    events = []
    api.hooks.add("rest-system-message", events.append)
    r = api.post("/chat/Message/system.json", {"recipientId": api.bobId, "body": "dialog/created"},
                 token=api.alice)
    assert r.status == 200 and r.json["recipientId"] == api.bobId
    assert r.json["extensionParams"] == {"body": "dialog/created"}
    assert events[0][2] == api.bobId
    assert api.post("/chat/Message/system.json", {"recipientId": 99999}, token=api.alice).status == 422


def test_search(api):
    """Search finds messages in the caller's dialogs only, and users and dialogs by name."""
    send(api, "the quick brown fox")
    send(api, "lazy dog")
    r = api.get("/chat/search.json?search_text=QUICK&limit=10", token=api.bob)
    assert r.status == 200, r
    assert [m["message"] for m in r.json["results"]["messages"]] == ["the quick brown fox"]
    assert api.get("/chat/search.json?search_text=quick", token=api.carol).json["results"]["messages"] == []
    r = api.get("/chat/search.json?search_text=Tables", token=api.alice)
    assert [u["id"] for u in r.json["results"]["users"]] == [api.bobId]
    r = api.get("/chat/search.json?search_text=team", token=api.alice)
    assert [d["_id"] for d in r.json["results"]["dialogs"]] == [api.dialog]
    r = api.get("/chat/search.json?search_text=fox&start_date=2100-01-01T00%3A00%3A00.000Z", token=api.bob)
    assert r.json["results"]["messages"] == []
    assert api.get("/chat/search.json?search_text=x", token=api.bob).status == 400
    assert api.get("/chat/search.json?search_text=fox&start_date=someday", token=api.bob).status == 400


def test_broadcastPostOwnerOnly(api):
    """In a broadcast dialog only the owner and admins post."""
    from tests.helpers import result
    d = result(api.storage.dialogs.createDialog(1, api.aliceId, occupantIds=[api.bobId], name="news"))
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "hi"}, token=api.bob)
    assert r.status == 403
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "news"}, token=api.alice)
    assert r.status == 201
