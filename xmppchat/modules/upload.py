"""
XEP-0363: HTTP File Upload, https://xmpp.org/extensions/xep-0363.html --
the component on C{[upload] domain} (C{upload.<domain>}, listed in the
server's disco#items like C{muc.<domain>}; issue 16 item 4).

disco#info (§3) answers identity C{store/file}, the C{urn:xmpp:http:upload:0}
feature and the C{max-file-size} form.  A slot request (§4) checks the
file name, size and type (C{bad-request}), the size against
C{[upload] max_file_bytes} (C{not-acceptable} with C{<file-too-large>}),
the user's pending slots against C{slots_per_user} (C{resource-constraint}
of type C{wait} with C{<retry stamp>}: when the first one expires), and the
user's C{[quotas]} blob count and bytes, the REST API's (C{resource-
constraint}; deleting files frees room, so no retry time).  It then creates
a blob in the REST API's blob store with its size reserved and persists a
slot (L{xmppchat.storage.uploads}) with the hash of a random bearer token
and its expiry, C{[upload] slot_seconds} from now.

The answer's PUT URL carries the token in an C{Authorization: Bearer}
header (§4: Prosody's mod_http_file_share does the same); the PUT and GET
are served by the REST listener (L{xmppchat.api.upload}).
"""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import quote

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.api.storage import CONTENT_TYPE
from xmppchat.config import uploadDomain
from xmppchat.modules.base import STORAGE_UNAVAILABLE, KeyedLocks, Module
from xmppchat.modules.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, infoQuery
from xmppchat.quotas import quotaLimit
from xmppchat.stanzas import StanzaError, errorReply, firstChild, iqResult, resultForm
from xmppchat.storage.interfaces import QuotaExceeded, StorageError
from xmppchat.storage.uploads.interface import UploadSlot, tokenHash

NS_UPLOAD = "urn:xmpp:http:upload:0"

#: longest file name accepted in a slot request
MAX_FILENAME = 255
#: a file name must not be a path nor carry control characters
BAD_FILENAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def slotPath(uid: str, filename: str) -> str:
    """
    The path of a slot's PUT and GET URL: C{/upload/<uid>/<file name>}.
    """
    return f"/upload/{uid}/{quote(filename, safe='')}"


class UploadError(StanzaError):
    """
    A slot request refused with an XEP-0363 §4 application condition.
    """

    def __init__(self, condition, errorType, text, child=None):
        StanzaError.__init__(self, condition, errorType, text)
        self.child = child


def fileTooLarge(limit: int) -> UploadError:
    child = domish.Element((NS_UPLOAD, "file-too-large"))
    child.addElement("max-file-size", content=str(limit))
    return UploadError("not-acceptable", "modify", f"File too large: at most {limit} bytes", child)


def retryAt(stamp: float, text: str) -> UploadError:
    child = domish.Element((NS_UPLOAD, "retry"))
    child["stamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    return UploadError("resource-constraint", "wait", text, child)


def parseRequest(request) -> tuple[str, int, str]:
    """
    C{(filename, size, content type)} of a C{<request/>} (§4);
    C{bad-request} for a missing or unusable one.
    """
    filename = request.getAttribute("filename") or ""
    if not filename or len(filename) > MAX_FILENAME or BAD_FILENAME.search(filename) \
            or filename in (".", ".."):
        raise StanzaError("bad-request", text=f"The filename must be a name of 1 to {MAX_FILENAME}"
                                               " characters, without '/' or control characters")
    size = request.getAttribute("size") or ""
    if not (size.isascii() and size.isdigit() and len(size) < 19 and int(size) > 0):
        raise StanzaError("bad-request", text="The size must be a positive number of bytes")
    contentType = request.getAttribute("content-type") or "application/octet-stream"
    if not CONTENT_TYPE.fullmatch(contentType):
        raise StanzaError("bad-request", text="The content-type is not a MIME type")
    return filename, int(size), contentType


class UploadModule(Module):
    """
    The XEP-0363 component: registered in C{host.components} when the
    REST listener (which serves the PUT and GET) is enabled.
    """

    name = "upload"
    features = ()

    def setUp(self):
        self.domain = uploadDomain(self.host.config)
        self.locks = KeyedLocks()
        if not self.host.config.rest.enabled:
            self.log.warn("XEP-0363 upload is off: the PUT and GET need [rest] enabled")
            return
        self.host.components[self.domain] = self

    def tearDown(self):
        if self.host.components.get(self.domain) is self:
            del self.host.components[self.domain]

    def baseURL(self) -> str | None:
        """
        C{[upload] public_url}, else C{[rest] public_url}, else the REST
        listener's own address (L{xmppchat.host.Host.restURL}).
        """
        config = self.host.config
        url = config.upload.public_url or config.rest.public_url or self.host.restURL
        return url.rstrip("/") if url else None

    def receive(self, origin, stanza, toJID):
        """
        A stanza for the component (the router's component interface):
        IQ requests to the bare domain; anything else is refused, presence
        ignored.
        """
        if stanza.name == "presence":
            return None
        stanzaType = stanza.getAttribute("type")
        if stanza.name == "iq" and stanzaType not in ("get", "set"):
            return None
        child = firstChild(stanza) if stanza.name == "iq" else None
        handler = None
        if child is not None and toJID.user is None and toJID.resource is None and stanzaType == "get":
            handler = {(NS_DISCO_INFO, "query"): self.info, (NS_DISCO_ITEMS, "query"): self.items,
                       (NS_UPLOAD, "request"): self.requestSlot}.get((child.uri, child.name))
        if handler is None:
            return self.router.sendError(origin, stanza, "service-unavailable")
        d = defer.maybeDeferred(handler, origin, child)
        d.addCallback(lambda payload: self._send(origin, iqResult(stanza, payload)))
        d.addErrback(self._refused, origin, stanza)
        return d

    def _send(self, origin, stanza) -> None:
        if origin is not None:
            origin.send(stanza)
        else:
            self.router.deliver(stanza)

    def _refused(self, failure, origin, stanza) -> None:
        if failure.check(StanzaError):
            error = failure.value
            reply = errorReply(stanza, error.condition, error.text, error.type)
            child = getattr(error, "child", None)
            if child is not None:
                reply.error.addChild(child)
            return self._send(origin, reply)
        if failure.check(StorageError):
            self.log.failure("upload: storage failed", failure)
            return self.router.sendError(origin, stanza, "internal-server-error", STORAGE_UNAVAILABLE)
        self.log.failure("upload: a request failed", failure)
        return self.router.sendError(origin, stanza, "internal-server-error")

    def info(self, origin, query):
        """
        §3: identity, feature and the C{max-file-size} form (XEP-0128).
        """
        if query.getAttribute("node"):
            raise StanzaError("item-not-found", text="No such node")
        result = infoQuery([("store", "file", "HTTP File Upload")], [NS_UPLOAD, NS_DISCO_INFO])
        result.addChild(resultForm(NS_UPLOAD, [("max-file-size", [str(self.host.config.upload.max_file_bytes)])]))
        return result

    def items(self, origin, query):
        return domish.Element((NS_DISCO_ITEMS, "query"))

    def requestSlot(self, origin, request):
        """
        §4: a slot, or the error the XEP names; one request of a user at a
        time (on this node), so the pending-slot limit holds.
        """
        account = getattr(origin, "account", None)
        if account is None:
            raise StanzaError("forbidden", text="Only local users may upload")
        filename, size, contentType = parseRequest(request)
        limit = self.host.config.upload.max_file_bytes
        if size > limit:
            raise fileTooLarge(limit)
        base = self.baseURL()
        if base is None:
            raise StanzaError("service-unavailable", text="The upload listener is not running")
        return self.locks.run(account.id, lambda: defer.ensureDeferred(
            self._issue(account.id, filename, size, contentType, base)))

    async def _issue(self, ownerId, filename, size, contentType, base):
        upload, quotas = self.host.config.upload, self.host.config.quotas
        blobs, slots = self.storage.blobs, self.storage.uploads
        now = self.host.clock.seconds()
        count, firstExpiry = await slots.liveSlots(ownerId, now)
        if count >= upload.slots_per_user:
            raise retryAt(firstExpiry, f"At most {upload.slots_per_user} pending upload slots per user")
        try:
            blob = await blobs.createBlob(ownerId, filename, contentType, public=True,
                                          limit=quotaLimit(quotas.blobs_per_user))
            try:
                await blobs.reserveBlobBytes(blob.id, size, quotaLimit(quotas.blob_bytes_per_user))
            except QuotaExceeded:
                await blobs.deleteBlob(blob.id)
                raise
        except QuotaExceeded as e:
            raise UploadError("resource-constraint", "wait", str(e) or "Quota exceeded") from None
        token = secrets.token_urlsafe(32)
        await slots.addSlot(UploadSlot(blob.uid, blob.id, ownerId, tokenHash(token), now + upload.slot_seconds))
        url = base + slotPath(blob.uid, filename)
        slot = domish.Element((NS_UPLOAD, "slot"))
        put = slot.addElement("put")
        put["url"] = url
        header = put.addElement("header", content=f"Bearer {token}")
        header["name"] = "Authorization"
        slot.addElement("get")["url"] = url
        return slot


__all__ = ["NS_UPLOAD", "UploadModule", "parseRequest", "slotPath"]
