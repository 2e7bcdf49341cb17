"""
Issue 19: the web admin panel's administrators, signed session cookies
and sign-in throttle (xmppchat.ops.panel.auth).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import tomllib

from xmppchat.config import ConfigError, buildConfig
from xmppchat.ops.panel.auth import (MIN_ITERATIONS, Administrators, SigninThrottle, hashPassword,
                                     hashProblem, verifyPassword)

HASH = hashPassword("right password", MIN_ITERATIONS)


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def administrators(clock, **ops):
    settings = dict(administrators=[{"name": "root", "password_hash": HASH}],
                    panel_idle_minutes=30, panel_session_hours=12)
    settings.update(ops)
    secret = settings.pop("secret", b"deployment secret")
    return Administrators(SimpleNamespace(**settings), secret, clock=clock)


def test_hashVerifiesOnlyItsPassword():
    assert verifyPassword("right password", HASH)
    assert not verifyPassword("wrong password", HASH)
    assert hashProblem(HASH) is None
    assert hashPassword("x", MIN_ITERATIONS) != hashPassword("x", MIN_ITERATIONS)  # salted


@pytest.mark.parametrize("bad", ["", "plain", "md5$1$aa$bb", f"pbkdf2-sha256$1000$"
                                 f"{HASH.split('$')[2]}${HASH.split('$')[3]}", None])
def test_unusableHashesAreNamed(bad):
    assert hashProblem(bad)


def test_checkNeedsNameAndPassword():
    admins = administrators(Clock())
    assert admins.check("root", "right password")
    assert not admins.check("root", "wrong")
    assert not admins.check("nobody", "right password")
    assert not admins.check(None, None)


def test_cookieIsSignedAndExpires():
    clock = Clock()
    admins = administrators(clock)
    session, cookie = admins.open("root")
    assert admins.session(cookie).csrf == session.csrf
    name, created, seen, nonce, mac = cookie.split(".")
    assert admins.session(".".join([name, created, str(int(seen) + 3600), nonce, mac])) is None
    assert admins.session(cookie[:-2] + "AA") is None
    assert admins.session("x" * 600) is None
    clock.now += 29 * 60
    live = admins.session(cookie)
    refreshed = admins.refreshed(live)  # used: the idle timeout slides
    clock.now += 29 * 60
    assert admins.session(cookie) is None  # the old cookie is idle too long
    assert admins.session(refreshed) is not None
    clock.now += 12 * 3600  # and no session outlives panel_session_hours
    assert admins.session(admins.refreshed(admins.session(refreshed) or live) or refreshed) is None


def test_changingThePasswordEndsSessions():
    clock = Clock()
    _, cookie = administrators(clock).open("root")
    other = administrators(clock, administrators=[
        {"name": "root", "password_hash": hashPassword("new password", MIN_ITERATIONS)}])
    assert other.session(cookie) is None


def test_throttleRefusesAfterFailuresUntilTheWindowPasses():
    clock = Clock()
    throttle = SigninThrottle(3, 900, clock=clock, maxKeys=4)
    for _ in range(3):
        assert throttle.retryAfter("address:a", "name:n") == 0
        throttle.attempt("address:a", "name:n")
    assert 899 <= throttle.retryAfter("address:a", "name:n") <= 901
    # one address cannot lock the name out from everywhere: names allow 4x
    assert throttle.retryAfter("address:b", "name:n") == 0
    for _ in range(9):
        throttle.attempt("address:b", "name:n")
    assert throttle.retryAfter("address:c", "name:n") > 0
    assert throttle.clear("name:n") == 1 and throttle.retryAfter("address:c", "name:n") == 0
    clock.now += 901
    assert throttle.retryAfter("address:a") == 0
    for key in "bcdefg":
        throttle.attempt(key)
    assert len(throttle.seen) <= 4


def test_aForgivenAttemptIsNoFailure():
    throttle = SigninThrottle(2, 900, clock=Clock())
    stamp = throttle.attempt("address:a")
    throttle.forgive(stamp, "address:a")
    throttle.attempt("address:a")
    assert throttle.retryAfter("address:a") == 0


def test_cookiesThatAreNotAsciiOrFromTheFutureAreRefused():
    clock = Clock()
    admins = administrators(clock)
    _, cookie = admins.open("root")
    assert admins.session(cookie + "\u00e9") is None
    name, created, seen, nonce, mac = cookie.split(".")
    forged = f"{name}.{int(created) + 10**6}.{seen}.{nonce}"
    assert admins.session(f"{forged}.{admins._mac(name, forged)}") is None


def test_unknownNamesCostTheDearestConfiguredHash():
    admins = administrators(Clock())
    assert admins.decoyIterations == MIN_ITERATIONS
    assert hashProblem(hashPassword("x", MIN_ITERATIONS).replace(f"${MIN_ITERATIONS}$", "$99999999$"))


def loadConfigText(text):
    return buildConfig(tomllib.loads(text))


def test_configNeedsAnAdministratorAndAUsableHash():
    with pytest.raises(ConfigError) as e:
        loadConfigText('[ops]\npanel = true\n')
    assert any("ops.panel" in p for p in e.value.problems)
    with pytest.raises(ConfigError) as e:
        loadConfigText('[ops]\npanel = true\n[[ops.administrators]]\nname = "a b"\npassword_hash = "x"\n')
    assert any("administrators[0].name" in p for p in e.value.problems)
    assert any("administrators[0].password_hash" in p for p in e.value.problems)
    config = loadConfigText(f'[ops]\npanel = true\n[[ops.administrators]]\nname = "root"\npassword_hash = "{HASH}"\n')
    assert config.ops.administrators[0]["name"] == "root"


def test_aNameWithDotsSignsIn():
    clock = Clock()
    admins = administrators(clock, administrators=[{"name": "alice.smith", "password_hash": HASH}])
    session, cookie = admins.open("alice.smith")
    assert admins.session(cookie).name == "alice.smith"


def test_theConfigAloneCannotForgeACookie():
    """Review 19 #5: the cookie key needs the storage's secret as well as the hash."""
    clock = Clock()
    _, cookie = administrators(clock).open("root")
    assert administrators(clock, secret=b"another deployment").session(cookie) is None
    assert administrators(clock).session(cookie) is not None


def test_aPanelOffLoopbackNeedsTLS():
    """Review 19 #4: no panel passwords in clear across a network."""
    admin = f'[[ops.administrators]]\nname = "root"\npassword_hash = "{HASH}"\n'
    with pytest.raises(ConfigError) as e:
        loadConfigText('[ops]\npanel = true\ninterface = "0.0.0.0"\n' + admin)
    assert any("ops.tls" in p for p in e.value.problems)
    assert loadConfigText('[ops]\npanel = true\ninterface = "::1"\n' + admin).ops.panel
    assert loadConfigText('[ops]\npanel = true\ntls = true\ninterface = "0.0.0.0"\n' + admin).ops.tls
