"""
Where SASL mechanisms get their secrets: the account store and the live
session tokens of the account (a token is accepted wherever the password
is, RFC 6120 §6 with PLAIN and SCRAM alike), plus optional extra PLAIN
checks (a REST application's JWT).

The account read at the start of an exchange is kept for a few seconds so
that the SASL module does not read it again once the exchange succeeds
(L{StorageCredentialSource.recentAccount}): one storage round trip less per
login.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet import defer

from xmppchat.auth.credentials import Credentials, tokenHash, verifyPlain


class StorageCredentialSource:
    """
    Implements the mechanisms' C{ICredentialSource} on top of storage.
    """

    keepSeconds = 30.0
    maxRecent = 1000  # popped on success; a failed exchange leaves one until evicted

    def __init__(self, storage, clock, passwordCheckers=()):
        self.storage = storage
        self.clock = clock
        # async callables (account, password) -> bool, tried after the rest
        self.passwordCheckers = passwordCheckers
        # localpart -> (account, read at), oldest first
        self._recent: dict = {}

    def _remember(self, localpart: str, account) -> None:
        recent = self._recent
        recent.pop(localpart, None)
        while len(recent) >= self.maxRecent:
            del recent[next(iter(recent))]
        recent[localpart] = (account, self.clock.seconds())

    def recentAccount(self, localpart: str):
        """
        The account of C{localpart} as read by an exchange in the last
        C{keepSeconds} seconds (once: it is forgotten), or C{None}.
        """
        entry = self._recent.pop(localpart, None)
        if entry is None or self.clock.seconds() - entry[1] > self.keepSeconds:
            return None
        return entry[0]

    @defer.inlineCallbacks
    def getScramCandidates(self, localpart: str, hashName: str):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            return []
        self._remember(localpart, account)
        # Token-only accounts (JWT users) have no password keys: their
        # tokens' keys are the candidates, all derived with one salt.
        candidates = []
        if account.credentials:
            candidates.append(getattr(Credentials.fromDict(account.credentials), hashName))
        tokens = yield self.storage.tokens.liveTokens(account.id, self.clock.seconds())
        for token in tokens:
            if token.credentials:
                keys = getattr(Credentials.fromDict(token.credentials), hashName)
                candidates.append(replace(keys, token=token))
        return candidates

    @defer.inlineCallbacks
    def checkPlain(self, localpart: str, password: str):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            return False
        self._remember(localpart, account)
        token = yield self.storage.tokens.getToken(tokenHash(password), self.clock.seconds())
        if token is not None and token.accountId == account.id:
            return token
        if account.credentials and verifyPlain(Credentials.fromDict(account.credentials), password):
            return True
        for check in self.passwordCheckers:
            checked = yield defer.ensureDeferred(check(account, password))
            if checked:
                return checked
        return False
