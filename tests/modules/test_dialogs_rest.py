"""
The REST API and the XMPP dialog layer on one host: REST-created messages
with send_to_chat, REST reactions and system messages reach XMPP sessions,
and XMPP reads show in REST unread counts.
"""

from treq.testing import StubTreq

from tests.api.helpers import ApiHarness
from tests.helpers import HostHarness
from tests.modules.test_dialogs import messages, params
from xmppchat.api.json import RestRequest
from xmppchat.api.site import makeSite

APPS = [{"application_id": 1, "auth_key": "test-key"}]


def restOn(h) -> ApiHarness:
    """An ApiHarness serving the REST site of C{h}'s host (same storage, clock and hooks)."""
    api = ApiHarness.__new__(ApiHarness)
    api.clock, api.config, api.storage, api.hooks = h.clock, h.config, h.storage, h.host.hooks
    api.site = makeSite(h.config, h.storage, h.clock, hooks=h.host.hooks)
    api.ctx = api.site.ctx
    api.stub = StubTreq(api.site.resource)
    api.stub._agent._serverFactory.requestFactory = RestRequest
    return api


def test_restAndXMPPTogether():
    """send_to_chat messages, REST reactions and system messages reach bob over XMPP; his XMPP read shows in REST."""
    h = HostHarness(rest={"enabled": True, "port": 0, "apps": APPS})
    h.clock.advance(1_700_000_000)
    api = restOn(h)
    aliceToken, aliceId = api.user("alice")
    bobToken, bobId = api.user("bob")
    r = api.post("/chat/Dialog.json", {"type": 2, "occupants_ids": str(bobId), "name": "team"}, token=aliceToken)
    assert r.status == 201, r
    dialogId = r.json["_id"]
    bob, tb = h.connect(f"{bobId}-1")
    room = f"1_{dialogId}@muc.localhost"

    r = api.post("/chat/Message.json", {"chat_dialog_id": dialogId, "message": "from rest", "send_to_chat": 1},
                 token=aliceToken)
    assert r.status == 201, r
    messageId = r.json["_id"]
    [got] = messages(tb)
    assert got["from"] == f"{room}/{aliceId}" and got["id"] == messageId and str(got.body) == "from rest"
    assert params(got)["dialog_id"] == dialogId

    r = api.post("/chat/Message.json", {"chat_dialog_id": dialogId, "message": "quiet"}, token=aliceToken)
    assert r.status == 201 and messages(tb) == []

    assert api.put(f"/chat/Message/{messageId}/reactions.json", {"add": "🔥"}, token=aliceToken).status == 200
    [push] = messages(tb)
    sdk = next(push.elements())
    assert (sdk.name, sdk["message_id"], sdk["user_id"]) == ("reactions", messageId, str(aliceId))
    assert [(x["type"], x["add"]) for x in sdk.elements()] == [("🔥", "true")]

    r = api.post("/chat/Message/system.json", {"recipientId": bobId, "event": "renamed"}, token=aliceToken)
    assert r.status == 200, r
    [system] = messages(tb)
    assert system["type"] == "headline" and params(system)["event"] == "renamed"
    assert params(system)["moduleIdentifier"] == "SystemNotifications"

    assert api.get(f"/chat/Message/unread.json?chat_dialog_ids={dialogId}", token=bobToken).json["total"] == 2
    h.send(bob, f"<message to='{aliceId}-1@localhost' type='chat' id='r1'>"
                f"<displayed xmlns='urn:xmpp:chat-markers:0' id='{messageId}'/>"
                f"<extraParams xmlns='jabber:client'><dialog_id>{dialogId}</dialog_id></extraParams></message>")
    assert api.get(f"/chat/Message/unread.json?chat_dialog_ids={dialogId}", token=bobToken).json["total"] == 1


def test_onlineListHonoursPrivacy():
    """/users/online.json leaves out users invisible to the caller or blocking him, and those who sent no presence (issue 15 finding 9)."""
    h = HostHarness(rest={"enabled": True, "port": 0, "apps": APPS})
    api = restOn(h)
    api.ctx.online = h.host.sessions
    callerToken, callerId = api.user("mallory")
    ids = {name: api.user(name)[1] for name in ("alice", "bob", "carol", "dave")}
    sessions = {name: h.connect(f"{uid}-1", available=name != "dave")[0] for name, uid in ids.items()}
    caller = f"{callerId}-1@localhost"
    for name, children in (("alice", "<presence-out/>"), ("bob", "")):  # invisible to him; blocks him
        h.send(sessions[name], f"<iq type='set' id='l'><query xmlns='jabber:iq:privacy'><list name='x'>"
                               f"<item type='jid' value='{caller}' action='deny' order='1'>{children}</item>"
                               f"</list></query></iq>")
        h.send(sessions[name], "<iq type='set' id='d'><query xmlns='jabber:iq:privacy'><default name='x'/></query></iq>")
    r = api.get("/users/online.json?limit=50", token=callerToken)
    assert r.status == 200 and [u["id"] for u in r.json["users"]] == [ids["carol"]]
    assert api.get("/users/online.json?count=true", token=callerToken).json == {"count": 1}
    davesToken = api.login("dave", "password1")[0]
    r = api.get("/users/online.json?limit=50", token=davesToken)
    assert sorted(u["id"] for u in r.json["users"]) == sorted(ids[n] for n in ("alice", "bob", "carol"))
