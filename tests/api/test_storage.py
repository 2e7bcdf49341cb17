"""
Tests for L{xmppchat.api.storage}: the SDK's create / multipart upload /
complete sequence, downloads by uid (public, C{?token=}, header), limits
and refusals.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.api.helpers import ApiHarness


@pytest.fixture
def api(tmp_path):
    api = ApiHarness(rest={"blob_max_bytes": 1000}, server={"data_dir": str(tmp_path)})
    api.alice, api.aliceId = api.user("alice")
    api.bob, api.bobId = api.user("bob")
    return api


def multipart(fields: dict, data: bytes):
    boundary = "----xmppchat-test-boundary"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n'
                 f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(api, data=b"hello file", public=False, token=None):
    token = token or api.alice
    r = api.post("/blobs.json", {"blob": {"name": "a.txt", "content_type": "text/plain", "public": public}},
                 token=token)
    assert r.status == 201, r
    blob = r.json["blob"]
    url = urlsplit(blob["blob_object_access"]["params"])
    fields = dict(p.split("=", 1) for p in url.query.split("&"))
    body, ctype = multipart(fields, data)
    r = api.request("POST", f"{url.scheme}://{url.netloc}{url.path}", raw=body, contentType=ctype,
                    token=token)
    assert r.status == 201, r
    r = api.put(f"/blobs/{blob['id']}/complete.json", {"size": len(data)}, token=token)
    assert r.status == 200, r
    return blob


def test_createUploadComplete(api):
    """The three-step upload stores the file; the upload URL is on this service."""
    blob = upload(api)
    assert blob["blob_object_access"]["params"].startswith("http://127.0.0.1:8089/blobs/upload?uid=")
    path = os.path.join(api.config.server.data_dir, "blobs", blob["uid"][:2], blob["uid"])
    with open(path, "rb") as f:
        assert f.read() == b"hello file"
    r = api.get(f"/blobs/{blob['id']}.json", token=api.alice)
    assert r.json["blob"]["size"] == 10 and r.json["blob"]["blob_status"] == "complete"


def test_downloadPrivate(api):
    """A private blob downloads with ?token= or CB-Token, not anonymously."""
    blob = upload(api)
    r = api.get(f"/blobs/{blob['uid']}?token={api.bob}")
    assert r.status == 200 and r.raw == b"hello file"
    assert r.header("content-type").startswith("text/plain")
    assert api.get(f"/blobs/{blob['uid']}", token=api.bob).raw == b"hello file"
    assert api.get(f"/blobs/{blob['uid']}").status == 401
    assert api.get(f"/blobs/{blob['uid']}?token=" + "0" * 40).status == 401


def test_downloadPublic(api):
    """A public blob downloads without a token."""
    blob = upload(api, public=True)
    r = api.get(f"/blobs/{blob['uid']}")
    assert r.status == 200 and r.raw == b"hello file"


def test_downloadUnknownOrIncomplete(api):
    """Unknown uids and blobs not yet completed are 404."""
    assert api.get("/blobs/" + "0" * 32).status == 404
    assert api.get("/blobs/../../etc/passwd").status == 404
    r = api.post("/blobs.json", {"blob": {"name": "x", "content_type": "text/plain"}}, token=api.alice)
    assert api.get(f"/blobs/{r.json['blob']['uid']}", token=api.alice).status == 404


def test_uploadOtherUsersBlobRefused(api):
    """Only the owner uploads, completes, renames or deletes a blob."""
    r = api.post("/blobs.json", {"blob": {"name": "x", "content_type": "text/plain"}}, token=api.alice)
    blob = r.json["blob"]
    body, ctype = multipart({"uid": blob["uid"]}, b"evil")
    r = api.request("POST", "/blobs/upload", raw=body, contentType=ctype, token=api.bob)
    assert r.status == 403
    assert api.put(f"/blobs/{blob['id']}/complete.json", {"size": 4}, token=api.bob).status == 403
    assert api.put(f"/blobs/{blob['id']}.json", {"blob": {"name": "y"}}, token=api.bob).status == 403
    assert api.delete(f"/blobs/{blob['id']}.json", token=api.bob).status == 403
    r = api.request("POST", "/blobs/upload", raw=body, contentType=ctype)
    assert r.status == 401


def test_uploadTooLarge(api):
    """An upload over blob_max_bytes is 413."""
    r = api.post("/blobs.json", {"blob": {"name": "x", "content_type": "text/plain"}}, token=api.alice)
    body, ctype = multipart({"uid": r.json["blob"]["uid"]}, b"x" * 70000)
    r = api.request("POST", "/blobs/upload", raw=body, contentType=ctype, token=api.alice)
    assert r.status == 413


def test_completeSizeMismatch(api):
    """Completing with a wrong size, or before the upload, is 422."""
    r = api.post("/blobs.json", {"blob": {"name": "x", "content_type": "text/plain"}}, token=api.alice)
    blob = r.json["blob"]
    assert api.put(f"/blobs/{blob['id']}/complete.json", {"size": 3}, token=api.alice).status == 422
    body, ctype = multipart({"uid": blob["uid"]}, b"abc")
    api.request("POST", "/blobs/upload", raw=body, contentType=ctype, token=api.alice)
    assert api.put(f"/blobs/{blob['id']}/complete.json", {"size": 4}, token=api.alice).status == 422
    assert api.put(f"/blobs/{blob['id']}/complete.json", {"size": "x"}, token=api.alice).status == 422


def test_createValidation(api):
    """Unknown fields and bad content types are 422."""
    for blob in ({"name": "x", "colour": 1}, {"name": "x", "content_type": "not a type"},
                 {"name": ["x"]}):
        assert api.post("/blobs.json", {"blob": blob}, token=api.alice).status == 422, blob


def test_listRenameDelete(api):
    """Own blobs list, rename (also via the SDK's GET ?blob[name]=) and delete with the file."""
    blob = upload(api)
    r = api.get("/blobs.json", token=api.alice)
    assert r.json["total_entries"] == 1 and r.json["items"][0]["blob"]["id"] == blob["id"]
    assert api.get("/blobs.json", token=api.bob).json["total_entries"] == 0
    r = api.get(f"/blobs/{blob['id']}.json?blob[name]=b.txt", token=api.alice)
    assert r.json["blob"]["name"] == "b.txt"
    assert api.delete(f"/blobs/{blob['id']}.json", token=api.alice).status == 200
    assert api.get(f"/blobs/{blob['uid']}", token=api.alice).status == 404
    path = os.path.join(api.config.server.data_dir, "blobs", blob["uid"][:2], blob["uid"])
    assert not os.path.exists(path)


def test_fileInfoByUidAndObjectURL(api):
    """GET /blobs/<uid>.json (getFile) and /blobs/<uid>/object.json answer for a session holder."""
    blob = upload(api)
    r = api.get(f"/blobs/{blob['uid']}.json", token=api.bob)
    assert r.status == 200 and r.json["blob"]["id"] == blob["id"]
    r = api.get(f"/blobs/{blob['uid']}/object.json", token=api.bob)
    assert r.json["blob_object_access"]["params"].endswith(f"/blobs/{blob['uid']}")
    assert api.get("/blobs/" + "f" * 32 + ".json", token=api.bob).status == 404
    assert api.get(f"/blobs/{blob['uid']}.json").status == 401


def test_updateBlob(api):
    """PUT /blobs/<id>.json renames; unknown fields and bad types are 422."""
    blob = upload(api)
    r = api.put(f"/blobs/{blob['id']}.json", {"blob": {"name": "renamed.txt"}}, token=api.alice)
    assert r.status == 200 and r.json["blob"]["name"] == "renamed.txt"
    assert api.put(f"/blobs/{blob['id']}.json", {"blob": {"size": 5}}, token=api.alice).status == 422
    assert api.put(f"/blobs/{blob['id']}.json", {"blob": {"content_type": "nope"}},
                   token=api.alice).status == 422


def servedAs(api, name, contentType, data=b"<script>alert(1)</script>"):
    """Upload a public blob of C{contentType} and download it: the response."""
    r = api.post("/blobs.json", {"blob": {"name": name, "content_type": contentType, "public": True}},
                 token=api.alice)
    blob = r.json["blob"]
    body, ctype = multipart({"uid": blob["uid"]}, data)
    api.request("POST", "/blobs/upload", raw=body, contentType=ctype, token=api.alice)
    api.put(f"/blobs/{blob['id']}/complete.json", {"size": len(data)}, token=api.alice)
    return api.get(f"/blobs/{blob['uid']}")


@pytest.mark.parametrize("contentType", ["text/html", "text/xsl", "image/svg+xml", "application/xml",
                                         "application/x-unknown", "text/javascript"])
def test_activeContentIsAttachment(api, contentType):
    """Only an allow-list of safe types is served inline (issue 15 item 16: text/xsl was rendered); everything is sandboxed by CSP."""
    r = servedAs(api, "x", contentType)
    assert r.status == 200 and r.header("content-disposition").startswith("attachment")
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("content-security-policy") == "sandbox"


@pytest.mark.parametrize("contentType", ["image/png", "image/jpeg", "text/plain", "video/mp4"])
def test_safeContentInline(api, contentType):
    """Images, plain text, audio and video are served inline, still under CSP sandbox."""
    r = servedAs(api, "x", contentType, b"0123")
    assert r.status == 200 and r.header("content-disposition").startswith("inline")
    assert r.header("content-security-policy") == "sandbox"


def test_downloadPrivateNeedsUserSession(api):
    """An application-only token does not open private files."""
    blob = upload(api)
    assert api.get(f"/blobs/{blob['uid']}?token={api.appToken()}").status == 401
