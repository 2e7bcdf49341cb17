"""
Where SASL mechanisms get their secrets: the account store and the live
session tokens of the account (a token is accepted wherever the password
is, RFC 6120 §6 with PLAIN and SCRAM alike), plus optional extra PLAIN
checks (a REST application's JWT).
"""

from __future__ import annotations

from twisted.internet import defer

from xmppchat.auth.credentials import Credentials, tokenHash, verifyPlain


class StorageCredentialSource:
    """
    Implements the mechanisms' C{ICredentialSource} on top of storage.
    """

    def __init__(self, storage, clock, passwordCheckers=()):
        self.storage = storage
        self.clock = clock
        # async callables (account, password) -> bool, tried after the rest
        self.passwordCheckers = passwordCheckers

    @defer.inlineCallbacks
    def getScramCandidates(self, localpart: str, hashName: str):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None or not account.credentials:
            return []
        candidates = [getattr(Credentials.fromDict(account.credentials), hashName)]
        tokens = yield self.storage.tokens.liveTokens(account.id, self.clock.seconds())
        for token in tokens:
            if token.credentials:
                candidates.append(getattr(Credentials.fromDict(token.credentials), hashName))
        return candidates

    @defer.inlineCallbacks
    def checkPlain(self, localpart: str, password: str):
        account = yield self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            return False
        token = yield self.storage.tokens.getToken(tokenHash(password), self.clock.seconds())
        if token is not None and token.accountId == account.id:
            return True
        if account.credentials and verifyPlain(Credentials.fromDict(account.credentials), password):
            return True
        for check in self.passwordCheckers:
            if (yield defer.ensureDeferred(check(account, password))):
                return True
        return False
