"""
Rate and connection limits (RFC 6120 §13.12: a server should limit the
connections and the traffic of one client or address).

L{TokenBucket} is the classic token bucket: C{burst} tokens at most,
refilled at C{rate} per second; each event takes one.  L{ConnectionLimiter}
applies two per-address limits when a TCP connection is accepted, before
any parsing or TLS: at most C{maxPerAddress} open connections, and new
connections at C{rate} per second with bursts of C{burst}.  Loopback
addresses can be exempted (the dev config does, for the benchmark).
"""

from __future__ import annotations

import ipaddress

from twisted.logger import Logger

from xmppchat import observe


def isLoopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class TokenBucket:
    """
    C{burst} tokens, refilled continuously at C{rate} per second.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        """
        Take one token if there is one; whether there was.
        """
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def wait(self, now: float) -> float:
        """
        Seconds until a token is available.
        """
        missing = 1.0 - (self.tokens + (now - self.stamp) * self.rate)
        return max(0.0, missing / self.rate) if self.rate else float("inf")

    def isFull(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class ConnectionLimiter:
    """
    Per-address limits applied at accept time.

    @param maxPerAddress: open connections per address (0: no limit).
    @param rate: new connections per second per address (0: no limit).
    @param burst: new connections an address may open at once.
    @param maxTracked: addresses whose connection rate is tracked; beyond
        that, idle (full) buckets are dropped, then the oldest.
    """

    log = Logger()

    def __init__(self, clock, maxPerAddress=0, rate=0, burst=1, exemptLoopback=False,
                 maxTracked=100_000):
        self.clock = clock
        self.maxPerAddress = maxPerAddress
        self.rate = rate
        self.burst = max(1, burst)
        self.exemptLoopback = exemptLoopback
        self.maxTracked = maxTracked
        self.open: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}

    @classmethod
    def fromConfig(cls, limits, clock) -> ConnectionLimiter:
        return cls(clock, limits.connections_per_ip, limits.connection_rate_per_ip,
                   limits.connection_burst_per_ip, limits.exempt_loopback)

    def admit(self, address: str) -> str | None:
        """
        Count a new connection from C{address}; C{None} if it is admitted,
        else the reason it is refused (then it is not counted).
        """
        if self.exemptLoopback and isLoopback(address):
            return None
        count = self.open.get(address, 0)
        if self.maxPerAddress and count >= self.maxPerAddress:
            observe.emit("rate-limited", scope="connections", key=address)
            return f"Too many connections from {address} (at most {self.maxPerAddress})"
        if self.rate:
            now = self.clock.seconds()
            bucket = self.buckets.get(address)
            if bucket is None:
                if len(self.buckets) >= self.maxTracked:
                    self._shrink(now)
                bucket = self.buckets[address] = TokenBucket(self.rate, self.burst, now)
            if not bucket.take(now):
                observe.emit("rate-limited", scope="connection-rate", key=address)
                return f"Too many new connections from {address} (at most {self.rate}/s)"
        self.open[address] = count + 1
        return None

    def release(self, address: str) -> None:
        """
        A connection counted by L{admit} has ended.
        """
        count = self.open.get(address)
        if count is None:
            return
        if count <= 1:
            del self.open[address]
        else:
            self.open[address] = count - 1

    def _shrink(self, now: float) -> None:
        for address in [a for a, b in self.buckets.items() if b.isFull(now)]:
            del self.buckets[address]
        if len(self.buckets) >= self.maxTracked:
            for address in list(self.buckets)[: max(1, len(self.buckets) // 2)]:
                del self.buckets[address]
