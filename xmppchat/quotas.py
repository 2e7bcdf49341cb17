"""
Per-user quotas (issue 15 finding 15): how many blobs and blob bytes,
custom-data records and record bytes, owned dialogs and stored messages a
day one user may hold, from C{[quotas]} (L{xmppchat.config.QuotasConfig}).

The stores check them in the same operation that adds the data and fail
with L{QuotaExceeded}; what parallel requests of one user can do:
  - SQLite: the check runs in the write transaction, writes are serialised:
    never over the quota.
  - MongoDB, blobs, blob bytes, records, record bytes: the new item is
    written first and counted with it in place, and taken back when over
    (parallel requests see each other's items): never over the quota; at
    the edge two racing requests may both be refused.
  - MongoDB, stored messages a day: one atomic conditional update of the
    user's day counter: never over.
  - MongoDB, owned dialogs: counted just before the insert (a dialog taken
    back could already have been found by a find-or-create of its private
    pair): at most C{[storage] mongodb_pool_size} over.  REST answers it 403 (storage quotas: retrying does
not help until the user deletes something) or 429 with C{Retry-After}
(the daily message quota), with the SDK's C{{"errors": {"base": [...]}}}
body; XMPP answers C{resource-constraint} (RFC 6120 §8.3.3.18) with the
same text.
"""

from __future__ import annotations

from xmppchat.stanzas import StanzaError

from xmppchat.storage.interfaces import QuotaExceeded

#: how long the upload URL of a new blob is valid (advertised as its
#: C{expires}); an incomplete blob is swept after
#: C{[quotas] incomplete_upload_seconds}, at least twice this
UPLOAD_SECONDS = 3600


def quotaLimit(value: int) -> int | None:
    """
    A store's limit argument for a C{[quotas]} value: C{None} for 0 (off).
    """
    return value or None


def resourceConstraint(error: QuotaExceeded) -> StanzaError:
    """
    The XMPP error for a quota: C{resource-constraint} (type C{wait}, RFC
    6120 §8.3.3.18) with the quota's readable text.
    """
    return StanzaError("resource-constraint", text=str(error) or "Quota exceeded")


__all__ = ["UPLOAD_SECONDS", "quotaLimit", "resourceConstraint"]
