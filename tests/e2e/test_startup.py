"""
Issue 18 item 1: every failure before serving (a port in use, the ops port
included, a read-only data directory, an unreachable MongoDB or Redis, a
key that does not fit the certificate) ends the process with a non-zero
exit code within seconds and one line naming the reason, as a daemon
(C{twistd xmppchat}: the launcher must not hang nor report success), in
the foreground (C{twistd -n}) and under C{python -m twisted}; no pidfile
is left.  A good start reports success only once it serves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import _env, writeCertificates
from tests.helpers import readOnlyDirectory

BOUND = 15  # seconds a failed start may take, launcher included
TWISTD = str(Path(sys.executable).with_name("twistd"))
MODES = ("daemon", "foreground", "twist")


def command(mode: str, directory: Path, config: Path, args=(), uid=()) -> list:
    """
    The command line for C{mode}; C{args} for C{xmppchat}, C{uid} for twistd.
    """
    pidfile, logfile = str(directory / "x.pid"), str(directory / "x.log")
    xmppchat = ["xmppchat", "--config", str(config), *args]
    if mode == "daemon":
        return [TWISTD, *uid, "--pidfile", pidfile, "--logfile", logfile, *xmppchat]
    if mode == "foreground":
        return [TWISTD, "-n", *uid, "--pidfile", pidfile, "--logfile", logfile, *xmppchat]
    return [sys.executable, "-m", "twisted", "--log-file", logfile, *xmppchat]


def writeConfig(directory: Path, extra: str = "", dataDir: str = "data", generated: bool = False) -> Path:
    """
    A config on port 0 with a CA-signed certificate, or, when C{generated},
    none (the self-signed one generated at first start).
    """
    writeCertificates(directory)
    tls = "" if generated else '[tls]\ncertificate = "server.crt"\nprivate_key = "server.key"'
    config = directory / "x.toml"
    config.write_text(f"""
[server]
domain = "localhost"
data_dir = "{dataDir}"

[c2s]
interface = "127.0.0.1"
port = 0
tls_port = 0

{tls}
{extra}
""")
    return config


def run(mode: str, directory: Path, config: Path, args=(), uid=()) -> tuple:
    started = time.monotonic()
    done = subprocess.run(command(mode, directory, config, args, uid), cwd=directory, env=_env(),
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def assertFailed(mode: str, directory: Path, config: Path, reason: str, args=(), uid=()) -> None:
    """
    The start fails: non-zero exit within L{BOUND}, one C{xmppchat:} line
    with C{reason} on stderr (the daemon launcher adds twistd's own two),
    the reason in the log once it is open, no pidfile, no process left.
    """
    done, took = run(mode, directory, config, args, uid)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert took < BOUND
    lines = [line for line in done.stderr.splitlines() if line.startswith("xmppchat")]
    assert len(lines) == 1 and reason in lines[0], done.stderr
    # nothing else but, from a daemon's launcher, twistd's "An error has occurred" and "Please look"
    assert len(done.stderr.splitlines()) <= (3 if mode == "daemon" else 1), done.stderr
    log = directory / "x.log"
    if log.exists() and log.read_text():
        assert "xmppchat did not start: " in log.read_text()
        assert reason in log.read_text()
    assert not (directory / "x.pid").exists()
    assert not (directory / "data" / "ports.json").exists()
    deadline = time.monotonic() + 3
    while subprocess.run(["pgrep", "-f", str(config)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "a process of the failed start is still running"
        time.sleep(0.1)


def stopDaemon(directory: Path, pid: int) -> None:
    """SIGTERM the daemon; it removes its pidfile within L{BOUND} seconds."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + BOUND
    while (directory / "x.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (directory / "x.pid").exists()


@contextlib.contextmanager
def busyPort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("mode", MODES)
def test_busyPort(tmp_path, mode):
    """A c2s port in use: exit 1 at once with the address, no hanging launcher, no pidfile."""
    with busyPort() as port:
        config = writeConfig(tmp_path)
        config.write_text(config.read_text().replace("tls_port = 0", f"tls_port = {port}"))
        assertFailed(mode, tmp_path, config, f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("mode", MODES)
def test_busyOpsPort(tmp_path, mode):
    """The [ops] listener's port in use fails like any other."""
    with busyPort() as port:
        config = writeConfig(tmp_path, f"[ops]\nenabled = true\nport = {port}\n")
        assertFailed(mode, tmp_path, config, f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("mode", MODES)
def test_readOnlyDataDir(tmp_path, mode):
    """A data directory the server cannot write: exit 1 naming the database, not 0 after success."""
    config = writeConfig(tmp_path, dataDir="ro")
    with readOnlyDirectory(tmp_path / "ro"):
        assertFailed(mode, tmp_path, config, "storage failed to start")


@pytest.mark.parametrize("mode", MODES)
def test_unreachableMongo(tmp_path, mode):
    """An unreachable MongoDB: exit 1 after the configured timeout, naming the server."""
    config = writeConfig(tmp_path, """
[storage]
backend = "mongodb"
mongodb_uri = "mongodb://127.0.0.1:1/?directConnection=true"
mongodb_timeout_ms = 500
""")
    assertFailed(mode, tmp_path, config, "storage failed to start: cannot use MongoDB at mongodb://127.0.0.1:1")


@pytest.mark.parametrize("mode", MODES)
def test_unreachableRedis(tmp_path, mode):
    """Cluster mode with an unreachable Redis: exit 1 after expiry_seconds, the password not shown."""
    config = writeConfig(tmp_path, """
[cluster]
redis_uri = "redis://:s3cret-pw@127.0.0.1:1/0"
heartbeat_seconds = 1
expiry_seconds = 2
""")
    assertFailed(mode, tmp_path, config, "cannot reach Redis at 127.0.0.1:1 within 2 s")
    assert "s3cret-pw" not in (tmp_path / "x.log").read_text()


@pytest.mark.parametrize("mode", ("daemon", "foreground"))
def test_keyDoesNotFitCertificate(tmp_path, mode):
    """A key that does not fit the certificate: exit 1 with one line, before anything is bound."""
    config = writeConfig(tmp_path)
    from xmppchat.certs import makeCertificate

    (tmp_path / "server.key").write_bytes(makeCertificate(["localhost"])[0])
    assertFailed(mode, tmp_path, config, "does not fit")


def test_daemonReportsSuccessOnceServing(tmp_path):
    """A good daemon start returns 0 with the ports already published, and frees the launcher's stderr."""
    config = writeConfig(tmp_path, "[ops]\nenabled = true\nport = 0\n")
    done, took = run("daemon", tmp_path, config)  # capture_output: would hang on a held stderr
    pid = int((tmp_path / "x.pid").read_text())
    try:
        assert done.returncode == 0, done.stderr
        ports = (tmp_path / "data" / "ports.json").read_text()
        assert '"c2s"' in ports and '"ops"' in ports
        assert done.stderr == ""
    finally:
        stopDaemon(tmp_path, pid)


REDIS_DOWN = """
[cluster]
redis_uri = "redis://127.0.0.1:1/0"
heartbeat_seconds = 1
expiry_seconds = 2
"""


@pytest.mark.parametrize("mode", ("daemon", "foreground"))
def test_workersBusyPort(tmp_path, mode):
    """--workers: a port in use fails in the supervisor like in a single process."""
    with busyPort() as port:
        config = writeConfig(tmp_path, REDIS_DOWN)
        config.write_text(config.read_text().replace("tls_port = 0", f"tls_port = {port}"))
        assertFailed(mode, tmp_path, config, f"cannot listen on 127.0.0.1:{port}", ["--workers", "2"])


@pytest.mark.parametrize("mode", ("daemon", "foreground"))
def test_workersUnreachableRedis(tmp_path, mode):
    """--workers: the supervisor reports success only once its workers serve; a worker without Redis fails it."""
    config = writeConfig(tmp_path, REDIS_DOWN)
    assertFailed(mode, tmp_path, config, "cannot reach Redis at 127.0.0.1:1 within 2 s", ["--workers", "2"])
    assert "worker " in (tmp_path / "x.log").read_text()


def test_workersReportSuccessOnceServing(tmp_path):
    """--workers with Redis up: the daemon launcher returns 0 once both workers serve."""
    from tests.cluster.live import RedisProcess, requireRedis

    requireRedis()
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        config = writeConfig(tmp_path, f'[cluster]\nredis_uri = "{redis.uri}"\n')
        done, took = run("daemon", tmp_path, config, ["--workers", "2"])
        pid = int((tmp_path / "x.pid").read_text())
        try:
            assert done.returncode == 0, done.stderr
            log = (tmp_path / "x.log").read_text()
            assert log.count("xmppchat serving") == 2, log  # both workers, before the launcher returned
        finally:
            stopDaemon(tmp_path, pid)
    finally:
        redis.stop()
