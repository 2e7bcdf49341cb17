"""
L{IUploadSlotStore} on the SQLite C{upload_slots} table.
"""

from __future__ import annotations

from xmppchat.storage.common import Store
from xmppchat.storage.uploads.interface import UploadSlot, checkSlot

# the migration that creates the table (xmppchat.storage.sqlite.MIGRATIONS)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS upload_slots (
        uid TEXT PRIMARY KEY,
        blob_id INTEGER NOT NULL,
        owner_id INTEGER NOT NULL,
        token_hash TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS upload_slots_by_owner ON upload_slots (owner_id, expires_at)",
    "CREATE INDEX IF NOT EXISTS upload_slots_by_expiry ON upload_slots (expires_at)",
]

_SELECT = "SELECT uid, blob_id, owner_id, token_hash, expires_at FROM upload_slots"


def _slot(row):
    return None if row is None else UploadSlot(*row)


class SQLiteUploadSlotStore(Store):
    def addSlot(self, slot):
        checkSlot(slot)
        return self.db.run(True, lambda c: c.execute(
            "INSERT INTO upload_slots (uid, blob_id, owner_id, token_hash, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (slot.uid, slot.blobId, slot.ownerId, slot.tokenHash, slot.expiresAt)) and None)

    def getSlot(self, uid):
        return self.db.run(False, lambda c: _slot(c.execute(_SELECT + " WHERE uid = ?", (uid,)).fetchone()))

    def liveSlots(self, ownerId, now):
        return self.db.run(False, lambda c: tuple(c.execute(
            "SELECT COUNT(*), MIN(expires_at) FROM upload_slots WHERE owner_id = ? AND expires_at > ?",
            (ownerId, now)).fetchone()))

    def takeSlot(self, uid):
        def take(connection):
            slot = _slot(connection.execute(_SELECT + " WHERE uid = ?", (uid,)).fetchone())
            if slot is not None:
                connection.execute("DELETE FROM upload_slots WHERE uid = ?", (uid,))
            return slot

        return self.db.run(True, take)

    def takeExpiredSlots(self, before, limit=500):
        def take(connection):
            slots = [_slot(row) for row in connection.execute(
                _SELECT + " WHERE expires_at < ? ORDER BY expires_at LIMIT ?", (before, limit))]
            connection.executemany("DELETE FROM upload_slots WHERE uid = ?", [(s.uid,) for s in slots])
            return slots

        return self.db.run(True, take)
