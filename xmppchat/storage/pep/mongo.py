"""
L{IPEPStore} on the MongoDB C{pep_nodes} and C{pep_items} collections.
"""

from __future__ import annotations

import pymongo

from xmppchat.storage.common import Store
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.pep.interface import checkKey

# collection -> [(keys, options)], merged into xmppchat.storage.mongo.INDEXES
INDEXES = {
    "pep_nodes": [([("owner", pymongo.ASCENDING), ("node", pymongo.ASCENDING)], {"unique": True})],
    "pep_items": [([("owner", pymongo.ASCENDING), ("node", pymongo.ASCENDING), ("item_id", pymongo.ASCENDING)],
                   {"unique": True}),
                  ([("owner", pymongo.ASCENDING), ("node", pymongo.ASCENDING), ("seq", pymongo.DESCENDING)], {})],
}

NEWEST = [("seq", pymongo.DESCENDING)]


def _trim(db, owner, node, maxItems) -> None:
    kept = [doc["_id"] for doc in db.pep_items.find({"owner": owner, "node": node}, {"_id": 1})
            .sort(NEWEST).limit(maxItems)] if maxItems else []
    db.pep_items.delete_many({"owner": owner, "node": node, "_id": {"$nin": kept}})


class MongoPEPStore(Store):
    def getNode(self, owner, node):
        checkKey(owner, node)

        def find(db):
            doc = db.pep_nodes.find_one({"owner": owner, "node": node})
            return doc["config"] if doc is not None else None

        return self.db.run(find)

    def listNodes(self, owner):
        checkKey(owner, "-")
        return self.db.run(lambda db: [(doc["node"], doc["config"]) for doc in
                                       db.pep_nodes.find({"owner": owner}).sort("node", pymongo.ASCENDING)])

    def findNodes(self, owners, nodes):
        owners, nodes = sorted(owners), sorted(nodes)

        def find(db):
            if not owners or not nodes:
                return []
            return [(doc["owner"], doc["node"], doc["config"]) for doc in db.pep_nodes.find(
                {"owner": {"$in": owners}, "node": {"$in": nodes}}).sort(
                [("owner", pymongo.ASCENDING), ("node", pymongo.ASCENDING)])]

        return self.db.run(find)

    def createNode(self, owner, node, config, maxNodes):
        checkKey(owner, node)

        def create(db):
            if db.pep_nodes.find_one({"owner": owner, "node": node}, {"_id": 1}) is not None:
                return False
            if maxNodes and db.pep_nodes.count_documents({"owner": owner}) >= maxNodes:
                raise QuotaExceeded(f"At most {maxNodes} nodes per user")
            try:
                db.pep_nodes.insert_one({"owner": owner, "node": node, "config": config})
            except pymongo.errors.DuplicateKeyError:
                return False
            return True

        return self.db.run(create)

    def setNodeConfig(self, owner, node, config):
        checkKey(owner, node)

        def update(db):
            if not db.pep_nodes.update_one({"owner": owner, "node": node}, {"$set": {"config": config}}).matched_count:
                return False
            _trim(db, owner, node, config["max_items"])
            return True

        return self.db.run(update)

    def deleteNode(self, owner, node):
        checkKey(owner, node)

        def delete(db):
            db.pep_items.delete_many({"owner": owner, "node": node})
            return bool(db.pep_nodes.delete_one({"owner": owner, "node": node}).deleted_count)

        return self.db.run(delete)

    def publishItem(self, owner, node, itemId, payload, publisher, maxItems):
        checkKey(owner, node)

        def publish(db):
            newest = db.pep_items.find_one({"owner": owner, "node": node}, {"seq": 1}, sort=NEWEST)
            seq = (newest["seq"] if newest else 0) + 1
            db.pep_items.update_one({"owner": owner, "node": node, "item_id": itemId},
                                    {"$set": {"seq": seq, "payload": payload, "publisher": publisher}},
                                    upsert=True)
            _trim(db, owner, node, maxItems)

        return self.db.run(publish)

    def getItems(self, owner, node, itemIds=None, maxItems=None):
        checkKey(owner, node)
        query = {"owner": owner, "node": node}
        if itemIds is not None:
            query["item_id"] = {"$in": list(itemIds)}

        def find(db):
            cursor = db.pep_items.find(query).sort(NEWEST)
            if maxItems is not None:
                cursor = cursor.limit(maxItems)
            return [(doc["item_id"], doc["payload"], doc.get("publisher")) for doc in cursor]

        return self.db.run(find)

    def retractItem(self, owner, node, itemId):
        checkKey(owner, node)
        return self.db.run(lambda db: bool(db.pep_items.delete_one(
            {"owner": owner, "node": node, "item_id": itemId}).deleted_count))
