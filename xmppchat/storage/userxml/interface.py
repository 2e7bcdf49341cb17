"""
The per-user XML store: one serialised element per (localpart, kind,
key).  C{kind} separates the features that share it (L{VCARD}: the
account's vCard-temp under the key C{""}; L{PRIVATE}: XEP-0049 private
storage, one key per C{name:namespace}) so that each counts its own keys.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

VCARD = "vcard"
PRIVATE = "private"
KINDS = (VCARD, PRIVATE)


def checkKey(localpart, kind, key) -> None:
    """
    C{ValueError}/C{TypeError} for arguments no store may hold.
    """
    if not isinstance(localpart, str) or not localpart:
        raise ValueError("the localpart must be a non-empty string")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if not isinstance(key, str):
        raise TypeError("the key must be a string")


class IUserXMLStore(Protocol):
    def getXML(self, localpart: str, kind: str, key: str) -> Deferred:
        """
        Fires with the stored serialisation (C{str}) or C{None}.
        """

    def setXML(self, localpart: str, kind: str, key: str, xml: str | None,
               maxKeys: int = 0) -> Deferred:
        """
        Store C{xml} (replacing what was there), or delete it when C{None}.
        With C{maxKeys} > 0, adding a key beyond that many of the user's
        keys of C{kind} fails with L{QuotaExceeded}; replacing never does.
        Fires with C{None}.
        """

    def listXML(self, localpart: str) -> Deferred:
        """
        Fires with C{[(kind, key, xml)]}: every document of C{localpart},
        by kind and key (export, issue 18 item 8).
        """

    def deleteUser(self, localpart: str) -> Deferred:
        """
        Forget every document of C{localpart} (the account is deleted).
        """
