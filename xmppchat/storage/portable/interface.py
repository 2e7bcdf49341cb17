"""
The portable store: whole-store enumeration and verbatim loading for
C{python -m xmppchat.admin export}/C{import} (issue 18 item 8,
L{xmppchat.portable}).

The feature stores' interfaces serve the running server: they allocate
ids, stamp times, keep a dialog's last message, count quotas.  A move from
one backend to another needs the opposite: every record exactly as it is
(ids, creation times, edit marks, reactions, per-user state), listed in
pages so that a large deployment never sits in memory.  Those methods live
here, one class per backend beside the stores whose tables they read, so
that no feature store grows import-only methods that bypass its rules.

Per-user watermarks (read, delivered, history cut-off) are stored on the
backend's private message order; here they travel as the id of the
newest message at or below the watermark (C{None}: below every message),
which the loading backend maps to its own order.  Load a dialog's
messages before its states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from twisted.internet.defer import Deferred

PAGE = 500


@dataclass
class DialogUserState:
    """
    One user's state in one dialog.

    @ivar readMessageId: the newest message the read watermark covers.
    @ivar deliveredMessageId: the same for delivery.
    @ivar clearedMessageId: the newest message hidden by the user's history
        cut-off (L{IMessageStore.clearHistory}).
    @ivar subscribed: a subscriber of a public dialog; L{dialogStates}
        lists subscribers in subscription order.
    @ivar hiddenMessageIds: messages deleted for this user only.
    """

    userId: int
    readMessageId: str | None = None
    deliveredMessageId: str | None = None
    clearedMessageId: str | None = None
    hidden: bool = False
    notifications: bool = True
    subscribed: bool = False
    hiddenMessageIds: list[str] = field(default_factory=list)


class IPortableStore(Protocol):
    def isEmpty(self) -> Deferred:
        """
        Fires with whether the store holds no account, dialog, blob or
        record (an import refuses anything else).
        """

    def dialogPage(self, after: str | None, limit: int = PAGE) -> Deferred:
        """
        Fires with up to C{limit} L{Dialog}s with ids above C{after}, by id.
        """

    def messagePage(self, dialogId: str, after: int, limit: int = PAGE) -> Deferred:
        """
        Fires with up to C{limit} of the dialog's L{Message}s with an order
        above C{after}, in order (pass the last one's C{order} on).
        """

    def dialogStates(self, dialogId: str) -> Deferred:
        """
        Fires with the L{DialogUserState}s of the dialog that differ from
        the defaults, subscribers first in subscription order.
        """

    def blobPage(self, after: int, limit: int = PAGE) -> Deferred:
        """
        Fires with up to C{limit} L{Blob}s with ids above C{after}, by id.
        """

    def recordClasses(self) -> Deferred:
        """
        Fires with the names of the classes that have records, sorted.
        """

    def recordPage(self, className: str, after: str | None, limit: int = PAGE) -> Deferred:
        """
        Fires with up to C{limit} L{Record}s of the class with ids above
        C{after}, by id.
        """

    def loadAccount(self, account) -> Deferred:
        """
        Store an L{Account} as it is (id, times, JWT mark); the id counter
        moves past it.  L{AlreadyExists}.
        """

    def loadDialog(self, dialog) -> Deferred:
        """
        Store a L{Dialog} as it is (times, last message, pinned ids).
        L{AlreadyExists}.
        """

    def loadMessages(self, messages: list) -> Deferred:
        """
        Store L{Message}s as they are (id, times, edit mark, reactions,
        stanza), in list order after the messages loaded before them, in
        one write, without touching their dialogs or any quota.
        L{AlreadyExists} (then none of them is stored on SQLite; on MongoDB
        those before the duplicate are).
        """

    def loadDialogState(self, dialogId: str, state: DialogUserState) -> Deferred:
        """
        Store one user's L{DialogUserState} (watermarks mapped from message
        ids to this store's order; unknown ids are ignored).
        """

    def loadBlob(self, blob) -> Deferred:
        """
        Store a L{Blob}'s metadata as it is (id, uid); the id counter moves
        past it.  L{AlreadyExists}.
        """

    def loadRecord(self, record) -> Deferred:
        """
        Store a L{Record} as it is (id, parent, times).  L{AlreadyExists}.
        """
