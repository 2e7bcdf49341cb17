"""
L{xmppchat.dialogs.rules} as one table (role x dialog type x action ->
allowed, issue 17), checked three times: against the rules themselves,
through the REST API and through XMPP stanzas on the same host, so both
sides are proven to give the table's answer.  Every side-test runs on
SQLite and on MongoDB (mongomock).

Over XMPP: post (a dialog message), notify (a typing notification to a
room; 1-1 typing is plain XMPP routing, never a dialog matter), edit
(XEP-0308) and delete (the SDK's C{<remove/>}).  Over REST: every action
(read: the history; manage: renaming the dialog).
"""

from __future__ import annotations

import pytest

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs_rest import APPS, restOn
from xmppchat.dialogs import rules
from xmppchat.dialogs.rules import DELETE, EDIT, MANAGE, MARK, NOTIFY, POST, READ
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_GROUP,
    DIALOG_PRIVATE,
    DIALOG_PUBLIC,
    Query,
)

BOTH_BACKENDS = True

ALL = (READ, POST, MARK, NOTIFY, EDIT, DELETE, MANAGE)
ACTS = (READ, POST, MARK, NOTIFY, EDIT, DELETE)  # everything but manage

# (dialog type, role) -> the actions allowed; "preview" is a stranger in a
# dialog with permissions.allow_preview; edit/delete are of one's own message
TABLE = {
    (DIALOG_PRIVATE, "owner"): ALL,
    (DIALOG_PRIVATE, "occupant"): ACTS,
    (DIALOG_PRIVATE, "stranger"): (),
    (DIALOG_GROUP, "owner"): ALL,
    (DIALOG_GROUP, "admin"): ALL,
    (DIALOG_GROUP, "occupant"): ACTS,
    (DIALOG_GROUP, "stranger"): (),
    (DIALOG_GROUP, "preview"): (READ,),
    (DIALOG_PUBLIC, "owner"): ALL,
    (DIALOG_PUBLIC, "admin"): ALL,
    (DIALOG_PUBLIC, "occupant"): ACTS,  # a subscriber
    (DIALOG_PUBLIC, "stranger"): ACTS,  # "an open dialog: any user of the app can chat there"
    (DIALOG_BROADCAST, "owner"): ALL,
    (DIALOG_BROADCAST, "admin"): ALL,
    # readers of a broadcast mark it but do not type or send system messages to its occupants
    (DIALOG_BROADCAST, "occupant"): (READ, MARK),
    # every user of the application reads a broadcast and has read state in it (issue 17 item 5)
    (DIALOG_BROADCAST, "stranger"): (READ, MARK),
}
CASES = [(t, role, action, action in allowed)
         for (t, role), allowed in sorted(TABLE.items()) for action in ALL]
NAMES = {"owner": "alice", "admin": "dave", "occupant": "bob", "stranger": "eve", "preview": "eve"}


def caseId(case):
    t, role, action, allowed = case
    return f"{t}-{role}-{action}-{'yes' if allowed else 'no'}"


class Dialog:
    """A dialog of C{type} between REST users on one host with the REST site beside it."""

    def __init__(self, dialogType, role):
        self.h = HostHarness(rest={"enabled": True, "port": 0, "apps": APPS})
        self.h.clock.advance(1_700_000_000)
        self.api = restOn(self.h)
        self.tokens, self.ids = {}, {}
        for name in ("alice", "bob", "dave", "eve"):
            self.tokens[name], self.ids[name] = self.api.user(name)
        occupants = {DIALOG_PRIVATE: ["bob"], DIALOG_PUBLIC: []}.get(dialogType, ["bob", "dave"])
        admins = [] if dialogType == DIALOG_PRIVATE else ["dave"]
        self.dialog = result(self.h.storage.dialogs.createDialog(
            dialogType, self.ids["alice"], occupantIds=[self.ids[o] for o in occupants],
            adminIds=[self.ids[a] for a in admins], name="d",
            permissions={"allow_preview": True} if role == "preview" else None))
        if dialogType == DIALOG_PUBLIC:
            result(self.h.storage.dialogs.subscribe(self.dialog.id, self.ids["bob"]))
        self.name = NAMES[role]
        self.userId = self.ids[self.name]
        self.own = result(self.h.storage.messages.createMessage(self.dialog.id, self.userId, "mine"))

    def count(self):
        return len(result(self.h.storage.messages.listMessages(self.dialog.id, None, Query(limit=100))))

    def body(self):
        message = result(self.h.storage.messages.getMessage(self.own.id))
        return None if message is None else message.body


@pytest.mark.parametrize("case", CASES, ids=caseId)
def test_table(case):
    """rules.may gives the table's answer."""
    dialogType, role, action, allowed = case
    d = type("D", (), {"type": dialogType, "ownerId": 1, "occupantIds": [], "adminIds": [],
                       "permissions": {"allow_preview": role == "preview"}})()
    userId = {"owner": 1, "admin": 2, "occupant": 3, "stranger": 9, "preview": 9}[role]
    if role == "admin":
        d.adminIds, d.occupantIds = [2], [2, 3] if dialogType != DIALOG_PUBLIC else []
    if role == "occupant" and dialogType != DIALOG_PUBLIC:
        d.occupantIds = [2, 3]
    assert rules.may(d, userId, action, senderId=userId) is allowed
    if action in (EDIT, DELETE):
        assert rules.may(d, userId, action, senderId=userId + 100) is False  # another's message


@pytest.mark.parametrize("case", CASES, ids=caseId)
def test_rest(case, harnessBackend):
    """The REST API gives the table's answer."""
    dialogType, role, action, allowed = case
    d = Dialog(dialogType, role)
    api, token, dialogId = d.api, d.tokens[d.name], d.dialog.id
    if action == READ:
        r = api.get(f"/chat/Message.json?chat_dialog_id={dialogId}&mark_as_read=0", token=token)
        assert (r.status == 200) is allowed, r
    elif action == POST:
        r = api.post("/chat/Message.json", {"chat_dialog_id": dialogId, "message": "hi"}, token=token)
        assert (r.status == 201) is allowed, r
        assert d.count() == (2 if allowed else 1)
    elif action in (MARK, NOTIFY):  # REST has no typing: its marks are the one notification
        r = api.put("/chat/Message.json", {"chat_dialog_id": dialogId, "read": 1}, token=token)
        assert (r.status == 200) is (MARK in TABLE[dialogType, role]), r
    elif action == EDIT:
        r = api.put(f"/chat/Message/{d.own.id}.json", {"chat_dialog_id": dialogId, "message": "new"},
                    token=token)
        assert (r.status == 200) is allowed, r
        assert d.body() == ("new" if allowed else "mine")
    elif action == DELETE:
        api.delete(f"/chat/Message/{d.own.id}.json?force=1", token=token)
        assert (d.body() is None) is allowed
    else:
        r = api.put(f"/chat/Dialog/{dialogId}.json", {"name": "renamed"}, token=token)
        assert (r.status == 200) is allowed, r


XMPP_ACTIONS = (POST, NOTIFY, EDIT, DELETE)
XMPP_CASES = [c for c in CASES if c[2] in XMPP_ACTIONS and not (c[0] == DIALOG_PRIVATE and c[2] == NOTIFY)]


@pytest.mark.parametrize("case", XMPP_CASES, ids=caseId)
def test_xmpp(case, harnessBackend):
    """XMPP stanzas get the table's answer."""
    dialogType, role, action, allowed = case
    d = Dialog(dialogType, role)
    session, transport = d.h.connect(f"{d.userId}-1")
    if dialogType == DIALOG_PRIVATE:
        peer = d.ids["alice"] if d.name == "bob" else d.ids["bob"]
        head = f"<message to='{peer}-1@localhost' type='chat' id='6b026913da64a53358000f01'>"
    else:
        head = (f"<message to='1_{d.dialog.id}@muc.localhost' type='groupchat' "
                "id='6b026913da64a53358000f01'>")
    params = (f"<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
              f"<dialog_id>{d.dialog.id}</dialog_id></extraParams>")
    child = {
        POST: "<body>hi</body>",
        NOTIFY: "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
        EDIT: f"<body>new</body><replace xmlns='urn:xmpp:message-correct:0' id='{d.own.id}'/>",
        DELETE: f"<remove xmlns='urn:xmpp:message-delete:0' id='{d.own.id}'/>",
    }[action]
    d.h.send(session, head + child + params + "</message>")
    errors = [e for e in transport.pop() if e.getAttribute("type") == "error"]
    assert (errors == []) is allowed, [e.toXml() for e in errors]
    if not allowed:
        assert errors[0].error.firstChildElement().name in ("forbidden", "not-acceptable")
    if action == POST:
        assert d.count() == (2 if allowed else 1)
    elif action == EDIT:
        assert d.body() == ("new" if allowed else "mine")
    elif action == DELETE:
        assert (d.body() is None) is allowed
