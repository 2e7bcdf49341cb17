"""
The upload-slot store (XEP-0363, L{xmppchat.modules.upload}).

A slot is an incomplete blob of the blob store (L{IBlobStore}: its owner,
name, content type and reserved size, counted against the owner's
C{[quotas]}) plus what only the PUT needs: the hash of the slot's bearer
token and when it expires.  Slots are persisted rather than signed so that
any cluster worker can check a PUT for a slot another worker issued, and
so that a slot is used once: L{IUploadSlotStore.takeSlot} removes it
atomically, whoever (a PUT or the sweep) takes it first owns the blob.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred


@dataclass
class UploadSlot:
    """
    @ivar uid: the blob's uid (the slot's URL path).
    @ivar blobId: the blob's id.
    @ivar ownerId: the account that requested it.
    @ivar tokenHash: the SHA-256 hex digest of the PUT's bearer token.
    @ivar expiresAt: when the PUT is no longer accepted (epoch seconds).
    """

    uid: str
    blobId: int
    ownerId: int
    tokenHash: str
    expiresAt: float


def tokenHash(token: str) -> str:
    """
    What is stored of a slot's bearer token: its SHA-256, hex.
    """
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def checkSlot(slot) -> None:
    """
    C{ValueError}/C{TypeError} for an unusable L{UploadSlot}.
    """
    if not isinstance(slot, UploadSlot):
        raise TypeError("an UploadSlot is needed")
    if not (isinstance(slot.uid, str) and slot.uid and isinstance(slot.tokenHash, str)
            and slot.tokenHash):
        raise ValueError("a slot needs a uid and a token hash")


class IUploadSlotStore(Protocol):
    def addSlot(self, slot: UploadSlot) -> Deferred:
        """
        Store C{slot}; fires with C{None}.
        """

    def getSlot(self, uid: str) -> Deferred:
        """
        Fires with the L{UploadSlot} of C{uid} (expired or not), or C{None}.
        """

    def liveSlots(self, ownerId: int, now: float) -> Deferred:
        """
        Fires with C{(count, firstExpiry)}: how many of the owner's slots
        expire after C{now}, and the earliest of those expiries (C{None}
        when there is none).
        """

    def takeSlot(self, uid: str) -> Deferred:
        """
        Remove the slot of C{uid}; fires with it, or C{None} when it was
        already gone (taken by a parallel PUT or the sweep).
        """

    def takeExpiredSlots(self, before: float, limit: int = 500) -> Deferred:
        """
        Remove up to C{limit} slots that expired before C{before}; fires
        with them (the caller deletes their incomplete blobs).
        """
