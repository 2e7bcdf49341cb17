"""
Issue 17 item 2 over loopback against a real server: changes made over
REST (HTTP to the rest port) reach a real XMPP client (slixmpp) as the
stanzas an XMPP change produces -- an edit as a XEP-0308 C{<replace/>},
a delete for everyone as the SDK's C{<remove/>}, read and delivered marks
as XEP-0333 markers to the sender -- and an XMPP edit shows over REST.
"""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.e2e.test_chat import nextEvent, within
from tests.e2e.test_rest import call, restUsers
from tests.e2e.test_slixmpp import Client, run

NS_CORRECT = "urn:xmpp:message-correct:0"
NS_DELETE = "urn:xmpp:message-delete:0"
NS_MARKERS = "urn:xmpp:chat-markers:0"


@pytest.fixture(scope="module")
def users(server):
    return restUsers(server, "evalice", "evbob")


def child(message, uri, name):
    return message.xml.find(f"{{{uri}}}{name}")


def test_restChangesReachXMPP(server, users):
    """REST edit, delete for all and read mark reach slixmpp clients; an XMPP edit shows over REST."""
    (aliceToken, aliceId), (bobToken, bobId) = users["evalice"], users["evbob"]
    status, dialog = call(server, "POST", "/chat/Dialog.json",
                          {"type": 2, "name": "events", "occupants_ids": str(bobId)}, token=aliceToken)
    assert status == 201, dialog
    dialogId = dialog["_id"]
    room = f"1_{dialogId}@muc.localhost"

    async def rest(*args):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: call(server, *args))

    async def scenario():
        alice = Client(server, f"{aliceId}-1@localhost", aliceToken)
        alice.register_plugin("xep_0333")
        bob = Client(server, f"{bobId}-1@localhost", bobToken)
        assert await alice.login() and await bob.login()
        status, message = await rest("POST", "/chat/Message.json",
                                     {"chat_dialog_id": dialogId, "message": "first"}, aliceToken)
        assert status == 201, message
        messageId = message["_id"]

        status, _ = await rest("PUT", f"/chat/Message/{messageId}.json",
                               {"chat_dialog_id": dialogId, "message": "fixed"}, aliceToken)
        assert status == 200
        got = await within(bob.messages.get())
        assert child(got, NS_CORRECT, "replace").get("id") == messageId and got["body"] == "fixed"
        assert str(got["from"]) == f"{room}/{aliceId}" and got["type"] == "groupchat"
        reflected = await within(alice.messages.get())
        assert child(reflected, NS_CORRECT, "replace").get("id") == messageId

        displayed = nextEvent(alice, "marker_displayed")
        status, _ = await rest("PUT", f"/chat/Message/{messageId}.json",
                               {"chat_dialog_id": dialogId, "read": 1}, bobToken)
        assert status == 200
        marker = await within(displayed)
        assert marker["displayed"]["id"] == messageId
        assert str(marker["from"]) == f"{bobId}-1@localhost" and marker["type"] == "chat"

        edit = alice.make_message(mto=room, mbody="by xmpp", mtype="groupchat")
        edit.xml.append(edit.xml.makeelement(f"{{{NS_CORRECT}}}replace", {"id": messageId}))
        edit.send()
        await within(bob.messages.get())
        await within(alice.messages.get())
        status, listed = await rest("GET", f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0",
                                    None, bobToken)
        assert [(m["message"], m["edited"]) for m in listed["items"]] == [("by xmpp", True)]

        removed = asyncio.get_running_loop().create_future()
        bob.register_handler(Callback("remove", MatchXPath(f"{{jabber:client}}message/{{{NS_DELETE}}}remove"),
                                      lambda m: removed.done() or removed.set_result(m)))
        await rest("DELETE", f"/chat/Message/{messageId}.json?force=1", None, aliceToken)
        got = await within(removed)
        assert child(got, NS_DELETE, "remove").get("id") == messageId
        assert str(got["from"]) == f"{room}/{aliceId}"
        await alice.logout()
        await bob.logout()

    run(scenario())
