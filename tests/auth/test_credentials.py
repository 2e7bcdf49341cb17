"""
Tests for L{xmppchat.auth.credentials}: SASLprep (RFC 4013), SCRAM key
derivation (RFC 5802 §3, RFC 7677), the storage format, PLAIN verification
and token hashes.
"""

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xmppchat.auth.credentials import (
    DEFAULT_ITERATIONS,
    Credentials,
    ScramKeys,
    deriveCredentials,
    saslPrep,
    tokenHash,
    verifyPlain,
)

RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def independentKeys(hashName, password, salt, iterations):
    """StoredKey and ServerKey computed here, straight from RFC 5802 §3."""
    salted = hashlib.pbkdf2_hmac(hashName, password.encode("utf-8"), salt, iterations)
    clientKey = hmac.new(salted, b"Client Key", hashName).digest()
    return (hashlib.new(hashName, clientKey).digest(),
            hmac.new(salted, b"Server Key", hashName).digest())


# -- SASLprep -----------------------------------------------------------------


@pytest.mark.parametrize("given_, expected", [
    ("I\u00adX", "IX"),      # SOFT HYPHEN mapped to nothing
    ("user", "user"),        # no transformation
    ("USER", "USER"),        # case preserved
    ("\u00aa", "a"),         # output is NFKC, input in ISO 8859-1
    ("\u2168", "IX"),        # output is NFKC, will match 2nd example
])
def test_saslPrepRFC4013Examples(given_, expected):
    """The RFC 4013 §3 examples prepare to the documented output."""
    assert saslPrep(given_) == expected


@pytest.mark.parametrize("given_", [
    "\u0007",          # RFC 4013 §3: prohibited character
    "\u0627\u0031",    # RFC 4013 §3: bidirectional check
    "a\u0000b",        # ASCII control
    "\ue000",          # private use
    "\ud800",          # surrogate code
    "\ufffe",          # non-character
    "\U000e0001",      # tagging character
    "\u0627a\u0627",   # RandALCat mixed with LCat
])
def test_saslPrepProhibited(given_):
    """Prohibited output and bad bidirectional text raise ValueError."""
    with pytest.raises(ValueError):
        saslPrep(given_)


def test_saslPrepSpaces():
    """Non-ASCII spaces become SPACE; ASCII space is kept."""
    assert saslPrep("a\u00a0b\u2003c d") == "a b c d"


def test_saslPrepRightToLeft():
    """Right-to-left text starting and ending with RandALCat characters is allowed."""
    assert saslPrep("\u0627\u0031\u0628") == "\u0627\u0031\u0628"


def test_saslPrepUnassigned():
    """Unassigned code points are refused for stored strings and kept for queries."""
    with pytest.raises(ValueError):
        saslPrep("pass\U0001f600")
    assert saslPrep("pass\U0001f600", allowUnassigned=True) == "pass\U0001f600"


def test_saslPrepNotStr():
    """A non-str input raises ValueError."""
    with pytest.raises(ValueError):
        saslPrep(b"bytes")


@given(st.text())
def test_saslPrepOnlyValueError(s):
    """Any string prepares to a str or raises ValueError, and preparing again changes nothing."""
    try:
        prepared = saslPrep(s, allowUnassigned=True)
    except ValueError:
        return
    assert saslPrep(prepared, allowUnassigned=True) == prepared


# -- derivation -------------------------------------------------------------


def test_deriveKnownAnswer():
    """Keys match an independent RFC 5802 computation for both hashes, with one salt."""
    creds = deriveCredentials("pencil", salt=RFC7677_SALT, iterations=DEFAULT_ITERATIONS)
    for hashName in ("sha1", "sha256"):
        keys = getattr(creds, hashName)
        assert keys.salt == RFC7677_SALT
        assert keys.iterations == 4096
        assert (keys.storedKey, keys.serverKey) == independentKeys(
            hashName, "pencil", RFC7677_SALT, 4096)


def test_deriveRandomSalt():
    """Without a salt, a fresh 16-byte one is shared by both hashes."""
    a, b = deriveCredentials("secret", iterations=2), deriveCredentials("secret", iterations=2)
    assert len(a.sha1.salt) == 16
    assert a.sha1.salt == a.sha256.salt
    assert a.sha1.salt != b.sha1.salt
    assert a.sha256.storedKey != b.sha256.storedKey


def test_deriveSaslPreps():
    """The secret is SASLprepped before hashing."""
    assert deriveCredentials("I\u00adX", salt=b"s", iterations=2) == \
        deriveCredentials("\u2168", salt=b"s", iterations=2)


@pytest.mark.parametrize("secret, salt, iterations", [
    ("", None, 2),
    ("\u00ad", None, 2),
    ("bell\u0007", None, 2),
    ("ok", b"", 2),
    ("ok", "salt", 2),
    ("ok", None, 0),
    ("ok", None, True),
    ("ok", None, 2.0),
])
def test_deriveRejects(secret, salt, iterations):
    """Empty or unpreparable secrets, empty salts and bad iteration counts raise ValueError."""
    with pytest.raises(ValueError):
        deriveCredentials(secret, salt=salt, iterations=iterations)


# -- storage format ---------------------------------------------------------


def test_dictRoundTrip():
    """toDict is JSON-serialisable, holds no password, and fromDict restores it exactly."""
    creds = deriveCredentials("hunter2", iterations=8)
    text = json.dumps(creds.toDict())
    assert "hunter2" not in text
    assert Credentials.fromDict(json.loads(text)) == creds


def _valid():
    return deriveCredentials("pw", salt=b"0123456789abcdef", iterations=4).toDict()


def _mutated(path, value):
    d = _valid()
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize("bad", [
    None,
    [],
    "credentials",
    {},
    _mutated(("version",), 2),
    _mutated(("version",), KeyError),
    _mutated(("sha1",), KeyError),
    _mutated(("sha256",), "x"),
    _mutated(("sha256", "salt"), ""),
    _mutated(("sha256", "salt"), "not base64!"),
    _mutated(("sha256", "salt"), 42),
    _mutated(("sha256", "iterations"), "4096"),
    _mutated(("sha256", "iterations"), True),
    _mutated(("sha256", "iterations"), 0),
    _mutated(("sha256", "iterations"), 10**9),
    _mutated(("sha256", "storedKey"), base64.b64encode(b"short").decode()),
    _mutated(("sha1", "serverKey"), base64.b64encode(bytes(32)).decode()),
    _mutated(("sha1", "serverKey"), "\u00e9"),
    _mutated(("sha1", "storedKey"), KeyError),
])
def test_fromDictRejects(bad):
    """Malformed stored credentials raise ValueError."""
    with pytest.raises(ValueError):
        Credentials.fromDict(bad)


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["version", "sha1", "sha256", "salt", "iterations", "storedKey",
                         "serverKey"]), inner, max_size=4),
    max_leaves=12,
))
def test_fromDictOnlyValueError(data):
    """Arbitrary JSON-like input either loads or raises ValueError."""
    try:
        creds = Credentials.fromDict(data)
    except ValueError:
        return
    assert isinstance(creds.sha1, ScramKeys)


# -- PLAIN verification and tokens ------------------------------------------


def test_verifyPlain():
    """The right password verifies, a wrong or unpreparable one does not."""
    creds = deriveCredentials("correct horse", iterations=8)
    assert verifyPlain(creds, "correct horse") is True
    assert verifyPlain(creds, "correct horsE") is False
    assert verifyPlain(creds, "") is False
    assert verifyPlain(creds, "\u0007") is False


def test_verifyPlainSaslPrep():
    """Passwords equal after SASLprep verify against each other."""
    creds = deriveCredentials("\u2168", iterations=8)
    assert verifyPlain(creds, "I\u00adX") is True


def test_tokenHash():
    """tokenHash is the hex SHA-256 of the UTF-8 token, and differs between tokens."""
    assert tokenHash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert tokenHash("abc") != tokenHash("abd")
    assert len(tokenHash("\u00e9")) == 64
