"""
Addressing of the ConnectyCube dialog domain (issue 17): account ids <->
bare JIDs (L{AccountDirectory}), the application of an account
(localpart C{<id>-<appId>}) and the room JID of a dialog
(C{<appId>_<dialogId>@muc.<domain>}, SDK reference §5.2).
"""

from __future__ import annotations

import re
from collections import OrderedDict

from twisted.internet import defer

APP_LOCALPART = re.compile(r"^[0-9]+-([0-9]{1,10})$")


def appIdOf(localpart: str | None) -> int | None:
    """
    The application of a REST/SDK account (localpart C{<id>-<appId>}), or
    C{None} for others (C{adduser alice}).
    """
    match = APP_LOCALPART.match(localpart or "")
    return int(match.group(1)) if match else None


ROOM_RE = re.compile(r"^([0-9]{1,10})_([0-9a-fA-F]{24})$")


def parseRoom(localpart: str | None):
    """
    C{(appId, dialogId)} for a room localpart C{<appId>_<dialogId>}, or
    C{None}.  Dialog ids are returned lower-case, as the store keeps them.
    """
    if not localpart:
        return None
    match = ROOM_RE.match(localpart)
    if match is None:
        return None
    return int(match.group(1)), match.group(2).lower()


def roomJID(appId: int, dialogId: str, mucDomain: str) -> str:
    """
    The bare room JID of a dialog (SDK reference §5.2).
    """
    return f"{appId}_{dialogId}@{mucDomain}"


class AccountDirectory:
    """
    Account id <-> localpart through the account store, with a bounded LRU
    cache (a localpart never changes, so entries never go stale; a deleted
    account is simply not found any more on the next miss).
    """

    def __init__(self, accounts, domain: str, size: int):
        self.accounts = accounts
        self.domain = domain
        self.size = size
        self._byId: OrderedDict[int, str] = OrderedDict()
        self._byLocalpart: OrderedDict[str, int] = OrderedDict()

    def remember(self, account) -> None:
        self._put(account.id, account.localpart)

    def _put(self, accountId: int, localpart: str) -> None:
        for cache, key, value in ((self._byId, accountId, localpart),
                                  (self._byLocalpart, localpart, accountId)):
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > self.size:
                cache.popitem(last=False)

    def forget(self, account) -> None:
        self._byId.pop(account.id, None)
        self._byLocalpart.pop(account.localpart, None)

    def bare(self, localpart: str) -> str:
        return f"{localpart}@{self.domain}"

    def cachedJID(self, accountId: int) -> str | None:
        """
        The bare JID of an account if the cache knows it (no storage read).
        """
        localpart = self._byId.get(accountId)
        return self.bare(localpart) if localpart is not None else None

    @defer.inlineCallbacks
    def jidsOf(self, accountIds):
        """
        Fires with C{{id: bare JID}} for the ids that exist.
        """
        out, missing = {}, []
        for accountId in accountIds:
            localpart = self._byId.get(accountId)
            if localpart is None:
                missing.append(accountId)
            else:
                self._byId.move_to_end(accountId)
                out[accountId] = self.bare(localpart)
        if missing:
            found = yield self.accounts.getAccounts(missing)
            for accountId, account in found.items():
                self.remember(account)
                out[accountId] = self.bare(account.localpart)
        return out

    @defer.inlineCallbacks
    def jidOf(self, accountId: int):
        jids = yield self.jidsOf([accountId])
        return jids.get(accountId)

    @defer.inlineCallbacks
    def idOf(self, bare: str):
        """
        Fires with the account id of a local bare JID, or C{None}.
        """
        localpart, _, domain = bare.partition("@")
        if domain != self.domain or not localpart:
            return None
        accountId = self._byLocalpart.get(localpart)
        if accountId is not None:
            self._byLocalpart.move_to_end(localpart)
            return accountId
        account = yield self.accounts.getAccountByLocalpart(localpart)
        if account is None:
            return None
        self.remember(account)
        return account.id


__all__ = ["AccountDirectory", "appIdOf", "parseRoom", "roomJID"]
