"""
REST custom objects (reference/connectycube-sdk.md §4.9, C{/data/<class>}):
create (one or C{multi}), list with filters, read by ids, permissions,
update (set, C{null} unsets, C{inc[field]=n}; one, C{multi} or
C{by_criteria}) and delete (by ids or C{by_criteria}), for the classes
declared in C{[rest] data_classes} (e.g. C{UserReports}).

Every user of the application reads every record of a class; only a
record's creator updates or deletes it.  A user holds at most C{[quotas]
records_per_user} records and C{record_bytes_per_user} bytes of them, all
classes together (issue 15 finding 15): creating or growing one beyond is
refused with 403.
"""

from __future__ import annotations

import math

from twisted.logger import Logger
from twisted.web import http

from xmppchat.api.json import (
    INT_MAX,
    INT_MIN,
    PAGING,
    USER,
    Params,
    JSONResource,
    QueryLimits,
    buildQuery,
    checkFieldNames,
    deleteSummary,
    dumps,
    fieldError,
    forbidden,
    notFound,
    requireDict,
    route,
)
from xmppchat.quotas import quotaLimit
from xmppchat.storage.common import RECORD_RESERVED, recordSize, requireRoom
from xmppchat.storage.interfaces import isObjectId

log = Logger()

RESERVED = RECORD_RESERVED
MAX_RECORD_BYTES = 16384
MAX_FIELDS = 100
MAX_MULTI = 100
MAX_IDS = 100
OPERATORS = ("inc",)
DEFAULT_PERMISSIONS = {"read": {"access": "open"}, "update": {"access": "owner"},
                       "delete": {"access": "owner"}}


def recordJSON(record) -> dict:
    out = dict(record.fields)
    out.update({
        "_id": record.id,
        "_parent_id": record.parentId,
        "user_id": record.userId,
        "class_name": record.className,
        "created_at": int(record.createdAt),
        "updated_at": int(record.updatedAt),
        "permissions": DEFAULT_PERMISSIONS,
    })
    return out


def _fields(data: dict) -> dict:
    fields = {}
    for key, value in data.items():
        if key in RESERVED:
            continue
        fields[key] = value
    checkFieldNames(fields, "record field")
    if len(fields) > MAX_FIELDS:
        raise fieldError("base", f"at most {MAX_FIELDS} fields")
    if len(dumps(fields)) > MAX_RECORD_BYTES:
        raise fieldError("base", f"a record is at most {MAX_RECORD_BYTES} bytes")
    return fields


def _loose(value):
    """
    Query values of custom fields keep their type unknown: a numeric string
    also matches the number.
    """
    if isinstance(value, list):
        return [v for item in value for v in _looseList(item)]
    return value


def _looseList(value):
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return [value]
        if isinstance(number, int) and not INT_MIN <= number <= INT_MAX:
            number = float(number)  # the stores hold 64-bit integers at most
        if not math.isfinite(number):
            return [value]
        return [number, value]
    return [value]


class DataResource(JSONResource):
    """
    C{/data/<class>...}.
    """

    def _class(self, className: str) -> str:
        if className not in self.ctx.config.data_classes:
            raise notFound(f"Class {className}")
        return className

    def _parent(self, data):
        parent = data.get("_parent_id")
        if parent in (None, ""):
            return None
        if not isObjectId(parent):
            raise fieldError("_parent_id", "must be a record id")
        return parent.lower()

    def _createRecord(self, cls, userId, fields, parentId):
        quotas = self.ctx.quotas
        return self.ctx.storage.records.createRecord(
            cls, userId, fields, parentId=parentId, limit=quotaLimit(quotas.records_per_user),
            byteLimit=quotaLimit(quotas.record_bytes_per_user))

    async def _roomFor(self, userId, prepared) -> None:
        """
        Refuse a C{multi} creation as a whole when its records do not fit
        the quotas, rather than storing a part of them.
        """
        quotas = self.ctx.quotas
        count, used = await self.ctx.storage.records.recordUsage(userId)
        requireRoom(count, len(prepared), quotaLimit(quotas.records_per_user), "records")
        requireRoom(used, sum(recordSize(fields) for fields, _ in prepared),
                    quotaLimit(quotas.record_bytes_per_user), "bytes of records")

    @route("POST", "{className}", auth=USER)
    async def create(self, call, className):
        cls = self._class(className)
        data = requireDict(call.body, "body")
        record = await self._createRecord(cls, call.account.id, _fields(data), self._parent(data))
        return http.CREATED, recordJSON(record)

    @route("POST", "{className}/multi", auth=USER)
    async def createMany(self, call, className):
        cls = self._class(className)
        records = requireDict(requireDict(call.body, "body").get("record"), "record")
        if not records or len(records) > MAX_MULTI:
            raise fieldError("record", f"give 1 to {MAX_MULTI} records")
        prepared = []
        for key in sorted(records, key=lambda k: (len(str(k)), str(k))):
            data = requireDict(records[key], f"record[{key}]")
            prepared.append((_fields(data), self._parent(data)))
        await self._roomFor(call.account.id, prepared)
        items = []
        for fields, parent in prepared:
            items.append(await self._createRecord(cls, call.account.id, fields, parent))
        return http.CREATED, {"class_name": cls, "items": [recordJSON(r) for r in items]}

    def _query(self, params):
        """
        A query from list parameters; custom fields match numbers given as
        strings too (their type is unknown).
        """
        query = buildQuery(params, ints=("user_id",), floats=("created_at", "updated_at"),
                           defaultLimit=self.ctx.config.max_page, maxLimit=self.ctx.config.max_page,
                           reserved=PAGING | {"near"}, limits=QueryLimits.of(self.ctx.config))
        known = {"_id", "user_id", "_parent_id", "created_at", "updated_at"}
        filters = []
        for name, op, value in query.filters:
            if name not in known:
                if op == "eq" and isinstance(value, str):
                    op, value = "in", _looseList(value)
                elif op in ("lt", "lte", "gt", "gte") and isinstance(value, str):
                    value = _looseList(value)[0]
                elif op == "all" and isinstance(value, list):
                    # every value, as a number or as a string: one "in" each
                    # (loosening the whole list would ask for both forms)
                    filters += [(name, "in", _looseList(item)) for item in value]
                    continue
                elif isinstance(value, list):
                    value = _loose(value)
            filters.append((name, op, value))
        query.filters = filters
        return query

    @route("GET", "{className}", auth=USER)
    async def list(self, call, className):
        cls = self._class(className)
        query = self._query(call.params)
        records = self.ctx.storage.records
        total = await records.countRecords(cls, query)
        if call.params.flag("count"):
            return {"class_name": cls, "items": {"count": total}, "count": total}
        items = await records.listRecords(cls, query)
        return {"class_name": cls, "skip": query.skip, "limit": query.limit,
                "total_entries": total, "items": [recordJSON(r) for r in items]}

    async def _records(self, cls, ids: str):
        wanted = [i.strip().lower() for i in ids.split(",") if i.strip()]
        if not wanted or len(wanted) > MAX_IDS:
            raise fieldError("ids", f"give 1 to {MAX_IDS} record ids", 400)
        found = {}
        for recordId in wanted:
            record = await self.ctx.storage.records.getRecord(cls, recordId) \
                if isObjectId(recordId) else None
            found[recordId] = record
        return wanted, found

    @route("GET", "{className}/{recordIds}", auth=USER)
    async def show(self, call, className, recordIds):
        cls = self._class(className)
        wanted, found = await self._records(cls, recordIds)
        if call.params.flag("permissions"):
            record = found[wanted[0]]
            if record is None:
                raise notFound("Record")
            return {"record_id": record.id, "permissions": DEFAULT_PERMISSIONS}
        return {"class_name": cls, "skip": 0, "limit": len(wanted),
                "items": [recordJSON(found[i]) for i in wanted if found[i] is not None]}

    @route("PUT", "{className}/{recordId}", auth=USER)
    async def update(self, call, className, recordId):
        cls = self._class(className)
        record = await self.ctx.storage.records.getRecord(cls, recordId.lower()) \
            if isObjectId(recordId) else None
        if record is None:
            raise notFound("Record")
        if record.userId != call.account.id:
            raise forbidden("Only the record's creator can change it")
        return recordJSON(await self._apply(record, requireDict(call.body, "body")))

    @route("PUT", "{className}/multi", auth=USER)
    async def updateMany(self, call, className):
        """
        C{{"record": {"1": {"_id": ..., fields}, ...}}}: the caller's
        records are changed, the others reported as not found.
        """
        cls = self._class(className)
        records = requireDict(requireDict(call.body, "body").get("record"), "record")
        if not records or len(records) > MAX_MULTI:
            raise fieldError("record", f"give 1 to {MAX_MULTI} records")
        items, missing = [], []
        for key in sorted(records, key=lambda k: (len(str(k)), str(k))):
            data = requireDict(records[key], f"record[{key}]")
            recordId = data.get("_id")
            record = await self.ctx.storage.records.getRecord(cls, recordId.lower()) \
                if isObjectId(recordId) else None
            if record is None or record.userId != call.account.id:
                missing.append(recordId)
                continue
            items.append(await self._apply(record, data))
        return {"class_name": cls, "not_found": {"ids": missing},
                "items": [recordJSON(r) for r in items]}

    def _criteria(self, call, criteria):
        """
        A query for the caller's records matching C{search_criteria}
        (the same operators as list filters).
        """
        query = self._query(Params(requireDict(criteria, "search_criteria")))
        query.where("user_id", "eq", call.account.id)
        query.limit = self.ctx.config.max_page
        query.skip = 0
        return query

    @route("PUT", "{className}/by_criteria", auth=USER)
    async def updateByCriteria(self, call, className):
        cls = self._class(className)
        body = requireDict(call.body, "body")
        if "search_criteria" not in body:
            raise fieldError("search_criteria", "is required")
        query = self._criteria(call, body["search_criteria"])
        data = {k: v for k, v in body.items() if k != "search_criteria"}
        items = []
        for record in await self.ctx.storage.records.listRecords(cls, query):
            items.append(await self._apply(record, data))
        return {"class_name": cls, "total_found": len(items), "items": [recordJSON(r) for r in items]}

    @route("DELETE", "{className}/by_criteria", auth=USER)
    async def deleteByCriteria(self, call, className):
        cls = self._class(className)
        body = requireDict(call.body, "body")
        criteria = {k: v for k, v in body.items() if k != "force"}
        query = self._criteria(call, criteria)
        deleted = 0
        for record in await self.ctx.storage.records.listRecords(cls, query):
            deleted += bool(await self.ctx.storage.records.deleteRecord(cls, record.id))
        return {"total_deleted": deleted}

    async def _apply(self, record, data: dict):
        """
        Change C{record} as C{data} says (fields, C{null} unsets,
        C{inc[field]=n}); returns the updated record.
        """
        changes = {}
        unset = []
        for op in OPERATORS:
            for name, amount in checkFieldNames(requireDict(data.get(op), op), "record field",
                                                 op).items():
                if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                    raise fieldError(f"{op}[{name}]", "must be a number")
                current = record.fields.get(name, 0)
                if isinstance(current, bool) or not isinstance(current, (int, float)):
                    raise fieldError(f"{op}[{name}]", "the field is not a number")
                changes[name] = current + amount
        for op in ("pull", "pull_all", "pop", "push", "add_to_set", "update_by_index"):
            if op in data:
                raise fieldError(op, "this update operator is not supported")
        plain = {k: v for k, v in data.items() if k not in OPERATORS}
        for name, value in _fields(plain).items():
            if value is None:
                unset.append(name)
            else:
                changes[name] = value
        merged = {**record.fields, **changes}
        for name in unset:
            merged.pop(name, None)
        if len(dumps(merged)) > MAX_RECORD_BYTES:
            raise fieldError("base", f"a record is at most {MAX_RECORD_BYTES} bytes")
        return await self.ctx.storage.records.updateRecord(
            record.className, record.id, set=changes, unset=unset,
            byteLimit=quotaLimit(self.ctx.quotas.record_bytes_per_user))

    @route("DELETE", "{className}/{recordIds}", auth=USER, text=True)
    async def delete(self, call, className, recordIds):
        cls = self._class(className)
        wanted, found = await self._records(cls, recordIds)
        done, missing, refused = [], [], []
        for recordId in wanted:
            record = found[recordId]
            if record is None:
                missing.append(recordId)
            elif record.userId != call.account.id:
                refused.append(recordId)
            else:
                await self.ctx.storage.records.deleteRecord(cls, record.id)
                done.append(recordId)
        if len(wanted) == 1:
            if missing:
                raise notFound("Record")
            if refused:
                raise forbidden("Only the record's creator can delete it")
            return None
        return deleteSummary(done, missing, refused)


__all__ = ["DataResource", "recordJSON"]
