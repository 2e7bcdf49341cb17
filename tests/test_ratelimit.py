"""
Tests for the token bucket and the per-address connection limits
(xmppchat.ratelimit).
"""

from twisted.internet import task

from xmppchat.config import buildConfig
from xmppchat.ratelimit import ConnectionLimiter, TokenBucket, isLoopback


def test_bucketBurstThenRate():
    """A bucket gives its burst at once, then one token per 1/rate seconds."""
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait(0.0) == 0.5
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert not bucket.take(0.5)


def test_bucketRefillCappedAtBurst():
    """An idle bucket refills to its burst, never beyond."""
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.isFull(100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]


def test_openConnectionsPerAddress():
    """Past maxPerAddress open connections an address is refused until one is released."""
    limiter = ConnectionLimiter(task.Clock(), maxPerAddress=2)
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is None
    assert "Too many connections" in limiter.admit("192.0.2.1")
    assert limiter.admit("192.0.2.2") is None
    limiter.release("192.0.2.1")
    assert limiter.admit("192.0.2.1") is None
    limiter.release("192.0.2.1")
    limiter.release("192.0.2.1")
    assert limiter.open == {"192.0.2.2": 1}


def test_newConnectionRatePerAddress():
    """New connections from one address are limited to a burst and then the rate."""
    clock = task.Clock()
    limiter = ConnectionLimiter(clock, rate=1, burst=2)
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is None
    assert "new connections" in limiter.admit("192.0.2.1")
    assert limiter.admit("192.0.2.9") is None
    clock.advance(1)
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is not None


def test_refusedConnectionsAreNotCounted():
    """A refused connection does not count as open."""
    clock = task.Clock()
    limiter = ConnectionLimiter(clock, maxPerAddress=5, rate=1, burst=1)
    limiter.admit("192.0.2.1")
    assert limiter.admit("192.0.2.1") is not None
    assert limiter.open["192.0.2.1"] == 1


def test_loopbackExemption():
    """With exemptLoopback, loopback addresses pass every limit and are not tracked."""
    limiter = ConnectionLimiter(task.Clock(), maxPerAddress=1, rate=1, burst=1, exemptLoopback=True)
    assert all(limiter.admit("127.0.0.1") is None for _ in range(100))
    assert limiter.admit("::1") is None
    assert limiter.open == {} and limiter.buckets == {}
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is not None


def test_trackedAddressesBounded():
    """The rate buckets kept stay at most maxTracked, dropping idle ones first."""
    clock = task.Clock()
    limiter = ConnectionLimiter(clock, rate=1, burst=1, maxTracked=10)
    for i in range(50):
        limiter.admit(f"10.0.0.{i}")
        limiter.release(f"10.0.0.{i}")
    assert len(limiter.buckets) <= 10


def test_isLoopback():
    """Loopback detection covers 127/8 and ::1, and not other or invalid addresses."""
    assert isLoopback("127.0.0.5") and isLoopback("::1")
    assert not isLoopback("192.0.2.1") and not isLoopback("not an address")


def test_configDefaultsAndValidation():
    """The [limits] keys have sane defaults, and a message rate without burst is refused."""
    limits = buildConfig({}).limits
    assert (limits.message_rate, limits.message_burst) == (20, 60)
    assert limits.connections_per_ip == 200 and limits.connection_rate_per_ip == 20
    assert limits.exempt_loopback is False
    try:
        buildConfig({"limits": {"message_rate": 5, "message_burst": 0}}, "x.toml")
    except Exception as e:
        assert "limits.message_burst" in str(e)
    else:
        raise AssertionError("accepted message_burst = 0")


def test_devConfigAdmitsBenchmark():
    """The dev config exempts loopback and allows the benchmark's message rates."""
    import os

    from xmppchat.config import loadConfig

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    limits = loadConfig(os.path.join(root, "conf", "xmppchat.dev.toml"), baseDir=root).limits
    assert limits.exempt_loopback
    assert limits.message_rate >= 10000 and limits.message_burst >= 10000
