"""
Failed-login throttling, per source address and per account, against
password guessing (RFC 6120 §13.11 and RFC 4422 §9: a server should limit
authentication attempts).

After C{freeFailures} failures within C{window} seconds, each further
answer is delayed, the delay doubling from C{delayStep} up to C{maxDelay};
at C{lockoutFailures} the address or account is refused outright
(C{temporary-auth-failure}, RFC 6120 §6.5.11) for C{lockoutSeconds}, and
every further failure before the counter expires locks it again.  A
counter is forgotten after C{window} seconds without failures (and never
before its lockout ends); a success clears the account's counter, never the
address's, so logging into one's own account does not reset guessing at
others.  At most C{maxTracked} counters are kept: the least recently
updated ones are dropped first.
"""

from __future__ import annotations

from collections import OrderedDict


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
    Counts failed logins per source address and per account.

    @param clock: an C{IReactorTime} (C{clock.seconds()} is the only call).
    """

    def __init__(self, clock, freeFailures=3, delayStep=1.0, maxDelay=8.0, lockoutFailures=10,
                 lockoutSeconds=300, window=600, maxTracked=100_000):
        if maxTracked < 1:
            raise ValueError("maxTracked must be at least 1")
        self.clock = clock
        self.freeFailures = freeFailures
        self.delayStep = delayStep
        self.maxDelay = maxDelay
        self.lockoutFailures = lockoutFailures
        self.lockoutSeconds = lockoutSeconds
        self.window = window
        self.maxTracked = maxTracked
        # key -> counter, least recently updated first
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counters)

    @staticmethod
    def _keys(address: str | None, localpart: str | None) -> list[tuple[str, str]]:
        keys = []
        if address is not None:
            keys.append(("address", address))
        if localpart is not None:
            keys.append(("account", localpart))
        return keys

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

    def _failuresFor(self, address, localpart, now: float) -> int:
        counters = (self._get(key, now) for key in self._keys(address, localpart))
        return max((c.failures for c in counters if c is not None), default=0)

    def delayFor(self, address: str | None, localpart: str | None) -> float:
        """
        Seconds to wait before answering this attempt: 0 until
        C{freeFailures} failures, then C{delayStep} doubling per failure,
        at most C{maxDelay}.
        """
        extra = self._failuresFor(address, localpart, self.clock.seconds()) - self.freeFailures
        if extra < 0:
            return 0.0
        return float(min(self.maxDelay, self.delayStep * 2 ** min(extra, 64)))

    def isLockedOut(self, address: str | None, localpart: str | None) -> bool:
        """
        Whether attempts from C{address} or for C{localpart} are refused
        for now.
        """
        now = self.clock.seconds()
        for key in self._keys(address, localpart):
            counter = self._get(key, now)
            if counter is not None and counter.lockedUntil > now:
                return True
        return False

    def lockedFor(self, address: str | None, localpart: str | None) -> float:
        """
        Seconds until attempts from C{address} and for C{localpart} are
        accepted again; 0 if they are now.
        """
        now = self.clock.seconds()
        counters = (self._get(key, now) for key in self._keys(address, localpart))
        return max([c.lockedUntil - now for c in counters if c is not None] + [0.0])

    def recordFailure(self, address: str | None, localpart: str | None) -> None:
        """
        Count a failed attempt against C{address} and C{localpart}.
        """
        now = self.clock.seconds()
        self._expire(now)
        for key in self._keys(address, localpart):
            counter = self._get(key, now)
            if counter is None:
                while len(self._counters) >= self.maxTracked:
                    self._counters.popitem(last=False)
                counter = self._counters[key] = _Counter()
            else:
                self._counters.move_to_end(key)
            counter.failures += 1
            counter.lastFailure = now
            if counter.failures >= self.lockoutFailures:
                counter.lockedUntil = now + self.lockoutSeconds

    def recordSuccess(self, address: str | None, localpart: str | None) -> None:
        """
        A successful login clears the account's counter (and its lockout);
        the address's is kept.
        """
        if localpart is not None:
            self._counters.pop(("account", localpart), None)
