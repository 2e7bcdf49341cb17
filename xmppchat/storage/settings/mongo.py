"""
L{ISettingStore} on the MongoDB C{settings} collection (shared with the
storage's own markers): C{{_id: name, json: text}}, the value kept as
JSON text so that any JSON value (keys with dots or dollars included)
round-trips.
"""

from __future__ import annotations

import re

from xmppchat.storage.common import Store
from xmppchat.storage.settings.interface import MAX_SETTINGS, checkName, decodeValue, encodeValue


class MongoSettingStore(Store):
    def getSettings(self, prefix):
        checkName(prefix)

        def find(db):
            cursor = db.settings.find({"_id": {"$regex": "^" + re.escape(prefix)}, "json": {"$exists": True}})
            return {doc["_id"]: decodeValue(doc["json"]) for doc in cursor.sort("_id", 1).limit(MAX_SETTINGS)}

        return self.db.run(find)

    def putSetting(self, name, value):
        checkName(name)
        text = encodeValue(value)
        return self.db.run(lambda db: db.settings.replace_one({"_id": name}, {"json": text},
                                                             upsert=True) and None)

    def addSetting(self, name, value):
        checkName(name)
        text = encodeValue(value)

        def add(db):
            from pymongo import ReturnDocument

            doc = db.settings.find_one_and_update({"_id": name}, {"$setOnInsert": {"json": text}},
                                                  upsert=True, return_document=ReturnDocument.AFTER)
            return decodeValue(doc["json"])
        return self.db.run(add)

    def deleteSetting(self, name):
        checkName(name)
        return self.db.run(lambda db: db.settings.delete_one({"_id": name}).deleted_count > 0)
