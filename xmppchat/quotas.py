"""
Per-user quotas (issue 15 finding 15): how many blobs and blob bytes,
custom-data records and record bytes, owned dialogs and stored messages a
day one user may hold, from C{[quotas]} (L{xmppchat.config.QuotasConfig}).

The stores check them in the same write that adds the data (one SQLite
write transaction; on MongoDB a count just before the insert, so parallel
requests of one user overshoot by at most the worker pool size), and fail
with L{QuotaExceeded}.  REST answers it 403 (storage quotas: retrying does
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
