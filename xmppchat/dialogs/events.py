"""
The events of the ConnectyCube dialog domain (issue 17): what the REST API
and the XMPP modules tell each other through host hooks when a message is
created, edited, removed, marked or reacted to, or a dialog changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MessageEvent:
    """
    The event of C{rest-message-created}: the stored message, its dialog,
    the sender's application, and whether the request asked for XMPP
    delivery (C{send_to_chat=1}).
    """

    message: object
    dialog: object
    appId: int
    sendToChat: bool


@dataclass
class MarkEvent:
    """
    The event of C{rest-messages-marked}: a user read or received a
    dialog's messages up to C{messageId} (C{None}: all).
    """

    dialogId: str
    userId: int
    messageId: str | None
    read: bool
    delivered: bool


@dataclass
class DialogEvent:
    """
    The event of C{rest-dialog-updated}: who changed which dialog, and the
    ids added to and removed from its occupants.  C{reasons}: account id
    -> the reason an XEP-0045 affiliation change gives the occupant it
    kicks (§9.1, §9.4); it lives as long as the event (security review
    finding 1: no long-lived store of reasons).
    """

    dialog: object
    userId: int
    appId: int
    added: list
    removed: list
    deleted: bool = False
    created: bool = False
    reasons: dict | None = None


@dataclass
class EditEvent:
    """
    The event of C{rest-message-edited}: C{userId} (the sender) edited
    C{message} (as stored after the edit) of C{dialog} over REST; the chat
    layer sends the XEP-0308 correction the SDK turns into
    C{onMessageUpdateListener} (SDK reference §5.7).  Edits made over XMPP
    travel as their own stanza and fire nothing.
    """

    message: object
    dialog: object
    userId: int
    appId: int
    last: bool


@dataclass
class RemoveEvent:
    """
    The event of C{rest-messages-removed}: C{userId} deleted these messages
    of C{dialog} for everyone over REST (C{force=1}); the chat layer sends
    the SDK's C{<remove/>} (C{onMessageDeleteListener}, SDK reference §5.8).
    """

    messageIds: list
    dialog: object
    userId: int
    appId: int


__all__ = ["DialogEvent", "EditEvent", "MarkEvent", "MessageEvent", "RemoveEvent"]
