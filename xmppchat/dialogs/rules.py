"""
The ConnectyCube dialog access rules shared by the REST API and the XMPP
modules (reference/connectycube-sdk.md §4.4, dialog types and
C{permissions.allow_preview}).

Pure functions of a stored dialog (L{xmppchat.storage.interfaces}) and a
user id: no storage, no HTTP or XMPP errors, so L{xmppchat.api.dialogs},
L{xmppchat.api.messages}, L{xmppchat.modules.dialogs},
L{xmppchat.modules.mam} and L{xmppchat.muc.room} apply one definition of
who may read, post to, join and manage a dialog.

Issue 17 item 5 (the seed's dialog features): a broadcast dialog is open
to every user of the application, read-only ("all the users from the
application are able to join this group"; only the owner and admins
post); admins exist on group, public and broadcast dialogs, at most
L{MAX_ADMINS}, and only the owner changes them.
"""

from __future__ import annotations

from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PUBLIC

# Dialogs every user of the application may read and join (public ones
# also let every user post once subscribed; broadcast ones are read-only).
OPEN_TYPES = (DIALOG_PUBLIC, DIALOG_BROADCAST)
# Dialog types that have admins (ConnectyCube: "supported in group chat,
# public or broadcast"), and how many.
ADMIN_TYPES = (DIALOG_GROUP, DIALOG_PUBLIC, DIALOG_BROADCAST)
MAX_ADMINS = 5


def isMember(dialog, userId: int) -> bool:
    """
    An occupant or the owner.
    """
    return userId in dialog.occupantIds or userId == dialog.ownerId


def isOpen(dialog) -> bool:
    """
    Open to every user of the application: public and broadcast dialogs.
    """
    return dialog.type in OPEN_TYPES


def isParticipant(dialog, userId: int) -> bool:
    """
    Has read state in the dialog: a member, or anyone in a public or
    broadcast dialog.
    """
    return isMember(dialog, userId) or isOpen(dialog)


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


def canChangeAdmins(dialog, userId: int) -> bool:
    """
    Only the owner adds and removes admins, of a dialog type that has
    them (L{ADMIN_TYPES}).
    """
    return userId == dialog.ownerId and dialog.type in ADMIN_TYPES


def adminsNeedOccupancy(dialogType: int) -> bool:
    """
    Whether an admin must be an occupant: in a group dialog yes; public
    and broadcast dialogs are open to every user, so any user of the
    application may be one of their admins.
    """
    return dialogType not in OPEN_TYPES


def seesRoom(dialog, userId: int | None) -> bool:
    """
    May discover and join the dialog's XEP-0045 room (disco#info,
    disco#items, join): public and broadcast rooms are open to every user
    (in a broadcast room the others are visitors, XEP-0045 §5.1, who may
    not post); the others are hidden, members-only rooms (XEP-0045 §4.2)
    that only the owner, admins and occupants see (issue 15 finding 11).
    """
    return isOpen(dialog) or (userId is not None and (
        isMember(dialog, userId) or isManager(dialog, userId)))


__all__ = ["ADMIN_TYPES", "MAX_ADMINS", "OPEN_TYPES", "adminsNeedOccupancy", "canChangeAdmins",
           "canPost", "canRead", "isManager", "isMember", "isOpen", "isParticipant", "seesRoom"]
