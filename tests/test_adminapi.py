"""
The admin API's configuration and its answers without a key (issue 18
item 4); the live behaviour is in tests/e2e/test_adminapi.py and
tests/cluster/test_live_admin.py.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from tests.helpers import makeConfig
from tests.test_ops_listener import startOpsServer
from xmppchat.config import ConfigError, buildConfig
from xmppchat.ops.adminkey import MIN_KEY_LENGTH, loadAdminKey
from xmppchat.service import XMPPChatService


class NoKeyTests(TestCase):
    @defer.inlineCallbacks
    def test_offWithoutKey(self):
        """With [ops] on but no admin key, /admin/api/... is 404 even with a Bearer header."""
        service = yield startOpsServer(self)
        url = f"http://127.0.0.1:{service.portNumber('ops')}/admin/api/stats".encode()
        response = yield Agent(reactor).request(b"GET", url, Headers({b"authorization": [b"Bearer " + b"x" * 40]}))
        body = yield readBody(response)
        self.assertEqual(response.code, 404)
        self.assertIn(b"admin_key", body)


def test_keyTooShort():
    """An admin key shorter than MIN_KEY_LENGTH is a config error."""
    with pytest.raises(ConfigError) as info:
        buildConfig({"ops": {"admin_key": "k" * (MIN_KEY_LENGTH - 1)}})
    assert f"ops.admin_key: the admin key must be at least {MIN_KEY_LENGTH} characters" in str(info.value)


def test_keyAndFileExclusive(tmp_path):
    """admin_key and admin_key_file together are refused."""
    with pytest.raises(ConfigError) as info:
        buildConfig({"ops": {"admin_key": "k" * 40, "admin_key_file": "key"}}, baseDir=str(tmp_path))
    assert "not both" in str(info.value)


def test_keyFile(tmp_path):
    """admin_key_file: the first line, relative to the config's directory; unreadable is an error."""
    (tmp_path / "admin.key").write_text("s" * 40 + "\nignored\n")
    config = buildConfig({"ops": {"admin_key_file": "admin.key"}}, baseDir=str(tmp_path))
    assert config.ops.admin_key_file == str(tmp_path / "admin.key")
    assert loadAdminKey(config.ops) == "s" * 40
    with pytest.raises(ConfigError) as info:
        buildConfig({"ops": {"admin_key_file": "missing.key"}}, baseDir=str(tmp_path))
    assert "ops.admin_key: cannot read" in str(info.value)


def test_reloadLimits():
    """reload limits: new values for the config, the login throttle, the connection limiter and the message rate."""
    from xmppchat.ops.adminapi import reloadLimits

    service = XMPPChatService(makeConfig(), reactor)
    host = service.host
    throttle, limiter = host.loginThrottle, host.connectionLimiter
    throttle.recordFailure("192.0.2.1", "alice")
    fresh = makeConfig(limits={"failed_logins_lockout": 77, "connections_per_ip": 7, "message_rate": 3,
                               "message_burst": 9, "offline_messages_per_user": 12})
    assert reloadLimits(service, fresh) is True
    assert service.config.limits.offline_messages_per_user == 12
    assert host.loginThrottle is throttle and throttle.lockoutFailures == 77 and len(throttle) > 0
    assert host.connectionLimiter is limiter and limiter.maxPerAddress == 7
    rates = host.modules["ratelimit"]
    assert (rates.rate, rates.burst) == (3, 9)


def test_devConfigShipsNoAdminKey():
    """
    Security review finding 7: the dev config, public in the repository,
    holds no admin key (anyone could read it), so its admin API is off.
    """
    import os

    from xmppchat.config import loadConfig

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ops = loadConfig(os.path.join(root, "conf", "xmppchat.dev.toml"), baseDir=root).ops
    assert ops.enabled and (ops.admin_key, ops.admin_key_file) == ("", "")


def test_reloadLimitsAllOrNothing(monkeypatch):
    """Review 18 #6: when building the new limiters fails, no limit changed (none half-applied)."""
    from xmppchat.ratelimit import ConnectionLimiter
    from xmppchat.ops.adminapi import reloadLimits

    service = XMPPChatService(makeConfig(), reactor)
    before = service.config.limits.offline_messages_per_user

    def broken(*args):
        raise ValueError("bad limits")

    monkeypatch.setattr(ConnectionLimiter, "fromConfig", classmethod(lambda cls, *a: broken()))
    with pytest.raises(ValueError):
        reloadLimits(service, makeConfig(limits={"offline_messages_per_user": 12,
                                                 "failed_logins_lockout": 77}))
    assert service.config.limits.offline_messages_per_user == before
    assert service.host.loginThrottle.lockoutFailures != 77
