"""
XEP-0363 HTTP File Upload, the HTTP side (§5: "Upload", §6: "Retrieval"),
on the REST listener at C{/upload/<uid>/<file name>}; the slots come from
L{xmppchat.modules.upload}.

PUT (§5) with the slot's C{Authorization: Bearer <token>}: C{401} without
a token, C{403} for a wrong one, C{404} for an unknown slot, C{409} for a
slot already used, C{410} for an expired one, C{411} without a
C{Content-Length}, C{413} for a body longer than the slot's size, C{400}
for a shorter one, C{415} for a C{Content-Type} other than the slot's;
else C{201}.  Twisted spools a body over 100 KB to a temporary file; it is
copied to the blob store in chunks, off the reactor thread, and made
visible only after the slot is taken (L{IUploadSlotStore.takeSlot}), so
of two parallel PUTs of one slot one wins and the other gets C{409}.

GET and HEAD (§6) serve a completed, public blob byte for byte (streamed
by L{FilePusher}), with its content type, C{X-Content-Type-Options:
nosniff}, a sandbox CSP and a safe C{Content-Disposition}
(L{setFileHeaders}); anything else is C{404}.

L{sweepExpiredSlots} deletes the blobs of slots that expired unused one
C{[upload] slot_seconds} earlier (until then a late PUT gets its C{410}),
so they stop counting against the quota.
"""

from __future__ import annotations

import hmac
import os
import tempfile

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import http, server
from zope.interface import implementer

from xmppchat.api.json import LeafResource, preflight
from xmppchat.api.storage import UID, _removeFile, blobPath, setFileHeaders, sweepBatches
from xmppchat.storage.interfaces import NotFound
from xmppchat.storage.uploads.interface import tokenHash

log = Logger()

CHUNK = 65536


class HTTPRefusal(Exception):
    def __init__(self, status: int, text: str):
        Exception.__init__(self, text)
        self.status = status
        self.text = text


def spool(content, directory: str, size: int) -> str:
    """
    Copy the request body C{content} to a new temporary file in
    C{directory} in chunks; returns its path (the caller renames or
    removes it).  C{HTTPRefusal(400)} when it does not hold C{size} bytes.
    """
    os.makedirs(directory, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory, prefix=".upload-")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            content.seek(0)
            while chunk := content.read(CHUNK):
                written += len(chunk)
                out.write(chunk)
        if written != size:
            raise HTTPRefusal(http.BAD_REQUEST, f"The body has {written} bytes, the slot {size}")
    except BaseException:
        _removeFile(path)
        raise
    return path


def _openFile(path: str):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _bearer(request) -> str | None:
    value = request.getHeader("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _mediaType(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


@implementer(IPushProducer)
class FilePusher:
    """
    Streams an open file into a response, L{CHUNK} bytes at a time while
    the connection takes them (a push producer the transport pauses when
    its buffer is full), so a large download never sits in memory.  The
    chunks are read on the reactor thread, as C{twisted.web.static.File}
    does.
    """

    def __init__(self, request, f):
        self.request = request
        self.file = f
        self.paused = False
        self.done = False

    def start(self) -> None:
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._push()

    def _push(self) -> None:
        while not self.paused and not self.done:
            chunk = self.file.read(CHUNK)
            if not chunk:
                self.stopProducing()
                self.request.unregisterProducer()
                self.request.finish()
                return
            self.request.write(chunk)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._push()

    def stopProducing(self) -> None:
        if not self.done:
            self.done = True
            self.file.close()


class UploadResource(LeafResource):
    """
    C{/upload/<uid>/<name>}: PUT, GET, HEAD (and OPTIONS for browsers).
    """

    def render(self, request):
        if preflight(request, self.ctx.config.cors_origins):
            return b""
        handlers = {b"PUT": self.put, b"GET": self.get, b"HEAD": self.get}
        handler = handlers.get(request.method)
        if handler is None:
            request.setHeader(b"allow", b"GET, HEAD, PUT, OPTIONS")
            return self._refuse(request, HTTPRefusal(http.NOT_ALLOWED, "Use PUT, GET or HEAD"))
        if len(request.postpath) != 2 or not UID.fullmatch(request.postpath[0].decode("ascii", "replace")):
            return self._refuse(request, HTTPRefusal(http.NOT_FOUND, "No such file"))
        d = defer.ensureDeferred(handler(request, request.postpath[0].decode("ascii")))
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    def _refuse(self, request, refusal: HTTPRefusal):
        request.setResponseCode(refusal.status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return refusal.text.encode("utf-8") + b"\n"

    def _failed(self, failure, request) -> None:
        if failure.check(HTTPRefusal):
            body = self._refuse(request, failure.value)
        else:
            log.failure("XEP-0363 upload request failed", failure)
            body = self._refuse(request, HTTPRefusal(http.INTERNAL_SERVER_ERROR, "Internal error, try again"))
        if not request.finished and not request._disconnected:
            if request.method != b"HEAD":
                request.write(body)
            request.finish()

    async def put(self, request, uid: str) -> None:
        """
        XEP-0363 §5: store the body for the slot C{uid}.
        """
        ctx = self.ctx
        token = _bearer(request)
        if token is None:
            request.setHeader(b"www-authenticate", b"Bearer")
            raise HTTPRefusal(http.UNAUTHORIZED, "The slot's Authorization header is required")
        slot = await ctx.storage.uploads.getSlot(uid)
        if slot is None:
            blob = await ctx.storage.blobs.getBlobByUid(uid)
            if blob is not None and blob.completed:
                raise HTTPRefusal(http.CONFLICT, "This slot was already used")
            raise HTTPRefusal(http.NOT_FOUND, "No such upload slot")
        if not hmac.compare_digest(slot.tokenHash, tokenHash(token)):
            raise HTTPRefusal(http.FORBIDDEN, "The token does not match this slot")
        if slot.expiresAt <= ctx.clock.seconds():
            raise HTTPRefusal(http.GONE, "The upload slot expired: request a new one")
        blob = await ctx.storage.blobs.getBlob(slot.blobId)
        if blob is None:
            raise HTTPRefusal(http.NOT_FOUND, "No such upload slot")
        length = request.getHeader("content-length")
        if getattr(request, "bodyTooLarge", False) or (length is not None and length.isdigit()
                                                        and int(length) > blob.size):
            raise HTTPRefusal(http.REQUEST_ENTITY_TOO_LARGE, f"The slot is for {blob.size} bytes")
        if length is None or not length.isdigit():
            raise HTTPRefusal(http.LENGTH_REQUIRED, "A Content-Length is required")
        if int(length) != blob.size:
            raise HTTPRefusal(http.BAD_REQUEST, f"The slot is for {blob.size} bytes, not {length}")
        contentType = request.getHeader("content-type")
        if contentType is not None and _mediaType(contentType) != _mediaType(blob.contentType):
            raise HTTPRefusal(http.UNSUPPORTED_MEDIA_TYPE, f"The slot is for {blob.contentType}")
        path = blobPath(ctx.server.data_dir, uid)
        temporary = await ctx.runCPU(spool, request.content, os.path.dirname(path), blob.size)
        try:
            if await ctx.storage.uploads.takeSlot(uid) is None:
                raise HTTPRefusal(http.CONFLICT, "This slot was already used")
            await ctx.runCPU(os.replace, temporary, path)
        except BaseException:
            await ctx.runCPU(_removeFile, temporary)
            raise
        try:
            await ctx.storage.blobs.completeBlob(blob.id, blob.size)
        except NotFound:
            await ctx.runCPU(_removeFile, path)
            raise HTTPRefusal(http.NOT_FOUND, "The file was deleted meanwhile") from None
        request.setResponseCode(http.CREATED)
        request.finish()

    async def get(self, request, uid: str) -> None:
        """
        XEP-0363 §6: the file, to anyone who has its URL.
        """
        blob = await self.ctx.storage.blobs.getBlobByUid(uid)
        if blob is None or not blob.completed or not blob.public:
            raise HTTPRefusal(http.NOT_FOUND, "No such file")
        f = await self.ctx.runCPU(_openFile, blobPath(self.ctx.server.data_dir, uid))
        if f is None:
            raise HTTPRefusal(http.NOT_FOUND, "No such file")
        setFileHeaders(request, blob.contentType or "application/octet-stream", blob.name,
                       os.fstat(f.fileno()).st_size)
        if request.method == b"HEAD":
            f.close()
            request.finish()
            return
        FilePusher(request, f).start()


async def sweepExpiredSlots(ctx, batch: int = 500) -> int:
    """
    Take the slots that expired unused more than C{[upload] slot_seconds}
    ago and delete their blobs (and any bytes), freeing the quota they
    reserved; returns how many.
    """
    blobs = ctx.storage.blobs

    async def delete(slot):
        blob = await blobs.getBlob(slot.blobId)
        if blob is not None and not blob.completed:
            await blobs.deleteBlob(blob.id)
            await ctx.runCPU(_removeFile, blobPath(ctx.server.data_dir, slot.uid))

    cutoff = ctx.clock.seconds() - ctx.upload.slot_seconds
    return await sweepBatches(lambda n: ctx.storage.uploads.takeExpiredSlots(cutoff, n), delete, batch,
                              "expired upload slots")

__all__ = ["UploadResource", "spool", "sweepExpiredSlots"]
