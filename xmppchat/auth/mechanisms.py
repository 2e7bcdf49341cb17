"""
Server-side SASL mechanisms, independent of the transport.

Implements:

- RFC 4422 §3 (the exchange: optional initial response, challenges and
  responses, outcome with optional additional data) and RFC 6120 §6.4-§6.5
  (the XMPP profile and its failure conditions, L{SASLFailure});
- RFC 4616 PLAIN (L{PlainMechanism});
- RFC 5802 SCRAM-SHA-1 (L{ScramSha1Mechanism}) and RFC 7677 SCRAM-SHA-256
  (L{ScramSha256Mechanism}), without channel binding (no C{-PLUS} variant
  is offered, so the GS2 flags C{n} and C{y} are accepted and C{p} is
  refused, RFC 5802 §6).

A mechanism answers L{Challenge} (send C{<challenge/>}) or L{Success} (send
C{<success/>}) or fails with L{SASLFailure}; nothing else ever comes out of
it.  An unknown user is answered with a normal SCRAM server-first message
(salt derived from a server secret and the user name) and refused only
after the client's proof, so the exchange does not reveal which accounts
exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Callable, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from xmppchat.auth.credentials import DEFAULT_ITERATIONS, SALT_BYTES, ScramKeys, saslPrep

CONDITIONS = frozenset({
    "aborted",
    "account-disabled",
    "credentials-expired",
    "encryption-required",
    "incorrect-encoding",
    "invalid-authzid",
    "invalid-mechanism",
    "malformed-request",
    "mechanism-too-weak",
    "not-authorized",
    "temporary-auth-failure",
})

MAX_MESSAGE_BYTES = 4096
MAX_PLAIN_FIELD_BYTES = 1024
NONCE_BYTES = 24


class SASLFailure(Exception):
    """
    A failed exchange, with its RFC 6120 §6.5 condition and optional text.
    """

    def __init__(self, condition: str, text: str | None = None):
        if condition not in CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


@dataclass(frozen=True)
class Challenge:
    """
    Send a C{<challenge/>} carrying C{data}.
    """

    data: bytes


@dataclass(frozen=True)
class Success:
    """
    Authenticated as C{localpart}: send C{<success/>} carrying
    C{additionalData} when not C{None} (RFC 6120 §6.3.10).
    """

    localpart: str
    additionalData: bytes | None = None
    # the session token's TokenRecord when one was the secret, else None
    credential: object = None


class ICredentialSource(Protocol):
    """
    Where mechanisms get an account's secrets (implemented on top of
    storage by L{xmppchat.auth.source.StorageCredentialSource}).
    """

    def getScramCandidates(self, localpart: str, hashName: str) -> defer.Deferred:
        """
        Fires with the list of L{ScramKeys} for C{hashName} (C{'sha1'} or
        C{'sha256'}) that may authenticate C{localpart}: the password's and
        each live session token's, all with the same salt and iteration
        count; C{[]} when the user is unknown.
        """

    def checkPlain(self, localpart: str, password: str) -> defer.Deferred:
        """
        Fires with C{True} when C{password} is the account's password, the
        L{TokenRecord} when it is one of its live session tokens, and a
        false value otherwise.
        """


def _malformed(text: str) -> SASLFailure:
    return SASLFailure("malformed-request", text)


def _randomNonce() -> str:
    return base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")


class ServerMechanism:
    """
    One SASL exchange on the server side.  C{start} is called once, with the
    initial response (C{None} when the client sent none); C{respond} with
    each later response.  Both return Deferreds firing L{Challenge} or
    L{Success}, or failing with L{SASLFailure}; after an outcome, or while a
    step is still being answered, any call fails with C{malformed-request}.

    @ivar localpart: the user being authenticated once known (for login
        throttling), else C{None}.
    """

    name = ""
    log = Logger()

    def __init__(self, source: ICredentialSource, domain: str, fakeSaltKey: bytes,
                 nonceFactory: Callable[[], str] | None = None):
        self.source = source
        self.domain = domain
        self.fakeSaltKey = fakeSaltKey
        self.nonceFactory = nonceFactory or _randomNonce
        self.localpart: str | None = None
        self._started = False
        self._busy = False
        self._done = False

    def start(self, initialResponse: bytes | None) -> defer.Deferred:
        if self._started:
            return self._refuse("The exchange has already started")
        self._started = True
        return self._run(self._start, initialResponse)

    def respond(self, response: bytes) -> defer.Deferred:
        if not self._started:
            return self._refuse("The exchange has not started")
        return self._run(self._respond, response)

    # -- subclasses implement these, raising SASLFailure or returning a
    # -- step or a Deferred firing one

    def _start(self, initialResponse: bytes | None):
        raise NotImplementedError()

    def _respond(self, response: bytes):
        raise NotImplementedError()

    # -- plumbing ------------------------------------------------------

    def _refuse(self, text: str) -> defer.Deferred:
        self._done = True
        return defer.fail(_malformed(text))

    def _run(self, step, data) -> defer.Deferred:
        if self._done:
            return self._refuse("The exchange is over")
        if self._busy:
            return self._refuse("The previous step is still being answered")
        if data is not None and not isinstance(data, bytes):
            return self._refuse("Responses must be bytes")
        if data is not None and len(data) > MAX_MESSAGE_BYTES:
            return self._refuse("Response too long")
        self._busy = True
        d = defer.maybeDeferred(step, data)
        d.addBoth(self._finished)
        return d

    def _finished(self, result):
        self._busy = False
        if isinstance(result, Challenge):
            return result
        self._done = True
        if isinstance(result, Success):
            return result
        if isinstance(result, Failure) and result.check(SASLFailure):
            return result
        # Storage errors and bugs: logged here, a plain temporary failure
        # for the client, so no other exception ever leaves a mechanism.
        if isinstance(result, Failure):
            self.log.failure("SASL {name} step failed", result, name=self.name)
        else:
            self.log.error("SASL {name} step returned {result!r}", name=self.name, result=result)
        raise SASLFailure("temporary-auth-failure", "Internal error")

    def _checkAuthzid(self, authzid: str, authcid: str) -> None:
        """
        An authorization identity, when given, must name the authenticated
        user (as a localpart or a bare JID at this domain): nobody may act
        as someone else.
        """
        if not authzid or authzid == authcid:
            return
        local, sep, domain = authzid.rpartition("@")
        if sep and local == authcid and domain.lower() == self.domain.lower():
            return
        raise SASLFailure("invalid-authzid", "Authorization identity must be the user's own")


class PlainMechanism(ServerMechanism):
    """
    RFC 4616 PLAIN: C{[authzid] NUL authcid NUL passwd} in one message.
    """

    name = "PLAIN"

    def _start(self, initialResponse):
        if not initialResponse:
            return Challenge(b"")
        return self._verify(initialResponse)

    def _respond(self, response):
        return self._verify(response)

    def _verify(self, message: bytes):
        fields = message.split(b"\0")
        if len(fields) != 3:
            raise _malformed("Expected authzid NUL authcid NUL passwd")
        if any(len(f) > MAX_PLAIN_FIELD_BYTES for f in fields):
            raise _malformed("Field too long")
        try:
            authzid, authcid, password = (f.decode("utf-8") for f in fields)
        except UnicodeDecodeError:
            raise _malformed("Invalid UTF-8") from None
        if not authcid or not password:
            raise _malformed("Empty user name or password")
        try:
            authcid = saslPrep(authcid, allowUnassigned=True)
            password = saslPrep(password, allowUnassigned=True)
        except ValueError:
            # RFC 4616 §5: failed preparation fails verification.
            raise SASLFailure("not-authorized") from None
        if not authcid or not password:
            raise SASLFailure("not-authorized")
        self.localpart = authcid
        self._checkAuthzid(authzid, authcid)
        d = self.source.checkPlain(authcid, password)
        d.addCallback(self._checked, authcid)
        return d

    def _checked(self, ok, authcid):
        if not ok:
            raise SASLFailure("not-authorized")
        return Success(authcid, credential=None if ok is True else ok)


# -- SCRAM ---------------------------------------------------------------------


def _isPrintable(s: str) -> bool:
    """
    RFC 5802 §7 C{printable}: %x21-2B / %x2D-7E, i.e. visible ASCII except
    the comma.
    """
    return bool(s) and all("!" <= c <= "~" and c != "," for c in s)


def _decodeSaslname(value: str) -> str:
    """
    RFC 5802 §5.1 C{saslname}: C{=2C} is a comma, C{=3D} an equals sign,
    and no other C{=} or comma may appear.
    """
    if not value or "," in value:
        raise _malformed("Invalid user name")
    parts = value.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        escape, rest = part[:2], part[2:]
        if escape == "2C":
            out.append("," + rest)
        elif escape == "3D":
            out.append("=" + rest)
        else:
            raise _malformed("Invalid escape in user name")
    return "".join(out)


def _checkExtensions(attributes: list[str]) -> None:
    """
    RFC 5802 §7 C{extensions}: C{ALPHA "=" value}.  Optional extensions we
    do not know are ignored; C{m=} (mandatory) is never among them.
    """
    for attribute in attributes:
        if len(attribute) < 2 or attribute[1] != "=" or not (
            "a" <= attribute[0].lower() <= "z"
        ):
            raise _malformed("Invalid attribute")


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _malformed("Invalid base64") from None


class _ScramMechanism(ServerMechanism):
    """
    RFC 5802 SCRAM, without channel binding, for one hash function.
    """

    hashName = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._state = "client-first"
        self._gs2Header = ""
        self._clientFirstBare = ""
        self._serverFirst = ""
        self._nonce = ""
        self._candidates: list[ScramKeys] = []

    @property
    def _digestSize(self) -> int:
        return hashlib.new(self.hashName).digest_size

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.digest(key, message, self.hashName)

    def _start(self, initialResponse):
        if initialResponse is None:
            # The client did not send client-first with <auth/>: ask for it.
            return Challenge(b"")
        return self._clientFirst(initialResponse)

    def _respond(self, response):
        if self._state == "client-first":
            return self._clientFirst(response)
        if self._state == "client-final":
            return self._clientFinal(response)
        raise _malformed("Unexpected response")

    def _decode(self, message: bytes) -> str:
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("Invalid UTF-8") from None

    # -- client-first-message: gs2-header client-first-message-bare ------

    def _clientFirst(self, message: bytes):
        text = self._decode(message)
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise _malformed("Invalid client-first message")
        cbindFlag, authzidField, bare = parts
        if cbindFlag.startswith("p="):
            raise _malformed("Channel binding is not supported here")
        if cbindFlag not in ("n", "y"):
            raise _malformed("Invalid GS2 channel binding flag")
        authzid = ""
        if authzidField:
            if not authzidField.startswith("a="):
                raise _malformed("Invalid GS2 authorization identity")
            authzid = _decodeSaslname(authzidField[2:])
        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            raise _malformed("Unsupported mandatory extension")
        if len(attributes) < 2:
            raise _malformed("Invalid client-first message")
        userField, nonceField, extensions = attributes[0], attributes[1], attributes[2:]
        if not userField.startswith("n=") or not nonceField.startswith("r="):
            raise _malformed("Expected n= and r=")
        _checkExtensions(extensions)
        username = _decodeSaslname(userField[2:])
        clientNonce = nonceField[2:]
        if not _isPrintable(clientNonce):
            raise _malformed("Invalid nonce")
        try:
            username = saslPrep(username, allowUnassigned=True)
        except ValueError:
            raise _malformed("Invalid user name") from None
        if not username:
            raise _malformed("Empty user name")
        self._checkAuthzid(authzid, username)
        self.localpart = username
        self._gs2Header = f"{cbindFlag},{authzidField},"
        self._clientFirstBare = bare
        serverNonce = self.nonceFactory()
        if not _isPrintable(serverNonce):  # pragma: no cover - misconfiguration
            raise ValueError("nonceFactory returned an unusable nonce")
        self._nonce = clientNonce + serverNonce
        self._state = "looking-up"
        d = self.source.getScramCandidates(username, self.hashName)
        d.addCallback(self._gotCandidates, username)
        return d

    def _gotCandidates(self, candidates, username: str):
        candidates = list(candidates or [])
        if candidates:
            salt, iterations = candidates[0].salt, candidates[0].iterations
            # All should share salt and iterations; others cannot be checked.
            self._candidates = [
                c for c in candidates
                if c.salt == salt and c.iterations == iterations
                and len(c.storedKey) == self._digestSize
            ]
        else:
            salt = self._fakeSalt(username)
            iterations = DEFAULT_ITERATIONS
            self._candidates = []
        self._serverFirst = (
            f"r={self._nonce},s={base64.b64encode(salt).decode('ascii')},i={iterations}"
        )
        self._state = "client-final"
        return Challenge(self._serverFirst.encode("ascii"))

    def _fakeSalt(self, username: str) -> bytes:
        """
        A salt for an unknown user: stable across attempts and processes
        sharing C{fakeSaltKey}, like a real one, and the same for both
        hashes.
        """
        return hmac.digest(self.fakeSaltKey, username.encode("utf-8"), "sha256")[:SALT_BYTES]

    # -- client-final-message: c=... ,r=... [,ext] ,p=... ------------------

    def _clientFinal(self, message: bytes):
        self._state = "done"
        text = self._decode(message)
        attributes = text.split(",")
        if len(attributes) < 3:
            raise _malformed("Invalid client-final message")
        binding, nonceField, proofField = attributes[0], attributes[1], attributes[-1]
        if not binding.startswith("c=") or not nonceField.startswith("r="):
            raise _malformed("Expected c= and r=")
        if not proofField.startswith("p="):
            raise _malformed("Expected p= last")
        _checkExtensions(attributes[2:-1])
        if _b64decode(binding[2:]) != self._gs2Header.encode("utf-8"):
            raise _malformed("Channel binding data does not match the GS2 header")
        if not hmac.compare_digest(nonceField[2:].encode("utf-8"), self._nonce.encode("utf-8")):
            raise _malformed("Nonce mismatch")
        proof = _b64decode(proofField[2:])
        if len(proof) != self._digestSize:
            raise _malformed("Invalid proof length")
        withoutProof = ",".join(attributes[:-1])
        authMessage = ",".join((self._clientFirstBare, self._serverFirst, withoutProof))
        authMessage = authMessage.encode("utf-8")
        matched = None
        for candidate in self._candidates:
            clientSignature = self._hmac(candidate.storedKey, authMessage)
            clientKey = bytes(a ^ b for a, b in zip(proof, clientSignature, strict=True))
            storedKey = hashlib.new(self.hashName, clientKey).digest()
            if hmac.compare_digest(storedKey, candidate.storedKey) and matched is None:
                matched = candidate
        if matched is None:
            raise SASLFailure("not-authorized")
        serverSignature = self._hmac(matched.serverKey, authMessage)
        return Success(self.localpart, b"v=" + base64.b64encode(serverSignature), matched.token)


class ScramSha1Mechanism(_ScramMechanism):
    """
    RFC 5802 SCRAM-SHA-1.
    """

    name = "SCRAM-SHA-1"
    hashName = "sha1"


class ScramSha256Mechanism(_ScramMechanism):
    """
    RFC 7677 SCRAM-SHA-256.
    """

    name = "SCRAM-SHA-256"
    hashName = "sha256"


# In order of preference.
MECHANISMS = {
    "SCRAM-SHA-256": ScramSha256Mechanism,
    "SCRAM-SHA-1": ScramSha1Mechanism,
    "PLAIN": PlainMechanism,
}
