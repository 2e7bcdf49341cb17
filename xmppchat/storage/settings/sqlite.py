"""
L{ISettingStore} on the SQLite C{settings} table (schema 8, shared with
the storage's own markers).
"""

from __future__ import annotations

from xmppchat.storage.common import Store
from xmppchat.storage.settings.interface import MAX_SETTINGS, checkName, decodeValue, encodeValue


class SQLiteSettingStore(Store):
    def getSettings(self, prefix):
        checkName(prefix)

        def find(connection):
            rows = connection.execute(
                "SELECT name, value FROM settings WHERE substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
                (len(prefix), prefix, MAX_SETTINGS))
            return {name: decodeValue(value) for name, value in rows}

        return self.db.run(False, find)

    def putSetting(self, name, value):
        row = (checkName(name), encodeValue(value))
        return self.db.run(True, lambda connection: connection.execute(
            "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", row) and None)

    def addSetting(self, name, value):
        row = (checkName(name), encodeValue(value))

        def add(connection):
            connection.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", row)
            (stored,) = connection.execute("SELECT value FROM settings WHERE name = ?", row[:1]).fetchone()
            return decodeValue(stored)
        return self.db.run(True, add)

    def deleteSetting(self, name):
        checkName(name)
        return self.db.run(True, lambda connection: connection.execute(
            "DELETE FROM settings WHERE name = ?", (name,)).rowcount > 0)
