"""
Tests for the C{[rest]} configuration section and its C{[[rest.apps]]}.
"""

from __future__ import annotations

import pytest

from xmppchat.config import ConfigError, buildConfig, loadConfig


def test_restDefaults():
    """REST is off by default on 127.0.0.1:8089 with a 1 MiB body limit."""
    rest = buildConfig({}).rest
    assert not rest.enabled and rest.interface == "127.0.0.1" and rest.port == 8089
    assert rest.max_body_bytes == 1048576 and rest.max_custom_data_bytes == 5120


def test_devConfigEnablesRest():
    """The dev config serves REST on 127.0.0.1:8089 with application 1 / dev-auth-key."""
    rest = loadConfig("conf/xmppchat.dev.toml").rest
    assert rest.enabled and rest.port == 8089 and rest.interface == "127.0.0.1"
    assert rest.apps == [{"application_id": 1, "auth_key": "dev-auth-key"}]


def test_exampleConfigValid():
    """The example config documents every key and validates."""
    from dataclasses import fields

    from xmppchat.config import RestConfig
    config = loadConfig("conf/xmppchat.example.toml")
    assert config.rest.apps
    with open("conf/xmppchat.example.toml") as f:
        text = f.read()
    for f_ in fields(RestConfig):
        assert f"{f_.name} =" in text or f_.name == "apps", f_.name
    for key in ("application_id", "auth_key", "jwt_secret"):
        assert key in text


def test_appValidation():
    """Each app needs a positive unique id and a key; unknown keys and short secrets are named."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"rest": {"port": 70000, "interface": "nowhere", "max_body_bytes": 0,
                              "data_classes": ["ok", "not ok"],
                              "apps": [{"application_id": 1, "auth_key": "k"},
                                       {"application_id": 1, "auth_key": "k2"},
                                       {"auth_key": "k3", "colour": "red"},
                                       {"application_id": 3, "auth_key": "", "jwt_secret": "short"},
                                       "nope"]}}, source="r.toml")
    problems = "\n".join(e.value.problems)
    for expected in ("r.toml: rest.port: port out of range", "rest.interface: not an IP address",
                     "rest.max_body_bytes: must be positive", "rest.data_classes: not a class name: 'not ok'",
                     "rest.apps[1].application_id: duplicate", "rest.apps[2].colour: unknown key",
                     "rest.apps[2].application_id: required", "rest.apps[3].auth_key: required",
                     "rest.apps[3].jwt_secret: must be at least 16", "rest.apps[4]: must be a table",
                     "rest.apps: 5 applications configured"):
        assert expected in problems, expected


def test_twoApplicationsRefused(tmp_path):
    """Issue 15 finding 2: a second [[rest.apps]] is refused at load and by --check-config."""
    import io

    from xmppchat.tap import checkConfig

    path = tmp_path / "two.toml"
    path.write_text('[rest]\nenabled = true\n'
                    '[[rest.apps]]\napplication_id = 1\nauth_key = "k1"\njwt_secret = "s1-0123456789abcdef"\n'
                    '[[rest.apps]]\napplication_id = 2\nauth_key = "k2"\njwt_secret = "s2-0123456789abcdef"\n')
    with pytest.raises(ConfigError) as e:
        loadConfig(str(path))
    text = "\n".join(e.value.problems)
    assert "rest.apps: 2 applications configured" in text
    assert "run one server per application" in text and "no application boundary" in text
    out = io.StringIO()
    assert checkConfig(str(path), out) == 1
    assert "run one server per application" in out.getvalue()
