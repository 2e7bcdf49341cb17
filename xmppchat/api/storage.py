"""
REST file storage (reference/connectycube-sdk.md §4.8, C{/blobs}): the
SDK's three-step C{createAndUpload} against a self-hosted upload URL.

1. C{POST /blobs.json} creates the metadata and answers an upload URL in
   C{blob_object_access.params}: C{<base>/blobs/upload?uid=<uid>}.
2. The SDK POSTs C{multipart/form-data} there (field C{uid} from the
   query, then C{file}), with its C{CB-Token}: only the blob's owner may
   upload, at most C{[rest] blob_max_bytes}, within L{UPLOAD_SECONDS}
   of the creation (the C{expires} it was given).
3. C{PUT /blobs/<id>/complete.json} with C{{"size": n}} marks it complete
   (the size must match the upload).

Files live in C{<data_dir>/blobs/<uid[:2]>/<uid>} and are served at
C{GET /blobs/<uid>}: public blobs to anyone, private ones to any valid
user session token (header C{CB-Token} or C{?token=}, the SDK's
C{privateUrl(uid)}).  Disk writes and deletes run off the reactor thread.

Quotas (issue 15 finding 15, L{xmppchat.quotas}): a user holds at most
C{[quotas] blobs_per_user} blobs, incomplete ones included, and
C{blob_bytes_per_user} bytes: an upload reserves its size before it is
written.  L{sweepIncompleteUploads} deletes blobs still incomplete after
C{incomplete_upload_seconds}, with their files.
"""

from __future__ import annotations

import os
import re
import tempfile
from urllib.parse import quote

from twisted.logger import Logger
from twisted.web import http

from xmppchat.api.json import (
    isoTime,
    PUBLIC,
    USER,
    JSONResource,
    RawResponse,
    baseError,
    fieldError,
    flagValue,
    forbidden,
    notFound,
    optionalString,
    requireDict,
    route,
    toInt,
    unauthorized,
)
from xmppchat.backup import BLOB_UID as UID
from xmppchat.backup import blobTarget as blobPath
from xmppchat.quotas import UPLOAD_SECONDS, quotaLimit

log = Logger()

CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}")


def blobJSON(blob) -> dict:
    return {
        "id": blob.id,
        "uid": blob.uid,
        "name": blob.name,
        "content_type": blob.contentType,
        "size": blob.size,
        "public": bool(blob.public),
        "blob_status": "complete" if blob.completed else None,
        "created_at": isoTime(blob.createdAt),
        "updated_at": isoTime(blob.updatedAt),
        "set_completed_at": isoTime(blob.updatedAt) if blob.completed else None,
        "ref_count": 1,
    }


def _writeFile(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise


def _fileSize(path: str):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _removeFile(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _readFile(path: str):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


#: media types a browser may render on the API's origin
INLINE_TYPES = frozenset(("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
                          "text/plain", "application/pdf"))


def inlineSafe(contentType: str) -> bool:
    """
    Whether a blob of C{contentType} is served inline: the allow-list
    above, and audio and video.
    """
    kind = contentType.split(";", 1)[0].strip().lower()
    return kind in INLINE_TYPES or kind.startswith(("audio/", "video/"))


def setFileHeaders(request, contentType: str, name: str | None, length: int) -> None:
    """
    C{200} and the headers of a stored file (REST blobs and XEP-0363
    uploads): its type, C{nosniff}, a sandbox, and a C{Content-Disposition}
    that is C{inline} only for L{inlineSafe} types, with an ASCII-only
    C{filename} and, for other names, the RFC 6266 C{filename*}.
    """
    request.setResponseCode(http.OK)
    request.setHeader(b"content-type", contentType.encode("ascii"))
    request.setHeader(b"content-length", str(length).encode("ascii"))
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"private, max-age=3600")
    # Render inline only types that cannot carry active content (an
    # allow-list: text/xsl, HTML, SVG, XML, scripts and anything unknown
    # are downloads), and sandbox whatever a browser renders anyway.
    request.setHeader(b"content-security-policy", b"sandbox")
    disposition = "inline" if inlineSafe(contentType) else "attachment"
    name = (name or "file")[:100]
    safe = re.sub(r'[^A-Za-z0-9._ -]', "_", name)
    value = f'{disposition}; filename="{safe}"'
    if safe != name:
        value += "; filename*=UTF-8''" + quote(name, safe="")
    request.setHeader(b"content-disposition", value.encode("ascii"))


class FileResponse(RawResponse):
    """
    A stored file with the blob's content type.  Files are at most
    C{blob_max_bytes}, read whole off the reactor thread.
    """

    def __init__(self, data: bytes, contentType: str | None, name: str | None):
        self.data = data
        self.contentType = contentType or "application/octet-stream"
        self.name = name

    def write(self, request) -> None:
        setFileHeaders(request, self.contentType, self.name, len(self.data))
        if request.method != b"HEAD":
            request.write(self.data)
        request.finish()


class BlobsResource(JSONResource):
    """
    C{/blobs...}.
    """

    def baseURL(self, request) -> str:
        if self.ctx.config.public_url:
            return self.ctx.config.public_url.rstrip("/")
        host = request.getHeader("host") or "127.0.0.1"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}"

    @route("POST", auth=USER)
    async def create(self, call):
        body = requireDict(call.body, "body")
        data = requireDict(body.get("blob"), "blob")
        extra = sorted(set(data) - {"name", "content_type", "public", "tag_list", "multipart"})
        if extra:
            raise fieldError(extra[0], "unknown field")
        name = optionalString(data, "name", 255)
        contentType = optionalString(data, "content_type", 129) or "application/octet-stream"
        if not CONTENT_TYPE.fullmatch(contentType):
            raise fieldError("content_type", "is not a MIME type")
        blob = await self.ctx.storage.blobs.createBlob(
            call.account.id, name, contentType, public=flagValue(data.get("public", False)),
            limit=quotaLimit(self.ctx.quotas.blobs_per_user))
        out = blobJSON(blob)
        out["blob_object_access"] = {
            "id": blob.id,
            "blob_id": blob.id,
            "object_access_type": "Write",
            "expires": isoTime(self.ctx.clock.seconds() + UPLOAD_SECONDS),
            "params": f"{self.baseURL(call.request)}/blobs/upload?uid={blob.uid}",
        }
        return http.CREATED, {"blob": out}

    @route("POST", "upload", auth=USER, text=True, maxBody="blob_max_bytes")
    async def upload(self, call):
        args = call.request.args or {}
        uid = (args.get(b"uid") or [b""])[0].decode("ascii", "replace")
        data = (args.get(b"file") or [None])[0]
        if not UID.fullmatch(uid):
            raise fieldError("uid", "is required")
        if data is None:
            raise fieldError("file", "is required (multipart/form-data)")
        blob = await self.ctx.storage.blobs.getBlobByUid(uid)
        if blob is None:
            raise notFound("Blob")
        if blob.ownerId != call.account.id:
            raise forbidden("Only the blob's owner can upload it")
        if blob.completed:
            raise fieldError("uid", "this blob is already complete")
        if len(data) > self.ctx.config.blob_max_bytes:
            raise baseError(http.REQUEST_ENTITY_TOO_LARGE, "File too large")
        if self.ctx.clock.seconds() - blob.createdAt > UPLOAD_SECONDS:
            raise forbidden("The upload URL expired: create the blob again")
        await self.ctx.storage.blobs.reserveBlobBytes(
            blob.id, len(data), quotaLimit(self.ctx.quotas.blob_bytes_per_user))
        await self.ctx.runCPU(_writeFile, blobPath(self.ctx.server.data_dir, uid), data)
        return http.CREATED, None

    async def _owned(self, call, blobId):
        try:
            number = toInt(blobId, "id")
        except Exception:
            raise notFound("Blob") from None
        blob = await self.ctx.storage.blobs.getBlob(number)
        if blob is None:
            raise notFound("Blob")
        if blob.ownerId != call.account.id:
            raise forbidden("This blob belongs to another user")
        return blob

    @route("PUT", "{blobId}/complete", auth=USER, text=True)
    async def complete(self, call, blobId):
        blob = await self._owned(call, blobId)
        body = requireDict(call.body, "body")
        size = body.get("size", requireDict(body.get("blob"), "blob").get("size"))
        size = toInt(size, "size")
        actual = await self.ctx.runCPU(_fileSize, blobPath(self.ctx.server.data_dir, blob.uid))
        if actual is None:
            raise fieldError("size", "nothing was uploaded for this blob")
        if size != actual:
            raise fieldError("size", f"does not match the upload ({actual} bytes)")
        await self.ctx.storage.blobs.completeBlob(blob.id, size)
        return None

    @route("GET", "{ref}", auth=PUBLIC)
    async def show(self, call, ref):
        """
        C{/blobs/<id>.json} and C{/blobs/<uid>.json}: metadata (with the
        SDK's buggy C{update}: C{?blob[name]=...} renames); C{/blobs/<uid>}:
        the file.
        """
        blobs = self.ctx.storage.blobs
        if not call.suffix:
            return await self.download(call, ref)
        if call.session is None:
            raise unauthorized()
        if UID.fullmatch(ref):
            blob = await blobs.getBlobByUid(ref)
            if blob is None or not (blob.public or blob.ownerId == call.session.userId
                                    or call.session.account is not None):
                raise notFound("Blob")
        else:
            if call.account is None:
                raise forbidden("This call needs a user session (log in first)")
            blob = await self._owned(call, ref)
            rename = call.params.get("blob")
            if isinstance(rename, dict) and "name" in rename:
                blob = await blobs.updateBlob(blob.id, name=optionalString(rename, "name", 255))
        return {"blob": blobJSON(blob)}

    async def download(self, call, uid):
        if not UID.fullmatch(uid):
            raise notFound("Blob")
        blob = await self.ctx.storage.blobs.getBlobByUid(uid)
        if blob is None or not blob.completed:
            raise notFound("Blob")
        if not blob.public:
            session = call.session
            token = call.params.string("token")
            if session is None and token:
                session = await self.ctx.sessions.resolve(token)
            if session is None or session.account is None:
                raise unauthorized()
        data = await self.ctx.runCPU(_readFile, blobPath(self.ctx.server.data_dir, uid))
        if data is None:
            raise notFound("Blob")
        return FileResponse(data, blob.contentType, blob.name)

    @route("PUT", "{blobId}", auth=USER)
    async def update(self, call, blobId):
        blob = await self._owned(call, blobId)
        data = requireDict(requireDict(call.body, "body").get("blob"), "blob")
        extra = sorted(set(data) - {"name", "content_type"})
        if extra:
            raise fieldError(extra[0], "unknown field")
        fields = {}
        if "name" in data:
            fields["name"] = optionalString(data, "name", 255)
        if "content_type" in data:
            contentType = optionalString(data, "content_type", 129)
            if not contentType or not CONTENT_TYPE.fullmatch(contentType):
                raise fieldError("content_type", "is not a MIME type")
            fields["contentType"] = contentType
        if fields:
            blob = await self.ctx.storage.blobs.updateBlob(blob.id, **fields)
        return {"blob": blobJSON(blob)}

    @route("GET", "{uid}/object", auth=USER)
    async def objectURL(self, call, uid):
        blob = await self.ctx.storage.blobs.getBlobByUid(uid) if UID.fullmatch(uid) else None
        if blob is None:
            raise notFound("Blob")
        return {"blob_object_access": {"blob_id": blob.id, "object_access_type": "Read",
                                       "params": f"{self.baseURL(call.request)}/blobs/{blob.uid}"}}

    @route("GET", auth=USER)
    async def list(self, call):
        perPage = call.params.integer("per_page", 10, 1, self.ctx.config.max_page)
        page = call.params.integer("current_page", None, 1) or call.params.integer("page", 1, 1)
        blobs = self.ctx.storage.blobs
        total = await blobs.countBlobs(call.account.id)
        items = await blobs.listBlobs(call.account.id, (page - 1) * perPage, perPage)
        return {"current_page": page, "per_page": perPage, "total_entries": total,
                "items": [{"blob": blobJSON(b)} for b in items]}

    @route("DELETE", "{blobId}", auth=USER, text=True)
    async def delete(self, call, blobId):
        blob = await self._owned(call, blobId)
        await self.ctx.storage.blobs.deleteBlob(blob.id)
        await self.ctx.runCPU(_removeFile, blobPath(self.ctx.server.data_dir, blob.uid))
        return None


async def sweepIncompleteUploads(ctx, batch: int = 500) -> int:
    """
    Delete the blobs still incomplete C{[quotas] incomplete_upload_seconds}
    after their creation, and their uploaded bytes if any (issue 15
    finding 15); returns how many.  Runs in batches of C{batch}.
    """
    cutoff = ctx.clock.seconds() - ctx.quotas.incomplete_upload_seconds

    async def removeFile(blob):
        await ctx.runCPU(_removeFile, blobPath(ctx.server.data_dir, blob.uid))

    return await sweepBatches(lambda n: ctx.storage.blobs.deleteIncompleteBlobs(cutoff, n), removeFile, batch,
                              "incomplete uploads")


async def sweepBatches(take, clean, batch: int, what: str) -> int:
    """
    Take stale items C{batch} at a time with C{take(batch)} (a Deferred
    list; the store removes them) and C{await clean(item)} each, until a
    short batch; log and return how many.
    """
    swept = 0
    while True:
        items = await take(batch)
        for item in items:
            await clean(item)
        swept += len(items)
        if len(items) < batch:
            break
    if swept:
        log.info("Deleted {count} {what}", count=swept, what=what)
    return swept

__all__ = ["BlobsResource", "blobJSON", "blobPath", "setFileHeaders", "sweepBatches", "sweepIncompleteUploads"]
