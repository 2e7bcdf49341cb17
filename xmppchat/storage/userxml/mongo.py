"""
L{IUserXMLStore} on the MongoDB C{user_xml} collection (issue 16): one
document per (localpart, kind, key), its C{_id} built from the three.
"""

from __future__ import annotations

from xmppchat.storage.common import Store
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.userxml.interface import checkKey

# collection -> [(keys, options)], merged into xmppchat.storage.mongo.INDEXES
INDEXES = {"user_xml": [([("localpart", 1), ("kind", 1)], {})]}


def _id(localpart: str, kind: str, key: str) -> str:
    # kinds are fixed words and localparts hold no NUL: unambiguous
    return f"{localpart}\0{kind}\0{key}"


class MongoUserXMLStore(Store):
    def getXML(self, localpart, kind, key):
        checkKey(localpart, kind, key)

        def find(db):
            doc = db.user_xml.find_one({"_id": _id(localpart, kind, key)}, {"xml": 1})
            return None if doc is None else doc["xml"]

        return self.db.run(find)

    def setXML(self, localpart, kind, key, xml, maxKeys=0):
        checkKey(localpart, kind, key)
        if xml is not None and not isinstance(xml, str):
            raise TypeError("xml must be a string or None")
        docId = _id(localpart, kind, key)

        def store(db):
            if xml is None:
                db.user_xml.delete_one({"_id": docId})
                return None
            if maxKeys > 0 and db.user_xml.count_documents(
                    {"localpart": localpart, "kind": kind, "_id": {"$ne": docId}}) >= maxKeys:
                raise QuotaExceeded(f"at most {maxKeys} documents")
            db.user_xml.update_one(
                {"_id": docId},
                {"$set": {"localpart": localpart, "kind": kind, "key": key, "xml": xml}}, upsert=True)
            return None

        return self.db.run(store)

    def listXML(self, localpart):
        return self.db.run(lambda db: [(doc["kind"], doc["key"], doc["xml"]) for doc in db.user_xml.find(
            {"localpart": localpart}).sort([("kind", 1), ("key", 1)])])

    def deleteUser(self, localpart):
        return self.db.run(lambda db: deleteUserXML(db, localpart))


def deleteUserXML(db, localpart: str) -> None:
    """
    Within an account's deletion (L{xmppchat.storage.mongo}).
    """
    db.user_xml.delete_many({"localpart": localpart})
