"""
Server-side SASL mechanisms (RFC 4616 PLAIN, RFC 5802 / RFC 7677 SCRAM):
published test vectors, token logins, and hypothesis over hostile input.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer

from xmppchat.auth.credentials import deriveCredentials
from xmppchat.auth.mechanisms import (
    Challenge, PlainMechanism, SASLFailure, ScramSha1Mechanism, ScramSha256Mechanism, Success,
)


class StubSource:
    """
    An ICredentialSource over a dict of localpart -> list of secrets, all
    derived with one salt and iteration count.
    """

    def __init__(self, secrets, salt=b"0123456789abcdef", iterations=4096):
        self.creds = {
            user: [deriveCredentials(s, salt, iterations) for s in values]
            for user, values in secrets.items()
        }
        self.plain = secrets

    def getScramCandidates(self, localpart, hashName):
        return defer.succeed([getattr(c, hashName) for c in self.creds.get(localpart, [])])

    def checkPlain(self, localpart, password):
        return defer.succeed(password in self.plain.get(localpart, []))


def outcome(d):
    """
    The result of a fired Deferred, or the SASLFailure it failed with.
    """
    out = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    value = out[0]
    if hasattr(value, "check"):
        assert value.check(SASLFailure), value
        return value.value
    return value


def mechanism(cls, source, nonce="server-nonce"):
    return cls(source, "localhost", b"fake-salt-key", nonceFactory=lambda: nonce)


@pytest.mark.parametrize("cls, nonce, salt, first, final, proof, verifier", [
    # RFC 5802 §5
    (ScramSha1Mechanism, "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92",
     "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
     "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ="),
    # RFC 7677 §3
    (ScramSha256Mechanism, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==",
     "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
     "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
     "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
])
def test_scramTestVectors(cls, nonce, salt, first, final, proof, verifier):
    """The RFC 5802 and RFC 7677 example exchanges succeed with the published server signature."""
    source = StubSource({"user": ["pencil"]}, salt=base64.b64decode(salt))
    m = mechanism(cls, source, nonce)
    challenge = outcome(m.start(first.encode()))
    assert isinstance(challenge, Challenge)
    assert challenge.data.decode() == f"{first[3:].split(',')[1]}{nonce},s={salt},i=4096"
    success = outcome(m.respond(f"{final},p={proof}".encode()))
    assert isinstance(success, Success)
    assert success.localpart == "user"
    assert success.additionalData == f"v={verifier}".encode()


def scramClient(cls, user, password, salt=b"0123456789abcdef", source=None, secrets=None):
    """
    Run a full SCRAM exchange as a client would (computed with the
    credentials module), returning the final outcome.
    """
    import hashlib
    import hmac

    hashName = cls.hashName
    source = source or StubSource(secrets or {user: [password]}, salt=salt)
    m = mechanism(cls, source)
    first = "n=,r=abc".replace("n=", f"n={user}")
    challenge = outcome(m.start(f"n,,{first}".encode()))
    if not isinstance(challenge, Challenge):
        return challenge
    serverFirst = challenge.data.decode()
    fields = dict(f.split("=", 1) for f in serverFirst.split(","))
    salted = hashlib.pbkdf2_hmac(hashName, password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    clientKey = hmac.digest(salted, b"Client Key", hashName)
    storedKey = hashlib.new(hashName, clientKey).digest()
    withoutProof = f"c=biws,r={fields['r']}"
    authMessage = f"{first},{serverFirst},{withoutProof}".encode()
    signature = hmac.digest(storedKey, authMessage, hashName)
    proof = bytes(a ^ b for a, b in zip(clientKey, signature, strict=True))
    return outcome(m.respond(f"{withoutProof},p={base64.b64encode(proof).decode()}".encode()))


@pytest.mark.parametrize("cls", [ScramSha1Mechanism, ScramSha256Mechanism])
def test_scramAcceptsPasswordOrToken(cls):
    """SCRAM accepts the account password and any live token; a wrong secret is not-authorized."""
    secrets = {"alice": ["password", "session-token"]}
    assert isinstance(scramClient(cls, "alice", "password", secrets=secrets), Success)
    assert isinstance(scramClient(cls, "alice", "session-token", secrets=secrets), Success)
    failure = scramClient(cls, "alice", "wrong", secrets=secrets)
    assert isinstance(failure, SASLFailure) and failure.condition == "not-authorized"


@pytest.mark.parametrize("cls", [ScramSha1Mechanism, ScramSha256Mechanism])
def test_scramUnknownUserLooksNormal(cls):
    """An unknown user gets a normal server-first message (stable salt) and fails only at the proof."""
    source = StubSource({})
    first = outcome(mechanism(cls, source).start(b"n,,n=nobody,r=abc"))
    again = outcome(mechanism(cls, source).start(b"n,,n=nobody,r=abc"))
    assert isinstance(first, Challenge) and first.data == again.data
    failure = scramClient(cls, "nobody", "x", source=source)
    assert failure.condition == "not-authorized"


def test_plainPasswordTokenAndAuthzid():
    """PLAIN accepts password or token, refuses others, and refuses acting as someone else."""
    source = StubSource({"alice": ["password", "tok"]})
    assert isinstance(outcome(mechanism(PlainMechanism, source).start(b"\0alice\0password")), Success)
    assert isinstance(outcome(mechanism(PlainMechanism, source).start(b"\0alice\0tok")), Success)
    own = outcome(mechanism(PlainMechanism, source).start(b"alice@localhost\0alice\0password"))
    assert isinstance(own, Success)
    wrong = outcome(mechanism(PlainMechanism, source).start(b"\0alice\0nope"))
    assert wrong.condition == "not-authorized"
    other = outcome(mechanism(PlainMechanism, source).start(b"bob@localhost\0alice\0password"))
    assert other.condition == "invalid-authzid"
    malformed = outcome(mechanism(PlainMechanism, source).start(b"alice\0password"))
    assert malformed.condition == "malformed-request"


def test_exchangeIsOneShot():
    """After an outcome any further step is malformed-request."""
    source = StubSource({"alice": ["password"]})
    m = mechanism(PlainMechanism, source)
    outcome(m.start(b"\0alice\0password"))
    assert outcome(m.respond(b"\0alice\0password")).condition == "malformed-request"
    assert outcome(m.start(b"x")).condition == "malformed-request"


MECHANISMS = [PlainMechanism, ScramSha1Mechanism, ScramSha256Mechanism]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MECHANISMS),
       st.lists(st.one_of(st.binary(max_size=200),
                          st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
                          st.sampled_from([b"n,,n=alice,r=x", b"c=biws,r=x,p=AAAA", b"p=tls,,n=a,r=b",
                                           b"n,a=bob,n=alice,r=x", b"n,,m=ext,n=a,r=b", b"\0\0",
                                           b"y,,n=alice,r=\x7f", b"n,,n=al=2Cice,r=x"]),
                          st.none()),
                min_size=1, max_size=4))
def test_hostileInputOnlyEverFails(cls, steps):
    """Arbitrary SASL payloads only ever give a Challenge, Success or SASLFailure: never another exception."""
    source = StubSource({"alice": ["password"]}, iterations=1)
    m = mechanism(cls, source)
    for i, data in enumerate(steps):
        d = m.start(data) if i == 0 else m.respond(data if data is not None else b"")
        result = outcome(d)
        assert isinstance(result, (Challenge, Success, SASLFailure))
        if not isinstance(result, Challenge):
            break
