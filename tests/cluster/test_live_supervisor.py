"""
The C{--workers} supervisor's signals and its data dir lock with real
processes (issue 18 #5): C{twistd xmppchat --workers 2} on port 0 with a
private redis-server, as the operator drives it (SIGHUP for a renewed
certificate, SIGTERM to stop, SIGKILL when it hangs, a second start by
mistake).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.cluster.live import liveCluster
from tests.e2e.conftest import _env, startServer, stopServer
from tests.e2e.test_tlsreload import peerFingerprint, pemFingerprint, replaceFiles
from xmppchat.certs import makeCertificate

BOUND = 15  # seconds a worker may take to notice and stop
# twistd ends by re-raising the SIGTERM it handled (systemd counts that as a clean exit)
CLEAN = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with liveCluster(tmp_path_factory.mktemp("supervisor")) as running:
        yield running


def workersOf(supervisor) -> set:
    with open(f"/proc/{supervisor.process.pid}/task/{supervisor.process.pid}/children") as f:
        return {int(p) for p in f.read().split()}


def alive(pid: int) -> bool:
    """Whether C{pid} runs (a zombie waiting for its new parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def waitGone(pids, timeout=BOUND) -> float:
    start = time.monotonic()
    while any(alive(pid) for pid in pids):
        assert time.monotonic() - start < timeout, f"still running after {timeout} s: {pids}"
        time.sleep(0.1)
    return time.monotonic() - start


def launch(node, *args, log="second.log") -> subprocess.Popen:
    """The same C{twistd xmppchat} command line as C{node}'s (its config, its data dir), started again."""
    return subprocess.Popen(
        [sys.executable, "-m", "twisted", "--log-file", str(node.directory / log), "xmppchat",
         "--config", str(node.config), *args],
        cwd=node.directory, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def startAgain(node, *args, timeout=60) -> subprocess.CompletedProcess:
    """L{launch} until it exits; killed after C{timeout}."""
    process = launch(node, *args)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the second instance did not exit:\n{output}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def restartServes(node, *args) -> None:
    """L{launch} publishes its ports (it was not refused), then stops cleanly on SIGTERM."""
    ports = node.directory / "data" / "ports.json"
    process = launch(node, *args, log="again.log")
    try:
        deadline = time.monotonic() + 30
        while not ports.exists():
            assert process.poll() is None, (node.directory / "again.log").read_text()
            assert time.monotonic() < deadline, (node.directory / "again.log").read_text()
            time.sleep(0.05)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=BOUND)
    assert process.returncode in CLEAN, output


def assertRefused(done) -> None:
    """Exit 1 with exactly one line that names the lock file."""
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 1, done.stdout
    assert len(lines) == 1 and "xmppchat.lock" in lines[0] and "is running on" in lines[0], lines


def test_sighupReloadsEveryWorkersCertificate(cluster):
    """SIGHUP to the supervisor: the same worker PIDs keep running, every new TLS connection gets the new certificate, each worker re-reads the config; SIGINT stops all."""
    supervisor = cluster.startNode("hup", args=("--workers", "2"), nodeIds=("hup-w0", "hup-w1"))
    port = supervisor.ports["c2s-tls"]
    workers = workersOf(supervisor)
    assert len(workers) == 2
    assert peerFingerprint(port) == pemFingerprint((supervisor.directory / "server.crt").read_bytes())
    keyPEM, certPEM = makeCertificate(["localhost", "127.0.0.1"])
    replaceFiles(supervisor, keyPEM, certPEM)
    supervisor.process.send_signal(signal.SIGHUP)
    new = pemFingerprint(certPEM)
    deadline = time.monotonic() + BOUND
    streak = 0
    while streak < 20:  # 20 connections in a row: both workers' sockets (kernel hash) answer
        assert time.monotonic() < deadline, supervisor.log()[-4000:]
        assert supervisor.process.poll() is None, supervisor.log()[-4000:]
        streak = streak + 1 if peerFingerprint(port) == new else 0
        if not streak:
            time.sleep(0.1)
    while supervisor.log().count("SIGHUP: limits reloaded") < 2:  # each worker re-read its config file
        assert time.monotonic() < deadline, supervisor.log()[-4000:]
        time.sleep(0.1)
    assert supervisor.process.poll() is None
    assert workersOf(supervisor) == workers
    assert "Traceback" not in supervisor.log()
    supervisor.process.send_signal(signal.SIGINT)  # Ctrl-C stops as cleanly as SIGTERM
    assert supervisor.process.wait(timeout=BOUND) in (0, -signal.SIGINT)
    waitGone(workers)


def test_secondInstanceRefusedUntilTheFirstStops(cluster):
    """A second supervisor on the same data dir exits 1 with one line; SIGTERM stops the first and its workers cleanly; then it starts."""
    first = cluster.startNode("lock", args=("--workers", "2"), nodeIds=("lock-w0", "lock-w1"))
    workers = workersOf(first)
    assertRefused(startAgain(first, "--workers", "2"))
    assert first.process.poll() is None and workersOf(first) == workers
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=BOUND) in CLEAN
    waitGone(workers)
    assert not (first.directory / "data" / "ports.json").exists()
    restartServes(first, "--workers", "2")


def test_workersEndWhenTheSupervisorIsKilled(cluster):
    """SIGKILL of the supervisor: its workers stop within a bound, the port refuses connections, and a new start is not refused."""
    supervisor = cluster.startNode("kill", args=("--workers", "2"), nodeIds=("kill-w0", "kill-w1"))
    workers = workersOf(supervisor)
    assert len(workers) == 2
    supervisor.process.send_signal(signal.SIGKILL)
    supervisor.process.wait()
    waitGone(workers)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", supervisor.ports["c2s"]), timeout=5).close()
    os.remove(supervisor.directory / "data" / "ports.json")  # the killed supervisor left it
    cluster.nodes.pop("kill")
    restartServes(supervisor, "--workers", "2")


def test_singleProcessSecondInstanceRefused(tmp_path):
    """A second single-process server on the same data dir (ports 0: nothing else stops it) exits 1 with one line."""
    first = startServer(tmp_path)
    try:
        assertRefused(startAgain(first))
        assert first.process.poll() is None
    finally:
        stopServer(first)
