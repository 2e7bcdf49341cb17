"""
L{IUserXMLStore} on the SQLite C{user_xml} table (issue 16).
"""

from __future__ import annotations

from xmppchat.storage.common import Store
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.userxml.interface import checkKey

# the migration that creates the table (xmppchat.storage.sqlite.MIGRATIONS)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS user_xml (
        localpart TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        xml TEXT NOT NULL,
        PRIMARY KEY (localpart, kind, key)
    )""",
]


class SQLiteUserXMLStore(Store):
    def getXML(self, localpart, kind, key):
        checkKey(localpart, kind, key)
        return self.db.run(False, lambda connection: _first(connection.execute(
            "SELECT xml FROM user_xml WHERE localpart = ? AND kind = ? AND key = ?",
            (localpart, kind, key)).fetchone()))

    def setXML(self, localpart, kind, key, xml, maxKeys=0):
        checkKey(localpart, kind, key)
        if xml is not None and not isinstance(xml, str):
            raise TypeError("xml must be a string or None")

        def store(connection):
            where = (localpart, kind, key)
            if xml is None:
                connection.execute(
                    "DELETE FROM user_xml WHERE localpart = ? AND kind = ? AND key = ?", where)
                return None
            if maxKeys > 0:
                others = connection.execute(
                    "SELECT count(*) FROM user_xml WHERE localpart = ? AND kind = ? AND key != ?",
                    where).fetchone()[0]
                if others >= maxKeys:
                    raise QuotaExceeded(f"at most {maxKeys} documents")
            connection.execute(
                "INSERT INTO user_xml (localpart, kind, key, xml) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (localpart, kind, key) DO UPDATE SET xml = excluded.xml", (*where, xml))
            return None

        return self.db.run(True, store)

    def listXML(self, localpart):
        return self.db.run(False, lambda connection: [tuple(row) for row in connection.execute(
            "SELECT kind, key, xml FROM user_xml WHERE localpart = ? ORDER BY kind, key",
            (localpart,))])

    def deleteUser(self, localpart):
        return self.db.run(True, lambda connection: deleteUserXML(connection, localpart))


def deleteUserXML(connection, localpart: str) -> None:
    """
    Within an account's deletion (L{xmppchat.storage.sqlite}).
    """
    connection.execute("DELETE FROM user_xml WHERE localpart = ?", (localpart,))


def _first(row):
    return None if row is None else row[0]
