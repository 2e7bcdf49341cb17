"""
The unlock-request store: C{admin unlock} runs in its own process, the
lockouts live in each server's memory (L{xmppchat.auth.throttle}), so the
command leaves a request here and every server polls for new ones
(L{xmppchat.auth.throttle.UnlockWatcher}).  Requests are kept
L{KEEP_SECONDS}, long enough for every node to see them.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from twisted.internet.defer import Deferred

KEEP_SECONDS = 86400
MAX_LISTED = 1000


def newUnlock(key, now: float) -> tuple[str, float]:
    """
    The id of a new request for C{key} and the creation time before which
    requests are dropped; C{ValueError} for an unusable key.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("the key must be a non-empty string")
    return secrets.token_hex(12), now - KEEP_SECONDS


class IUnlockStore(Protocol):
    def addUnlock(self, key: str) -> Deferred:
        """
        Ask every server to forget the failed logins of C{key} (an IP
        address or an account's localpart); fires with the request's id.
        Requests older than L{KEEP_SECONDS} are dropped meanwhile.
        """

    def listUnlocks(self) -> Deferred:
        """
        Fires with C{[(id, key)]}: the kept requests, newest first, at most
        L{MAX_LISTED}.
        """
