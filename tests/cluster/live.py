"""
A real cluster for integration tests: a private C{redis-server} on an
ephemeral loopback port and xmppchat nodes started with C{twistd}, sharing
one SQLite file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer, startServer, stopServer
from xmppchat.cluster.resp import RESPParser, encodeCommand

REDIS = shutil.which("redis-server")


def requireRedis():
    """
    Skip (or, under CI, fail) when redis-server is not installed.
    """
    if REDIS is None:
        reason = "redis-server is not installed (apt-get install -y redis-server)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """
    A throw-away Redis without persistence, restartable on the same port.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = None
        self.process = None

    def start(self):
        for _ in range(5):
            port = self.port or freePort()
            self.process = subprocess.Popen(
                [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.directory)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if self._command(port, "PING") == b"PONG":
                        self.port = port
                        return self
                except OSError:
                    time.sleep(0.05)
            self.process.kill()
            self.process.wait()
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args):
        return self._command(self.port, *args)

    @staticmethod
    def _command(port, *args):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(encodeCommand(args))
            parser = RESPParser()
            while True:
                data = s.recv(65536)
                if not data:
                    raise OSError("closed")
                replies = parser.feed(data)
                if replies:
                    return replies[0]


class Cluster:
    def __init__(self, directory: Path, redis: RedisProcess):
        self.directory = directory
        self.redis = redis
        self.database = directory / "shared.sqlite3"
        self.nodes: dict[str, RunningServer] = {}

    def startNode(self, name: str, args=(), nodeIds=None, extra: str = "") -> RunningServer:
        path = self.directory / name
        path.mkdir()
        extra += f"""
[cluster]
redis_uri = "{self.redis.uri}"
node_id = "{name}"
heartbeat_seconds = 1
expiry_seconds = 3
"""
        node = startServer(path, extra, storage=str(self.database), args=args)
        self.nodes[name] = node
        for nodeId in nodeIds or (name,):
            self.waitOnline(nodeId, node)
        return node

    def waitOnline(self, name: str, node=None, timeout: float = 20) -> None:
        """
        Until node C{name} registered in Redis.
        """
        deadline = time.monotonic() + timeout
        key = f"xmppchat:localhost:node:{name}:alive"
        while time.monotonic() < deadline:
            try:
                if self.redis.command("EXISTS", key) == 1:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        node = node or self.nodes.get(name)
        raise RuntimeError(f"node {name} did not join:\n{node.log() if node else ''}")

    def kill(self, name: str) -> None:
        node = self.nodes.pop(name)
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def stop(self) -> None:
        for node in self.nodes.values():
            stopServer(node)
        self.nodes.clear()


@contextlib.contextmanager
def liveCluster(directory: Path):
    """
    A L{Cluster} with its private redis-server under C{directory} (no
    node started yet), stopped on exit; skips without redis-server.
    """
    requireRedis()
    redis = RedisProcess(directory).start()
    running = Cluster(directory, redis)
    try:
        yield running
    finally:
        running.stop()
        redis.stop()


def workerOf(redis, client, workers) -> str | None:
    """
    Which of the node ids C{workers} has C{client}'s session (its
    session record in Redis), or C{None} yet.
    """
    for worker in workers:
        if redis.command("HEXISTS", f"xmppchat:localhost:node:{worker}:sessions", str(client.boundjid)):
            return worker
    return None
