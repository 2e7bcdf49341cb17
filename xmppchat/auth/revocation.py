"""
Ending the XMPP streams whose credentials were revoked (issue 15 finding 4).

Every stream remembers what SASL accepted (C{stream.credential}: the
session token's L{TokenRecord}, or C{None} for the password).  A
L{Revocation}, fired as the C{credentials-revoked} host event by the REST
service (logout, password change, account deletion), ends at once the
local streams it names and is relayed to the cluster nodes where the
account has sessions (a C{revoke} control frame, L{xmppchat.cluster.bus}),
which end theirs.

Stream error conditions (RFC 6120 §4.9.3), as Prosody's mod_c2s does:

- a revoked token or a changed password: C{reset} (§4.9.3.16: the
  credentials that established the stream "have been revoked during the
  life of the stream"; authentication must be negotiated again);
- a deleted account: C{not-authorized} (§4.9.3.12: the entity is no longer
  authorised to use the stream at all).

The admin API (L{xmppchat.ops.adminapi}: C{python -m xmppchat.admin
deluser} or C{passwd} while the server answers it) fires the same event.
What another process changes in storage (those commands when the API does
not answer, a REST service started on its own) is noticed by L{StreamCheck}:
every C{limits.session_recheck_seconds} one batched account read and one
batched token read for all the local streams.  It also ends the streams of an
account blocked elsewhere (issue 19).  The same read notices a
profile changed elsewhere (privacy settings) and fires C{account-updated}
for it (issue 17 item 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppchat.privacysettings import AccountUpdated

log = Logger()

RESET = "reset"
NOT_AUTHORIZED = "not-authorized"
# An account the administrator blocked (issue 19, Moderation): its streams
# end with <policy-violation/> (RFC 6120 §4.9.3.15, as an admin kick and
# ejabberd's ban_account), its new logins fail with SASL <account-disabled/>
# (§6.5.1, as ejabberd_auth's check of a banned account) and REST answers 403.
BLOCKED = "policy-violation"
BLOCKED_TEXT = "The account is blocked"


def credentialOf(session):
    """
    The L{TokenRecord} that authenticated C{session}'s stream, or C{None}
    when it was the password.
    """
    return getattr(session.stream, "credential", None)


@dataclass
class Revocation:
    """
    The event of C{credentials-revoked}: what of C{localpart}'s
    credentials no longer holds.

    @ivar tokens: hashes of revoked session tokens.
    @ivar password: the password changed.
    @ivar deleted: the account is gone (every stream ends).
    @ivar remote: relayed from another cluster node (not relayed again).
    """

    localpart: str
    tokens: tuple = ()
    password: bool = False
    deleted: bool = False
    text: str = "Your credentials were revoked"
    remote: bool = False

    @property
    def condition(self) -> str:
        return NOT_AUTHORIZED if self.deleted else RESET

    @property
    def reason(self) -> str:
        """The logout reason (L{xmppchat.observe} C{logout}) of the streams it ends."""
        if self.deleted:
            return "account deleted"
        return "password changed" if self.password else "credentials revoked"

    def ends(self, session) -> bool:
        if self.deleted:
            return True
        credential = credentialOf(session)
        if credential is None:
            return self.password
        return credential.tokenHash in self.tokens

    def toJSON(self) -> dict:
        return {"op": "revoke", "l": self.localpart, "t": list(self.tokens), "p": self.password,
                "d": self.deleted, "x": self.text}

    @classmethod
    def fromJSON(cls, payload: dict) -> Revocation:
        tokens = payload.get("t")
        return cls(str(payload.get("l")),
                   tuple(t for t in tokens if isinstance(t, str)) if isinstance(tokens, list) else (),
                   payload.get("p") is True, payload.get("d") is True,
                   str(payload.get("x") or Revocation.text), remote=True)


def endRevoked(host, revocation: Revocation) -> int:
    """
    End the local streams of C{revocation.localpart} it names and relay it
    to the cluster nodes holding the account's other sessions; returns how
    many local streams ended.
    """
    bare = f"{revocation.localpart}@{host.domain}"
    ended = 0
    for session in list(host.sessions.localSessionsOf(bare)):
        if not session.closed and revocation.ends(session):
            session.state["logout"] = revocation.reason
            session.close(revocation.condition, revocation.text)
            ended += 1
    cluster = host.cluster
    if cluster is not None and not revocation.remote and cluster.online:
        for node in {s.node for s in cluster.directory.sessionsOf(bare)}:
            cluster.bus.control(node, revocation.toJSON())
    if ended:
        log.info("Ended {count} stream(s) of {jid}: {text}", count=ended, jid=bare,
                 text=revocation.text)
    return ended


class StreamCheck:
    """
    The periodic check of the local streams against storage (changes made
    by other processes): an account that is gone ends its streams with
    C{not-authorized}, a password stream whose account's credentials
    changed and a token stream whose unexpired token is no longer stored end
    with C{reset}.  Runs only while there are streams.
    """

    def __init__(self, host, seconds: float):
        self.host = host
        self.seconds = seconds
        self._loop = None
        self._running = None

    def wake(self) -> None:
        """
        A stream was bound: make sure the check runs.
        """
        if self.seconds > 0 and (self._loop is None or not self._loop.running):
            self._loop = task.LoopingCall(self.check)
            self._loop.clock = self.host.clock
            self._loop.start(self.seconds, now=False).addErrback(
                lambda f: log.failure("Stream check loop failed", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def check(self):
        """
        One round (at most one at a time); stops the loop when no stream is
        left.
        """
        if self._running is not None:
            return None
        sessions = [s for s in self.host.sessions.all() if s.account is not None and not s.closed]
        if not sessions:
            self.stop()
            return None
        self._running = defer.ensureDeferred(self._check(sessions))
        self._running.addErrback(lambda f: log.warn("Stream check failed: {e}",
                                                     e=f.getErrorMessage()))
        self._running.addBoth(lambda _: setattr(self, "_running", None))
        return None

    async def _check(self, sessions) -> None:
        storage = self.host.storage
        now = self.host.clock.seconds()
        accounts = await storage.accounts.getAccounts({s.account.id for s in sessions})
        tokens = {c.tokenHash for c in map(credentialOf, sessions)
                  if c is not None and c.expiresAt > now}
        live = await storage.tokens.liveTokenHashes(tokens, now) if tokens else set()
        stale = {}
        for session in sessions:
            account = accounts.get(session.account.id)
            reason = self._reason(session, account, live, now)
            if reason is not None and not session.closed:
                log.info("Ending the stream of {jid}: {text}", jid=session.full, text=reason[1])
                session.close(*reason)
            elif account is not None and account.profile != session.account.profile:
                stale[account.id] = account
        for account in stale.values():
            # changed by another process: its privacy settings apply now
            # (issue 17 item 3); every node checks its own streams
            self.host.hooks.fire("account-updated", AccountUpdated(account, remote=True))

    @staticmethod
    def _reason(session, account, live, now):
        if account is None:
            return NOT_AUTHORIZED, "The account was deleted"
        if account.blocked:
            return BLOCKED, BLOCKED_TEXT
        credential = credentialOf(session)
        if credential is None:
            # the account as the stream's own SASL read it (a resumed
            # session's stream may have logged in after a change)
            known = getattr(session.stream, "account", None) or session.account
            if account.credentials != known.credentials:
                return RESET, "The password was changed"
        elif credential.expiresAt > now and credential.tokenHash not in live:
            return RESET, "The session token was revoked"
        return None


__all__ = ["Revocation", "StreamCheck", "endRevoked", "credentialOf", "BLOCKED", "BLOCKED_TEXT"]
