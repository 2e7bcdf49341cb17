"""
L{IUnlockStore} on the MongoDB C{login_unlocks} collection.
"""

from __future__ import annotations

import pymongo

from xmppchat.storage.common import Store
from xmppchat.storage.unlocks.interface import MAX_LISTED, newUnlock

# collection -> [(keys, options)], merged into xmppchat.storage.mongo.INDEXES
INDEXES = {"login_unlocks": [("created_at", {})]}


class MongoUnlockStore(Store):
    def addUnlock(self, key):
        now = self._now()
        unlockId, cutoff = newUnlock(key, now)

        def add(db):
            db.login_unlocks.delete_many({"created_at": {"$lt": cutoff}})
            db.login_unlocks.insert_one({"_id": unlockId, "key": key, "created_at": now})
            return unlockId

        return self.db.run(add)

    def listUnlocks(self):
        def find(db):
            cursor = db.login_unlocks.find().sort(
                [("created_at", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)]).limit(MAX_LISTED)
            return [(doc["_id"], doc["key"]) for doc in cursor]

        return self.db.run(find)
