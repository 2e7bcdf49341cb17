"""
Tests for L{xmppchat.config}: defaults, validation and problem reporting.
"""

import io

import pytest

from xmppchat.config import ConfigError, buildConfig, loadConfig
from xmppchat.tap import checkConfig


def test_defaults():
    """An empty configuration gives the dev defaults."""
    config = buildConfig({}, baseDir="/srv")
    assert config.server.domain == "localhost"
    assert config.server.muc_domain == "muc.localhost"
    assert config.c2s.port == 5222 and config.c2s.tls_port == 5223
    assert config.server.data_dir == "/srv/xmppchat-data"
    assert config.storage.path == "/srv/xmppchat-data/xmppchat.sqlite3"


def test_everyProblemReported():
    """All problems are listed at once, each with the file and its key."""
    with pytest.raises(ConfigError) as e:
        buildConfig({
            "server": {"domain": "bad domain@", "nosuchkey": 1},
            "c2s": {"port": "5222"},
            "bogus": {},
        }, source="x.toml")
    problems = e.value.problems
    assert any("x.toml: server.nosuchkey: unknown key" in p for p in problems)
    assert any("x.toml: c2s.port: expected int" in p for p in problems)
    assert any("x.toml: bogus: unknown section" in p for p in problems)


def test_validation():
    """Semantic checks name the key: domain, ports, storage, limits, modules."""
    with pytest.raises(ConfigError) as e:
        buildConfig({
            "server": {"domain": "user@example.com"},
            "c2s": {"port": 70000},
            "storage": {"backend": "oracle"},
            "limits": {"max_stanza_bytes": 100, "ping_timeout": -1},
            "modules": {"enabled": ["ping", "teleport"]},
            "tls": {"certificate": "/nonexistent.pem"},
        }, source="y.toml")
    text = "\n".join(e.value.problems)
    for key in ("server.domain", "c2s.port", "storage.backend", "limits.max_stanza_bytes",
                "limits.ping_timeout", "modules.enabled", "tls"):
        assert f"y.toml: {key}:" in text, key


def test_offlineShares():
    """The offline-queue shares (issue 15 finding 8) default to 25/25/50 % and must be percentages."""
    limits = buildConfig({}).limits
    assert (limits.offline_share_per_sender, limits.offline_share_per_dialog,
            limits.offline_share_dialogs) == (25, 25, 50)
    with pytest.raises(ConfigError) as e:
        buildConfig({"limits": {"offline_share_per_sender": 0, "offline_share_per_dialog": 101,
                                "offline_share_dialogs": -5}}, source="z.toml")
    text = "\n".join(e.value.problems)
    for key in ("offline_share_per_sender", "offline_share_per_dialog", "offline_share_dialogs"):
        assert f"z.toml: limits.{key}: must be a percentage" in text, key


def test_quotasValidated():
    """[quotas]: defaults, 0 is off, negatives and a too short upload age are refused (issue 15 finding 15)."""
    config = buildConfig({"quotas": {"records_per_user": 0}})
    assert config.quotas.records_per_user == 0 and config.quotas.blobs_per_user == 1000
    assert config.quotas.incomplete_upload_seconds == 86400
    with pytest.raises(ConfigError) as e:
        buildConfig({"quotas": {"blobs_per_user": -1, "incomplete_upload_seconds": 60,
                                "sweep_seconds": 0}}, source="q.toml")
    text = "\n".join(e.value.problems)
    for key in ("blobs_per_user", "incomplete_upload_seconds", "sweep_seconds"):
        assert f"q.toml: quotas.{key}:" in text, key


def test_profileQuotasValidated():
    """[quotas] vCard and private XML sizes (issue 16): defaults, 0 is off, negatives refused."""
    config = buildConfig({"quotas": {"vcard_max_bytes": 0}})
    assert config.quotas.vcard_max_bytes == 0 and config.quotas.private_max_bytes == 65536
    assert config.quotas.private_namespaces_per_user == 100
    with pytest.raises(ConfigError) as e:
        buildConfig({"quotas": {"vcard_max_bytes": -1, "private_max_bytes": -1,
                                "private_namespaces_per_user": -1}}, source="p.toml")
    text = "\n".join(e.value.problems)
    for key in ("vcard_max_bytes", "private_max_bytes", "private_namespaces_per_user"):
        assert f"p.toml: quotas.{key}:" in text, key


def test_pepValidated():
    """[pep] (issue 16 item 1): the quotas and the caps cache have defaults and must be at least 1."""
    config = buildConfig({})
    assert (config.pep.max_nodes_per_user, config.pep.max_items_per_node, config.pep.max_item_bytes,
            config.pep.caps_cache_size) == (64, 256, 131072, 2000)
    assert "pep" in config.modules.enabled
    with pytest.raises(ConfigError) as e:
        buildConfig({"pep": {"max_nodes_per_user": 0, "caps_cache_size": -1}}, source="p.toml")
    text = "\n".join(e.value.problems)
    for key in ("max_nodes_per_user", "caps_cache_size"):
        assert f"p.toml: pep.{key}: must be at least 1" in text, key


def test_boolIsNotInt():
    """A boolean where an integer is expected is refused."""
    with pytest.raises(ConfigError):
        buildConfig({"c2s": {"port": True}})


def test_loadFileErrors(tmp_path):
    """An unreadable or invalid TOML file is one clear problem."""
    with pytest.raises(ConfigError) as e:
        loadConfig(str(tmp_path / "missing.toml"))
    assert "cannot read" in e.value.problems[0]
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError) as e:
        loadConfig(str(bad))
    assert "not valid TOML" in e.value.problems[0]


def test_shippedConfigsAreValid():
    """Both configuration files in conf/ pass validation."""
    out = io.StringIO()
    assert checkConfig("conf/xmppchat.dev.toml", out) == 0
    assert checkConfig("conf/xmppchat.example.toml", out) == 0


def test_checkConfigListsProblems(tmp_path):
    """--check-config prints every problem and returns a non-zero exit code."""
    path = tmp_path / "c.toml"
    path.write_text('[server]\ndomain = 5\n[c2s]\nport = -1\n')
    out = io.StringIO()
    assert checkConfig(str(path), out) == 1
    text = out.getvalue()
    assert "c.toml: server.domain: expected str" in text
    assert "problem(s) found" in text


def test_mongoSettingsValidated():
    """The MongoDB pool size and timeout must be positive."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"storage": {"backend": "mongodb", "mongodb_pool_size": 0,
                                 "mongodb_timeout_ms": -5}}, source="m.toml")
    text = "\n".join(e.value.problems)
    assert "m.toml: storage.mongodb_pool_size: must be at least 1" in text
    assert "m.toml: storage.mongodb_timeout_ms: must be at least 1" in text
    config = buildConfig({"storage": {"backend": "mongodb", "mongodb_timeout_ms": 800}})
    assert (config.storage.mongodb_timeout_ms, config.storage.mongodb_pool_size) == (800, 8)


def test_dialogExtensionFields():
    """[dialogs] extension_fields (issue 17 item 5): none by default; at most 3 distinct stored names that no dialog field, list parameter or server key takes."""
    assert buildConfig({}).dialogs.extension_fields == []
    assert buildConfig({"dialogs": {"extension_fields": ["category", "city-2"]}}).dialogs.extension_fields == [
        "category", "city-2"]
    for fields, expected in ((["a", "b", "c", "d"], "at most 3"), (["a", "a"], "twice"),
                             (["a.b"], "invalid"), (["type"], "dialog field"),
                             (["limit"], "list parameter"), (["muc_room"], "server's own"),
                             (["occupants_count"], "dialog field"),
                             # the admin panel's dialog search's own (review 19 A8)
                             (["q"], "list parameter"), (["user"], "list parameter"),
                             ("category", "expected list"), ([1], "invalid")):
        with pytest.raises(ConfigError) as e:
            buildConfig({"dialogs": {"extension_fields": fields}}, source="d.toml")
        text = "\n".join(e.value.problems)
        assert "d.toml: dialogs.extension_fields:" in text and expected in text, (fields, text)


def test_queryCostLimitsValidated():
    """Issue 15 finding 3: query limits and read connections are validated; 0 turns the time limit and the readers off."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"storage": {"read_connections": -1, "query_timeout_ms": -1},
                     "rest": {"max_filters": 0, "max_filter_values": 0,
                              "max_filter_value_length": 0}}, source="q.toml")
    text = "\n".join(e.value.problems)
    for key in ("storage.read_connections", "storage.query_timeout_ms"):
        assert f"q.toml: {key}: must be 0 (off) or positive" in text
    for key in ("max_filters", "max_filter_values", "max_filter_value_length"):
        assert f"q.toml: rest.{key}: must be positive" in text
    config = buildConfig({"storage": {"read_connections": 0, "query_timeout_ms": 0}})
    assert (config.storage.read_connections, config.storage.query_timeout_ms) == (0, 0)
    defaults = buildConfig({})
    assert (defaults.storage.read_connections, defaults.storage.query_timeout_ms) == (2, 2000)
    assert (defaults.rest.max_filters, defaults.rest.max_filter_values,
            defaults.rest.max_filter_value_length) == (20, 100, 1024)


def test_mamArchiveKeys():
    """Issue 16 (XEP-0313): dialogs.archive_chat is a bool that may be off; mam_max_dialogs must be >= 1."""
    config = buildConfig({})
    assert config.dialogs.archive_chat is True and config.dialogs.mam_max_dialogs == 500
    assert buildConfig({"dialogs": {"archive_chat": False}}).dialogs.archive_chat is False
    for section, key in (({"mam_max_dialogs": 0}, "dialogs.mam_max_dialogs"),
                         ({"archive_chat": "yes"}, "dialogs.archive_chat")):
        with pytest.raises(ConfigError) as e:
            buildConfig({"dialogs": section})
        assert key in str(e.value)


def test_moderationClassesAndFields():
    """[moderation] (issue 19): the ConnectyCube recipe's names by default; bad or clashing names refused."""
    moderation = buildConfig({}).moderation
    assert (moderation.user_reports_class, moderation.reported_user_field) == ("UserReports",
                                                                              "reportedUserId")
    assert (moderation.message_reports_class, moderation.reported_message_field,
            moderation.reason_field) == ("MessageReports", "reportedMessageId", "reason")
    with pytest.raises(ConfigError) as e:
        buildConfig({"moderation": {"user_reports_class": "User Reports",
                                    "message_reports_class": "User Reports",
                                    "reported_dialog_field": "a.b", "reason_field": "user_id",
                                    "handled_field": "reportedUserId"}})
    text = "\n".join(e.value.problems)
    for key in ("user_reports_class", "message_reports_class", "reported_dialog_field",
                "reason_field", "handled_field"):
        assert f"moderation.{key}:" in text
    assert buildConfig({"moderation": {"user_reports_class": "Complaints",
                                       "reported_user_field": "who"}}).moderation.reported_user_field == "who"
