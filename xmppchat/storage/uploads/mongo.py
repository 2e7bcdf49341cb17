"""
L{IUploadSlotStore} on the MongoDB C{upload_slots} collection.
"""

from __future__ import annotations

import pymongo

from xmppchat.storage.common import Store
from xmppchat.storage.uploads.interface import UploadSlot, checkSlot

# collection -> [(keys, options)], merged into xmppchat.storage.mongo.INDEXES
INDEXES = {"upload_slots": [([("owner_id", pymongo.ASCENDING), ("expires_at", pymongo.ASCENDING)], {}),
                            ("expires_at", {})]}


def _slot(doc):
    if doc is None:
        return None
    return UploadSlot(doc["_id"], doc["blob_id"], doc["owner_id"], doc["token_hash"], doc["expires_at"])


class MongoUploadSlotStore(Store):
    def addSlot(self, slot):
        checkSlot(slot)
        doc = {"_id": slot.uid, "blob_id": slot.blobId, "owner_id": slot.ownerId,
               "token_hash": slot.tokenHash, "expires_at": slot.expiresAt}
        return self.db.run(lambda db: db.upload_slots.insert_one(doc) and None)

    def getSlot(self, uid):
        return self.db.run(lambda db: _slot(db.upload_slots.find_one({"_id": uid})))

    def liveSlots(self, ownerId, now):
        def count(db):
            live = {"owner_id": ownerId, "expires_at": {"$gt": now}}
            first = db.upload_slots.find_one(live, sort=[("expires_at", pymongo.ASCENDING)])
            if first is None:
                return 0, None
            return db.upload_slots.count_documents(live), first["expires_at"]

        return self.db.run(count)

    def takeSlot(self, uid):
        return self.db.run(lambda db: _slot(db.upload_slots.find_one_and_delete({"_id": uid})))

    def takeExpiredSlots(self, before, limit=500):
        def take(db):
            taken = []
            for doc in db.upload_slots.find({"expires_at": {"$lt": before}}).sort(
                    "expires_at", pymongo.ASCENDING).limit(limit):
                # one at a time: of two workers sweeping, each slot goes to one
                slot = _slot(db.upload_slots.find_one_and_delete({"_id": doc["_id"]}))
                if slot is not None:
                    taken.append(slot)
            return taken

        return self.db.run(take)
