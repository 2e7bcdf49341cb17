"""
One validation of dialog messages for REST and XMPP (issue 17 item 2):
the body, attachment and custom-field limits of
L{xmppchat.dialogs.service} refuse the same message on both sides
(REST 422 naming the field, XMPP C{bad-request}), and nothing is stored;
on SQLite and MongoDB (mongomock).
"""

from __future__ import annotations

import pytest

from tests.dialogs.test_events import setUp
from tests.helpers import result
from xmppchat.dialogs.service import MAX_ATTACHMENTS, MAX_BODY, MAX_CUSTOM, MAX_REACTIONS
from xmppchat.storage.interfaces import DIALOG_GROUP, Query

BOTH_BACKENDS = True

CASES = {
    "body": ("message", {"message": "x" * (MAX_BODY + 1)}, "x" * (MAX_BODY + 1), ""),
    "attachments": ("attachments", {"message": "hi", "attachments": [{"uid": str(i)} for i in range(MAX_ATTACHMENTS + 1)]},
                    "hi", "".join(f"<attachment uid='{i}'/>" for i in range(MAX_ATTACHMENTS + 1))),
    "custom": ("base", {"message": "hi", **{f"k{i}": "v" for i in range(MAX_CUSTOM + 1)}},
               "hi", "".join(f"<k{i}>v</k{i}>" for i in range(MAX_CUSTOM + 1))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sameLimitsBothSides(case, harnessBackend):
    """A message over a limit is refused over REST and over XMPP alike, and not stored."""
    field, restBody, body, params = CASES[case]
    h, api, users, dialog, _ = setUp(DIALOG_GROUP)
    (aliceToken, aliceId) = users["alice"]
    r = api.post("/chat/Message.json", {"chat_dialog_id": dialog.id, **restBody}, token=aliceToken)
    assert r.status == 422 and field in r.json["errors"], r
    alice, ta = h.connect(f"{aliceId}-1")
    h.send(alice, f"<message to='1_{dialog.id}@muc.localhost' type='groupchat' id='6b026913da64a53358000d01'>"
                  f"<body>{body}</body><extraParams xmlns='jabber:client'><save_to_history>1</save_to_history>"
                  f"<dialog_id>{dialog.id}</dialog_id>{params}</extraParams></message>")
    [error] = [e for e in ta.pop() if e.getAttribute("type") == "error"]
    assert error.error.firstChildElement().name == "bad-request"
    assert str(error.error.text) == r.json["errors"][field][0]
    stored = result(h.storage.messages.listMessages(dialog.id, None, Query(limit=10)))
    assert [m.body for m in stored] == ["first"]


def test_sameReactionLimitBothSides(harnessBackend):
    """At most MAX_REACTIONS emoji per message and user, over REST (422) as over XMPP (policy-violation)."""
    h, api, users, dialog, messageId = setUp(DIALOG_GROUP)
    aliceToken, aliceId = users["alice"]
    emoji = [f"e{i}" for i in range(MAX_REACTIONS + 1)]
    for e in emoji[:MAX_REACTIONS]:
        assert api.put(f"/chat/Message/{messageId}/reactions.json", {"add": e}, token=aliceToken).status == 200
    r = api.put(f"/chat/Message/{messageId}/reactions.json", {"add": emoji[-1]}, token=aliceToken)
    assert r.status == 422 and r.json["errors"]["add"] == [f"At most {MAX_REACTIONS} reactions per message"]
    alice, ta = h.connect(f"{aliceId}-1")
    items = "".join(f"<reaction>{e}</reaction>" for e in emoji)
    h.send(alice, f"<message to='1_{dialog.id}@muc.localhost' type='groupchat' id='6b026913da64a53358000d02'>"
                  f"<reactions xmlns='urn:xmpp:reactions:0' id='{messageId}'>{items}</reactions></message>")
    [error] = [e for e in ta.pop() if e.getAttribute("type") == "error"]
    assert error.error.firstChildElement().name == "policy-violation"
    stored = result(h.storage.messages.getMessage(messageId))
    assert sorted(stored.reactions) == sorted(emoji[:MAX_REACTIONS])
