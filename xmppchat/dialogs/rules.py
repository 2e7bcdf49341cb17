"""
The ConnectyCube dialog access rules (issue 17: one policy for REST and
XMPP), from reference/connectycube-sdk.md §4.4 (dialog types,
C{permissions.allow_preview}) and the ConnectyCube chat docs ("public
group chat: an open dialog, any user from your app can chat there";
broadcast: only the owner and admins write).

Pure functions of a stored dialog (L{xmppchat.storage.interfaces}) and a
user id: no storage, no HTTP or XMPP errors.  L{may} answers for one of
the L{ACTIONS}; L{require} raises L{Forbidden} with the text both sides
show.  The REST API (L{xmppchat.api.dialogs}, L{xmppchat.api.messages}),
the XMPP modules (L{xmppchat.modules.dialogs}, correction, retraction,
reactions, MAM) and the MUC rooms (L{xmppchat.muc}) ask these and derive
nothing themselves.

The public-dialog disagreement of issue 17 (REST let a non-subscriber
post, XMPP refused "Subscribe to this public dialog first") is settled on
the docs' side: anyone may post, mark and type in a public dialog;
subscribing is what makes the dialog listed and its messages delivered.

Issue 17 item 5 (the seed's dialog features): a broadcast dialog is open
to every user of the application, read-only ("all the users from the
application are able to join this group"; only the owner and admins
post); admins exist on group, public and broadcast dialogs, at most
five (L{xmppchat.dialogs.service.MAX_ADMINS}), and only the owner
changes them.
"""

from __future__ import annotations

from xmppchat.dialogs.errors import Forbidden
from xmppchat.privacysettings import visibleReaders
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_GROUP, DIALOG_PUBLIC

# Dialogs every user of the application may read and join (public ones
# also let every user post; broadcast ones are read-only).
OPEN_TYPES = (DIALOG_PUBLIC, DIALOG_BROADCAST)
# Dialog types that have admins (ConnectyCube: "supported in group chat,
# public or broadcast"; how many: xmppchat.dialogs.service MAX_ADMINS).
ADMIN_TYPES = (DIALOG_GROUP, DIALOG_PUBLIC, DIALOG_BROADCAST)

READ = "read"  # the history, the dialog itself, its occupants
POST = "post"  # a new message, a reaction
MARK = "mark"  # one's own read/delivered marks
NOTIFY = "notify"  # typing and system messages to everyone in the room, markers shown to them
EDIT = "edit"  # change one's own message
DELETE = "delete"  # delete one's own message for everyone
MANAGE = "manage"  # name, photo, occupants, pins (admins: the owner only, L{canSetAdmins})
ACTIONS = (READ, POST, MARK, NOTIFY, EDIT, DELETE, MANAGE)

REFUSALS = {
    READ: "You are not an occupant of this dialog",
    POST: "You cannot post in this dialog",
    MARK: "You are not an occupant of this dialog",
    NOTIFY: "You cannot notify the occupants of this dialog",
    EDIT: "Only the sender of a message may edit or delete it",
    DELETE: "Only the sender of a message may edit or delete it",
    MANAGE: "Only the owner and admins can change this dialog",
}


def isMember(dialog, userId: int) -> bool:
    """
    An occupant or the owner.
    """
    return userId in dialog.occupantIds or userId == dialog.ownerId


def isOpen(dialog) -> bool:
    """
    Open to every user of the application: public and broadcast dialogs,
    and the group dialog of a room made the XMPP way that is not
    members-only (XEP-0045 §4.2 "open room", issue 16 item 5).
    """
    return dialog.type in OPEN_TYPES or (
        dialog.type == DIALOG_GROUP and (getattr(dialog, "extensions", None) or {}).get("muc_membersonly") == "0")


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


def canSetAdmins(dialog, userId: int) -> bool:
    """
    Only the owner names and removes admins, of a dialog type that has
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


def may(dialog, userId: int, action: str, senderId: int | None = None) -> bool:
    """
    Whether C{userId} may do C{action} in C{dialog}; C{senderId} is the
    sender of the message that C{EDIT}/C{DELETE} change (only the sender,
    while still allowed to post there, changes a message for everyone: a
    broadcast admin who lost the role cannot rewrite the broadcast).
    """
    if action == READ:
        return canRead(dialog, userId)
    if action == POST:
        return canPost(dialog, userId)
    if action == MARK:
        return isParticipant(dialog, userId)
    if action == NOTIFY:
        # in a broadcast every user has read state, but only who may post
        # reaches its occupants (no typing or system messages from readers)
        return canPost(dialog, userId) if dialog.type == DIALOG_BROADCAST else isParticipant(dialog, userId)
    if action in (EDIT, DELETE):
        return senderId == userId and canPost(dialog, userId)
    if action == MANAGE:
        return isManager(dialog, userId)
    raise ValueError(f"unknown dialog action {action!r}")


def require(dialog, userId: int, action: str, senderId: int | None = None) -> None:
    """
    Raise L{Forbidden} unless L{may}.
    """
    if not may(dialog, userId, action, senderId):
        raise Forbidden(REFUSALS[action])


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


def lastMessageStatus(dialog, message, viewer: int, hiding) -> str | None:
    """
    The status of the viewer's own last message: C{read} when every other
    occupant read it, counting none of those who hide their reads (issue
    17 item 3), else C{delivered} or C{sent}; C{None} without one.
    """
    if message is None:
        return None
    others = [o for o in dialog.occupantIds if o != viewer]
    readers = set(visibleReaders(message.readIds, viewer, hiding))
    if others and all(o in readers for o in others):
        return "read"
    if others and all(o in message.deliveredIds for o in others):
        return "delivered"
    return "sent"


__all__ = ["ACTIONS", "ADMIN_TYPES", "DELETE", "EDIT", "MANAGE", "MARK", "NOTIFY",
           "OPEN_TYPES", "POST", "READ", "adminsNeedOccupancy", "canPost", "canRead",
           "canSetAdmins", "isManager", "isMember", "isOpen", "isParticipant", "lastMessageStatus",
           "may", "require", "seesRoom"]
