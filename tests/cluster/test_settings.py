"""
The C{[cluster]} section and the C{--workers} option.
"""

from __future__ import annotations

import pytest

from xmppchat.cluster.node import defaultNodeId
from xmppchat.cluster.resp import parseRedisURI
from xmppchat.cluster.workers import parseWorkerFDs
from xmppchat.config import ConfigError, buildConfig


def test_defaultsOff():
    """Cluster mode is off by default (no redis_uri)."""
    config = buildConfig({})
    assert config.cluster.redis_uri == ""
    assert config.cluster.expiry_seconds >= 2 * config.cluster.heartbeat_seconds


def test_everyProblemReported():
    """A bad URI, node id and timing are all reported with their keys."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"cluster": {"redis_uri": "http://x", "node_id": "a b", "heartbeat_seconds": 5,
                                 "expiry_seconds": 6, "key_prefix": "a:b"}})
    text = "\n".join(e.value.problems)
    for key in ("cluster.redis_uri", "cluster.node_id", "cluster.expiry_seconds", "cluster.key_prefix"):
        assert key in text


def test_redisURI():
    """Host, port, password and database come out of a redis:// URI."""
    assert parseRedisURI("redis://:s%40cret@10.0.0.5:6380/2") == {
        "host": "10.0.0.5", "port": 6380, "password": "s@cret", "db": 2}
    assert parseRedisURI("redis://localhost")["port"] == 6379
    with pytest.raises(ValueError):
        parseRedisURI("redis://host/x")


def test_nodeIdAndWorkerFDs():
    """The default node id is hostname-pid; the workers' fd map parses."""
    assert defaultNodeId().rsplit("-", 1)[1].isdigit()
    assert parseWorkerFDs("c2s=3,c2s-tls=4") == {"c2s": 3, "c2s-tls": 4}


def test_workersNeedCluster(tmp_path, capsys):
    """--workers 2 without [cluster] stops with a readable message."""
    from xmppchat.tap import Options

    path = tmp_path / "x.toml"
    path.write_text('[server]\ndata_dir = "d"\n')
    with pytest.raises(SystemExit):
        Options().parseOptions(["--config", str(path), "--workers", "2"])
    assert "--workers needs cluster mode" in capsys.readouterr().err


def test_smQueueSeconds():
    """sm_queue_seconds is 0 (off) or at least twice expiry_seconds; durable queues are on by default."""
    assert buildConfig({}).cluster.sm_queue_seconds > 0
    assert buildConfig({"cluster": {"sm_queue_seconds": 0}}).cluster.sm_queue_seconds == 0
    for bad in (5, -1):
        with pytest.raises(ConfigError) as e:
            buildConfig({"cluster": {"sm_queue_seconds": bad}})
        assert "cluster.sm_queue_seconds" in "\n".join(e.value.problems)
