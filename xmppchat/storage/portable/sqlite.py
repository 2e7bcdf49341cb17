"""
L{IPortableStore} on the SQLite tables of L{xmppchat.storage.sqlite}
(issue 18 item 8).
"""

from __future__ import annotations

from xmppchat.storage import common
from xmppchat.storage.interfaces import DIALOG_PRIVATE
from xmppchat.storage.portable.interface import PAGE, DialogUserState

_dumps = common.dumpJson

# The tables whose rows make a store non-empty.
_CONTENT = ("accounts", "dialogs", "blobs", "records")


def _idAt(connection, dialogId, order):
    """
    The id of the dialog's newest message at or below C{order}, or C{None}.
    """
    if not order:
        return None
    row = connection.execute("SELECT id FROM messages WHERE dialog_id = ? AND ord <= ?"
                             " ORDER BY ord DESC LIMIT 1", (dialogId, order)).fetchone()
    return None if row is None else row[0]


def _orderOf(connection, dialogId, messageId) -> int:
    if messageId is None:
        return 0
    row = connection.execute("SELECT ord FROM messages WHERE id = ? AND dialog_id = ?",
                             (messageId, dialogId)).fetchone()
    return 0 if row is None else row[0]


class SQLitePortableStore(common.Store):
    """
    @cvar rows: the backend's own record readers and writers, set by
        L{xmppchat.storage.sqlite} (which imports this module for its C{STORES}).
    """

    rows = None

    def isEmpty(self):
        return self.db.run(False, lambda c: not any(
            c.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in _CONTENT))

    def dialogPage(self, after, limit=PAGE):
        rows = self.rows
        return self.db.run(False, lambda c: [rows.dialog(row) for row in c.execute(
            rows.DIALOG_SELECT + " WHERE d.id > ? ORDER BY d.id LIMIT ?", (after or "", limit))])

    def messagePage(self, dialogId, after, limit=PAGE):
        rows = self.rows
        return self.db.run(False, lambda c: rows.messages(c, c.execute(
            rows.MESSAGE_SELECT + " WHERE m.dialog_id = ? AND m.ord > ? ORDER BY m.ord LIMIT ?",
            (dialogId, after, limit))))

    def dialogStates(self, dialogId):
        def states(connection):
            out = []
            for row in connection.execute(
                    "SELECT user_id, read_order, delivered_order, cleared_order, hidden,"
                    " notifications, subscribed FROM dialog_users WHERE dialog_id = ?"
                    " ORDER BY subscribed IS NULL, subscribed, user_id", (dialogId,)).fetchall():
                out.append(DialogUserState(
                    userId=row[0], readMessageId=_idAt(connection, dialogId, row[1]),
                    deliveredMessageId=_idAt(connection, dialogId, row[2]),
                    clearedMessageId=_idAt(connection, dialogId, row[3]), hidden=bool(row[4]),
                    notifications=bool(row[5]), subscribed=row[6] is not None))
            byUser = {state.userId: state for state in out}
            for userId, messageId in connection.execute(
                    "SELECT h.user_id, m.id FROM message_hidden h JOIN messages m"
                    " ON m.ord = h.message_ord WHERE m.dialog_id = ? ORDER BY m.ord", (dialogId,)):
                if userId not in byUser:
                    byUser[userId] = DialogUserState(userId)
                    out.append(byUser[userId])
                byUser[userId].hiddenMessageIds.append(messageId)
            return out

        return self.db.run(False, states)

    def blobPage(self, after, limit=PAGE):
        rows = self.rows
        return self.db.run(False, lambda c: [rows.blob(row) for row in c.execute(
            rows.BLOB_SELECT + " WHERE id > ? ORDER BY id LIMIT ?", (after, limit))])

    def recordClasses(self):
        return self.db.run(False, lambda c: [row[0] for row in c.execute(
            "SELECT DISTINCT class_name FROM records ORDER BY class_name")])

    def recordPage(self, className, after, limit=PAGE):
        rows = self.rows
        return self.db.run(False, lambda c: [rows.record(row) for row in c.execute(
            rows.RECORD_SELECT + " WHERE class_name = ? AND id > ? ORDER BY id LIMIT ?",
            (className, after or "", limit))])

    def loadAccount(self, account):
        common.checkAccountArguments(account.localpart, account.id)
        return self.db.run(True, lambda c: c.execute(
            "INSERT INTO accounts (id, localpart, login, email, external_id, credentials,"
            " created_at, updated_at, profile, jwt, blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (account.id, account.localpart, account.login, account.email, account.externalId,
             _dumps(account.credentials), account.createdAt, account.updatedAt,
             _dumps(account.profile or {}), int(bool(account.jwt)), int(bool(account.blocked))))
            and None)

    def loadDialog(self, dialog):
        key = common.privateKey(dialog.occupantIds) if dialog.type == DIALOG_PRIVATE else None

        def load(connection):
            connection.execute(
                "INSERT INTO dialogs (id, type, owner_id, occupants, admins, pinned, name, photo,"
                " description, extensions, permissions, created_at, updated_at, last_message,"
                " last_message_date_sent, last_message_id, last_message_user_id, private_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dialog.id, dialog.type, dialog.ownerId, _dumps(dialog.occupantIds),
                 _dumps(dialog.adminIds), _dumps(dialog.pinnedMessageIds), dialog.name,
                 dialog.photo, dialog.description, _dumps(dialog.extensions),
                 _dumps(dialog.permissions), dialog.createdAt, dialog.updatedAt,
                 dialog.lastMessage, dialog.lastMessageDateSent, dialog.lastMessageId,
                 dialog.lastMessageUserId, key))
            connection.executemany("INSERT INTO dialog_occupants (user_id, dialog_id) VALUES (?, ?)",
                                   [(user, dialog.id) for user in dialog.occupantIds])

        return self.db.run(True, load)

    def loadMessages(self, messages):
        rows = self.rows
        values = [(m.id, m.dialogId, m.senderId, m.recipientId, m.body, common.fold(m.body),
                   m.dateSent, _dumps(m.attachments), _dumps(m.custom), int(bool(m.edited)),
                   rows.dumpReactions(m.reactions), m.createdAt, m.updatedAt, m.stanza)
                  for m in messages]
        return self.db.run(True, lambda c: c.executemany(
            "INSERT INTO messages (id, dialog_id, sender_id, recipient_id, body, body_folded,"
            " date_sent, attachments, custom, edited, reactions, created_at, updated_at, stanza)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values) and None)

    def loadDialogState(self, dialogId, state):
        def load(connection):
            orders = [_orderOf(connection, dialogId, messageId) for messageId in (
                state.readMessageId, state.deliveredMessageId, state.clearedMessageId)]
            subscribed = None
            if state.subscribed:
                subscribed = connection.execute(
                    "SELECT coalesce(max(subscribed), 0) + 1 FROM dialog_users WHERE dialog_id = ?",
                    (dialogId,)).fetchone()[0]
            connection.execute(
                "INSERT INTO dialog_users (dialog_id, user_id, read_order, delivered_order,"
                " cleared_order, hidden, notifications, subscribed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (dialogId, state.userId, *orders, int(state.hidden), int(state.notifications),
                 subscribed))
            connection.executemany(
                "INSERT OR IGNORE INTO message_hidden (user_id, message_ord)"
                " SELECT ?, ord FROM messages WHERE id = ? AND dialog_id = ?",
                [(state.userId, messageId, dialogId) for messageId in state.hiddenMessageIds])

        return self.db.run(True, load)

    def loadBlob(self, blob):
        b = blob
        return self.db.run(True, lambda c: c.execute(
            "INSERT INTO blobs (id, uid, owner_id, name, content_type, size, public, completed,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (b.id, b.uid, b.ownerId, b.name, b.contentType, b.size, int(b.public),
             int(b.completed), b.createdAt, b.updatedAt)) and None)

    def loadRecord(self, record):
        r = record
        return self.db.run(True, lambda c: c.execute(
            "INSERT INTO records (class_name, id, user_id, parent_id, fields, size, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (r.className, r.id, r.userId, r.parentId, _dumps(r.fields), common.recordSize(r.fields),
             r.createdAt, r.updatedAt)) and None)
