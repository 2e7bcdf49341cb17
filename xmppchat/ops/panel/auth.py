"""
Who may use the web admin panel (issue 19) and for how long.

Administrators are configured, never stored: C{[[ops.administrators]]}
tables of a C{name} and a C{password_hash} made by L{hashPassword}
(C{python -m xmppchat.admin hash-password}): PBKDF2-HMAC-SHA256 (NIST SP
800-132; OWASP's password storage guidance asks for 600,000 iterations)
with a 16-byte random salt, written C{pbkdf2-sha256$<iterations>$<salt>$<hash>}
(salt and hash in unpadded URL-safe base64).

A signed-in browser holds one cookie, signed rather than stored, so that
any worker process or cluster node behind the same configuration accepts
it (the ops listener is shared by the workers, L{xmppchat.cluster.workers}):
C{<name>.<created>.<seen>.<nonce>.<mac>}, the MAC an HMAC-SHA256 keyed by
an HMAC of the administrator's password hash under a random secret kept
in the storage (L{SECRET_SETTING}, made by the first process that needs
it, shared by every node): reading the config is not enough to forge a
cookie, and changing the password in the config signs all of his
sessions out.  C{seen} slides forward as
the session is used; a session unused for C{panel_idle_minutes} or older
than C{panel_session_hours} is over.  Signing out records the nonce as a
revoked token in the storage (L{ITokenStore.revokeToken}, shared by
every node) until the session would have ended anyway.

The CSRF token is an HMAC of the session's nonce (the OWASP "HMAC-based
token" pattern): the browser reads it from the sign-in answer and sends
it as C{X-CSRF-Token} on every request that changes something; the cookie
is also C{SameSite=Strict}.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

SCHEME = "pbkdf2-sha256"
ITERATIONS = 600_000
MIN_ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000  # a typo beyond this would hang a thread at every sign-in
NAME_RULE = re.compile(r"[A-Za-z0-9._-]{1,64}")
COOKIE = "xmppchat_admin"
SECRET_SETTING = "secret:panel-cookie"  # the settings store's name of the cookie secret
COOKIE_PATH = "/admin"
SEEN_GRANULARITY = 60  # seconds: the cookie is re-issued at most this often
MAX_THROTTLE_KEYS = 10_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hashPassword(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """
    The C{password_hash} of an administrator (slow: run it in a thread).
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def _parse(encoded) -> tuple[int, bytes, bytes]:
    scheme, iterations, salt, digest = encoded.split("$")
    if scheme != SCHEME:
        raise ValueError(f"not {SCHEME}")
    return int(iterations), _unb64(salt), _unb64(digest)


def hashProblem(encoded) -> str | None:
    """
    What is wrong with a configured C{password_hash}, for the config check.
    """
    if not isinstance(encoded, str) or not encoded:
        return "required: python -m xmppchat.admin hash-password prints one"
    try:
        iterations, salt, digest = _parse(encoded)
    except (ValueError, TypeError):
        return f"not a {SCHEME}$<iterations>$<salt>$<hash> string (python -m xmppchat.admin hash-password)"
    if iterations < MIN_ITERATIONS or len(salt) < 8 or len(digest) != 32:
        return f"too weak: at least {MIN_ITERATIONS} iterations, an 8-byte salt and a SHA-256 hash"
    if iterations > MAX_ITERATIONS:
        return f"at most {MAX_ITERATIONS} iterations (each sign-in computes them)"
    return None


def verifyPassword(password: str, encoded: str) -> bool:
    """
    Whether C{password} matches C{encoded} (slow: run it in a thread).
    """
    iterations, salt, digest = _parse(encoded)
    given = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(given, digest)


@functools.cache
def _decoy(iterations: int) -> str:
    """Verified when the name is unknown, so that the answer takes as long."""
    return hashPassword("decoy", iterations, b"xmppchat-decoy!!")


@dataclass
class PanelSession:
    """
    One signed-in browser: the administrator, when it signed in and was
    last seen (epoch seconds), its nonce and CSRF token.
    """

    name: str
    created: int
    seen: int
    nonce: str
    csrf: str

    @property
    def revocationKey(self) -> str:
        """The key its sign-out is recorded under (L{ITokenStore.revokeToken})."""
        return hashlib.sha256(f"panel:{self.nonce}".encode()).hexdigest()


class Administrators:
    """
    The configured administrators and their session cookies.
    """

    def __init__(self, ops, secret: bytes = b"", clock=time.time):
        self.hashes = {table["name"]: table["password_hash"] for table in ops.administrators}
        self.idle = ops.panel_idle_minutes * 60
        self.lifetime = ops.panel_session_hours * 3600
        self.clock = clock
        # an unknown name costs what the dearest configured hash costs (no timing oracle)
        self.decoyIterations = max([_parse(h)[0] for h in self.hashes.values()] or [ITERATIONS])
        self._keys = {name: hmac.new(secret, b"xmppchat panel session\0" + h.encode(),
                                     hashlib.sha256).digest()
                      for name, h in self.hashes.items()}

    def check(self, name, password) -> bool:
        """
        Whether C{name}/C{password} are an administrator's (slow: thread).
        """
        encoded = self.hashes.get(name) if isinstance(name, str) else None
        if not isinstance(password, str):
            password = ""
        matches = verifyPassword(password, encoded or _decoy(self.decoyIterations))
        return matches and encoded is not None

    def _mac(self, name: str, payload: str) -> str:
        return _b64(hmac.new(self._keys[name], payload.encode(), hashlib.sha256).digest())

    def _session(self, name: str, created: int, seen: int, nonce: str) -> PanelSession:
        return PanelSession(name, created, seen, nonce, self._mac(name, f"csrf.{nonce}")[:32])

    def open(self, name: str) -> tuple[PanelSession, str]:
        """
        A new session of C{name} and its cookie value.
        """
        now = int(self.clock())
        session = self._session(name, now, now, secrets.token_urlsafe(16))
        return session, self.cookie(session)

    def cookie(self, session: PanelSession) -> str:
        payload = f"{session.name}.{session.created}.{session.seen}.{session.nonce}"
        return f"{payload}.{self._mac(session.name, payload)}"

    def session(self, value) -> PanelSession | None:
        """
        The live session a cookie value stands for, C{None} when it is
        forged, for an administrator no longer configured, or over.
        """
        if not isinstance(value, str) or len(value) > 512 or not value.isascii():
            return None
        parts = value.rsplit(".", 4)  # a name may hold dots; the other parts cannot
        if len(parts) != 5 or parts[0] not in self._keys:
            return None
        name, created, seen, nonce, mac = parts
        if not hmac.compare_digest(self._mac(name, ".".join(parts[:4])), mac):
            return None
        try:
            created, seen = int(created), int(seen)
        except ValueError:
            return None
        now = self.clock()
        if now - seen > self.idle or now - created > self.lifetime or seen > now + 60 \
                or created > seen:
            return None
        return self._session(name, created, seen, nonce)

    def refreshed(self, session: PanelSession) -> str | None:
        """
        The cookie with C{seen} moved to now, when it moved enough to send.
        """
        now = int(self.clock())
        if now - session.seen < SEEN_GRANULARITY:
            return None
        session.seen = now
        return self.cookie(session)

    def expiresAt(self, session: PanelSession) -> float:
        return session.created + self.lifetime


class SigninThrottle:
    """
    At most C{failures} wrong sign-ins per address, and C{NAME_FACTOR}
    times as many per name (so that one address cannot lock an
    administrator out), within C{window} seconds; then every sign-in for
    that key, right or wrong, is refused (429) until the oldest failure
    leaves the window.  An attempt counts as failed from the moment it is
    checked (L{attempt}) and is taken back when the password was right
    (L{forgive}): parallel guesses cannot slip in while the hashes run.
    Per process, bounded to L{MAX_THROTTLE_KEYS} keys (the oldest go first).
    """

    NAME_FACTOR = 4

    def __init__(self, failures: int, window: float, clock=time.time, maxKeys=MAX_THROTTLE_KEYS):
        self.failures = failures
        self.window = window
        self.clock = clock
        self.maxKeys = maxKeys
        self.seen: OrderedDict[str, list] = OrderedDict()

    def _limit(self, key: str) -> int:
        return self.failures * (self.NAME_FACTOR if key.startswith("name:") else 1)

    def _recent(self, key: str) -> list:
        stamps = self.seen.get(key)
        if stamps is None:
            return []
        cutoff = self.clock() - self.window
        stamps[:] = [t for t in stamps if t > cutoff]
        if not stamps:
            del self.seen[key]
        return stamps

    def retryAfter(self, *keys: str) -> int:
        """
        Seconds until a sign-in for C{keys} is allowed again (0: now).
        """
        wait = 0.0
        for key in keys:
            stamps, limit = self._recent(key), self._limit(key)
            if len(stamps) >= limit:
                wait = max(wait, stamps[-limit] + self.window - self.clock())
        return int(wait) + 1 if wait > 0 else 0

    def attempt(self, *keys: str) -> float:
        """
        Count a sign-in for C{keys} as failed until L{forgive}n; returns
        its stamp.
        """
        now = self.clock()
        for key in keys:
            stamps = self._recent(key)
            stamps.append(now)
            self.seen[key] = stamps[-self._limit(key):]
            self.seen.move_to_end(key)
        while len(self.seen) > self.maxKeys:
            self.seen.popitem(last=False)
        return now

    def forgive(self, stamp: float, *keys: str) -> None:
        """The attempt of C{stamp} succeeded: it is no failure."""
        for key in keys:
            stamps = self.seen.get(key)
            if stamps and stamp in stamps:
                stamps.remove(stamp)
                if not stamps:
                    del self.seen[key]

    def clear(self, *keys: str) -> int:
        """Forget C{keys} (an administrator's unlock); how many were there."""
        return sum(self.seen.pop(key, None) is not None for key in keys)
