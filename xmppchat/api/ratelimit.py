"""
Request rate limits of the REST side-service: a token bucket per session
token, and one per client address (behind a C{[limits] trusted_proxies}
proxy the client its C{X-Forwarded-For} names) for calls without a known token
(session creation, signup with C{CB-AuthKey}, public downloads, unknown
tokens).  A call over its limit is answered 429 Too Many Requests with
C{Retry-After} (RFC 6585 §4, RFC 9110 §10.2.3) and a JSON
C{{"errors": ...}} body, before its body is parsed or its token looked up.

Config (C{[rest]}): C{token_rate_per_minute}/C{token_burst},
C{address_rate_per_minute}/C{address_burst} (a rate of 0 turns that limit
off) and C{rate_limit_keys}, the most tokens and addresses tracked each
(least recently used forgotten first, so memory stays bounded).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from twisted.logger import Logger

from xmppchat import observe
from xmppchat.api.json import ApiError
from xmppchat.auth.credentials import tokenHash

log = Logger()

TOO_MANY_REQUESTS = 429


class TokenBucket:
    """
    C{burst} tokens at most, refilled at C{rate} per second; a call takes
    one.
    """

    __slots__ = ("tokens", "stamp")

    def __init__(self, burst: float, now: float):
        self.tokens = float(burst)
        self.stamp = now

    def take(self, rate: float, burst: float, now: float) -> float:
        """
        Take a token: 0 if there was one, else the seconds until there is.
        """
        if now > self.stamp:
            self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
            self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class RateLimiter:
    """
    Token buckets by key, at most C{maxKeys} of them (least recently used
    dropped first: a dropped key starts again with a full bucket).

    @param perMinute: requests per minute in the long run; 0 = no limit.
    """

    def __init__(self, clock, perMinute: int, burst: int, maxKeys: int):
        self.clock = clock
        self.rate = perMinute / 60.0
        self.burst = max(1, burst)
        self.maxKeys = max(1, maxKeys)
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def configure(self, perMinute: int, burst: int, maxKeys: int) -> None:
        """
        New parameters at a reload (L{xmppchat.api.reload}): the buckets
        are kept, so a reload never hands a limited client a fresh burst;
        a raised burst adds its difference to every bucket (what was
        already spent stays spent), a lowered one caps them.  Turning the
        limit off forgets the buckets; lowering C{maxKeys} forgets the
        least recently used ones.
        """
        burst = max(1, burst)
        extra = max(0, burst - self.burst)
        self.rate, self.burst, self.maxKeys = perMinute / 60.0, burst, max(1, maxKeys)
        if not self.enabled:
            self._buckets.clear()
        for bucket in self._buckets.values():
            bucket.tokens = min(float(burst), bucket.tokens + extra)
        while len(self._buckets) > self.maxKeys:
            self._buckets.popitem(last=False)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key) -> bool:
        return key in self._buckets

    def take(self, key: str, create: bool = True) -> float:
        """
        Charge C{key} one request: 0 if allowed, else seconds to wait.  An
        unknown key gets a full bucket unless C{create} is false (then the
        call is allowed and nothing is tracked).
        """
        if not self.enabled:
            return 0.0
        now = self.clock.seconds()
        bucket = self._buckets.get(key)
        if bucket is None:
            if not create:
                return 0.0
            while len(self._buckets) >= self.maxKeys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = TokenBucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(self.rate, self.burst, now)

    def track(self, key: str) -> None:
        """
        Start tracking C{key} (a token that just proved valid) with a full
        bucket; the call that proved it was charged elsewhere.
        """
        if self.enabled and key not in self._buckets:
            self.take(key)
            self._buckets[key].tokens = float(self.burst)


def tooManyRequests(wait: float, what: str) -> ApiError:
    """
    The 429 answer, with C{Retry-After} in whole seconds (at least 1).
    """
    seconds = max(1, math.ceil(wait))
    error = ApiError(TOO_MANY_REQUESTS, {"base": [f"Too many {what}, retry in {seconds} s"]})
    error.headers = {b"retry-after": str(seconds).encode("ascii")}
    return error


class RestRateLimits:
    """
    The per-token and per-address limits of one REST site.

    A call with a C{CB-Token} already known to be valid is charged to that
    token; any other call (no token, or a token not yet seen valid) is
    charged to the client address, so neither fresh sessions nor made-up
    tokens get past the address limit.
    """

    def __init__(self, config, clock, clientAddress):
        self.clientAddress = clientAddress
        self.tokens = RateLimiter(clock, config.token_rate_per_minute, config.token_burst,
                                  config.rate_limit_keys)
        self.addresses = RateLimiter(clock, config.address_rate_per_minute,
                                     config.address_burst, config.rate_limit_keys)

    def configure(self, config) -> None:
        """
        The rates, bursts and C{rate_limit_keys} of a re-read C{[rest]}
        (L{RateLimiter.configure}).
        """
        self.tokens.configure(config.token_rate_per_minute, config.token_burst, config.rate_limit_keys)
        self.addresses.configure(config.address_rate_per_minute, config.address_burst,
                                 config.rate_limit_keys)

    def admit(self, request) -> None:
        """
        Charge this request; raise the 429 L{ApiError} if it is over its
        limit.
        """
        token = request.getHeader("cb-token")
        if token and self.tokens.enabled:
            hashed = tokenHash(token)
            if hashed in self.tokens:
                wait = self.tokens.take(hashed)
                if wait:
                    # the token's hash, never the token (a credential)
                    observe.emit("rate-limited", scope="rest-session", key=hashed[:12])
                    raise tooManyRequests(wait, "requests for this session")
                return
        address = self.clientAddress(request)
        wait = self.addresses.take(address)
        if wait:
            observe.emit("rate-limited", scope="rest-address", key=address)
            raise tooManyRequests(wait, "requests from this address")

    def authenticated(self, session) -> None:
        """
        C{session}'s token proved valid: charge its calls to it from now on.
        """
        if session is not None:
            self.tokens.track(session.tokenHash)


__all__ = ["TokenBucket", "RateLimiter", "RestRateLimits", "tooManyRequests"]
