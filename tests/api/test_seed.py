"""
Issue 17 item 5, the ConnectyCube seed's dialog features over REST (every
test runs on SQLite and on MongoDB/mongomock, tests/api/conftest.py):
broadcast dialogs open read-only to every user, admins on group, public
and broadcast dialogs, the configured extension fields (ignored others,
strings, filters) and the documented names of C{unreadCount}'s ids.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness
from tests.helpers import result
from xmppchat.storage.interfaces import DIALOG_BROADCAST


@pytest.fixture
def api():
    api = ApiHarness(dialogs={"extension_fields": ["category", "city"]})
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob")
    api.carol, api.carolId = api.user("carol")
    return api


def broadcast(api, ownerId=None):
    """A broadcast dialog as `admin create-broadcast` makes it: owner alice, no other occupant."""
    return result(api.storage.dialogs.createDialog(DIALOG_BROADCAST, ownerId or api.aliceId,
                                                   name="News"))


def create(api, token=None, **body):
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": str(api.bobId),
                                       **body}, token=token or api.alice)
    assert r.status == 201, r
    return r.json


# -- broadcast dialogs ------------------------------------------------------------------


def test_broadcastListedToEveryUser(api):
    """A broadcast dialog is in every user's dialog list (it was in nobody's but its occupants')."""
    d = broadcast(api)
    for token in (api.bob, api.carol):
        r = api.get("/chat/Dialog.json", token=token)
        assert r.status == 200 and [i["_id"] for i in r.json["items"]] == [d.id], r
        assert r.json["total_entries"] == 1
    r = api.get("/chat/Dialog.json?type=1", token=api.carol)
    assert [i["_id"] for i in r.json["items"]] == [d.id]


def test_broadcastHistoryReadable(api):
    """Any user reads a broadcast's history and its unread count (was 403)."""
    d = broadcast(api)
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "news"}, token=api.alice)
    assert r.status == 201, r
    unread = api.get(f"/chat/Message/unread.json?chat_dialog_ids={d.id}", token=api.carol).json
    assert unread == {"total": 1, d.id: 1}
    r = api.get(f"/chat/Message.json?chat_dialog_id={d.id}", token=api.carol)
    assert r.status == 200 and [m["message"] for m in r.json["items"]] == ["news"], r
    assert api.get(f"/chat/Dialog/{d.id}.json", token=api.carol).status == 200
    unread = api.get(f"/chat/Message/unread.json?chat_dialog_ids={d.id}", token=api.carol).json
    assert unread == {"total": 0, d.id: 0}


def test_broadcastPostingOnlyOwnerAndAdmins(api):
    """Users read a broadcast but may not post in it; its owner and admins do."""
    d = broadcast(api)
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "hi"}, token=api.carol)
    assert r.status == 403, r
    r = api.put(f"/chat/Dialog/{d.id}/admins.json", {"push_all": {"admins_ids": [api.carolId]}},
                token=api.alice)
    assert r.status == 200 and r.json["admins_ids"] == [api.carolId], r
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "hi"}, token=api.carol)
    assert r.status == 201, r
    r = api.post("/chat/Message.json", {"chat_dialog_id": d.id, "message": "hi"}, token=api.bob)
    assert r.status == 403, r


def test_broadcastHiddenByDelete(api):
    """Deleting a broadcast for oneself hides it from one's list, not from the others'."""
    d = broadcast(api)
    r = api.delete(f"/chat/Dialog/{d.id}.json", token=api.bob)
    assert r.status == 200, r
    assert api.get("/chat/Dialog.json", token=api.bob).json["items"] == []
    assert len(api.get("/chat/Dialog.json", token=api.carol).json["items"]) == 1


# -- admins -------------------------------------------------------------------------------


def test_publicDialogAdmins(api):
    """A public dialog takes admins (any user; was 422), set by its owner only, at most five."""
    r = api.post("/chat/Dialog.json", {"type": 4, "name": "open", "admins_ids": str(api.bobId)},
                 token=api.alice)
    assert r.status == 201 and r.json["admins_ids"] == [api.bobId], r
    d = r.json["_id"]
    r = api.put(f"/chat/Dialog/{d}/admins.json", {"push_all": {"admins_ids": [api.carolId]}},
                token=api.alice)
    assert r.status == 200 and sorted(r.json["admins_ids"]) == sorted([api.bobId, api.carolId]), r
    r = api.put(f"/chat/Dialog/{d}/admins.json", {"pull_all": {"admins_ids": [api.carolId]}},
                token=api.bob)
    assert r.status == 403, r
    r = api.put(f"/chat/Dialog/{d}.json", {"name": "renamed"}, token=api.bob)
    assert r.status == 200 and r.json["name"] == "renamed", r
    r = api.put(f"/chat/Dialog/{d}/admins.json", {"push_all": {"admins_ids": [99999]}},
                token=api.alice)
    assert r.status == 422 and "admins_ids" in r.json["errors"], r
    others = [api.user(f"user{i}")[1] for i in range(4)]
    r = api.put(f"/chat/Dialog/{d}/admins.json", {"push_all": {"admins_ids": others}},
                token=api.alice)
    assert r.status == 422 and "at most 5" in str(r.json["errors"]), r


def test_adminsPerType(api):
    """Admins: group (occupants only), public and broadcast (any user); private dialogs have none."""
    g = create(api)
    r = api.put(f"/chat/Dialog/{g['_id']}/admins.json", {"push_all": {"admins_ids": [api.carolId]}},
                token=api.alice)
    assert r.status == 422, r
    r = api.put(f"/chat/Dialog/{g['_id']}/admins.json", {"push_all": {"admins_ids": [api.bobId]}},
                token=api.alice)
    assert r.status == 200 and r.json["admins_ids"] == [api.bobId], r
    b = broadcast(api)
    r = api.put(f"/chat/Dialog/{b.id}/admins.json", {"push_all": {"admins_ids": [api.bobId]}},
                token=api.carol)
    assert r.status == 403, r
    p = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(api.bobId)}, token=api.alice)
    r = api.put(f"/chat/Dialog/{p.json['_id']}/admins.json",
                {"push_all": {"admins_ids": [api.bobId]}}, token=api.alice)
    assert r.status == 422, r


# -- extensions ------------------------------------------------------------------------------


def test_extensionsOnlyConfiguredFields(api):
    """Configured fields are kept as strings; other keys, even malformed ones, are ignored (were stored)."""
    d = create(api, extensions={"category": 5, "city": True, "other": "x", "a.b": "y", "$x": 1})
    assert d["extensions"] == {"category": "5", "city": "true"}
    stored = result(api.storage.dialogs.getDialog(d["_id"]))
    assert stored.extensions == {"category": "5", "city": "true"}
    r = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": str(api.bobId),
                                       "extensions": {"category": {"nested": 1}}}, token=api.alice)
    assert r.status == 422 and "extensions" in r.json["errors"], r


def test_extensionsUpdateMerges(api):
    """An update sets the fields it names, null removes one, the server's own keys stay."""
    d = create(api, extensions={"category": "sport", "city": "Oslo"})
    result(api.storage.dialogs.updateDialog(d["_id"], extensions={
        "category": "sport", "city": "Oslo", "muc_room": "team"}))
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"extensions": {"city": None, "x": "1"}},
                token=api.alice)
    assert r.status == 200 and r.json["extensions"] == {"category": "sport", "muc_room": "team"}, r
    r = api.put(f"/chat/Dialog/{d['_id']}.json", {"extensions": {"muc_room": "stolen", "city": 2}},
                token=api.alice)
    assert r.json["extensions"] == {"category": "sport", "muc_room": "team", "city": "2"}, r


def test_extensionFilters(api):
    """The dialog list filters and sorts on configured fields, plain or as extensions.<field> (was 400)."""
    a = create(api, name="a", extensions={"category": "sport", "city": "Oslo"})["_id"]
    b = create(api, name="b", extensions={"category": "music", "city": "Bergen"})["_id"]
    c = create(api, name="c", extensions={"category": "sport"})["_id"]

    def ids(query):
        r = api.get(f"/chat/Dialog.json?{query}", token=api.bob)
        assert r.status == 200, r
        return [i["_id"] for i in r.json["items"]]

    assert sorted(ids("category=sport")) == sorted([a, c])
    assert ids("category=sport&city=Oslo") == [a]
    assert ids("extensions.city=Bergen") == [b]
    assert ids("extensions[city]=Bergen") == [b]
    assert sorted(ids("extensions[category][in]=music,sport&extensions[city][ne]=Oslo")) == sorted([b, c])
    assert sorted(ids("category[in]=music,sport&sort_asc=created_at")) == sorted([a, b, c])
    assert sorted(ids("category[ne]=sport")) == [b]
    assert sorted(ids("city[start_with]=Be")) == [b]
    assert ids("sort_asc=city&category=sport") == [c, a]  # a missing value sorts first
    assert api.get("/chat/Dialog.json?category=sport&count=1", token=api.bob).json["total_entries"] == 2
    for query in ("extensions.muc_room=x", "extensions[muc_room]=x", "sort_asc=extensions.muc_room"):
        r = api.get(f"/chat/Dialog.json?{query}", token=api.bob)
        assert r.status == 422 and "category, city" in str(r.json["errors"]), r


def test_extensionFiltersBounded(api):
    """Extension filters count against the [rest] filter bounds like any filter (issue 15 finding 3): 422."""
    values = ",".join(f"v{i}" for i in range(101))
    r = api.get(f"/chat/Dialog.json?category[in]={values}", token=api.bob)
    assert r.status == 422 and "max_filter_values" in str(r.json["errors"]), r
    r = api.get(f"/chat/Dialog.json?extensions[city]={'x' * 1025}", token=api.bob)
    assert r.status == 422 and "max_filter_value_length" in str(r.json["errors"]), r


# -- unread counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dialogs_ids", "chat_dialog_ids", "dialogs_ids[]"])
def test_unreadCountParameterNames(api, name):
    """unread.json counts the dialogs named by dialogs_ids (ConnectyCube docs; was ignored) or chat_dialog_ids."""
    one, two = create(api)["_id"], create(api, name="h")["_id"]
    for d in (one, two, two):
        api.post("/chat/Message.json", {"chat_dialog_id": d, "message": "m"}, token=api.alice)
    if name.endswith("[]"):
        query = f"{name}={one}&{name}={two}"
    else:
        query = f"{name}={one}%2C%20{two}"
    r = api.get(f"/chat/Message/unread.json?{query}", token=api.bob)
    assert r.status == 200 and r.json == {"total": 3, one: 1, two: 2}, r
    r = api.get(f"/chat/Message/unread.json?{name}={one}", token=api.bob)
    assert r.json == {"total": 1, one: 1}, r
