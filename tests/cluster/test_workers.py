"""
The C{--workers} supervisor on a fake reactor: one socket per worker on
each port, restarts with back-off, SIGTERM on stop, SIGHUP passed on, the
data dir lock, and how a worker notices its supervisor is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from twisted.internet import error, task
from twisted.python.failure import Failure

from tests.helpers import makeConfig
from xmppchat.cluster.workers import Lifeline, WorkerSupervisor
from xmppchat.instancelock import unlock
from xmppchat.startup import Launch


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
    s._restoreSignal()
    unlock(s.lock)


def test_oneSocketPerWorkerOnEachPort(tmp_path):
    """
    Each listener is bound once per worker on one port (SO_REUSEPORT), each
    worker gets its own descriptors, and a restarted worker gets the same
    ones again; ports.json names the port.
    """
    s, reactor = supervisor(tmp_path)
    assert len(reactor.spawned) == 2
    fds = [{k: v for k, v in childFDs.items() if k in (3, 4)} for _, _, childFDs in reactor.spawned]
    assert len(fds[0]) == 2 and fds[0] != fds[1]
    assert reactor.spawned[0][2][5] == reactor.spawned[1][2][5] == s.lock  # the data dir lock
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
    assert {k: v for k, v in reactor.spawned[2][2].items() if k in (3, 4)} == fds[1]
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


def test_sighupGoesToEveryWorker(tmp_path):
    """SIGHUP to the supervisor is passed on to each worker (certificate reload); nothing is restarted or stopped."""
    s, reactor = supervisor(tmp_path)
    s.reloadWorkers()
    assert [p.transport.signals for p, _, _ in reactor.spawned] == [["HUP"], ["HUP"]]
    assert len(reactor.spawned) == 2 and not s.stopping
    closeAll(s)


def test_secondSupervisorOnTheDataDirRefused(tmp_path, capfd):
    """A second supervisor on the same data dir exits 1 with one line before binding a port, and starts once the first has stopped."""
    s, reactor = supervisor(tmp_path)
    port = s.sockets["c2s"][0].getsockname()[1]
    config = makeConfig(server={"data_dir": str(tmp_path)}, c2s={"port": port, "tls_port": 0},
                        cluster={"redis_uri": "redis://127.0.0.1:1/0"})
    second = WorkerSupervisor(config, 2, reactor=FakeReactor(), launch=Launch({}, FakeReactor()))
    try:
        second.privilegedStartService()
    except SystemExit as e:
        assert e.code == 1
    else:
        raise AssertionError("the second supervisor started")
    assert not second.sockets
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "xmppchat.lock" in err[0] and str(tmp_path) in err[0], err
    d = s.stopService()
    for proto, _, _ in reactor.spawned:
        end(proto, 0)
    assert d.called
    second.privilegedStartService()
    assert second.lock is not None
    second.startService()
    closeAll(second)


class StoppableReactor:
    def __init__(self):
        self.readers = []
        self.stops = 0

    def removeReader(self, reader):
        if reader in self.readers:
            self.readers.remove(reader)

    def stop(self):
        self.stops += 1
        if self.stops > 1:
            raise error.ReactorNotRunning()


def test_workerStopsAtEndOfSupervisorsPipe():
    """The portable fallback: a worker's reactor stops when its stdin pipe (written by the supervisor alone) reaches end-of-file."""
    read, write = os.pipe()
    reactor = StoppableReactor()
    lifeline = Lifeline(reactor, read)
    reactor.readers.append(lifeline)
    assert lifeline.doRead() is None and reactor.stops == 0  # nothing to read yet: still alive
    os.close(write)
    why = lifeline.doRead()
    assert isinstance(why, error.ConnectionDone)
    lifeline.connectionLost(Failure(why))
    assert reactor.stops == 1 and reactor.readers == []
    reactor.stops = 1
    lifeline.connectionLost(Failure(why))  # SIGTERM got there first: no error
    os.close(read)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_parentDeathSignalIsSet():
    """On Linux a worker asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG, read back with PR_GET_PDEATHSIG)."""
    code = ("import ctypes, signal\n"
            "from xmppchat.cluster.workers import _parentDeathSignal\n"
            "assert _parentDeathSignal(signal.SIGTERM)\n"
            "value = ctypes.c_int()\n"
            "ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)\n"
            "print(value.value)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == str(int(signal.SIGTERM)), done.stderr
