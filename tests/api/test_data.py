"""
Tests for L{xmppchat.api.data}: custom objects of configured classes.
"""

from __future__ import annotations

import pytest

from tests.api.helpers import ApiHarness


@pytest.fixture
def api():
    api = ApiHarness()
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob")
    return api


def report(api, token=None, **fields):
    r = api.post("/data/UserReports.json", {"reportedUserId": 202, "reason": "spam", **fields},
                 token=token or api.alice)
    assert r.status == 201, r
    return r.json


def test_createAndList(api):
    """A record is created with its owner and listed with filters."""
    rec = report(api)
    assert rec["user_id"] == api.aliceId and rec["reportedUserId"] == 202 and len(rec["_id"]) == 24
    report(api, reportedUserId=303)
    r = api.get("/data/UserReports.json?reportedUserId=202&limit=10", token=api.bob)
    assert r.status == 200 and r.json["class_name"] == "UserReports"
    assert [i["_id"] for i in r.json["items"]] == [rec["_id"]]
    r = api.get("/data/UserReports.json?reportedUserId[gt]=250&sort_desc=created_at", token=api.bob)
    assert [i["reportedUserId"] for i in r.json["items"]] == [303]
    assert api.get("/data/UserReports.json?count=1", token=api.bob).json["items"] == {"count": 2}


def test_allOperatorOnLists(api):
    """C{[all]} on a list field: every value present, as a number or as a string (a query value's type
    is unknown); C{[all]=1,2} used to ask for 1, "1", 2 and "2" and so matched nothing."""
    numbers = report(api, tags=[1, 2, 3])
    strings = report(api, tags=["1", "2"])
    report(api, tags=[1, 9])
    r = api.get("/data/UserReports.json?tags[all]=1,2&sort_asc=created_at", token=api.bob)
    assert r.status == 200 and [i["_id"] for i in r.json["items"]] == [numbers["_id"], strings["_id"]]
    assert api.get("/data/UserReports.json?tags[all]=1,2,4", token=api.bob).json["items"] == []


def test_unknownClass(api):
    """Classes not in data_classes are 404."""
    assert api.post("/data/Secrets.json", {"a": 1}, token=api.alice).status == 404
    assert api.get("/data/Secrets.json", token=api.alice).status == 404


def test_multi(api):
    """POST multi creates several records."""
    r = api.post("/data/UserReports/multi.json", {"record": {"1": {"reason": "a"}, "2": {"reason": "b"}}},
                 token=api.alice)
    assert r.status == 201 and [i["reason"] for i in r.json["items"]] == ["a", "b"]


def test_readByIdsAndPermissions(api):
    """Records are read by a comma list of ids; ?permissions=1 answers the permissions."""
    a, b = report(api), report(api, reason="abuse")
    r = api.get(f"/data/UserReports/{a['_id']},{b['_id']}.json", token=api.bob)
    assert [i["_id"] for i in r.json["items"]] == [a["_id"], b["_id"]]
    r = api.get(f"/data/UserReports/{a['_id']}.json?permissions=1", token=api.bob)
    assert r.json["record_id"] == a["_id"] and "permissions" in r.json


def test_updateOwnerOnly(api):
    """Only the creator updates; null unsets; inc adds."""
    rec = report(api, count=1)
    r = api.put(f"/data/UserReports/{rec['_id']}.json", {"reason": "x"}, token=api.bob)
    assert r.status == 403
    r = api.put(f"/data/UserReports/{rec['_id']}.json",
                {"_id": rec["_id"], "reason": None, "note": "n", "inc": {"count": 2}}, token=api.alice)
    assert r.status == 200, r
    assert "reason" not in r.json and r.json["note"] == "n" and r.json["count"] == 3
    r = api.put(f"/data/UserReports/{rec['_id']}.json", {"push": {"tags": "a"}}, token=api.alice)
    assert r.status == 422
    r = api.put(f"/data/UserReports/{rec['_id']}.json", {"inc": {"reason": "x"}}, token=api.alice)
    assert r.status == 422


def test_deleteOwnerOnly(api):
    """Only the creator deletes; several ids answer a summary."""
    a, b = report(api), report(api, token=api.bob)
    assert api.delete(f"/data/UserReports/{a['_id']}.json", token=api.bob).status == 403
    r = api.delete(f"/data/UserReports/{a['_id']},{b['_id']}.json", token=api.bob)
    assert r.json["SuccessfullyDeleted"]["ids"] == [b["_id"]]
    assert r.json["WrongPermissions"]["ids"] == [a["_id"]]
    assert api.delete(f"/data/UserReports/{a['_id']}.json", token=api.alice).status == 200
    assert api.get(f"/data/UserReports/{a['_id']}.json", token=api.alice).json["items"] == []


def test_recordLimits(api):
    """Oversized records and bad field names are 422."""
    r = api.post("/data/UserReports.json", {"blob": "x" * 20000}, token=api.alice)
    assert r.status == 422
    r = api.post("/data/UserReports.json", {"$where": "1"}, token=api.alice)
    assert r.status == 422
    r = api.post("/data/UserReports.json", [1, 2], token=api.alice)
    assert r.status == 400


def test_updateMulti(api):
    """PUT multi changes the caller's records and reports the others as not found."""
    mine, theirs = report(api), report(api, token=api.bob)
    r = api.put("/data/UserReports/multi.json", {"record": {
        "1": {"_id": mine["_id"], "reason": "fixed"}, "2": {"_id": theirs["_id"], "reason": "x"}}},
        token=api.alice)
    assert r.status == 200, r
    assert [i["reason"] for i in r.json["items"]] == ["fixed"]
    assert r.json["not_found"]["ids"] == [theirs["_id"]]


def test_byCriteria(api):
    """PUT and DELETE by_criteria touch only the caller's matching records."""
    report(api, reportedUserId=202)
    report(api, reportedUserId=303)
    report(api, token=api.bob, reportedUserId=202)
    r = api.put("/data/UserReports/by_criteria.json",
                {"search_criteria": {"reportedUserId": 202}, "reason": "seen"}, token=api.alice)
    assert r.status == 200 and r.json["total_found"] == 1
    assert r.json["items"][0]["reason"] == "seen"
    assert api.put("/data/UserReports/by_criteria.json", {"reason": "x"}, token=api.alice).status == 422
    r = api.delete("/data/UserReports/by_criteria.json", form={"reportedUserId[gt]": "250"},
                   token=api.alice)
    assert r.json == {"total_deleted": 1}
    left = api.get("/data/UserReports.json", token=api.alice).json["items"]
    assert sorted((i["user_id"], i["reportedUserId"]) for i in left) == sorted(
        [(api.aliceId, 202), (api.bobId, 202)])
