"""
The storage-backed credential source: passwords and session tokens are
both accepted, for PLAIN and SCRAM, also on token-only accounts.
"""

from __future__ import annotations

from twisted.internet import task

from tests.helpers import result
from xmppchat.auth.credentials import deriveCredentials, tokenHash
from xmppchat.auth.source import StorageCredentialSource
from xmppchat.storage.interfaces import TokenRecord
from xmppchat.storage.sqlite import SQLiteStorage

SALT = b"fedcba9876543210"


def setUpSource():
    clock = task.Clock()
    clock.advance(1000)
    storage = SQLiteStorage(":memory:", synchronous=True)
    result(storage.start())
    return storage, clock, StorageCredentialSource(storage, clock)


def addToken(storage, accountId, token, expiresAt):
    creds = deriveCredentials(token, SALT, iterations=64).toDict()
    result(storage.tokens.addToken(TokenRecord(tokenHash(token), accountId, 1, 0.0, expiresAt, creds)))


def test_passwordAndLiveTokens():
    """PLAIN accepts the password and live tokens, not expired ones; SCRAM gets one candidate each."""
    storage, clock, source = setUpSource()
    account = result(storage.accounts.createAccount(
        "alice", deriveCredentials("pw", SALT, iterations=64).toDict()))
    addToken(storage, account.id, "live", 5000)
    addToken(storage, account.id, "expired", 500)
    assert result(source.checkPlain("alice", "pw")) is True
    assert result(source.checkPlain("alice", "live")) is True
    assert result(source.checkPlain("alice", "expired")) is False
    assert result(source.checkPlain("alice", "nope")) is False
    assert len(result(source.getScramCandidates("alice", "sha1"))) == 2


def test_tokenOfAnotherAccountRefused():
    """A token is accepted only for the account it was issued to."""
    storage, clock, source = setUpSource()
    result(storage.accounts.createAccount("alice", None))
    bob = result(storage.accounts.createAccount("bob", None))
    addToken(storage, bob.id, "bobs-token", 5000)
    assert result(source.checkPlain("alice", "bobs-token")) is False
    assert result(source.checkPlain("bob", "bobs-token")) is True


def test_tokenOnlyAccountHasScramCandidates():
    """An account without a password (token user) can still log in with SCRAM using its token."""
    storage, clock, source = setUpSource()
    account = result(storage.accounts.createAccount("101-1", None))
    addToken(storage, account.id, "jwt-session", 5000)
    candidates = result(source.getScramCandidates("101-1", "sha256"))
    assert len(candidates) == 1 and candidates[0].salt == SALT
    assert result(source.getScramCandidates("nobody", "sha256")) == []
