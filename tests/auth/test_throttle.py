"""
The failed-login throttle (issue 15 finding 5): the guesser is slowed and
stopped, the account's owner elsewhere is not.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.c2s.test_negotiation import newStream, plain
from tests.helpers import HostHarness, xml
from tests.storage.test_contract import BACKENDS, openBackend, result
from xmppchat import observe
from xmppchat.auth.throttle import LoginThrottle, UnlockWatcher
from xmppchat.config import ConfigError, buildConfig

ATTACKER, OWNER, NEIGHBOUR = "203.0.113.66", "198.51.100.7", "203.0.113.66"


def throttle(**kwargs) -> LoginThrottle:
    clock = Clock()
    clock.advance(1_000_000)
    return LoginThrottle(clock, **kwargs)


def fail(t, source, account, times=1):
    locked = []
    for _ in range(times):
        assert not t.refusedFor(source, account)
        locked += t.recordFailure(source, account)
    return locked


def test_wrongPasswordsElsewhereDoNotLockTheOwnerOut():
    """Ten wrong passwords (and one per window after) lock the guesser's pair, not the owner's login."""
    t = throttle()
    fail(t, ATTACKER, "victim", 10)
    assert t.refusedFor(ATTACKER, "victim") == 300
    assert t.refusedFor(OWNER, "victim") == 0
    assert t.delayFor(OWNER, "victim", True) == 0
    for _ in range(5):
        t.clock.advance(301)
        fail(t, ATTACKER, "victim")
        assert t.refusedFor(ATTACKER, "victim") == 300
        assert t.refusedFor(OWNER, "victim") == 0


def test_pairFailuresAreDelayedThenLocked():
    """After the free failures each failure of a pair waits longer (capped); others are not delayed."""
    t = throttle(freeFailures=3, lockoutFailures=10)
    delays = []
    for _ in range(9):
        delays.append(t.delayFor(ATTACKER, "victim", False))
        t.recordFailure(ATTACKER, "victim")
    assert delays == [0, 0, 0, 1, 2, 4, 8, 8, 8]
    assert t.delayFor(OWNER, "victim", False) == 0
    assert t.delayFor(ATTACKER, "victim", True) == 0


def test_lockoutEndsAfterItsTimeWhenNothingIsCounted():
    """Refused attempts are not counted: the pair lock ends lockoutSeconds after it began."""
    t = throttle(lockoutSeconds=60)
    fail(t, ATTACKER, "victim", 10)
    t.clock.advance(59)
    assert t.refusedFor(ATTACKER, "victim") == 1
    t.clock.advance(1)
    assert t.refusedFor(ATTACKER, "victim") == 0


def test_sourceGuessingManyAccountsIsLockedOut():
    """A source failing on many accounts is refused for every account that never logged in from it."""
    t = throttle(sourceFailures=5)
    t.recordSuccess(NEIGHBOUR, "colleague")
    locked = fail(t, ATTACKER, "a", 1) + fail(t, ATTACKER, "b", 2) + fail(t, ATTACKER, "c", 2)
    assert any(what.startswith(f"source {ATTACKER}") for what in locked)
    assert t.refusedFor(ATTACKER, "d") == 300
    # the user behind the same NAT who logged in from it before still gets in
    assert t.refusedFor(NEIGHBOUR, "colleague") == 0
    # other sources are not affected
    assert t.refusedFor(OWNER, "d") == 0


def test_distributedGuessingHoldsAnswersButNeverRefuses():
    """Failures on one account from many sources hold the answers to new sources, never refuse them."""
    t = throttle(accountFailures=20)
    t.recordSuccess(OWNER, "victim")
    for i in range(40):
        fail(t, f"192.0.2.{i}", "victim")
    assert t.refusedFor("198.51.100.99", "victim") == 0
    assert t.delayFor("198.51.100.99", "victim", True) == t.maxDelay
    assert t.delayFor("198.51.100.99", "victim", False) == t.maxDelay
    # where the owner logged in before: no wait
    assert t.delayFor(OWNER, "victim", True) == 0
    assert t.delayFor("198.51.100.99", "bystander", True) == 0


def test_successClearsThePairOnly():
    """A success forgets its pair's failures; the source's count over all accounts stays."""
    t = throttle(sourceFailures=4)
    fail(t, ATTACKER, "a", 3)
    t.recordSuccess(ATTACKER, "mine")
    t.recordSuccess(ATTACKER, "a")
    assert t.delayFor(ATTACKER, "a", False) == 0
    fail(t, ATTACKER, "b")
    assert t.refusedFor(ATTACKER, "c") > 0


def test_unlockByAddressOrAccount():
    """unlock(ip) and unlock(account) forget the failures that involve them."""
    t = throttle(lockoutFailures=3, sourceFailures=5)
    fail(t, ATTACKER, "a", 2)
    fail(t, ATTACKER, "victim", 3)
    fail(t, OWNER, "victim", 3)
    assert t.refusedFor(ATTACKER, "x") and t.refusedFor(OWNER, "victim")
    assert t.unlock(ATTACKER) == 3
    assert not t.refusedFor(ATTACKER, "x") and not t.refusedFor(ATTACKER, "victim")
    assert t.refusedFor(OWNER, "victim")
    t.unlock("victim")
    assert not t.refusedFor(OWNER, "victim") and len(t) == 2  # source OWNER, account a


def test_accountStateListsTheSourcesLockedOut():
    """accountState: the account's failures, the sources locked out of it (longest first), none after unlock."""
    t = throttle(lockoutFailures=3, lockoutSeconds=60)
    assert t.accountState("victim") == {"locked": False, "failures": 0, "until": None, "sources": []}
    fail(t, ATTACKER, "victim", 3)
    t.clock.advance(10)
    fail(t, OWNER, "victim", 3)
    fail(t, ATTACKER, "bystander", 1)
    now = t.clock.seconds()
    assert t.accountState("victim") == {
        "locked": True, "failures": 6, "until": now + 60,
        "sources": [{"address": OWNER, "failures": 3, "until": now + 60},
                    {"address": ATTACKER, "failures": 3, "until": now + 50}]}
    assert len(t.accountState("victim", limit=1)["sources"]) == 1
    t.clock.advance(55)
    assert [s["address"] for s in t.accountState("victim")["sources"]] == [OWNER]
    t.unlock("victim")
    assert t.accountState("victim") == {"locked": False, "failures": 0, "until": None, "sources": []}
    assert t.accountState("bystander")["failures"] == 1


def test_lockoutsAreReportedWithoutPasswords():
    """A lockout is one lockout event naming source and account (the log's line: tests/ops)."""
    events = []

    def seen(name, fields):
        events.append((name, fields))

    observe.addObserver(seen)
    try:
        t = throttle(lockoutFailures=2)
        fail(t, ATTACKER, "victim", 2)
    finally:
        observe.removeObserver(seen)
    assert events == [("lockout", {"what": f"source {ATTACKER} for account victim", "scope": "pair",
                                   "seconds": 300})]


def test_boundedMemory():
    """At most maxTracked counters are kept."""
    t = throttle(maxTracked=50)
    for i in range(500):
        t.recordFailure(f"10.0.{i // 250}.{i % 250}", f"user{i}")
    assert len(t) <= 50


def test_unlockWatcherAppliesAdminRequests():
    """A request stored by `admin unlock` (another process) is applied once by the polling server, on both backends."""
    for backend in BACKENDS:
        clock = Clock()
        clock.advance(1_700_000_000)
        storage = openBackend(backend, clock)
        t = LoginThrottle(clock, sourceFailures=2)
        fail(t, ATTACKER, "victim", 2)
        watcher = UnlockWatcher(storage, [t], clock, interval=2)
        watcher.start()
        assert t.refusedFor(ATTACKER, "other")
        result(storage.unlocks.addUnlock(ATTACKER))
        clock.advance(2)
        assert not t.refusedFor(ATTACKER, "other")
        fail(t, ATTACKER, "victim", 2)
        clock.advance(2)
        assert t.refusedFor(ATTACKER, "other"), "an applied request is not applied again"
        clock.advance(86401)
        result(storage.unlocks.addUnlock("victim"))
        assert [key for _, key in result(storage.unlocks.listUnlocks())] == ["victim"]
        watcher.stop()
        result(storage.stop())


def test_configKeys():
    """failed_logins_per_source and failed_logins_per_account have defaults and must be at least 1."""
    limits = buildConfig({}).limits
    assert (limits.failed_logins_per_source, limits.failed_logins_per_account) == (30, 50)
    t = LoginThrottle.fromConfig(limits, Clock())
    assert (t.sourceFailures, t.accountFailures, t.lockoutFailures) == (30, 50, 10)
    with pytest.raises(ConfigError) as caught:
        buildConfig({"limits": {"failed_logins_per_source": 0, "failed_logins_per_account": -1}})
    text = str(caught.value)
    assert "limits.failed_logins_per_source" in text and "limits.failed_logins_per_account" in text


def saslLogin(h, peer, user, password):
    """One PLAIN attempt from C{peer}; (answer element name, seconds it took)."""
    stream, transport = newStream(h, secure=True, peer=peer)
    stream.elementReceived(xml(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                               f"{plain(user, password)}</auth>"))
    waited = 0.0
    while not transport.sent and waited < 60:
        h.clock.advance(0.5)
        waited += 0.5
    return transport.sent[0].name, waited


def test_saslDistributedGuessingHoldsButNeverRefusesTheOwner():
    """Over SASL: after many sources guessed alice's password, her right password from a new address succeeds, 8 s later; from her usual address at once."""
    h = HostHarness(limits={"failed_logins_per_account": 5})
    h.addUser("alice", "pw")
    assert saslLogin(h, "198.51.100.7", "alice", "pw") == ("success", 0)
    for i in range(6):
        assert saslLogin(h, f"192.0.2.{i}", "alice", "guess")[0] == "failure"
    assert saslLogin(h, "203.0.113.50", "alice", "pw") == ("success", 8)
    assert saslLogin(h, "198.51.100.7", "alice", "pw") == ("success", 0)
