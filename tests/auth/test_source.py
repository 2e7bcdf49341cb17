"""
The storage-backed credential source: passwords and session tokens are
both accepted, for PLAIN and SCRAM, also on token-only accounts.
"""

from __future__ import annotations

from twisted.internet import task

from tests.helpers import HostHarness, result
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
    assert result(source.checkPlain("alice", "live")).tokenHash == tokenHash("live")
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
    assert result(source.checkPlain("bob", "bobs-token")).tokenHash == tokenHash("bobs-token")


def test_tokenOnlyAccountHasScramCandidates():
    """An account without a password (token user) can still log in with SCRAM using its token."""
    storage, clock, source = setUpSource()
    account = result(storage.accounts.createAccount("101-1", None))
    addToken(storage, account.id, "jwt-session", 5000)
    candidates = result(source.getScramCandidates("101-1", "sha256"))
    assert len(candidates) == 1 and candidates[0].salt == SALT
    assert result(source.getScramCandidates("nobody", "sha256")) == []


def _source():
    h = HostHarness()
    h.addUser("alice")
    return h, StorageCredentialSource(h.storage, h.clock)


def test_accountRememberedOnceAfterScramLookup():
    """The account read for SCRAM candidates is handed out once, then forgotten."""
    h, source = _source()
    assert len(result(source.getScramCandidates("alice", "sha256"))) == 1
    account = source.recentAccount("alice")
    assert account is not None and account.localpart == "alice"
    assert source.recentAccount("alice") is None


def test_rememberedAccountExpires():
    """An account read longer than keepSeconds ago is not handed out."""
    h, source = _source()
    result(source.getScramCandidates("alice", "sha256"))
    h.clock.advance(source.keepSeconds + 1)
    assert source.recentAccount("alice") is None


def test_unknownAccountNotRemembered():
    """Lookups of unknown accounts leave nothing behind."""
    h, source = _source()
    assert result(source.getScramCandidates("nobody", "sha256")) == []
    assert source.recentAccount("nobody") is None and source._recent == {}


def test_memoryBounded():
    """At most maxRecent accounts are remembered, the oldest dropped first."""
    h, source = _source()
    source.maxRecent = 3
    for name in ("a", "b", "c", "d"):
        h.addUser(name)
        result(source.getScramCandidates(name, "sha256"))
    assert list(source._recent) == ["b", "c", "d"]


def test_loginReadsTheAccountOnce():
    """A successful SCRAM login reads the account from storage once, not again at success."""
    import base64
    import hashlib
    import hmac

    from tests.helpers import StubTransport, xml
    from xmppchat.c2s.negotiation import AUTHENTICATED, C2SStream

    h = HostHarness()
    h.addUser("alice", "secret")
    reads = []
    accounts = h.storage.accounts
    original = accounts.getAccountByLocalpart

    def counting(localpart):
        reads.append(localpart)
        return original(localpart)

    accounts.getAccountByLocalpart = counting
    transport = StubTransport(secure=True)
    stream = C2SStream(h.host, transport)
    first = "n=alice,r=abcdefgh"
    stream.elementReceived(xml(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
        f"{base64.b64encode(('n,,' + first).encode()).decode()}</auth>"))
    challenge = base64.b64decode(str(transport.pop()[-1])).decode()
    attrs = dict(kv.split("=", 1) for kv in challenge.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", b"secret", base64.b64decode(attrs["s"]), int(attrs["i"]))
    clientKey = hmac.digest(salted, b"Client Key", "sha256")
    without = f"c=biws,r={attrs['r']}"
    signature = hmac.digest(hashlib.sha256(clientKey).digest(),
                            f"{first},{challenge},{without}".encode(), "sha256")
    proof = bytes(a ^ b for a, b in zip(clientKey, signature, strict=True))
    final = f"{without},p={base64.b64encode(proof).decode()}"
    stream.elementReceived(xml(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        f"{base64.b64encode(final.encode()).decode()}</response>"))
    assert [e.name for e in transport.pop()] == ["success"]
    assert stream.phase == AUTHENTICATED and stream.account.localpart == "alice"
    assert reads == ["alice"]
