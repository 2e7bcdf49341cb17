"""
Failed-login throttling that slows and stops the guesser, never the
account's owner (RFC 6120 §13.11 and RFC 4422 §9: a server should limit
authentication attempts; issue 15 finding 5).  One L{LoginThrottle} serves
XMPP SASL and the REST logins of a process.

Three counters, each forgotten C{window} seconds after its last failure:

  - per (source address, account): after C{freeFailures} failures each
    further failure is answered later, the delay doubling from
    C{delayStep} up to C{maxDelay}; at C{lockoutFailures} that source may
    not try that account for C{lockoutSeconds}.  Nobody else is affected.
  - per source, over all accounts: at C{sourceFailures} the source is
    refused for C{lockoutSeconds} (ejabberd's C{mod_fail2ban} bans an
    address after C{c2s_max_auth_failures}, Prosody's C{mod_limit_auth}
    throttles per address likewise), except for the accounts that logged
    in from it within C{knownSeconds}: the other users behind the same NAT
    or proxy keep logging in.
  - per account, over all sources (distributed guessing): from
    C{accountFailures} on, every answer about that account to a source it
    has not logged in from is held for C{maxDelay} seconds, success or
    failure alike (so a guesser cannot stop waiting early to learn the
    result).  The owner is slowed, never refused.

Attempts refused during a lockout are not counted, so a lockout ends
C{lockoutSeconds} after it began; a success clears its (source, account)
counter.  L{unlock} (C{admin unlock}) clears everything about an address
or account.  At most C{maxTracked} counters and known pairs are kept, the
least recently updated dropped first.

Every lockout is a C{lockout} event (L{xmppchat.observe}): one warning
line in the log naming the source and the account (never the password),
and a count in the metrics.  C{admin unlock} runs in another process:
it leaves a request in storage (L{xmppchat.storage.unlocks}) that each
server's L{UnlockWatcher} applies within L{UNLOCK_POLL_SECONDS}.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet import task
from twisted.logger import Logger

from xmppchat import observe

log = Logger()

KNOWN_SECONDS = 30 * 86400
UNLOCK_POLL_SECONDS = 2


class _Counter:
    __slots__ = ("failures", "lastFailure", "lockedUntil")

    def __init__(self):
        self.failures = 0
        self.lastFailure = 0.0
        self.lockedUntil = 0.0

    def expiresAt(self, window: float) -> float:
        return max(self.lastFailure + window, self.lockedUntil)


class LoginThrottle:
    """
    Counts failed logins per (source, account), per source and per
    account.

    @param clock: an C{IReactorTime} (C{clock.seconds()} is the only call).
    """

    def __init__(self, clock, freeFailures=3, delayStep=1.0, maxDelay=8.0, lockoutFailures=10,
                 lockoutSeconds=300, window=600, sourceFailures=30, accountFailures=50,
                 knownSeconds=KNOWN_SECONDS, maxTracked=100_000):
        if maxTracked < 1:
            raise ValueError("maxTracked must be at least 1")
        self.clock = clock
        self.freeFailures = freeFailures
        self.delayStep = delayStep
        self.maxDelay = maxDelay
        self.lockoutFailures = lockoutFailures
        self.lockoutSeconds = lockoutSeconds
        self.window = window
        self.sourceFailures = sourceFailures
        self.accountFailures = accountFailures
        self.knownSeconds = knownSeconds
        self.maxTracked = maxTracked
        # (kind, ...) -> counter, least recently updated first
        self._counters: OrderedDict[tuple, _Counter] = OrderedDict()
        # (source, account) -> last successful login
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    @classmethod
    def fromConfig(cls, limits, clock) -> LoginThrottle:
        return cls(clock, freeFailures=limits.failed_logins_free,
                   lockoutFailures=limits.failed_logins_lockout,
                   lockoutSeconds=limits.failed_logins_lockout_seconds,
                   sourceFailures=limits.failed_logins_per_source,
                   accountFailures=limits.failed_logins_per_account)

    def __len__(self) -> int:
        return len(self._counters)

    # -- bookkeeping ------------------------------------------------------------

    def _get(self, key, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expiresAt(self.window) <= now:
            del self._counters[key]
            return None
        return counter

    def _expire(self, now: float) -> None:
        """
        Drop expired counters from the least recently updated end.
        """
        while self._counters:
            key, counter = next(iter(self._counters.items()))
            if counter.expiresAt(self.window) > now:
                return
            del self._counters[key]

    def _count(self, key, now: float) -> _Counter:
        counter = self._get(key, now)
        if counter is None:
            while len(self._counters) >= self.maxTracked:
                self._counters.popitem(last=False)
            counter = self._counters[key] = _Counter()
        else:
            self._counters.move_to_end(key)
        counter.failures += 1
        counter.lastFailure = now
        return counter

    def _isKnown(self, source, account, now: float) -> bool:
        stamp = self._known.get((source, account))
        return stamp is not None and now - stamp < self.knownSeconds

    # -- decisions --------------------------------------------------------------

    def refusedFor(self, source: str | None, account: str | None) -> float:
        """
        Seconds during which this source may not try this account (its
        pair is locked, or the source is and the account never logged in
        from it); 0 when the attempt may go on.
        """
        now = self.clock.seconds()
        waits = [0.0]
        pair = self._get(("pair", source, account), now)
        if pair is not None:
            waits.append(pair.lockedUntil - now)
        origin = self._get(("source", source), now)
        if origin is not None and origin.lockedUntil > now and not self._isKnown(source, account, now):
            waits.append(origin.lockedUntil - now)
        return max(waits)

    def delayFor(self, source: str | None, account: str | None, succeeded: bool) -> float:
        """
        Seconds to hold the answer to an attempt: a failure waits more as
        its (source, account) pair keeps failing; any answer about an
        account under distributed guessing waits C{maxDelay} unless the
        account has logged in from this source.
        """
        now = self.clock.seconds()
        delay = 0.0
        if not succeeded:
            pair = self._get(("pair", source, account), now)
            extra = (pair.failures if pair is not None else 0) - self.freeFailures
            if extra >= 0:
                delay = float(min(self.maxDelay, self.delayStep * 2 ** min(extra, 64)))
        if account is not None:
            target = self._get(("account", account), now)
            if (target is not None and target.failures >= self.accountFailures
                    and not self._isKnown(source, account, now)):
                delay = self.maxDelay
        return delay

    # -- outcomes ---------------------------------------------------------------

    def recordFailure(self, source: str | None, account: str | None) -> list[str]:
        """
        Count a failed attempt; returns what it locked out, for the log
        (C{"source 203.0.113.5"}, C{"source 203.0.113.5 for account
        alice"}).
        """
        now = self.clock.seconds()
        self._expire(now)
        locked = []
        if self._lock(self._count(("pair", source, account), now), self.lockoutFailures, now):
            locked.append(("pair", f"source {source} for account {account}"))
        if source is not None and self._lock(self._count(("source", source), now),
                                             self.sourceFailures, now):
            locked.append(("source", f"source {source} (for every account it has not logged into;"
                                     f" last tried: {account})"))
        if account is not None:
            target = self._count(("account", account), now)
            if target.failures == self.accountFailures:
                log.warn("Failed logins: account {account} is being guessed from many sources"
                         " (last: {source}); answers to new sources are held {delay} s",
                         account=account, source=source, delay=self.maxDelay)
        for scope, what in locked:
            observe.emit("lockout", what=what, scope=scope, seconds=self.lockoutSeconds)
        return [what for scope, what in locked]

    def _lock(self, counter: _Counter, threshold: int, now: float) -> bool:
        """
        Lock C{counter} if it reached C{threshold} and is not locked yet.
        """
        if counter.failures < threshold or counter.lockedUntil > now:
            return False
        counter.lockedUntil = now + self.lockoutSeconds
        return True

    def recordSuccess(self, source: str | None, account: str | None) -> None:
        """
        A successful login: the pair's counter goes, and the account is
        known at this source from now on.
        """
        self._counters.pop(("pair", source, account), None)
        if source is None or account is None:
            return
        key = (source, account)
        self._known.pop(key, None)
        while len(self._known) >= self.maxTracked:
            self._known.popitem(last=False)
        self._known[key] = self.clock.seconds()

    def accountState(self, account: str, limit: int = 20) -> dict:
        """
        What this process holds about C{account} (the admin panel's user
        view, issue 19): its failures over all sources in the window, and
        the sources locked out of it (at most C{limit}, the longest lock
        first) with when their lock ends (clock seconds); C{locked} while
        any is.  A source locked for every account (C{sourceFailures}) is
        that address's state, not listed here.
        """
        now = self.clock.seconds()
        total = self._get(("account", account), now)
        locks = sorted(((key[1], counter) for key, counter in self._counters.items()
                        if key[0] == "pair" and key[2] == account and counter.lockedUntil > now),
                       key=lambda lock: -lock[1].lockedUntil)
        return {
            "locked": bool(locks),
            "failures": total.failures if total is not None else 0,
            "until": locks[0][1].lockedUntil if locks else None,
            "sources": [{"address": source, "failures": counter.failures, "until": counter.lockedUntil}
                        for source, counter in locks[:limit]],
        }

    def unlock(self, key: str) -> int:
        """
        Forget every failure of source address or account C{key}
        (C{admin unlock}); the number of counters dropped.
        """
        doomed = [k for k in self._counters if key in k[1:]]
        for k in doomed:
            del self._counters[k]
        return len(doomed)


class UnlockWatcher:
    """
    Applies C{admin unlock} requests (L{xmppchat.storage.unlocks}) to this
    process's throttles, polling every C{interval} seconds.
    """

    def __init__(self, storage, throttles, clock, interval: float = UNLOCK_POLL_SECONDS):
        self.storage = storage
        self.throttles = throttles
        self.interval = interval
        self.seen: set = set()
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def poll(self):
        d = self.storage.unlocks.listUnlocks()
        d.addCallbacks(self._apply, self._failed)
        return d

    def _apply(self, requests) -> None:
        for unlockId, key in requests:
            if unlockId in self.seen:
                continue
            cleared = sum(throttle.unlock(key) for throttle in self.throttles)
            if cleared:
                log.info("Failed logins of {key} forgotten (admin unlock)", key=key)
        self.seen = {unlockId for unlockId, _ in requests}

    def _failed(self, failure) -> None:
        log.warn("Cannot read admin unlock requests: {error}", error=failure.getErrorMessage())
