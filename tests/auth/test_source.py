"""
Tests for the storage-backed credential source's short-lived account memory
(xmppchat.auth.source.StorageCredentialSource.recentAccount).
"""

from tests.helpers import HostHarness, result
from xmppchat.auth.source import StorageCredentialSource


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
    proof = bytes(a ^ b for a, b in zip(clientKey, signature))
    final = f"{without},p={base64.b64encode(proof).decode()}"
    stream.elementReceived(xml(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        f"{base64.b64encode(final.encode()).decode()}</response>"))
    assert [e.name for e in transport.pop()] == ["success"]
    assert stream.phase == AUTHENTICATED and stream.account.localpart == "alice"
    assert reads == ["alice"]
