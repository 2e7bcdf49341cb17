"""
Issue 17 item 3 on the REST surfaces: a user whose read receipts are off
(C{privacy_settings.read_receipts.enabled = false}) has his read state
hidden from the others in every view of it (message list and search:
C{read_ids}, C{views_count}; the sender's dialog C{last_message_status}),
as the Stream docs promise (reference/stream-sdk.md, "Privacy"), while his
reads are recorded: his own C{read}, C{read_ids} and unread counts stay
exact.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness

HIDE = {"read_receipts": {"enabled": False}}


@pytest.fixture
def api():
    return ApiHarness()


class Users:
    """alice sends; bob hides his reads; carol shows hers."""

    def __init__(self, api):
        self.api = api
        self.tokens, self.ids = {}, {}
        for name in ("alice", "bob", "carol"):
            self.tokens[name], self.ids[name] = api.user(name)
        r = api.put(f"/users/{self.ids['bob']}.json", {"user": {"privacy_settings": HIDE}},
                    token=self.tokens["bob"])
        assert r.status == 200, r

    def get(self, name, path):
        r = self.api.get(path, token=self.tokens[name])
        assert r.status == 200, r
        return r.json

    def send(self, frm, **target):
        r = self.api.post("/chat/Message.json", {"message": "hello there", **target}, token=self.tokens[frm])
        assert r.status == 201, r
        return r.json

    def markRead(self, name, dialogId):
        r = self.api.put("/chat/Message.json", {"chat_dialog_id": dialogId, "read": 1},
                         token=self.tokens[name])
        assert r.status == 200, r

    def status(self, name, dialogId):
        return self.get(name, f"/chat/Dialog/{dialogId}.json")["last_message_status"]


def test_privateReadHiddenFromSenderOnEverySurface(api):
    """bob read alice's message (PUT mark): alice's list, search and dialog views do not show it; bob's own view does."""
    u = Users(api)
    message = u.send("alice", recipient_id=u.ids["bob"])
    dialogId, alice, bob = message["chat_dialog_id"], u.ids["alice"], u.ids["bob"]
    assert u.get("bob", "/chat/Message/unread.json")["total"] == 1
    u.markRead("bob", dialogId)
    [item] = u.get("alice", f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0")["items"]
    assert item["read_ids"] == [alice] and item["views_count"] == 1 and item["read"] == 1
    assert bob in item["delivered_ids"]
    [found] = u.get("alice", "/chat/search.json?search_text=hello")["results"]["messages"]
    assert found["read_ids"] == [alice] and found["views_count"] == 1
    assert u.status("alice", dialogId) == "delivered"
    [listed] = u.get("alice", "/chat/Dialog.json")["items"]
    assert listed["last_message_status"] == "delivered"
    # his own views stay exact
    assert u.get("bob", "/chat/Message/unread.json")["total"] == 0
    [own] = u.get("bob", f"/chat/Message.json?chat_dialog_id={dialogId}")["items"]
    assert own["read"] == 1 and own["read_ids"] == [alice, bob] and own["views_count"] == 2


def test_readByListingHiddenToo(api):
    """Reading by listing the messages (mark_as_read) is hidden the same way."""
    u = Users(api)
    message = u.send("alice", recipient_id=u.ids["bob"])
    dialogId = message["chat_dialog_id"]
    [seen] = u.get("bob", f"/chat/Message.json?chat_dialog_id={dialogId}")["items"]
    assert seen["read"] == 1
    [item] = u.get("alice", f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0")["items"]
    assert u.ids["bob"] not in item["read_ids"]
    assert u.status("alice", dialogId) == "delivered"


def test_groupShowsOnlyThoseWhoShowTheirReads(api):
    """In a group, carol's read shows and bob's does not; the message never shows as read by all."""
    u = Users(api)
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": [u.ids["bob"], u.ids["carol"]]},
                 token=u.tokens["alice"])
    dialogId = r.json["_id"]
    u.send("alice", chat_dialog_id=dialogId)
    u.markRead("bob", dialogId)
    u.markRead("carol", dialogId)
    for viewer in ("alice", "carol"):
        [item] = u.get(viewer, f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0")["items"]
        assert item["read_ids"] == sorted([u.ids["alice"], u.ids["carol"]]) and item["views_count"] == 2
    assert u.status("alice", dialogId) == "delivered"
    r = api.put(f"/users/{u.ids['bob']}.json", {"user": {"privacy_settings": {"read_receipts": {"enabled": True}}}},
                token=u.tokens["bob"])
    assert r.status == 200
    assert u.status("alice", dialogId) == "read"


def test_ownPrivacySettingsShapeAndValidation(api):
    """The user sets and sees last_seen next to the switches; null goes back to the server default; bad values are 422."""
    u = Users(api)
    token, uid = u.tokens["carol"], u.ids["carol"]
    r = api.put(f"/users/{uid}.json", {"user": {"privacy_settings": {"last_seen": {"visibility": "nobody"}}}},
                token=token)
    assert r.status == 200 and r.json["user"]["privacy_settings"] == {
        "typing_indicators": {"enabled": True}, "read_receipts": {"enabled": True},
        "last_seen": {"visibility": "nobody"}}
    assert "privacy_settings" not in api.get(f"/users/{uid}.json", token=u.tokens["alice"]).json["user"]
    r = api.put(f"/users/{uid}.json", {"user": {"privacy_settings": {"last_seen": {"visibility": None}}}},
                token=token)
    assert r.json["user"]["privacy_settings"]["last_seen"] == {"visibility": "contacts"}
    for bad in ({"last_seen": "nobody"}, {"last_seen": {"visibility": "friends"}},
                {"last_seen": {"visibility": "nobody", "x": 1}}, {"last_seen": {}}):
        r = api.put(f"/users/{uid}.json", {"user": {"privacy_settings": bad}}, token=token)
        assert r.status == 422, bad
        assert "last_seen must be" in r.json["errors"]["privacy_settings"][0]


def test_lastSeenDefaultShownAsConfigured():
    """A user who never chose sees the configured [privacy] last_seen_default as his setting."""
    api = ApiHarness(privacy={"last_seen_default": "everyone"})
    token, uid = api.user("dave")
    r = api.get(f"/users/{uid}.json", token=token)
    assert r.json["user"]["privacy_settings"]["last_seen"] == {"visibility": "everyone"}


def test_onlineListLeavesOutLastSeenNobody(api):
    """/users/online.json does not list a user whose last seen is 'nobody' (except to himself)."""
    from types import SimpleNamespace

    from tests.helpers import result
    from xmppchat.sessions import SessionRegistry

    u = Users(api)
    r = api.put(f"/users/{u.ids['bob']}.json", {"user": {"privacy_settings": {"last_seen": {"visibility": "nobody"}}}},
                token=u.tokens["bob"])
    assert r.status == 200
    registry = SessionRegistry()
    for name in ("alice", "bob"):
        account = result(api.storage.accounts.getAccount(u.ids[name]))
        registry.add(SimpleNamespace(bare=f"{account.localpart}@localhost", resource="r", account=account,
                                     available=True))
    api.ctx.online = registry
    assert [x["id"] for x in u.get("carol", "/users/online.json")["users"]] == [u.ids["alice"]]
    assert sorted(x["id"] for x in u.get("bob", "/users/online.json")["users"]) == sorted(
        [u.ids["alice"], u.ids["bob"]])
