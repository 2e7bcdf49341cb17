"""
L{IPortableStore} on the MongoDB collections of L{xmppchat.storage.mongo}
(issue 18 item 8).
"""

from __future__ import annotations

import pymongo

from xmppchat.storage import common
from xmppchat.storage.interfaces import DIALOG_PRIVATE
from xmppchat.storage.portable.interface import PAGE, DialogUserState

_dumps = common.dumpJson

# The collections whose documents make a store non-empty.
_CONTENT = ("accounts", "dialogs", "blobs", "records")


def _idAt(db, dialogId, order):
    """
    The id of the dialog's newest message at or below C{order}, or C{None}.
    """
    if not order:
        return None
    doc = db.messages.find_one({"dialog_id": dialogId, "ord": {"$lte": order}}, {"_id": 1},
                               sort=[("ord", pymongo.DESCENDING)])
    return None if doc is None else doc["_id"]


def _orderOf(db, dialogId, messageId) -> int:
    if messageId is None:
        return 0
    doc = db.messages.find_one({"_id": messageId, "dialog_id": dialogId}, {"ord": 1})
    return 0 if doc is None else doc["ord"]


class MongoPortableStore(common.Store):
    """
    @cvar rows: the backend's own record readers and writers, set by
        L{xmppchat.storage.mongo} (which imports this module for its C{STORES}).
    """

    rows = None

    def isEmpty(self):
        return self.db.run(lambda db: not any(
            db[name].find_one({}, {"_id": 1}) for name in _CONTENT))

    def dialogPage(self, after, limit=PAGE):
        rows = self.rows
        return self.db.run(lambda db: [rows.dialog(doc) for doc in db.dialogs.find(
            {"_id": {"$gt": after or ""}}).sort("_id", pymongo.ASCENDING).limit(limit)])

    def messagePage(self, dialogId, after, limit=PAGE):
        rows = self.rows
        return self.db.run(lambda db: rows.messages(db, list(db.messages.find(
            {"dialog_id": dialogId, "ord": {"$gt": after}}).sort("ord", pymongo.ASCENDING)
            .limit(limit))))

    def dialogStates(self, dialogId):
        def states(db):
            docs = list(db.dialog_users.find({"dialog_id": dialogId}))
            docs.sort(key=lambda d: (d.get("subscribed") is None, d.get("subscribed") or 0,
                                     d["user_id"]))
            out = [DialogUserState(
                userId=d["user_id"], readMessageId=_idAt(db, dialogId, d["read_order"]),
                deliveredMessageId=_idAt(db, dialogId, d["delivered_order"]),
                clearedMessageId=_idAt(db, dialogId, d["cleared_order"]), hidden=bool(d["hidden"]),
                notifications=bool(d["notifications"]), subscribed=d.get("subscribed") is not None)
                for d in docs]
            byUser = {state.userId: state for state in out}
            for doc in db.messages.find({"dialog_id": dialogId, "hidden_for.0": {"$exists": True}},
                                        {"hidden_for": 1}).sort("ord", pymongo.ASCENDING):
                for userId in doc["hidden_for"]:
                    if userId not in byUser:
                        byUser[userId] = DialogUserState(userId)
                        out.append(byUser[userId])
                    byUser[userId].hiddenMessageIds.append(doc["_id"])
            return out

        return self.db.run(states)

    def blobPage(self, after, limit=PAGE):
        rows = self.rows
        return self.db.run(lambda db: [rows.blob(doc) for doc in db.blobs.find(
            {"_id": {"$gt": after}}).sort("_id", pymongo.ASCENDING).limit(limit)])

    def recordClasses(self):
        return self.db.run(lambda db: sorted(db.records.distinct("class_name")))

    def recordPage(self, className, after, limit=PAGE):
        rows = self.rows
        return self.db.run(lambda db: [rows.record(doc) for doc in db.records.find(
            {"class_name": className, "rid": {"$gt": after or ""}}).sort(
            "rid", pymongo.ASCENDING).limit(limit)])

    def loadAccount(self, account):
        common.checkAccountArguments(account.localpart, account.id)
        a = account

        def load(db):
            doc = self.rows.accountDoc(a.id, a.localpart, a.login, a.email, a.externalId,
                                      a.credentials, a.profile, a.createdAt, a.jwt)
            doc["updated_at"] = a.updatedAt
            doc["blocked"] = bool(a.blocked)
            db.accounts.insert_one(doc)
            db.counters.update_one({"_id": "accounts"}, {"$max": {"seq": a.id}}, upsert=True)

        return self.db.run(load)

    def loadDialog(self, dialog):
        d = dialog
        doc = {"_id": d.id, "type": d.type, "user_id": d.ownerId,
               "occupants_ids": list(d.occupantIds), "admins_ids": list(d.adminIds),
               "pinned_messages_ids": list(d.pinnedMessageIds), "name": d.name, "photo": d.photo,
               "description": d.description, "extensions": dict(d.extensions),
               "permissions": dict(d.permissions), "created_at": d.createdAt,
               "updated_at": d.updatedAt, "last_message": d.lastMessage,
               "last_message_date_sent": d.lastMessageDateSent,
               "last_message_id": d.lastMessageId, "last_message_user_id": d.lastMessageUserId,
               "last_message_order": 0, "version": 0}
        if d.type == DIALOG_PRIVATE:
            doc["private_key"] = common.privateKey(d.occupantIds)
        return self.db.run(lambda db: db.dialogs.insert_one(doc) and None)

    def loadMessages(self, messages):
        rows = self.rows
        messages = list(messages)

        def load(db):
            if not messages:
                return
            first = rows.next(db, "messages", len(messages)) - len(messages) + 1
            docs = [{
                "_id": m.id, "ord": first + n, "dialog_id": m.dialogId, "sender_id": m.senderId,
                "recipient_id": m.recipientId, "body": m.body, "body_folded": common.fold(m.body),
                "date_sent": m.dateSent, "attachments": _dumps(m.attachments),
                "edited": bool(m.edited),
                "reactions": [{"e": emoji, "u": user} for emoji, users in m.reactions.items()
                              for user in sorted(users)],
                "hidden_for": [], "created_at": m.createdAt, "updated_at": m.updatedAt,
                "stanza": m.stanza, **rows.customFields(m.custom)} for n, m in enumerate(messages)]
            db.messages.insert_many(docs)
            # the order createMessage compares a new message with
            for doc in docs:
                db.dialogs.update_one({"_id": doc["dialog_id"], "last_message_id": doc["_id"]},
                                      {"$set": {"last_message_order": doc["ord"]}})

        return self.db.run(load)

    def loadDialogState(self, dialogId, state):
        rows = self.rows

        def load(db):
            read, delivered, cleared = (_orderOf(db, dialogId, messageId) for messageId in (
                state.readMessageId, state.deliveredMessageId, state.clearedMessageId))
            db.dialog_users.insert_one({
                "_id": rows.stateId(dialogId, state.userId), "dialog_id": dialogId,
                "user_id": state.userId, "read_order": read, "delivered_order": delivered,
                "cleared_order": cleared, "hidden": bool(state.hidden),
                "notifications": bool(state.notifications),
                "subscribed": rows.next(db, "subscriptions") if state.subscribed else None})
            if state.hiddenMessageIds:
                db.messages.update_many(
                    {"_id": {"$in": list(state.hiddenMessageIds)}, "dialog_id": dialogId},
                    {"$addToSet": {"hidden_for": state.userId}})

        return self.db.run(load)

    def loadBlob(self, blob):
        b = blob

        def load(db):
            db.blobs.insert_one({"_id": b.id, "uid": b.uid, "owner_id": b.ownerId, "name": b.name,
                                 "content_type": b.contentType, "size": b.size,
                                 "public": bool(b.public), "completed": bool(b.completed),
                                 "created_at": b.createdAt, "updated_at": b.updatedAt})
            db.counters.update_one({"_id": "blobs"}, {"$max": {"seq": b.id}}, upsert=True)

        return self.db.run(load)

    def loadRecord(self, record):
        r = record
        return self.db.run(lambda db: db.records.insert_one({
            "class_name": r.className, "rid": r.id, "user_id": r.userId, "parent_id": r.parentId,
            "created_at": r.createdAt, "updated_at": r.updatedAt, "version": 0,
            **self.rows.recordFields(r.fields)}) and None)
