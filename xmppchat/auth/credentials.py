"""
Password storage for SASL: salted SCRAM keys, never the password itself.

Implements:

- RFC 4013 (SASLprep, a profile of RFC 3454 stringprep): L{saslPrep};
- RFC 5802 §3 (SCRAM key derivation: Hi, ClientKey, StoredKey, ServerKey)
  for SHA-1 and, per RFC 7677 §3, SHA-256: L{deriveCredentials};
- RFC 4616 §5 (PLAIN verification) against the stored SHA-256 keys:
  L{verifyPlain}.

Both hashes are derived with the same salt and iteration count, so a caller
can derive further keys (e.g. for a session token) with an account's salt
and offer them to SCRAM next to the password's.  L{Credentials.toDict} is
the JSON-serialisable form storage keeps as an opaque dict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stringprep
import unicodedata
from dataclasses import dataclass, field

DEFAULT_ITERATIONS = 4096
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
FORMAT_VERSION = 1

HASHES = {"sha1": 20, "sha256": 32}


@dataclass(frozen=True)
class ScramKeys:
    """
    One hash function's SCRAM keys (RFC 5802 §3): what a server needs to
    verify a client proof and to sign its own final message.
    """

    salt: bytes
    iterations: int
    storedKey: bytes
    serverKey: bytes
    # the session token these keys were derived from (its TokenRecord), or
    # None for the password's: which credential a SCRAM login used
    token: object = field(default=None, compare=False)

    def _toDict(self) -> dict:
        return {
            "salt": _b64(self.salt),
            "iterations": self.iterations,
            "storedKey": _b64(self.storedKey),
            "serverKey": _b64(self.serverKey),
        }

    @classmethod
    def _fromDict(cls, d, digestSize: int) -> ScramKeys:
        if not isinstance(d, dict):
            raise ValueError("SCRAM keys must be a mapping")
        iterations = d.get("iterations")
        if type(iterations) is not int or not 1 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"invalid iteration count {iterations!r}")
        salt = _unb64(d.get("salt"), "salt")
        if not salt:
            raise ValueError("empty salt")
        storedKey = _unb64(d.get("storedKey"), "storedKey")
        serverKey = _unb64(d.get("serverKey"), "serverKey")
        if len(storedKey) != digestSize or len(serverKey) != digestSize:
            raise ValueError("key length does not match the hash")
        return cls(salt=salt, iterations=iterations, storedKey=storedKey, serverKey=serverKey)


@dataclass(frozen=True)
class Credentials:
    """
    An account's (or a session token's) stored secret: SCRAM keys for
    SHA-1 and SHA-256, sharing one salt and iteration count.
    """

    sha1: ScramKeys
    sha256: ScramKeys

    def toDict(self) -> dict:
        """
        The JSON-serialisable form (base64 strings and ints).
        """
        return {"version": FORMAT_VERSION, "sha1": self.sha1._toDict(),
                "sha256": self.sha256._toDict()}

    @classmethod
    def fromDict(cls, d) -> Credentials:
        """
        Rebuild from L{toDict}'s output; raises C{ValueError} on anything
        else.
        """
        if not isinstance(d, dict):
            raise ValueError("credentials must be a mapping")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown credentials format {d.get('version')!r}")
        return cls(
            sha1=ScramKeys._fromDict(d.get("sha1"), HASHES["sha1"]),
            sha256=ScramKeys._fromDict(d.get("sha256"), HASHES["sha256"]),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"{name} is not valid base64") from e


# -- RFC 4013 SASLprep -------------------------------------------------------

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21_c22,  # ASCII and non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate codes
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslPrep(s: str, allowUnassigned: bool = False) -> str:
    """
    Prepare C{s} with the SASLprep profile (RFC 4013 §2): map (§2.1),
    normalise with NFKC (§2.2), check prohibited output (§2.3) and
    bidirectional text (§2.4, RFC 3454 §6).  Unassigned code points
    (RFC 4013 §2.5) are refused unless C{allowUnassigned} (a "query"
    string, RFC 3454 §7).  Raises C{ValueError} when C{s} cannot be
    prepared.
    """
    if not isinstance(s, str):
        raise ValueError("SASLprep needs a str")
    if not allowUnassigned:
        for c in s:
            if stringprep.in_table_a1(c):
                raise ValueError(f"unassigned code point U+{ord(c):04X}")
    # §2.1: non-ASCII spaces to SPACE, "commonly mapped to nothing" removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in s
        if not stringprep.in_table_b1(c)
    )
    # §2.2: Unicode 3.2 NFKC, the version stringprep's tables are for.
    try:
        normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    except (TypeError, ValueError) as e:  # pragma: no cover - defensive
        raise ValueError("cannot normalise") from e
    if not normalized:
        return normalized
    # §2.3: prohibited output.
    for c in normalized:
        for table in _PROHIBITED:
            if table(c):
                raise ValueError(f"prohibited code point U+{ord(c):04X}")
    # §2.4: RFC 3454 §6 bidirectional characters.
    randAL = [stringprep.in_table_d1(c) for c in normalized]
    if any(randAL):
        if any(stringprep.in_table_d2(c) for c in normalized):
            raise ValueError("mixes right-to-left and left-to-right characters")
        if not (randAL[0] and randAL[-1]):
            raise ValueError("right-to-left text must start and end with a right-to-left character")
    return normalized


# -- RFC 5802 key derivation -------------------------------------------------


def _prepareSecret(secret: str) -> bytes:
    # Passwords are prepared as queries: unassigned code points (emoji, for
    # one, are unassigned in Unicode 3.2) are kept as they are.
    return saslPrep(secret, allowUnassigned=True).encode("utf-8")


def _storedAndServerKeys(hashName: str, prepared: bytes, salt: bytes,
                         iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac(hashName, prepared, salt, iterations)  # Hi()
    clientKey = hmac.digest(salted, b"Client Key", hashName)
    storedKey = hashlib.new(hashName, clientKey).digest()
    serverKey = hmac.digest(salted, b"Server Key", hashName)
    return storedKey, serverKey


def deriveCredentials(secret: str, salt: bytes | None = None,
                      iterations: int = DEFAULT_ITERATIONS) -> Credentials:
    """
    SCRAM-SHA-1 and SCRAM-SHA-256 keys for C{secret} (RFC 5802 §3), with
    one salt (16 random bytes when C{None}) and iteration count for both.
    Raises C{ValueError} when the secret is empty after SASLprep or cannot
    be prepared, or the salt or iteration count is unusable.
    """
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    if not isinstance(salt, bytes) or not salt:
        raise ValueError("salt must be non-empty bytes")
    if type(iterations) is not int or not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"invalid iteration count {iterations!r}")
    prepared = _prepareSecret(secret)
    if not prepared:
        raise ValueError("empty password")
    keys = {}
    for hashName in HASHES:
        storedKey, serverKey = _storedAndServerKeys(hashName, prepared, salt, iterations)
        keys[hashName] = ScramKeys(salt=salt, iterations=iterations,
                                   storedKey=storedKey, serverKey=serverKey)
    return Credentials(**keys)


def verifyPlain(credentials: Credentials, password: str) -> bool:
    """
    Whether C{password} matches C{credentials}, by recomputing the SHA-256
    StoredKey and comparing it in constant time.
    """
    try:
        prepared = _prepareSecret(password)
    except ValueError:
        return False
    if not prepared:
        return False
    keys = credentials.sha256
    storedKey, _ = _storedAndServerKeys("sha256", prepared, keys.salt, keys.iterations)
    return hmac.compare_digest(storedKey, keys.storedKey)


def tokenHash(token: str) -> str:
    """
    The hex SHA-256 of C{token}: how a session token is looked up without
    being stored.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
