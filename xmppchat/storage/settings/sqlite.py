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

    def deleteSetting(self, name):
        checkName(name)
        return self.db.run(True, lambda connection: connection.execute(
            "DELETE FROM settings WHERE name = ?", (name,)).rowcount > 0)
