"""
L{IUnlockStore} on the SQLite C{login_unlocks} table (schema 4).
"""

from __future__ import annotations

from xmppchat.storage.common import Store
from xmppchat.storage.unlocks.interface import MAX_LISTED, newUnlock

# the migration that creates the table (xmppchat.storage.sqlite.MIGRATIONS)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS login_unlocks (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS login_unlocks_by_time ON login_unlocks (created_at)",
]


class SQLiteUnlockStore(Store):
    def addUnlock(self, key):
        now = self._now()
        unlockId, cutoff = newUnlock(key, now)

        def add(connection):
            connection.execute("DELETE FROM login_unlocks WHERE created_at < ?", (cutoff,))
            connection.execute("INSERT INTO login_unlocks (id, key, created_at) VALUES (?, ?, ?)",
                               (unlockId, key, now))
            return unlockId

        return self.db.run(True, add)

    def listUnlocks(self):
        return self.db.run(False, lambda connection: [tuple(row) for row in connection.execute(
            "SELECT id, key FROM login_unlocks ORDER BY created_at DESC, id LIMIT ?", (MAX_LISTED,))])
