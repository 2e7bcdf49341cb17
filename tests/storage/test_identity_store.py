"""
The storage side of issue 15 findings 1 and 4, for every backend in
L{tests.storage.test_contract.FACTORIES}: the JWT mark on accounts, the
revocation of logged-out JWTs, deleting an account's tokens on a password
change, and the batched "which of these tokens are still live" check.
"""

from __future__ import annotations

import mongomock
import pytest

from tests.storage.test_contract import BACKENDS, openBackend, result
from tests.storage.test_sqlite import oldDatabase, opened
from xmppchat.storage.interfaces import TokenRecord
from xmppchat.storage.mongo import MongoStorage
from xmppchat.storage.sqlite import SQLiteStorage


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param)
    yield storage
    result(storage.stop())


def addToken(storage, accountId, hash_, expiresAt=500.0):
    result(storage.tokens.addToken(TokenRecord(tokenHash=hash_, accountId=accountId, appId=1,
                                               createdAt=0.0, expiresAt=expiresAt)))


def test_jwtMarkRoundTrips(storage):
    """An account created as a JWT account says so; others do not."""
    jwtAccount = result(storage.accounts.createAccount("{id}-1", None, externalId="e1", jwt=True))
    other = result(storage.accounts.createAccount("{id}-1", None, login="bob", externalId="e2"))
    assert jwtAccount.jwt is True and other.jwt is False
    assert result(storage.accounts.getAccountByExternalId("e1")).jwt is True
    assert result(storage.accounts.getAccountByExternalId("e2")).jwt is False
    found = result(storage.accounts.getAccounts([jwtAccount.id, other.id]))
    assert (found[jwtAccount.id].jwt, found[other.id].jwt) == (True, False)


def test_revokedTokenRemembered(storage):
    """revokeToken deletes the token and remembers its hash until it expires; purge forgets it."""
    account = result(storage.accounts.createAccount("alice", None))
    addToken(storage, account.id, "jwt-hash")
    result(storage.tokens.revokeToken("jwt-hash", 300.0))
    assert result(storage.tokens.getToken("jwt-hash", 100.0)) is None
    assert result(storage.tokens.isRevoked("jwt-hash", 299.0)) is True
    assert result(storage.tokens.isRevoked("jwt-hash", 300.0)) is False
    assert result(storage.tokens.isRevoked("other", 100.0)) is False
    result(storage.tokens.revokeToken("never-stored", 300.0))
    assert result(storage.tokens.isRevoked("never-stored", 100.0)) is True
    result(storage.tokens.purgeExpired(301.0))
    assert result(storage.tokens.isRevoked("jwt-hash", 0.0)) is False


def test_deleteAccountTokensKeepsOne(storage):
    """deleteAccountTokens deletes the account's tokens but the kept one, and names them."""
    alice = result(storage.accounts.createAccount("alice", None))
    bob = result(storage.accounts.createAccount("bob", None))
    for hash_ in ("a1", "a2", "a3"):
        addToken(storage, alice.id, hash_)
    addToken(storage, bob.id, "b1")
    assert sorted(result(storage.tokens.deleteAccountTokens(alice.id, keep="a2"))) == ["a1", "a3"]
    assert [t.tokenHash for t in result(storage.tokens.liveTokens(alice.id, 0.0))] == ["a2"]
    assert result(storage.tokens.deleteAccountTokens(alice.id)) == ["a2"]
    assert [t.tokenHash for t in result(storage.tokens.liveTokens(bob.id, 0.0))] == ["b1"]


def test_liveTokenHashes(storage):
    """liveTokenHashes answers, in one call, which of the hashes are stored and unexpired."""
    account = result(storage.accounts.createAccount("alice", None))
    addToken(storage, account.id, "live", 500.0)
    addToken(storage, account.id, "old", 100.0)
    hashes = ["live", "old", "gone"] + [f"x{i}" for i in range(1200)]
    assert result(storage.tokens.liveTokenHashes(hashes, 200.0)) == {"live"}
    assert result(storage.tokens.liveTokenHashes([], 200.0)) == set()


def test_sqliteMigrationMarksOldJWTAccounts(tmp_path):
    """A version-3 database gets the JWT mark on accounts with only an external id."""
    path = tmp_path / "db.sqlite3"
    oldDatabase(path, 3,
                "INSERT INTO accounts (localpart, external_id, created_at, updated_at)"
                " VALUES ('1-1', 'emp1', 1, 1)",
                "INSERT INTO accounts (localpart, login, external_id, created_at, updated_at)"
                " VALUES ('2-1', 'mallory', 'emp2', 1, 1)")
    storage = SQLiteStorage(str(path), synchronous=True)
    result(storage.start())
    assert result(storage.accounts.getAccountByExternalId("emp1")).jwt is True
    assert result(storage.accounts.getAccountByExternalId("emp2")).jwt is False
    result(storage.stop())


def test_mongoMarksOldJWTAccounts():
    """Mongo documents from before the mark get it at start by the same rule."""
    client = mongomock.MongoClient()
    client["legacy"].accounts.insert_many([
        {"_id": 1, "localpart": "1-1", "externalId": "emp1", "created_at": 1, "updated_at": 1},
        {"_id": 2, "localpart": "2-1", "login": "m", "externalId": "emp2", "created_at": 1,
         "updated_at": 1}])
    storage = MongoStorage(client=client, database="legacy", synchronous=True)
    result(storage.start())
    assert result(storage.accounts.getAccount(1)).jwt is True
    assert result(storage.accounts.getAccount(2)).jwt is False
    result(storage.stop())


def test_blockedRoundTrips(storage):
    """Issue 19 (Moderation): blocked is stored on the account, read by every lookup, and cleared."""
    account = result(storage.accounts.createAccount("{id}-1", None, login="mallory"))
    other = result(storage.accounts.createAccount("bob", None))
    assert account.blocked is False
    blocked = result(storage.accounts.updateAccount(account.id, blocked=True))
    assert blocked.blocked is True and blocked.login == "mallory"
    assert result(storage.accounts.getAccount(account.id)).blocked is True
    assert result(storage.accounts.getAccountByLocalpart(account.localpart)).blocked is True
    assert result(storage.accounts.getAccountByLogin("mallory")).blocked is True
    found = result(storage.accounts.getAccounts([account.id, other.id]))
    assert (found[account.id].blocked, found[other.id].blocked) == (True, False)
    assert result(storage.accounts.updateAccount(account.id, blocked=False)).blocked is False
    assert result(storage.accounts.getAccount(account.id)).blocked is False


def test_sqliteMigrationAddsBlocked(tmp_path):
    """A version-13 database gets the blocked column, off for its accounts."""
    path = tmp_path / "db.sqlite3"
    oldDatabase(path, 13, "INSERT INTO accounts (localpart, created_at, updated_at)"
                          " VALUES ('alice', 1, 1)")
    storage = opened(path)
    account = result(storage.accounts.getAccountByLocalpart("alice"))
    assert account.blocked is False
    assert result(storage.accounts.updateAccount(account.id, blocked=True)).blocked is True
    result(storage.stop())
