"""
The ConnectyCube dialog access rules shared by the REST API and the XMPP
modules (reference/connectycube-sdk.md §4.4, dialog types and
C{permissions.allow_preview}).

Pure functions of a stored dialog (L{xmppchat.storage.interfaces}) and a
user id: no storage, no HTTP or XMPP errors, so L{xmppchat.api.dialogs},
L{xmppchat.api.messages}, L{xmppchat.modules.dialogs} and
L{xmppchat.modules.mam} apply one definition of who may read, post to and
manage a dialog.
"""

from __future__ import annotations

from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_PUBLIC


def isMember(dialog, userId: int) -> bool:
    """
    An occupant or the owner.
    """
    return userId in dialog.occupantIds or userId == dialog.ownerId


def isParticipant(dialog, userId: int) -> bool:
    """
    Has read state in the dialog: a member, or anyone in a public dialog.
    """
    return isMember(dialog, userId) or dialog.type == DIALOG_PUBLIC


def canRead(dialog, userId: int) -> bool:
    """
    May read the history: a participant, or anyone when the dialog
    allows preview.
    """
    return isParticipant(dialog, userId) or bool((dialog.permissions or {}).get("allow_preview"))


def canPost(dialog, userId: int) -> bool:
    """
    Who may add messages: occupants (only owner and admins of a
    broadcast), any user in a public dialog.
    """
    if dialog.type == DIALOG_BROADCAST:
        return isManager(dialog, userId)
    return isParticipant(dialog, userId)


def isManager(dialog, userId: int) -> bool:
    """
    The owner or an admin.
    """
    return userId == dialog.ownerId or userId in dialog.adminIds


def seesRoom(dialog, userId: int | None) -> bool:
    """
    May discover the dialog's XEP-0045 room (disco#info, disco#items): a
    public dialog's room is public, the others are hidden, members-only
    rooms (XEP-0045 §4.2) that only the owner, admins and occupants see
    (issue 15 finding 11).
    """
    return dialog.type == DIALOG_PUBLIC or (userId is not None and (
        isMember(dialog, userId) or isManager(dialog, userId)))


__all__ = ["canPost", "canRead", "isManager", "isMember", "isParticipant", "seesRoom"]
