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
    ids added to and removed from its occupants.
    """

    dialog: object
    userId: int
    appId: int
    added: list
    removed: list
    deleted: bool = False


__all__ = ["DialogEvent", "MarkEvent", "MessageEvent"]
