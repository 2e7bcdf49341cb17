"""
Per-user quotas over REST (issue 15 finding 15), on both backends
(tests/api/conftest.py): an attacker creating blobs, blob bytes, records,
dialogs or messages beyond his quota is refused (403, or 429 with
C{Retry-After} for the daily message quota) with the SDK's C{errors} body,
nothing of it is stored, and other users are unaffected.  Stale incomplete
uploads are swept by the site's periodic task, on a fake clock.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import ApiHarness
from tests.api.test_storage import multipart

QUOTAS = {"blobs_per_user": 2, "blob_bytes_per_user": 1500, "records_per_user": 3,
          "record_bytes_per_user": 200, "dialogs_per_user": 2, "messages_per_user_per_day": 3,
          "incomplete_upload_seconds": 7200, "sweep_seconds": 60}


@pytest.fixture
def api(tmp_path):
    api = ApiHarness(rest={"blob_max_bytes": 4000, "token_seconds": 864000}, server={"data_dir": str(tmp_path)},
                     quotas=QUOTAS)
    api.mallory, api.malloryId = api.user("mallory")
    api.bob, api.bobId = api.user("bob")
    return api


def refused(r, status=403, text="Quota exceeded"):
    assert r.status == status, r
    assert text in r.json["errors"]["base"][0], r


def createBlob(api, token):
    return api.post("/blobs.json", {"blob": {"name": "a.bin", "content_type": "application/pdf"}},
                    token=token)


def uploadTo(api, blob, data, token):
    url = urlsplit(blob["blob_object_access"]["params"])
    body, ctype = multipart(dict(p.split("=", 1) for p in url.query.split("&")), data)
    return api.request("POST", f"{url.scheme}://{url.netloc}{url.path}", raw=body, contentType=ctype,
                       token=token)


def stored(api, blob) -> bool:
    return os.path.exists(os.path.join(api.config.server.data_dir, "blobs", blob["uid"][:2], blob["uid"]))


def test_blobCount(api):
    """Mallory's third blob (incomplete ones count) is 403; bob creates his; deleting frees room."""
    first = createBlob(api, api.mallory).json["blob"]
    assert createBlob(api, api.mallory).status == 201
    refused(createBlob(api, api.mallory), text="at most 2 files")
    assert api.get("/blobs.json", token=api.mallory).json["total_entries"] == 2
    assert createBlob(api, api.bob).status == 201
    assert api.delete(f"/blobs/{first['id']}.json", token=api.mallory).status == 200
    assert createBlob(api, api.mallory).status == 201


def test_blobBytes(api):
    """An upload beyond the byte quota is 403 and writes nothing; a smaller one fits."""
    first = createBlob(api, api.mallory).json["blob"]
    assert uploadTo(api, first, b"x" * 800, api.mallory).status == 201
    assert api.put(f"/blobs/{first['id']}/complete.json", {"size": 800}, token=api.mallory).status == 200
    second = createBlob(api, api.mallory).json["blob"]
    refused(uploadTo(api, second, b"y" * 701, api.mallory), text="at most 1500 bytes of files")
    assert not stored(api, second)
    assert uploadTo(api, second, b"y" * 700, api.mallory).status == 201
    assert stored(api, second)
    bobs = createBlob(api, api.bob).json["blob"]
    assert uploadTo(api, bobs, b"z" * 800, api.bob).status == 201


def test_uploadURLExpires(api):
    """An upload after the advertised expiry (UPLOAD_SECONDS) is refused and writes nothing."""
    from xmppchat.quotas import UPLOAD_SECONDS

    blob = createBlob(api, api.mallory).json["blob"]
    api.clock.advance(UPLOAD_SECONDS + 1)
    r = uploadTo(api, blob, b"late", api.mallory)
    assert r.status == 403 and "expired" in r.json["errors"]["base"][0]
    assert not stored(api, blob)


def test_sweepIncompleteUploads(api):
    """The site's periodic sweep deletes blobs left incomplete past the age, with their bytes; completed ones stay."""
    api.site.startFactory()
    try:
        stale = createBlob(api, api.mallory).json["blob"]
        assert uploadTo(api, stale, b"never completed", api.mallory).status == 201
        done = createBlob(api, api.mallory).json["blob"]
        assert uploadTo(api, done, b"done", api.mallory).status == 201
        assert api.put(f"/blobs/{done['id']}/complete.json", {"size": 4}, token=api.mallory).status == 200
        refused(createBlob(api, api.mallory))
        api.clock.advance(7200 - 60)
        assert stored(api, stale)  # not yet stale
        api.clock.advance(120)
        assert not stored(api, stale) and stored(api, done)
        assert api.get(f"/blobs/{stale['id']}.json", token=api.mallory).status == 404
        assert api.get(f"/blobs/{done['id']}.json", token=api.mallory).status == 200
        r = api.put(f"/blobs/{stale['id']}/complete.json", {"size": 15}, token=api.mallory)
        assert r.status == 404
        assert createBlob(api, api.mallory).status == 201  # the quota is free again
    finally:
        api.site.stopFactory()


def record(api, token, **fields):
    return api.post("/data/UserReports.json", {"reason": "spam", **fields}, token=token)


def test_recordCount(api):
    """Mallory's fourth record is 403 and not stored; a multi that does not fit stores none of it."""
    assert record(api, api.mallory).status == 201
    r = api.post("/data/UserReports/multi.json", {"record": {"1": {"a": 1}, "2": {"a": 2}, "3": {"a": 3}}},
                 token=api.mallory)
    refused(r, text="at most 3 records")
    r = api.post("/data/UserReports/multi.json", {"record": {"1": {"a": 1}, "2": {"a": 2}}},
                 token=api.mallory)
    assert r.status == 201
    refused(record(api, api.mallory))
    total = api.get("/data/UserReports.json?count=1", token=api.mallory).json["count"]
    assert total == 3
    assert record(api, api.bob).status == 201


def test_recordBytes(api):
    """Creating or growing records beyond the byte quota is 403; the record keeps its old fields."""
    first = record(api, api.mallory, text="x" * 80).json
    refused(record(api, api.mallory, text="x" * 100), text="at most 200 bytes of records")
    assert record(api, api.mallory, text="x" * 60).status == 201
    r = api.put(f"/data/UserReports/{first['_id']}.json", {"text": "x" * 120}, token=api.mallory)
    refused(r, text="bytes of records")
    r = api.get(f"/data/UserReports/{first['_id']}.json", token=api.mallory)
    assert r.json["items"][0]["text"] == "x" * 80
    r = api.put(f"/data/UserReports/{first['_id']}.json", {"text": "short"}, token=api.mallory)
    assert r.status == 200
    assert record(api, api.bob, text="x" * 150).status == 201


def test_dialogCount(api):
    """Owned dialogs count, group or private; the third is 403, over REST dialogs and messages."""
    carol = api.user("carol")[1]
    dave = api.user("dave")[1]
    body = {"type": 2, "name": "spam", "occupants_ids": str(api.bobId)}
    assert api.post("/chat/Dialog.json", body, token=api.mallory).status == 201
    assert api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(carol)},
                    token=api.mallory).status == 201
    refused(api.post("/chat/Dialog.json", body, token=api.mallory), text="at most 2 dialogs")
    refused(api.post("/chat/Message.json", {"recipient_id": dave, "message": "hi"}, token=api.mallory))
    assert api.get("/chat/Dialog.json", token=api.mallory).json["total_entries"] == 2
    # an existing private dialog is found, not created
    r = api.post("/chat/Dialog.json", {"type": 3, "occupants_ids": str(carol)}, token=api.mallory)
    assert r.status == 200
    assert api.post("/chat/Dialog.json", body, token=api.bob).status == 201


def test_messagesPerDay(api):
    """The fourth stored message of the day is 429 with Retry-After to UTC midnight; it works again then."""
    body = {"type": 2, "name": "spam", "occupants_ids": str(api.bobId)}
    dialog = api.post("/chat/Dialog.json", body, token=api.mallory).json
    message = {"chat_dialog_id": dialog["_id"], "message": "buy"}
    for _ in range(3):
        assert api.post("/chat/Message.json", message, token=api.mallory).status == 201
    r = api.post("/chat/Message.json", message, token=api.mallory)
    refused(r, 429, "stored messages per user a day")
    wait = int(r.header("retry-after"))
    assert 0 < wait <= 86400
    r = api.get(f"/chat/Message.json?chat_dialog_id={dialog['_id']}", token=api.mallory)
    assert len(r.json["items"]) == 3
    assert api.post("/chat/Message.json", {**message, "message": "hi"}, token=api.bob).status == 201
    api.clock.advance(wait)
    assert api.post("/chat/Message.json", message, token=api.mallory).status == 201


def test_quotasOff(tmp_path):
    """A quota of 0 is off."""
    api = ApiHarness(server={"data_dir": str(tmp_path)}, quotas={"records_per_user": 0})
    token = api.user("alice")[0]
    for _ in range(5):
        assert record(api, token).status == 201
