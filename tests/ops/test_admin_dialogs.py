"""
Issue 19, the Dialogs page's admin API (xmppchat.ops.admin.dialogs): the
real L{AdminAPI} on a host harness (both storage backends), with the
REST API and XMPP sessions on the same host to see what clients see; and
the routes over HTTP on a live server.
"""

from __future__ import annotations

import asyncio
import io
import json
from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address
from twisted.web.test.requesthelper import DummyRequest

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import messages, params
from tests.modules.test_dialogs_rest import APPS, restOn
from xmppchat import observe
from xmppchat.api.json import isoTime
from xmppchat.ops.adminapi import AdminAgent, AdminAPI
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PRIVATE, DIALOG_PUBLIC

BOTH_BACKENDS = True
KEY = "dialogs-admin-key-0123456789abcdefghijklmnop"


class Admin:
    """
    The admin API on a HostHarness (same storage, hooks and clock as its
    XMPP sessions) and the REST API on that host; C{audits}: the
    C{admin-action} events, C{fired}: the C{rest-*} hooks.
    """

    def __init__(self):
        self.h = h = HostHarness(rest={"enabled": True, "port": 0, "apps": APPS},
                                 dialogs={"extension_fields": ["category", "city"]})
        h.clock.advance(1_700_000_000)
        self.rest = restOn(h)
        service = SimpleNamespace(host=h.host, storage=h.storage, config=h.config, reactor=h.clock,
                                  reloadHooks={})
        service.adminAgent = AdminAgent(service)
        self.api = AdminAPI(service, KEY)
        self.audits = []
        self.fired = []
        for name in ("rest-dialog-updated", "rest-message-created"):
            h.host.hooks.add(name, lambda event, name=name: self.fired.append((name, event)))
        self.users = {name: self.rest.user(name) for name in ("owner", "bob", "carol")}

    def observe(self, name, fields):
        if name == "admin-action":
            self.audits.append(fields)

    def id(self, name) -> int:
        return self.users[name][1]

    def token(self, name) -> str:
        return self.users[name][0]

    def call(self, method, path, body=None):
        """C{(status, JSON)} of one request with the admin key (query string in C{path})."""
        path, _, query = path.partition("?")
        request = DummyRequest([p.encode() for p in path.split("/")])
        request.method = method.encode()
        request.uri = f"/admin/api/{path}".encode()
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            request.args.setdefault(key.encode(), []).append(value.encode())
        request.content = io.BytesIO(json.dumps(body).encode() if body is not None else b"")
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {KEY}".encode()])
        request.getClientAddress = lambda: IPv4Address("TCP", "127.0.0.1", 1234)
        request.isSecure = lambda: False
        self.api.render(request)
        assert request.finished, "the admin API did not answer"
        return request.responseCode or 200, json.loads(b"".join(request.written))

    def dialog(self, dialogType, owner="owner", occupants=(), **fields):
        return result(self.h.storage.dialogs.createDialog(
            dialogType, self.id(owner), occupantIds=[self.id(o) for o in occupants], **fields))

    def stored(self, dialogId):
        return result(self.h.storage.dialogs.getDialog(dialogId))


@pytest.fixture
def admin(harnessBackend, monkeypatch):
    # this feature's routes only: the other pages' modules need more of a service than the harness has
    monkeypatch.setattr("xmppchat.ops.admin.FEATURES", ("dialogs",))
    running = Admin()
    observe.addObserver(running.observe)
    yield running
    observe.removeObserver(running.observe)


def names(answer):
    return sorted(item["name"] for item in answer["items"])


# -- GET dialogs ---------------------------------------------------------------------------------

def test_searchFindsAnyDialogByNameIdTypeUserAndExtension(admin):
    """Any dialog, whoever's: by name substring, id, type, owner or occupant, a configured extension field."""
    news = admin.dialog(DIALOG_BROADCAST, name="Morning news", extensions={"category": "news"})
    admin.dialog(DIALOG_GROUP, owner="bob", occupants=["carol"], name="Chess club",
                 extensions={"category": "games", "city": "Oslo"})
    admin.dialog(DIALOG_PUBLIC, owner="carol", name="Evening news", extensions={"category": "news"})
    admin.dialog(DIALOG_PRIVATE, owner="bob", occupants=["owner"])
    status, answer = admin.call("GET", "dialogs")
    assert status == 200 and answer["total"] == 4 and len(answer["items"]) == 4, answer
    assert answer["extension_fields"] == ["category", "city"]
    assert names(admin.call("GET", "dialogs?q=news")[1]) == ["Evening news", "Morning news"]
    assert names(admin.call("GET", "dialogs?q=News")[1]) == []  # case-sensitive
    [found] = admin.call("GET", f"dialogs?q={news.id.upper()}")[1]["items"]
    assert (found["id"], found["type"], found["type_name"], found["owner_id"]) == (
        news.id, 1, "broadcast", admin.id("owner"))
    assert names(admin.call("GET", "dialogs?type=4")[1]) == ["Evening news"]
    assert names(admin.call("GET", "dialogs?category=news")[1]) == ["Evening news", "Morning news"]
    assert names(admin.call("GET", "dialogs?extensions.city=Oslo&type=2")[1]) == ["Chess club"]
    assert names(admin.call("GET", "dialogs?category=news&q=Morning")[1]) == ["Morning news"]
    # carol owns the public dialog and occupies the club; the owner owns the broadcast and is in bob's 1-1
    assert names(admin.call("GET", "dialogs?user=carol")[1]) == ["Chess club", "Evening news"]
    mine = admin.call("GET", f"dialogs?user={admin.id('owner')}")[1]
    assert sorted(d["type"] for d in mine["items"]) == [DIALOG_BROADCAST, DIALOG_PRIVATE]


def test_searchIsPagedNewestFirst(admin):
    """At most `limit` (<= 100) per page from `skip`, the latest change first, with the total."""
    for n in range(5):
        admin.dialog(DIALOG_BROADCAST, name=f"d{n}")
        admin.h.clock.advance(1)
    status, answer = admin.call("GET", "dialogs?limit=2&skip=1")
    assert status == 200 and (answer["total"], answer["skip"], answer["limit"]) == (5, 1, 2)
    assert [d["name"] for d in answer["items"]] == ["d3", "d2"]
    assert admin.call("GET", "dialogs?limit=101")[0] == 400
    assert admin.call("GET", "dialogs?skip=-1")[0] == 400


@pytest.mark.parametrize("query, text", [
    ("type=7", "type"), ("type=x", "type"), ("color=red", "color"),
    ("extensions.color=red", "color"), ("user=nobody", "nobody"), ("user=" + "9" * 30, "9999"),
    ("q=" + "a" * 257, "256"), ("q=a\0b", "NUL"), ("skip=100001", "skip"), ("type=²", "type"),
    ("user=²", "No such user"), ("user=" + "9" * 19, "9999")])
def test_searchRefusesBadFilters(admin, query, text):
    """A bad type, an unconfigured field or an unknown user: 400/404 naming it (review 19 B1: "²")."""
    status, answer = admin.call("GET", f"dialogs?{query}")
    assert status in ((400, 404) if query.startswith("user") else (400,)) and text in answer["error"], answer


def test_extensionFieldsAreReadAtEachRequest(admin):
    """A field added to [dialogs] extension_fields at run time filters at once."""
    assert admin.call("GET", "dialogs?topic=x")[0] == 400
    admin.h.config.dialogs.extension_fields = ["topic"]
    status, answer = admin.call("GET", "dialogs?topic=x")
    assert status == 200 and answer["extension_fields"] == ["topic"], answer


# -- GET dialogs/<id> ------------------------------------------------------------------------------

def test_showDialog(admin):
    """Type, owner, occupants, admins, extensions, times, last message and message count, with the users named."""
    dialog = admin.dialog(DIALOG_GROUP, occupants=["bob", "carol"], name="team", photo="p.png",
                          description="the team", extensions={"category": "work"})
    result(admin.h.storage.dialogs.updateDialog(dialog.id, push={"admins_ids": [admin.id("bob")]}))
    for text, sender in (("one", "owner"), ("two", "bob")):
        r = admin.rest.post("/chat/Message.json", {"chat_dialog_id": dialog.id, "message": text},
                            token=admin.token(sender))
        assert r.status == 201, r
    status, d = admin.call("GET", f"dialogs/{dialog.id}")
    assert status == 200, d
    assert (d["name"], d["type"], d["photo"], d["description"], d["owner_id"]) == (
        "team", DIALOG_GROUP, "p.png", "the team", admin.id("owner"))
    assert d["occupants_ids"] == sorted(admin.id(n) for n in ("owner", "bob", "carol"))
    assert d["admins_ids"] == [admin.id("bob")] and d["extensions"] == {"category": "work"}
    assert d["messages_count"] == 2 and d["occupants_count"] == 3
    assert (d["last_message"]["text"], d["last_message"]["sender_id"]) == ("two", admin.id("bob"))
    assert d["last_message"]["date_sent"] == admin.stored(dialog.id).lastMessageDateSent > 0
    assert d["users"][str(admin.id("bob"))]["login"] == "bob"
    assert d["xmpp_room_jid"] == f"1_{dialog.id}@muc.localhost"
    assert d["created_at"] == isoTime(dialog.createdAt) and d["updated_at"].endswith("Z")
    assert admin.call("GET", "dialogs/" + "0" * 24)[0] == 404
    assert admin.call("GET", "dialogs/nope")[0] == 404


# -- POST dialogs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ownerBy", ["id", "login", "jid"])
def test_createBroadcast(admin, ownerBy):
    """A type 1 dialog with name, owner (id, login or JID), photo, description, admins and extensions; audited."""
    owner = {"id": admin.id("owner"), "login": "owner", "jid": f"{admin.id('owner')}-1@localhost"}[ownerBy]
    status, d = admin.call("POST", "dialogs", {
        "name": "News", "owner": owner, "photo": "news.png", "description": "all the news",
        "admins_ids": f"{admin.id('bob')}", "extensions": {"category": "news", "city": ""}})
    assert status == 201, d
    stored = admin.stored(d["id"])
    assert (stored.type, stored.ownerId, stored.name, stored.photo, stored.description) == (
        DIALOG_BROADCAST, admin.id("owner"), "News", "news.png", "all the news")
    assert stored.adminIds == [admin.id("bob")] and stored.extensions == {"category": "news"}
    assert d["type_name"] == "broadcast" and d["messages_count"] == 0
    [audit] = admin.audits
    assert (audit["admin"], audit["action"]) == ("admin-key", "create-broadcast")
    assert f"dialog={d['id']}" in audit["details"]
    [(hook, event)] = [f for f in admin.fired if f[0] == "rest-dialog-updated"]
    assert event.created and event.dialog.id == d["id"] and event.userId == admin.id("owner")


def test_createdBroadcastIsInEveryUsersList(admin):
    """The users of the application see the new broadcast dialog in their REST dialog list."""
    status, d = admin.call("POST", "dialogs", {"name": "News", "owner": "owner"})
    assert status == 201, d
    r = admin.rest.get("/chat/Dialog.json?type=1", token=admin.token("carol"))
    assert r.status == 200 and [x["_id"] for x in r.json["items"]] == [d["id"]], r


@pytest.mark.parametrize("body, status, text", [
    ({"owner": "owner"}, 400, "name"),
    ({"name": "x"}, 400, "owner"),
    ({"name": "x", "owner": "nobody"}, 404, "nobody"),
    ({"name": "x", "owner": 999999}, 404, "999999"),
    ({"name": "x", "owner": 10**30}, 400, "owner"),
    ({"name": "x", "owner": "²"}, 404, "No such user"),
    ({"name": "x", "owner": "owner", "admins_ids": ["²"]}, 400, "admins_ids"),
    ({"name": "x", "owner": "owner", "admins_ids": "999999"}, 400, "admins_ids"),
    ({"name": "x", "owner": "owner", "admins_ids": "1,2,3,4,5,6"}, 400, "admins_ids"),
    ({"name": "x", "owner": "owner", "extensions": {"color": "red"}}, 400, "color"),
    ({"name": "x", "owner": "owner", "type": 2}, 400, "type"),
    ({"name": "x" * 201, "owner": "owner"}, 400, "name"),
])
def test_createRefusesBadInput(admin, body, status, text):
    """Missing or bad fields are refused with a text naming them; nothing is created or audited."""
    answer = admin.call("POST", "dialogs", body)
    assert answer[0] == status and text in answer[1]["error"], answer
    assert admin.call("GET", "dialogs")[1]["total"] == 0 and admin.audits == []


# -- PUT dialogs/<id> ----------------------------------------------------------------------------

def test_editDialog(admin):
    """Name, photo, description, extensions, admins and occupants change as the owner would change them; clients are told."""
    dialog = admin.dialog(DIALOG_GROUP, occupants=["bob"], name="team", extensions={"category": "a", "city": "Oslo"})
    carol, transport = admin.h.connect(f"{admin.id('carol')}-1")
    status, d = admin.call("PUT", f"dialogs/{dialog.id}", {
        "name": "the team", "photo": "t.png", "description": "d", "extensions": {"category": "b", "city": None},
        "occupants_ids": [admin.id("owner"), admin.id("bob"), admin.id("carol")],
        "admins_ids": [admin.id("carol")]})
    assert status == 200, d
    stored = admin.stored(dialog.id)
    assert (stored.name, stored.photo, stored.description, stored.extensions) == (
        "the team", "t.png", "d", {"category": "b"})
    assert stored.occupantIds == sorted(admin.id(n) for n in ("owner", "bob", "carol"))
    assert stored.adminIds == [admin.id("carol")] and d["admins_ids"] == [admin.id("carol")]
    [(hook, event)] = [f for f in admin.fired if f[0] == "rest-dialog-updated"]
    assert event.added == [admin.id("carol")] and event.userId == admin.id("owner")
    [note] = messages(transport)  # carol's client learns she was added (a system message)
    assert params(note)["notification_type"] == "dialog_updated"
    assert params(note)["added_occupant_ids"] == str(admin.id("carol"))
    [audit] = admin.audits
    assert audit["action"] == "edit-dialog" and f"dialog={dialog.id}" in audit["details"]
    # removing an occupant removes him from the admins too
    status, d = admin.call("PUT", f"dialogs/{dialog.id}", {"occupants_ids": [admin.id("owner"), admin.id("bob")]})
    assert status == 200 and admin.stored(dialog.id).adminIds == [] and d["occupants_count"] == 2, d


@pytest.mark.parametrize("dialogType, body, status, text", [
    (DIALOG_GROUP, {}, 400, "Nothing to change"),
    (DIALOG_GROUP, {"color": "red"}, 400, "color"),
    (DIALOG_GROUP, {"occupants_ids": []}, 400, "owner"),
    (DIALOG_GROUP, {"admins_ids": "999999"}, 400, "admins must be occupants"),
    (DIALOG_GROUP, {"extensions": {"color": "red"}}, 400, "color"),
    (DIALOG_PRIVATE, {"occupants_ids": "OWNER,BOB,CAROL"}, 400, "private"),
    (DIALOG_PRIVATE, {"admins_ids": "BOB"}, 400, "private dialogs have no admins"),
])
def test_editRefusesWhatTheRulesRefuse(admin, dialogType, body, status, text):
    """What the dialog rules refuse even to the owner, or bad input, changes nothing and is not audited."""
    dialog = admin.dialog(dialogType, occupants=["bob"], name="team")
    for name in ("owner", "bob", "carol"):
        body = {k: v.replace(name.upper(), str(admin.id(name))) if isinstance(v, str) else v
                for k, v in body.items()}
    answer = admin.call("PUT", f"dialogs/{dialog.id}", body)
    assert answer[0] == status and text in answer[1]["error"], answer
    assert admin.stored(dialog.id) == dialog and admin.audits == []
    assert admin.call("PUT", "dialogs/" + "0" * 24, {"name": "x"})[0] == 404


# -- DELETE dialogs/<id> --------------------------------------------------------------------------

def test_deleteDialog(admin):
    """Deleted for everyone with its messages; its occupants' clients are told; audited; 404 after."""
    dialog = admin.dialog(DIALOG_GROUP, occupants=["bob"], name="team")
    bob, transport = admin.h.connect(f"{admin.id('bob')}-1")
    status, answer = admin.call("DELETE", f"dialogs/{dialog.id}")
    assert (status, answer) == (200, {"deleted": dialog.id})
    assert admin.stored(dialog.id) is None
    [note] = messages(transport)
    assert params(note)["notification_type"] == "dialog_deleted"
    [audit] = admin.audits
    assert audit["action"] == "delete-dialog" and f"dialog={dialog.id}" in audit["details"]
    assert admin.call("DELETE", f"dialogs/{dialog.id}")[0] == 404
    r = admin.rest.get(f"/chat/Dialog/{dialog.id}.json", token=admin.token("bob"))
    assert r.status == 404


# -- POST dialogs/<id>/messages ---------------------------------------------------------------------

def test_sendIntoBroadcast(admin):
    """The owner's announcement: stored in the history, reaches every online user over XMPP as a REST send_to_chat does."""
    status, d = admin.call("POST", "dialogs", {"name": "News", "owner": "owner"})
    assert status == 201, d
    carol, transport = admin.h.connect(f"{admin.id('carol')}-1")
    status, sent = admin.call("POST", f"dialogs/{d['id']}/messages", {"message": "Hello everyone"})
    assert status == 201 and sent["sender_id"] == admin.id("owner"), sent
    [got] = messages(transport)
    assert got["type"] == "groupchat" and str(got.body) == "Hello everyone"
    assert got["from"] == f"1_{d['id']}@muc.localhost/{admin.id('owner')}" and got["id"] == sent["id"]
    r = admin.rest.get(f"/chat/Message.json?chat_dialog_id={d['id']}", token=admin.token("bob"))
    assert r.status == 200 and [(m["message"], m["sender_id"]) for m in r.json["items"]] == [
        ("Hello everyone", admin.id("owner"))], r
    assert admin.stored(d["id"]).lastMessage == "Hello everyone"
    assert admin.audits[-1]["action"] == "send-dialog-message"
    assert f"message={sent['id']}" in admin.audits[-1]["details"]


@pytest.mark.parametrize("dialogType", [DIALOG_GROUP, DIALOG_PRIVATE])
def test_sendIntoGroupAndPrivate(admin, dialogType):
    """In a group or 1-1 dialog the owner's message reaches the other occupant as his REST message would."""
    dialog = admin.dialog(dialogType, occupants=["bob"], name="team")
    bob, transport = admin.h.connect(f"{admin.id('bob')}-1")
    status, sent = admin.call("POST", f"dialogs/{dialog.id}/messages", {"message": "hi bob"})
    assert status == 201, sent
    [got] = messages(transport)
    assert str(got.body) == "hi bob" and got["type"] == ("chat" if dialogType == DIALOG_PRIVATE else "groupchat")
    stored = result(admin.h.storage.messages.getMessage(sent["id"]))
    assert stored.senderId == admin.id("owner")
    assert stored.recipientId == (admin.id("bob") if dialogType == DIALOG_PRIVATE else None)


def test_sendRefusals(admin):
    """No text, bad text, unknown fields or an unknown dialog: 400/404, nothing stored or audited."""
    dialog = admin.dialog(DIALOG_GROUP, occupants=["bob"], name="team")
    for body in ({}, {"message": ""}, {"message": "x", "extra": 1}, {"message": 5}, {"message": "  "}):
        assert admin.call("POST", f"dialogs/{dialog.id}/messages", body)[0] == 400, body
    assert admin.call("POST", "dialogs/" + "0" * 24 + "/messages", {"message": "x"})[0] == 404
    assert result(admin.h.storage.messages.countMessages(dialog.id)) == 0 and admin.audits == []


# -- over HTTP, on a live server ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.browser.conftest import panelServer
    from tests.e2e.conftest import stopServer

    running = panelServer(tmp_path_factory, '\n[dialogs]\nextension_fields = ["category"]\n')
    yield running
    stopServer(running.server)


def test_overHTTP(live, harnessBackend):
    """Create, find by extension, edit, show, message (a real client gets it) and delete over HTTP with the admin key."""
    if harnessBackend != "sqlite":
        pytest.skip("the live server has one backend")
    from tests.e2e.test_seed import PASSWORD, signup
    from tests.e2e.test_slixmpp import TIMEOUT, Client, run

    server = live.server
    ownerId, _ = signup(server, "owner")
    readerId, _ = signup(server, "reader")
    status, d = live.api("POST", "dialogs", {"name": "News", "owner": "owner", "extensions": {"category": "news"}})
    assert status == 201 and d["owner_id"] == ownerId, d
    status, found = live.api("GET", "dialogs?category=news")
    assert status == 200 and [x["id"] for x in found["items"]] == [d["id"]], found
    status, edited = live.api("PUT", f"dialogs/{d['id']}", {"description": "all of it"})
    assert status == 200 and edited["description"] == "all of it", edited

    async def scenario():
        reader = Client(server, f"{readerId}-1@localhost", PASSWORD)
        assert await reader.login()
        try:
            status, sent = await asyncio.to_thread(live.api, "POST", f"dialogs/{d['id']}/messages",
                                                   {"message": "over http"})
            assert status == 201, sent
            got = await asyncio.wait_for(reader.messages.get(), TIMEOUT)
            assert got["body"] == "over http" and got["type"] == "groupchat"
        finally:
            await reader.logout()

    run(scenario())
    status, shown = live.api("GET", f"dialogs/{d['id']}")
    assert status == 200 and shown["messages_count"] == 1 and shown["last_message"]["text"] == "over http"
    assert live.api("DELETE", f"dialogs/{d['id']}") == (200, {"deleted": d["id"]})
    assert live.api("GET", f"dialogs/{d['id']}")[0] == 404
    log = server.log()
    assert "Admin admin-key: create-broadcast" in log and "Admin admin-key: delete-dialog" in log
    # a field added on the Chat settings page filters at once
    assert live.api("GET", "dialogs?topic=x")[0] == 400
    status, answer = live.api("PUT", "settings/dialogs.extension_fields", {"value": ["category", "topic"]})
    assert status == 200, answer
    status, answer = live.api("GET", "dialogs?topic=x")
    assert status == 200 and answer["extension_fields"] == ["category", "topic"], answer
