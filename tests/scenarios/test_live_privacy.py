"""
Issue 17 item 3: privacy settings changed over REST apply at once to the
user's live XMPP sessions (typing indicators, read receipts), in 1-1 and
group dialogs; with read receipts off the reads are still recorded (own
unread counts exact) and hidden from the others over XMPP and REST.  The
REST API runs on the host's storage and hooks, as in one process.
"""

from __future__ import annotations

from tests.api.helpers import ApiHarness
from tests.helpers import HostHarness, result
from tests.helpers import sentMessages as messages

BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MARKERS = "urn:xmpp:chat-markers:0"


class Live:
    """
    A host and its REST API; alice and bob are REST users with a live
    XMPP session each.
    """

    def __init__(self):
        self.h = HostHarness()
        self.api = ApiHarness(storage=self.h.storage, hooks=self.h.host.hooks, clock=self.h.clock)
        self.tokens, self.ids, self.jids, self.sessions, self.transports = {}, {}, {}, {}, {}
        for name in ("alice", "bob"):
            token, userId = self.api.user(name)
            self.tokens[name], self.ids[name] = token, userId
            self.jids[name] = f"{userId}-1@localhost"
            self.sessions[name], self.transports[name] = self.h.connect(f"{userId}-1")

    def settings(self, name, **settings):
        r = self.api.put(f"/users/{self.ids[name]}.json", {"user": {"privacy_settings": settings}},
                         token=self.tokens[name])
        assert r.status == 200, r
        return r.json["user"]["privacy_settings"]

    def send(self, name, text):
        self.h.send(self.sessions[name], text)

    def typing(self, frm, to, kind="chat"):
        self.send(frm, f"<message to='{to}' type='{kind}'><composing xmlns='{NS_CHATSTATES}'/></message>")

    def marker(self, frm, to, kind, messageId, stanzaType="chat"):
        self.send(frm, f"<message to='{to}' type='{stanzaType}'><{kind} xmlns='{NS_MARKERS}' id='{messageId}'/>"
                       "</message>")

    def received(self, name):
        return messages(self.transports[name])

    def restMessage(self, frm, body="hi", **target):
        r = self.api.post("/chat/Message.json", {"message": body, **target}, token=self.tokens[frm])
        assert r.status == 201, r
        return r.json


def test_typingOffOverRestAppliesToLiveSession():
    """Turning typing indicators off over REST stops the chat states of alice's connected session at once; on again, they flow."""
    live = Live()
    live.typing("alice", live.jids["bob"])
    assert [m.composing is not None for m in live.received("bob")] == [True]
    live.settings("alice", typing_indicators={"enabled": False})
    live.typing("alice", live.jids["bob"])
    assert live.received("bob") == []
    live.settings("alice", typing_indicators={"enabled": True})
    live.typing("alice", live.jids["bob"])
    assert len(live.received("bob")) == 1


def test_readReceiptsOffOverRestHideReadsEverywhere():
    """Read receipts off over REST: alice's live displayed/acknowledged markers stop reaching bob, REST hides her read from bob, her own unread count is exact."""
    live = Live()
    message = live.restMessage("bob", recipient_id=live.ids["alice"])
    dialogId, messageId = message["chat_dialog_id"], message["_id"]
    live.settings("alice", read_receipts={"enabled": False})
    live.marker("alice", live.jids["bob"], "received", messageId)
    live.marker("alice", live.jids["bob"], "displayed", messageId)
    live.marker("alice", live.jids["bob"], "acknowledged", messageId)
    assert [m.firstChildElement().name for m in live.received("bob")] == ["received"]
    unread = live.api.get("/chat/Message/unread.json", token=live.tokens["alice"]).json
    assert unread["total"] == 0 and unread[dialogId] == 0
    bobView = live.api.get(f"/chat/Message.json?chat_dialog_id={dialogId}", token=live.tokens["bob"]).json
    [item] = bobView["items"]
    assert item["read_ids"] == [live.ids["bob"]] and item["views_count"] == 1
    assert live.ids["alice"] in item["delivered_ids"]
    [dialog] = live.api.get("/chat/Dialog.json", token=live.tokens["bob"]).json["items"]
    assert dialog["last_message_status"] == "delivered"
    aliceView = live.api.get(f"/chat/Message.json?chat_dialog_id={dialogId}",
                             token=live.tokens["alice"]).json["items"][0]
    assert aliceView["read"] == 1 and live.ids["alice"] in aliceView["read_ids"]
    # the read was recorded all along: turned on again, it shows
    live.settings("alice", read_receipts={"enabled": True})
    [dialog] = live.api.get("/chat/Dialog.json", token=live.tokens["bob"]).json["items"]
    assert dialog["last_message_status"] == "read"


def test_groupTypingAndReadsFollowLiveSettings():
    """In a group dialog the room fan-out drops alice's typing and read markers right after she turns them off over REST."""
    live = Live()
    r = live.api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": [live.ids["bob"]]},
                      token=live.tokens["alice"])
    assert r.status == 201, r
    room = r.json["xmpp_room_jid"]
    message = live.restMessage("bob", chat_dialog_id=r.json["_id"])
    live.received("bob")  # the dialog's creation notice
    live.typing("alice", room, "groupchat")
    live.marker("alice", room, "displayed", message["_id"], "groupchat")
    assert len(live.received("bob")) == 2
    live.settings("alice", typing_indicators={"enabled": False}, read_receipts={"enabled": False})
    live.typing("alice", room, "groupchat")
    live.marker("alice", room, "displayed", message["_id"], "groupchat")
    assert live.received("bob") == []


def test_changeByAnotherProcessAppliesAtTheStreamCheck():
    """A profile changed in storage by another process (a REST service started alone) reaches the live session at the next stream check."""
    live = Live()
    account = result(live.h.storage.accounts.getAccount(live.ids["alice"]))
    result(live.h.storage.accounts.updateAccount(account.id, profile={
        **account.profile, "privacy_settings": {"typing_indicators": {"enabled": False}}}))
    live.typing("alice", live.jids["bob"])
    assert len(live.received("bob")) == 1  # not yet seen
    live.h.host.modules["saslauth"].streamCheck.check()
    live.typing("alice", live.jids["bob"])
    assert live.received("bob") == []


def test_streamCheckQuietWhenNothingChanged():
    """After a REST change has reached the sessions, the stream check finds nothing stale (no account-updated storm)."""
    live = Live()
    live.settings("alice", typing_indicators={"enabled": False}, last_seen={"visibility": "everyone"})
    fired = []
    live.h.host.hooks.add("account-updated", fired.append)
    live.h.host.modules["saslauth"].streamCheck.check()
    assert fired == []


def test_groupMessageKeepsBodyLosesPrivateParts():
    """A group message with a body from a user hiding typing and reads reaches the room without its chat state and read marker."""
    live = Live()
    r = live.api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": [live.ids["bob"]]},
                      token=live.tokens["alice"])
    room, earlier = r.json["xmpp_room_jid"], live.restMessage("bob", chat_dialog_id=r.json["_id"])["_id"]
    live.settings("alice", typing_indicators={"enabled": False}, read_receipts={"enabled": False})
    live.received("bob")  # the dialog's creation notice
    live.send("alice", f"<message to='{room}' type='groupchat' id='g1'><body>hi all</body>"
                       f"<active xmlns='{NS_CHATSTATES}'/><displayed xmlns='{NS_MARKERS}' id='{earlier}'/></message>")
    [got] = live.received("bob")
    assert str(got.body) == "hi all"
    assert [c.name for c in got.elements() if c.uri in (NS_CHATSTATES, NS_MARKERS)] == []
