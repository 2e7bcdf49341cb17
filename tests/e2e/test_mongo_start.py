"""
End-to-end: a server configured for MongoDB that cannot reach it stops at
start with a clear message instead of serving without storage.
"""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.e2e.conftest import _env


def test_unreachableMongoStopsServer(tmp_path):
    """twistd with an unreachable MongoDB exits within seconds and names the server it tried."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "mongo.toml"
    config.write_text(f"""
[server]
domain = "localhost"
data_dir = "data"

[c2s]
interface = "127.0.0.1"
port = 0
tls_port = 0

[storage]
backend = "mongodb"
mongodb_uri = "mongodb://127.0.0.1:{port}/?directConnection=true"
mongodb_timeout_ms = 500
""")
    done = subprocess.run(
        [sys.executable, "-m", "twisted", "--log-file", str(tmp_path / "twistd.log"), "xmppchat",
         "--config", str(config)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr + (tmp_path / "twistd.log").read_text()
    assert f"storage failed to start: cannot use MongoDB at mongodb://127.0.0.1:{port}" in output
    assert not (tmp_path / "data" / "ports.json").exists()
