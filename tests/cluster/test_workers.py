"""
The C{--workers} supervisor on a fake reactor: one socket per worker on
each port, restarts with back-off, SIGTERM on stop.
"""

from __future__ import annotations

import json
import socket

from twisted.internet import error, task
from twisted.python.failure import Failure

from tests.helpers import makeConfig
from xmppchat.cluster.workers import WorkerSupervisor


class FakeProcess:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


class FakeReactor(task.Clock):
    def __init__(self):
        task.Clock.__init__(self)
        self.spawned = []

    def spawnProcess(self, proto, executable, args, env, path, childFDs):
        proto.transport = FakeProcess(1000 + len(self.spawned))
        self.spawned.append((proto, args, childFDs))
        return proto.transport


def supervisor(tmp_path, count=2):
    config = makeConfig(server={"data_dir": str(tmp_path)}, c2s={"port": 0, "tls_port": 0},
                        cluster={"redis_uri": "redis://127.0.0.1:1/0"})
    reactor = FakeReactor()
    s = WorkerSupervisor(config, count, reactor=reactor)
    s.startService()
    return s, reactor


def end(proto, code=1):
    proto.processEnded(Failure(error.ProcessTerminated(exitCode=code)))


def closeAll(s):
    for socks in s.sockets.values():
        for sock in socks:
            sock.close()


def test_oneSocketPerWorkerOnEachPort(tmp_path):
    """
    Each listener is bound once per worker on one port (SO_REUSEPORT), each
    worker gets its own descriptors, and a restarted worker gets the same
    ones again; ports.json names the port.
    """
    s, reactor = supervisor(tmp_path)
    assert len(reactor.spawned) == 2
    fds = [{k: v for k, v in childFDs.items() if k >= 3 and v != "r"} for _, _, childFDs in reactor.spawned]
    assert len(fds[0]) == 2 and fds[0] != fds[1]
    assert set(fds[0].values()).isdisjoint(fds[1].values())
    args = reactor.spawned[0][1]
    assert args[args.index("--worker-fds") + 1] == "c2s=3,c2s-tls=4"
    ports = json.loads((tmp_path / "ports.json").read_text())
    assert ports["c2s"] != 0
    assert {sock.getsockname()[1] for sock in s.sockets["c2s"]} == {ports["c2s"]}
    with socket.create_connection(("127.0.0.1", ports["c2s"]), timeout=2):
        pass  # the kernel queues it until a worker accepts
    end(reactor.spawned[1][0])
    reactor.advance(1.1)
    assert {k: v for k, v in reactor.spawned[2][2].items() if k >= 3 and v != "r"} == fds[1]
    closeAll(s)


def test_connectionsSpreadOverTheWorkersSockets(tmp_path):
    """The kernel hands connections to every worker's socket, not all to one."""
    s, reactor = supervisor(tmp_path)
    port = s.sockets["c2s"][0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(40)]
    accepted = []
    for sock in s.sockets["c2s"]:
        sock.setblocking(False)
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                break
            conn.close()
            count += 1
        accepted.append(count)
    for client in clients:
        client.close()
    assert sum(accepted) == 40 and min(accepted) >= 5, accepted
    closeAll(s)


def test_restartWithBackoff(tmp_path):
    """A worker that dies is restarted; one that keeps dying at start-up waits longer each time."""
    s, reactor = supervisor(tmp_path, count=1)
    end(reactor.spawned[0][0])
    reactor.advance(0.9)
    assert len(reactor.spawned) == 1
    reactor.advance(0.2)
    assert len(reactor.spawned) == 2
    end(reactor.spawned[1][0])
    reactor.advance(1.5)
    assert len(reactor.spawned) == 2  # second quick exit: 2 s
    reactor.advance(0.6)
    assert len(reactor.spawned) == 3
    closeAll(s)


def test_stopSignalsWorkers(tmp_path):
    """Stopping sends SIGTERM to every worker and finishes when they have exited."""
    s, reactor = supervisor(tmp_path)
    d = s.stopService()
    assert [p.transport.signals for p, _, _ in reactor.spawned] == [["TERM"], ["TERM"]]
    assert not d.called
    for proto, _, _ in reactor.spawned:
        end(proto, 0)
    assert d.called
    assert len(reactor.spawned) == 2  # not restarted
    assert not (tmp_path / "ports.json").exists()
