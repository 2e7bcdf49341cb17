"""
The errors of the dialog domain (issue 17): raised by L{xmppchat.dialogs.rules}
and L{xmppchat.dialogs.service}, mapped once to an HTTP status by the REST
API (L{xmppchat.api.json}) and to a stanza error (RFC 6120 §8.3.3) by the
XMPP modules (L{xmppchat.modules.base}).
"""

from __future__ import annotations


class DialogError(Exception):
    """
    A refused dialog operation with a readable C{text}; C{field} names the
    REST field at fault (C{None}: the request as a whole).
    """

    condition = "bad-request"
    status = 422

    def __init__(self, text: str, field: str | None = None):
        super().__init__(text)
        self.text = text
        self.field = field


class Forbidden(DialogError):
    condition, status = "forbidden", 403


class NotFound(DialogError):
    condition, status = "item-not-found", 404


class Conflict(DialogError):
    condition, status = "conflict", 422


class NotAcceptable(DialogError):
    """
    Well-formed but not for this dialog (a message of another dialog, a
    private dialog without this recipient).
    """

    condition, status = "not-acceptable", 422


class TooMany(DialogError):
    """
    Over a count limit (reactions per message and user).
    """

    condition, status = "policy-violation", 422


class Invalid(DialogError):
    """
    Input over a limit or of the wrong shape.
    """

    condition, status = "bad-request", 422


__all__ = ["Conflict", "DialogError", "Forbidden", "Invalid", "NotAcceptable", "NotFound", "TooMany"]
