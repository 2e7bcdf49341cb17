"""
L{IPEPStore} on the SQLite C{pep_nodes} and C{pep_items} tables.
"""

from __future__ import annotations

import json

from xmppchat.storage.common import Store
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.pep.interface import checkKey

# the migration that creates the tables (xmppchat.storage.sqlite.MIGRATIONS)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS pep_nodes (
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        config TEXT NOT NULL,
        PRIMARY KEY (owner, node)
    )""",
    """CREATE TABLE IF NOT EXISTS pep_items (
        owner TEXT NOT NULL,
        node TEXT NOT NULL,
        item_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        payload TEXT NOT NULL,
        publisher TEXT,
        PRIMARY KEY (owner, node, item_id)
    )""",
    "CREATE INDEX IF NOT EXISTS pep_items_by_seq ON pep_items (owner, node, seq)",
]


def _trim(connection, owner, node, maxItems) -> None:
    connection.execute(
        "DELETE FROM pep_items WHERE owner = ? AND node = ? AND item_id NOT IN"
        " (SELECT item_id FROM pep_items WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?)",
        (owner, node, owner, node, maxItems))


class SQLitePEPStore(Store):
    def getNode(self, owner, node):
        checkKey(owner, node)
        return self.db.run(False, lambda c: [json.loads(row[0]) for row in c.execute(
            "SELECT config FROM pep_nodes WHERE owner = ? AND node = ?", (owner, node))] or [None]
        ).addCallback(lambda rows: rows[0])

    def listNodes(self, owner):
        checkKey(owner, "-")
        return self.db.run(False, lambda c: [(row[0], json.loads(row[1])) for row in c.execute(
            "SELECT node, config FROM pep_nodes WHERE owner = ? ORDER BY node", (owner,))])

    def findNodes(self, owners, nodes):
        owners, nodes = sorted(owners), sorted(nodes)
        if not owners or not nodes:
            return self.db.run(False, lambda c: [])
        return self.db.run(False, lambda c: [(row[0], row[1], json.loads(row[2])) for row in c.execute(
            "SELECT owner, node, config FROM pep_nodes WHERE owner IN (SELECT value FROM json_each(?))"
            " AND node IN (SELECT value FROM json_each(?)) ORDER BY owner, node",
            (json.dumps(owners), json.dumps(nodes)))])

    def createNode(self, owner, node, config, maxNodes):
        checkKey(owner, node)

        def create(connection):
            if connection.execute("SELECT 1 FROM pep_nodes WHERE owner = ? AND node = ?",
                                  (owner, node)).fetchone():
                return False
            count = connection.execute("SELECT COUNT(*) FROM pep_nodes WHERE owner = ?", (owner,)).fetchone()[0]
            if maxNodes and count >= maxNodes:
                raise QuotaExceeded(f"At most {maxNodes} nodes per user")
            connection.execute("INSERT INTO pep_nodes (owner, node, config) VALUES (?, ?, ?)",
                               (owner, node, json.dumps(config)))
            return True

        return self.db.run(True, create)

    def setNodeConfig(self, owner, node, config):
        checkKey(owner, node)

        def update(connection):
            changed = connection.execute("UPDATE pep_nodes SET config = ? WHERE owner = ? AND node = ?",
                                         (json.dumps(config), owner, node)).rowcount
            if changed:
                _trim(connection, owner, node, config["max_items"])
            return bool(changed)

        return self.db.run(True, update)

    def deleteNode(self, owner, node):
        checkKey(owner, node)

        def delete(connection):
            connection.execute("DELETE FROM pep_items WHERE owner = ? AND node = ?", (owner, node))
            return bool(connection.execute("DELETE FROM pep_nodes WHERE owner = ? AND node = ?",
                                           (owner, node)).rowcount)

        return self.db.run(True, delete)

    def publishItem(self, owner, node, itemId, payload, publisher, maxItems):
        checkKey(owner, node)

        def publish(connection):
            seq = connection.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM pep_items WHERE owner = ? AND node = ?",
                                     (owner, node)).fetchone()[0]
            connection.execute(
                "INSERT OR REPLACE INTO pep_items (owner, node, item_id, seq, payload, publisher)"
                " VALUES (?, ?, ?, ?, ?, ?)", (owner, node, itemId, seq, payload, publisher))
            _trim(connection, owner, node, maxItems)

        return self.db.run(True, publish)

    def getItems(self, owner, node, itemIds=None, maxItems=None):
        checkKey(owner, node)
        sql = "SELECT item_id, payload, publisher FROM pep_items WHERE owner = ? AND node = ?"
        args: list = [owner, node]
        if itemIds is not None:
            sql += f" AND item_id IN ({', '.join('?' * len(itemIds))})"
            args.extend(itemIds)
        sql += " ORDER BY seq DESC"
        if maxItems is not None:
            sql += " LIMIT ?"
            args.append(maxItems)
        if itemIds is not None and not itemIds:
            return self.db.run(False, lambda c: [])
        return self.db.run(False, lambda c: [tuple(row) for row in c.execute(sql, args)])

    def retractItem(self, owner, node, itemId):
        checkKey(owner, node)
        return self.db.run(True, lambda c: bool(c.execute(
            "DELETE FROM pep_items WHERE owner = ? AND node = ? AND item_id = ?",
            (owner, node, itemId)).rowcount))
