"""
The unmodified ConnectyCube JS SDK 6.1.2 chat (XMPP over WebSocket, RFC
7395) between two or three real SDK users against one real server on
loopback: connection life cycle, 1-1 messages with extension and
attachments, stream management acks, delivered/read markers, typing, system
messages, last activity, privacy lists, group and public dialogs, and the
REST view of the chat traffic.

Each flow script (C{chat_*.cjs}) runs every user in its own Node process
(C{chat_worker.cjs}; the SDK's config is a process-wide singleton) and
prints one JSON object; it runs once per module and the tests below assert
on what the I{other} user received.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY, REST_JWT_SECRET, startServer, stopServer
from tests.e2e.nodeclients import TRANSPORTS
from tests.sdk.conftest import runNode
from xmppchat.api.sessions import encodeJWT

OBJECT_ID = 24


@pytest.fixture(scope="module")
def chatServer(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("sdk-chat"), extra=TRANSPORTS)
    yield running
    stopServer(running)


@pytest.fixture(scope="module")
def flows(sdk, chatServer):
    """
    Runs each flow script once (on first use) and caches its JSON output.
    """
    settings = {"apiUrl": f"http://127.0.0.1:{chatServer.ports['rest']}",
                "chatUrl": f"ws://127.0.0.1:{chatServer.ports['websocket']}",
                "appId": REST_APP_ID, "authKey": REST_AUTH_KEY, "timeout": 50,
                "jwt": encodeJWT({"user_id": "sdk-chat-user", "exp": int(time.time()) + 600}, REST_JWT_SECRET)}
    cache = {}

    def run(name):
        if name not in cache:
            out = runNode(f"chat_{name}.cjs", settings, timeout=60)
            assert "error" not in out, (out.get("error"), out.get("partial"), chatServer.log()[-3000:])
            cache[name] = out
        return cache[name]

    return run


def isObjectId(value) -> bool:
    return isinstance(value, str) and len(value) == OBJECT_ID and all(c in "0123456789abcdef" for c in value)


# -- connection --------------------------------------------------------------------------------------


def test_connectWithPasswordAndToken(flows):
    """chat.connect works with the user's password and with the REST session token; isConnected follows."""
    out = flows("connect")
    assert out["beforeConnect"] is False
    assert out["connectPassword"] is True and out["connectToken"] is True
    assert out["isConnected"] == {"alice": True, "bob": True}
    assert out["currentUserId"] == out["ids"] == out["sessionUserIds"]
    local, _, resource = out["jid"].partition("/")
    assert local == f"{out['ids']['alice']}-{REST_APP_ID}@localhost" and len(resource) >= 16


def test_connectWithJWT(flows):
    """A token user (init({appId, token: <JWT>})) connects with the JWT as password and its message arrives."""
    out = flows("connect")
    assert out["jwtConnect"] is True and out["jwtUserId"] > 0
    userId, message = out["jwtMessage"]
    assert userId == out["jwtUserId"] and message["body"] == "from a JWT user"


def test_connectRejectsBadCredentials(flows):
    """A wrong password or an unknown token makes chat.connect reject with the SASL condition."""
    out = flows("connect")
    assert out["wrongPassword"] == {"error": "not-authorized"}
    assert out["wrongToken"] == {"error": "not-authorized"}


def test_disconnectAndReconnectCallbacks(flows):
    """A broken socket fires onDisconnectedListener, the SDK reconnects (new resource) and fires onReconnectListener."""
    out = flows("connect")
    assert out["disconnected"] is True and out["reconnected"] is True
    assert out["isConnectedAfterReconnect"] is True
    assert out["jidAfterReconnect"] != out["jid"]
    assert out["jidAfterReconnect"].split("/")[0] == out["jid"].split("/")[0]
    assert out["afterReconnect"] == {"fromId": out["ids"]["alice"], "body": "after reconnect"}
    assert out["disconnect"] is True and out["isConnectedAfterDisconnect"] is False


def test_restSeesChatPresence(flows):
    """users.listOnline and getOnlineCount list the users connected to the chat."""
    out = flows("connect")
    ids = out["ids"]
    assert sorted(u["id"] for u in out["listOnline"]["result"]["users"]) == sorted([ids["alice"], ids["bob"]])
    assert out["onlineCount"] == {"result": {"count": 2}}


def test_pingAndMarkActiveInactive(flows):
    """pingWithTimeout resolves, also after markInactive/markActive; messages still arrive while inactive."""
    out = flows("connect")
    assert out["ping"] == {"result": None}
    assert out["whileInactive"] == "while inactive"
    assert out["pingAfterMark"] == {"result": None}


def test_lastActivityAndStatusStreaming(flows):
    """getLastUserActivity of a dialog partner who wrote in the dialog, and subscribeToUserLastActivityStatus pushes on logout."""
    out = flows("connect")
    alice = out["ids"]["alice"]
    assert out["lastActivityBeforeWriting"]["error"]["code"] == 403  # a dialog alone is no consent
    assert out["lastActivityOnline"] == {"result": {"userId": alice, "seconds": 0}}
    assert out["lastActivityStranger"]["error"]["code"] == 403  # no shared dialog
    pushes = out["pushesBeforeLogout"]
    assert pushes and all(userId == alice for userId, _ in pushes)
    [userId, seconds] = out["lastActivityPush"]["result"]
    assert userId == alice and isinstance(seconds, int) and seconds >= 0
    assert seconds > 0  # offline is never the online value 0
    offline = out["lastActivityOffline"]["result"]
    assert offline["userId"] == alice and 1 <= offline["seconds"] < 30


def test_offlineMessageOnNextConnect(flows):
    """A message sent while the recipient is offline arrives (with <delay>) when the SDK connects again."""
    out = flows("connect")
    assert out["reconnectAfterLogout"] is True
    assert out["offline"] == {"fromId": out["ids"]["bob"], "body": "while you were away", "delayed": True,
                              "dialogId": out["dialog"]["_id"]}


def test_carbonsToSecondDevice(flows):
    """A second SDK device of the same user gets sent carbons (is_forwarded) and every incoming message."""
    out = flows("connect")
    assert out["tabletStrayDelivered"] == []
    assert out["carbon"] == {"fromId": out["ids"]["alice"], "body": "from the phone", "isForwarded": True}
    assert out["bothDevices"] == ["to both devices", "to both devices"]
    # (and no <received> carbons mistaken for markers, reference §5.15)


def test_malformedExtensionFrame(flows):
    """The SDK's malformed XML for array extensions ends the stream (not-well-formed); the SDK reconnects and goes on."""
    out = flows("connect")
    assert out["malformed"] == {"condition": "not-well-formed"}
    assert out["afterMalformed"] == "after the bad frame"


def test_destroyedSessionTokenRejected(flows):
    """After destroySession the session token no longer works as a chat password."""
    assert flows("connect")["deadToken"] == {"error": "not-authorized"}


# -- 1-1 messages ------------------------------------------------------------------------------------


def test_privateMessageWithExtension(flows):
    """Bob receives alice's message with its id, dialog_id, custom fields, the attachment and a date_sent stamp."""
    out = flows("messages")
    received = out["received"]
    assert received["fromId"] == out["ids"]["alice"]
    message = received["message"]
    assert message["id"] == out["firstId"] and isObjectId(message["id"])
    assert message["type"] == "chat" and message["body"] == "hello bob"
    assert message["dialog_id"] == out["dialogId"] and message["recipient_id"] == out["ids"]["bob"]
    extension = message["extension"]
    assert extension["save_to_history"] == "1" and extension["dialog_id"] == out["dialogId"]
    assert extension["color"] == "blue"
    assert extension["custom"] == {"nested": "v", "deeper": {"x": "1"}}
    assert int(extension["date_sent"]) > 1_600_000_000
    [attachment] = extension["attachments"]
    assert attachment == {"type": "image", "uid": out["blob"]["uid"], "id": str(out["blob"]["id"]),
                          "size": out["blob"]["size"], "name": "photo.png", "content_type": "image/png"}


def test_photoAttachmentDownload(flows):
    """The photo uploaded with storage.createAndUpload downloads for the recipient from privateUrl."""
    out = flows("messages")
    assert out["blob"]["content_type"] == "image/png"
    assert out["download"] == {"status": 200, "body": "not really a PNG, but bytes uploaded by the SDK"}


def test_sentMessageCallbackWithStreamManagement(flows):
    """With chat.streamManagement.enable the server's <a/> fires onSentMessageCallback(null, message)."""
    out = flows("messages")
    assert out["sentCallback"]["lost"] is None
    assert out["sentCallback"]["sentId"] == out["firstId"]
    assert out["burstAcked"] == out["burst"]
    assert out["burstReceived"] == ["burst 1", "burst 2", "burst 3"]


def test_deliveredAndReadStatus(flows):
    """Automatic and explicit delivered receipts and the read status reach the sender's listeners; unread counts follow."""
    out = flows("messages")
    bob, dialog = out["ids"]["bob"], out["dialogId"]
    assert out["autoDelivered"] == [out["firstId"], dialog, bob]
    second = out["secondMessage"]
    # The server stamps the private dialog into a message sent without dialog_id.
    assert second["dialog_id"] == dialog
    assert out["explicitDelivered"] == [second["id"], dialog, bob]
    assert out["unreadBeforeRead"] == {"total": 2, dialog: 2}
    assert out["read"] == [out["firstId"], dialog, bob]
    assert out["unreadAfterRead"] == {"total": 1, dialog: 1}


def test_typing(flows):
    """sendIsTypingStatus / sendIsStopTypingStatus fire the peer's onMessageTypingListener(true/false)."""
    out = flows("messages")
    alice = out["ids"]["alice"]
    assert out["typingStart"] == [True, alice, None]
    assert out["typingStop"] == [False, alice, None]


def test_systemMessage(flows):
    """sendSystemMessage reaches onSystemMessageListener with id, sender, body and extension."""
    out = flows("messages")
    [system] = out["system"]
    assert system["id"] == out["systemId"] and system["userId"] == out["ids"]["alice"]
    assert system["body"] == "dialog updated"
    extension = system["extension"]
    assert extension["param1"] == "value1" and extension["obj"] == {"a": "1"}
    assert extension["dialogId"] == out["dialogId"] and "moduleIdentifier" not in extension


def test_restViewOfChatTraffic(flows):
    """message.list, unreadCount, update(read) and the dialog's last message reflect the chat messages."""
    out = flows("messages")
    alice, bob = out["ids"]["alice"], out["ids"]["bob"]
    first, second = out["history"]["items"]
    assert first["_id"] == out["firstId"] and second["_id"] == out["secondMessage"]["id"]
    assert first["message"] == "hello bob" and first["sender_id"] == alice and first["recipient_id"] == bob
    assert first["chat_dialog_id"] == out["dialogId"]
    assert first["color"] == "blue" and first["custom"] == {"nested": "v", "deeper": {"x": "1"}}
    assert first["attachments"][0]["uid"] == out["blob"]["uid"]
    assert bob in first["read_ids"] and bob in first["delivered_ids"]
    assert bob not in second["read_ids"] and bob in second["delivered_ids"]
    assert out["unreadAfterList"] == {"total": 1, out["dialogId"]: 1}
    assert out["unreadAfterUpdate"] == {"total": 0, out["dialogId"]: 0}
    dialog = out["dialogAfter"]
    assert dialog["last_message"] == "second" and dialog["last_message_user_id"] == alice
    assert dialog["last_message_id"] == second["_id"] and dialog["last_message_status"] == "read"
    assert out["bobDialogAfter"]["unread_messages_count"] == 0
    assert out["bobDialogAfter"]["last_message_status"] is None  # not bob's message


def test_onlyTheSenderEditsOrDeletes(flows):
    """Bob's edit and delete of alice's message bounce with 403; alice gets no push; the history is unchanged."""
    out = flows("messages")
    assert out["forgedEditPushed"] is None and out["forgedDeletePushed"] is None
    assert out["forgeryErrors"]["alice"] == []
    assert [error["code"] for _, error in out["forgeryErrors"]["bob"]] == [403, 403]
    assert out["afterForgery"] == ["hello bob (edited)"]


def test_privateEditReactionDelete(flows):
    """editMessage, REST reactions and deleteMessage reach the peer's update/reactions/delete listeners and the history."""
    out = flows("messages")
    alice, bob, dialog, first = out["ids"]["alice"], out["ids"]["bob"], out["dialogId"], out["firstId"]
    originalId, last, body, dialogId, userId, _ = out["edit"]["result"]
    assert (originalId, last, body, dialogId, userId) == (first, False, "hello bob (edited)", dialog, alice)
    [edited] = out["editedHistory"]["result"]
    assert edited["message"] == "hello bob (edited)" and edited["edited"] is True
    assert out["reaction"]["result"] == [first, bob, dialog, "🔥", None]
    assert out["reactionSwap"]["result"] == [first, bob, dialog, "👍", "🔥"]
    assert out["reactionsListed"] == {"👍": [bob]}
    assert out["delete"]["result"] == [out["secondMessage"]["id"], dialog, alice]
    assert out["afterXmppDelete"]["result"] == [first]
    assert out["afterRestDelete"] == [out["restSendToChat"]["result"]["createdId"]]


def test_restChangesReachTheSDK(flows):
    """REST edit, read mark, delete for all and a rename fire the peer SDK's update/read/delete/system listeners; an SDK edit shows over REST (issue 17)."""
    out = flows("restchanges")
    alice, bob, first = out["ids"]["alice"], out["ids"]["bob"], out["first"]
    pair, group, groupMessage = out["dialogs"]["pair"], out["dialogs"]["group"], out["groupMessage"]
    originalId, last, body, dialogId, userId, _ = out["restEdit"]["result"]
    assert (originalId, last, body, dialogId, userId) == (first, True, "first, edited over REST", pair, alice)
    assert out["restRead"]["result"] == [first, pair, bob]
    assert out["restDelete"]["result"] == [first, pair, alice]
    originalId, last, body, dialogId, userId, _ = out["restGroupEdit"]["result"]
    assert (originalId, body, dialogId, userId) == (groupMessage, "group, edited over REST", group, alice)
    assert out["sdkEditOverRest"]["result"] == ["group, edited by the SDK"]
    rename = out["restRename"]["result"]
    assert rename["userId"] == alice and rename["extension"]["dialog_id"] == group
    assert rename["extension"]["name"] == "renamed over REST"


def test_restMessagesReachTheChat(flows):
    """message.create with send_to_chat and message.createSystem are delivered to the recipient's SDK listeners."""
    out = flows("messages")
    alice, bob = out["ids"]["alice"], out["ids"]["bob"]
    sent = out["restSendToChat"]["result"]
    assert sent["userId"] == alice
    message = sent["message"]
    assert message["id"] == sent["createdId"] and message["body"] == "from REST"
    assert message["dialog_id"] == out["dialogId"] and message["recipient_id"] == bob
    assert message["extension"]["mood"] == "good"
    system = out["restSystem"]["result"]
    assert system["created"]["recipientId"] == bob
    assert system["message"]["id"] == system["created"]["messageId"] and system["message"]["userId"] == alice
    assert system["message"]["extension"]["note"] == "rest system"


# -- privacy lists -----------------------------------------------------------------------------------


def test_privacyListCreateAndRead(flows):
    """create (deny + mutualBlock, one-way deny), setAsDefault, getNames and getList as the SDK reads them."""
    out = flows("privacy")
    ids = out["ids"]
    assert out["names"]["default"] == "blocked" and "blocked" in out["names"]["names"]
    # The SDK writes the items in user id order (object keys), two per user; getList keeps every other one.
    assert out["list"] == {"name": "blocked", "items": [{"user_id": i, "action": "deny"}
                                                        for i in sorted([ids["bob"], ids["carol"]])]}


def test_blockedSenderGetsMessageError(flows):
    """A blocked sender's message comes back as onMessageErrorListener; the blocker receives nothing."""
    out = flows("privacy")
    [_, bobError] = out["bobError"]
    assert bobError["code"] == 503
    [_, carolError] = out["carolError"]
    assert carolError["code"] == 503
    assert out["aliceGot"] == []


def test_mutualBlockStopsTheBlocker(flows):
    """With mutualBlock the blocker cannot message the blocked user; a one-way block lets the blocker write."""
    out = flows("privacy")
    assert out["aliceError"] is not None and out["aliceError"][1]["code"] == 406
    assert out["bobGot"] == []
    assert out["carolGot"][1]["body"] == "hi carol"


def test_privacyListUpdateDeclineDelete(flows):
    """update(allow) unblocks, delete of the default list empties it, declined it is deleted."""
    out = flows("privacy")
    ids = out["ids"]
    assert out["listAfterUpdate"]["items"] == [{"user_id": ids["carol"], "action": "deny"}]
    assert out["afterUnblock"][0] == ids["bob"]
    assert out["deleteWhileDefault"] == {"result": None}
    assert out["listAfterEmptying"] == {"name": "blocked", "items": []}
    assert out["afterEmptying"][0] == ids["carol"]
    assert out["namesAfterDecline"] == {"default": None, "active": None, "names": ["blocked"]}
    assert out["delete"] == {"result": None}
    assert out["namesAfterDelete"]["names"] == []
    assert out["listAfterDelete"]["items"] == []
    assert out["afterDelete"][0] == ids["bob"]


# -- dialogs -----------------------------------------------------------------------------------------


def test_groupMessageWithoutJoin(flows):
    """A groupchat message to the room JID without joining reaches every occupant, from the room, with receipts."""
    out = flows("dialogs")
    ids, group, first = out["ids"], out["group"]["_id"], out["firstId"]
    for who in ("bobGot", "carolGot"):
        userId, message = out[who]
        assert userId == ids["alice"]
        assert message["id"] == first and message["type"] == "groupchat" and message["dialog_id"] == group
        assert message["body"] == "hello group" and message["extension"]["topic"] == "news"
    assert out["delivered"] == [[first, group, ids["bob"]], [first, group, ids["carol"]]]
    assert out["read"] == [first, group, ids["bob"]]
    assert out["groupTyping"] == [True, ids["alice"], group]


def test_removedOccupantCannotWrite(flows):
    """After dialog.update pull_all, the removed user's group message bounces with 403 and reaches nobody."""
    out = flows("dialogs")
    assert out["removedError"][1]["code"] == 403
    assert out["removedDelivered"] is None


def test_groupHistoryFromChat(flows):
    """The group message is in the REST history with its id, sender and receipts; unread for carol."""
    out = flows("dialogs")
    ids = out["ids"]
    [message] = out["history"]
    assert message["_id"] == out["firstId"] and message["sender_id"] == ids["alice"]
    assert message["topic"] == "news" and message["chat_dialog_id"] == out["group"]["_id"]
    assert ids["bob"] in message["read_ids"] and ids["carol"] not in message["read_ids"]
    assert out["unread"]["total"] == 1
    dialog = out["carolDialog"]
    assert dialog["unread_messages_count"] == 1 and dialog["last_message"] == "hello group"
    assert dialog["last_message_id"] == out["firstId"] and dialog["last_message_user_id"] == ids["alice"]


def test_groupEditReactionDelete(flows):
    """Group edits, REST reactions and deletes reach the other occupants' listeners."""
    out = flows("dialogs")
    ids, group, first = out["ids"], out["group"]["_id"], out["firstId"]
    originalId, last, body, dialogId, userId, _ = out["edit"]["result"]
    assert (originalId, last, body, dialogId, userId) == (first, True, "hello group (edited)", group, ids["alice"])
    assert out["reaction"]["result"] == [[first, ids["bob"], group, "👍", None]] * 2
    assert out["delete"]["result"][1:] == [group, ids["bob"]]
    [left] = out["historyAfterChanges"]["result"]
    assert left["_id"] == first and left["message"] == "hello group (edited)"


def test_mucJoinLeave(flows):
    """muc.join/leave resolve, occupants see onJoinOccupant/onLeaveOccupant, listOnlineUsers lists them."""
    out = flows("dialogs")
    ids = out["ids"]
    assert out["join"] == {"result": None}
    assert out["joinOccupant"]["result"][1] == ids["bob"]
    assert sorted(out["onlineUsers"]["result"]) == sorted([ids["alice"], ids["bob"]])
    assert out["leave"] == {"result": None}
    assert out["leaveOccupant"]["result"][1] == ids["bob"]


def test_leaveAndClearHistory(flows):
    """dialog.delete without force leaves the group (no more writing: 403); clearHistory empties the caller's history."""
    out = flows("dialogs")
    assert out["afterLeave"]["occupants_ids"] == [out["ids"]["alice"]]
    assert out["bobListAfterLeave"] == []
    assert out["leftError"][1]["code"] == 403
    assert out["afterClear"] == []


def test_admins(flows):
    """addAdmins/removeAdmins by the owner change admins_ids; an occupant gets 403."""
    out = flows("dialogs")
    bob = out["ids"]["bob"]
    assert out["addAdmins"]["admins_ids"] == [bob]
    assert out["removeAdmins"]["admins_ids"] == []
    assert out["addAdminsByOccupant"]["error"]["code"] == 403


def test_notificationSettings(flows):
    """Notification settings default to enabled, are per user, and updateNotificationsSettings(0) sticks."""
    out = flows("dialogs")
    assert out["notificationsDefault"] == {"notifications": {"enabled": 1}}
    assert out["notificationsUpdate"] == {"notifications": {"enabled": 0}}
    assert out["notificationsAfter"] == {"notifications": {"enabled": 0}}
    assert out["notificationsOther"] == {"notifications": {"enabled": 1}}


def test_publicDialog(flows):
    """Public dialog: subscribe, getPublicOccupants, a message to subscribers, unsubscribe; a non-subscriber may post (issue 17: an open dialog)."""
    out = flows("dialogs")
    ids, lobby = out["ids"], out["lobby"]
    assert lobby["type"] == 4 and out["subscribe"]["_id"] == lobby["_id"]
    assert sorted(u["id"] for u in out["publicOccupants"]["items"]) == sorted([ids["bob"], ids["carol"]])
    userId, message = out["publicMessage"]["result"]
    assert userId == ids["bob"] and message["dialog_id"] == lobby["_id"] and message["body"] == "hi lobby"
    assert [u["id"] for u in out["publicOccupantsAfter"]["items"]] == [ids["bob"]]
    assert out["notSubscribedError"] is None
    assert out["notSubscribedDelivered"][1]["body"] == "not subscribed"


def test_strangerCannotReadHistory(flows):
    """message.list of a private dialog the caller is not in is refused with 403."""
    assert flows("dialogs")["strangerHistory"]["error"]["code"] == 403


def test_sdkEnumPublicIsBroadcast(flows):
    """DialogType.PUBLIC of the SDK is 1, the REST docs' broadcast type: users cannot create it (reference §4.4)."""
    out = flows("dialogs")
    assert out["sdkEnumPublic"] == 1
    assert out["createWithSdkEnum"]["error"]["code"] == 403


# -- privacy settings (issue 17 items 3 and 4) -----------------------------------------------------


def test_privacySettingsApplyToTheConnectedSDK(flows):
    """users.update while connected: no typing and no read status reach bob any more, alice's own unread count is exact, her read is hidden over REST."""
    out = flows("privacy_settings")
    alice, bob = out["ids"]["alice"], out["ids"]["bob"]
    assert out["typingBefore"][:2] == [True, alice]
    assert out["updatedSettings"]["typing_indicators"] == {"enabled": False}
    assert out["updatedSettings"]["read_receipts"] == {"enabled": False}
    assert out["afterBody"] == "typed quietly"
    assert out["typingAfter"] == 1 and out["readStatus"] == []
    assert list(out["aliceUnread"].values()) == [0, 0]
    assert out["helloReadIds"] == [bob]


def test_lastSeenSettingFromTheSDK(flows):
    """A stranger gets getLastUserActivity only while the user's last_seen is 'everyone' (default 'contacts')."""
    out = flows("privacy_settings")
    assert out["lastActivityDefault"]["error"]["code"] == 403
    assert out["setEveryone"]["result"]["user"]["privacy_settings"]["last_seen"] == {"visibility": "everyone"}
    assert out["lastActivityEveryone"] == {"result": {"userId": out["ids"]["alice"], "seconds": 0}}
    assert out["lastActivityNobody"]["error"]["code"] == 403
