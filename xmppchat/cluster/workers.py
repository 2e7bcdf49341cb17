"""
One process per core: C{twistd xmppchat --workers N}.

The supervisor binds every configured listening port (port 0 included)
once per worker, with C{SO_REUSEPORT}, then starts N worker processes
(C{python -m twisted xmppchat --worker-fds ...}) that each inherit their own
socket of every port and adopt it (C{IReactorSocket.adoptStreamPort}).  The
kernel spreads new connections evenly over the sockets of a port by a hash
of the connection's addresses; one socket shared by all workers would go
to whichever process wakes first, and on a quiet machine that put three
quarters of the connections on one worker (bench/cluster.py).  A dead
worker's socket stays bound: connections hashed to it wait in its backlog
until the supervisor has restarted the worker.  Without C{SO_REUSEPORT}
(not Linux or BSD) the workers share one socket per port.  Every worker is a cluster
node (its own node id, the shared storage and Redis), so a user on one
worker reaches users on the others.  The supervisor writes
C{<data_dir>/ports.json}, relays the workers' log lines into its own log,
restarts a worker that dies, and stops them all with SIGTERM.

Signals (issue 18 #5, after gunicorn's arbiter): SIGHUP to the supervisor
is passed on to every worker, which reloads its TLS certificate
(L{xmppchat.tlsreload}) and its config file (issue 18 reload) while the supervisor and the workers keep running;
SIGTERM and SIGINT stop the workers cleanly, then the supervisor.  A worker
ends with its supervisor, even one killed by SIGKILL
(L{watchSupervisor}), so no orphan keeps serving on the shared ports, and
the supervisor holds C{<data_dir>/xmppchat.lock}
(L{xmppchat.instancelock}) before it binds, so a second instance cannot
join them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys

from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from xmppchat.instancelock import DataDirLocked, lockDataDir, unlock
from xmppchat.ops.logs import relayWorkerLine
from xmppchat.startup import StartupError
from xmppchat.tlsreload import installReloadSignal

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
QUICK_EXIT_SECONDS = 10.0
STOP_TIMEOUT = 15.0


def listenerSpecs(config) -> list:
    """
    The listeners L{xmppchat.service.XMPPChatService} would bind:
    C{(name, interface, port)}.
    """
    c2s = config.c2s
    specs = [("c2s", c2s.interface, c2s.port)]
    if c2s.direct_tls:
        specs.append(("c2s-tls", c2s.interface, c2s.tls_port))
    for name in ("websocket", "bosh", "rest", "ops"):
        section = getattr(config, name, None)  # [rest] arrives with the REST side-service
        if section is not None and section.enabled:
            specs.append((name, section.interface, section.port))
    return specs


REUSE_PORT = getattr(socket, "SO_REUSEPORT", None)


def bindSocket(interface: str, port: int, backlog: int = 128, reusePort: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reusePort:
        sock.setsockopt(socket.SOL_SOCKET, REUSE_PORT, 1)
    sock.bind((interface or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    sock.listen(backlog)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def parseWorkerFDs(text: str) -> dict:
    """
    C{c2s=3,c2s-tls=4} -> C{{"c2s": 3, "c2s-tls": 4}}.
    """
    fds = {}
    for item in filter(None, text.split(",")):
        name, _, fd = item.partition("=")
        fds[name] = int(fd)
    return fds


def adoptPort(reactor, fd: int, factory, tlsContext=None):
    """
    Listen on the inherited socket C{fd} (closed here once adopted).
    """
    with socket.socket(fileno=os.dup(fd)) as probe:
        family = probe.family
    if tlsContext is not None:
        factory = TLSMemoryBIOFactory(tlsContext, False, factory)
        factory.noisy = False
    port = reactor.adoptStreamPort(fd, family, factory)
    os.close(fd)
    return port


class WorkerProcess(protocol.ProcessProtocol):
    """
    One worker: relays its output lines into the supervisor's log, each
    log record as the event it was (L{relayWorkerLine}: level, namespace,
    fields, and the worker's index).
    """

    def __init__(self, supervisor, index, readyFD=None):
        self.supervisor = supervisor
        self.index = index
        self.buffer = b""
        self.ended = defer.Deferred()
        self.started = supervisor.reactor.seconds()
        self.readyFD = readyFD
        self.status = b""  # from the worker's xmppchat.startup.Launch: b"0" or b"1 <why>"

    def childDataReceived(self, childFD, data):
        if childFD == self.readyFD:
            self.status += data[:1024]
        else:
            protocol.ProcessProtocol.childDataReceived(self, childFD, data)

    def childConnectionLost(self, childFD):
        if childFD == self.readyFD:
            self.supervisor.workerStarted(self, self.status)

    def outReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            relayWorkerLine(line.decode("utf-8", "replace"), self.index, self.supervisor.log)
        if len(self.buffer) > 1 << 20:
            self.buffer = b""

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(reason.value.exitCode)
        self.supervisor.workerEnded(self, reason.value.exitCode)


class WorkerSupervisor(service.Service):
    """
    Binds the listeners and keeps N worker processes running.
    """

    log = Logger()

    def __init__(self, config, count: int, reactor=None, launch=None):
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.launch = launch  # xmppchat.startup.Launch (issue 18 item 1)
        self.count = count
        self.reactor = reactor
        self.sockets: dict[str, list] = {}  # listener -> one socket per worker (or one shared)
        self.workers: dict = {}
        self.quickExits: dict = {}
        self.stopping = False
        self.lock = None
        self._restoreSignal = None
        self.metricsDir = None  # shared by the workers' metrics (xmppchat.ops.metrics)
        self.starting = set(range(count))  # workers yet to report their first start

    def privilegedStartService(self):
        service.Service.privilegedStartService(self)
        self._bind()

    def _bind(self):
        if self.sockets:
            return
        try:
            self.lock = lockDataDir(self.config.server.data_dir)
        except DataDirLocked as e:
            return self._fail(str(e))
        group = self.count if REUSE_PORT is not None else 1
        try:
            for name, interface, port in listenerSpecs(self.config):
                first = bindSocket(interface, port, reusePort=group > 1)
                port = first.getsockname()[1]  # port 0: the others join the port the first got
                self.sockets[name] = [first] + [bindSocket(interface, port, reusePort=True)
                                                for _ in range(group - 1)]
        except OSError as e:
            for socks in self.sockets.values():
                for sock in socks:
                    sock.close()
            self.sockets.clear()
            unlock(self.lock)
            self.lock = None
            return self._fail(f"cannot listen on {interface or '*'}:{port}: {e.strerror}")

    def _fail(self, reason: str) -> None:
        """
        The supervisor cannot start (issue 18 item 1): through the launch
        (exit code 1, one line), else L{StartupError}.
        """
        if self.launch is None:
            raise StartupError(reason)
        self.launch.fail(reason)

    def startService(self):
        from xmppchat.certs import ensureCertificate

        if self.launch is not None:
            self.launch.claim()
        self._bind()
        service.Service.startService(self)
        ensureCertificate(self.config)  # once, before the workers race to create it
        self._restoreSignal = installReloadSignal(self.reactor, self.reloadWorkers)
        if self.config.ops.enabled:
            from xmppchat.ops.metrics import resetMultiprocessDir

            self.metricsDir = resetMultiprocessDir(self.config.server.data_dir)
        for index in range(self.count):
            self.spawn(index)
        ports = {name: socks[0].getsockname()[1] for name, socks in self.sockets.items()}
        self.log.info("xmppchat supervisor: {count} workers on {ports}", count=self.count,
                      ports=", ".join(f"{n}={p}" for n, p in ports.items()))
        os.makedirs(self.config.server.data_dir, exist_ok=True)
        path = os.path.join(self.config.server.data_dir, "ports.json")
        with open(path + ".tmp", "w") as f:
            json.dump(ports, f)
        os.replace(path + ".tmp", path)

    def spawn(self, index: int) -> None:
        childFDs = {0: "w", 1: "r", 2: "r"}
        specs = []
        for offset, (name, socks) in enumerate(self.sockets.items()):
            childFDs[3 + offset] = socks[index % len(socks)].fileno()
            specs.append(f"{name}={3 + offset}")
        if self.lock is not None:
            # the worker holds the lock too: no second instance while it lives
            childFDs[3 + len(self.sockets)] = self.lock
        readyFD = max(childFDs) + 1
        childFDs[readyFD] = "r"
        args = [sys.executable, "-m", "twisted", "xmppchat", "--worker-fds", ",".join(specs),
                "--worker-index", str(index), "--ready-fd", str(readyFD)]
        if self.config.source and os.path.exists(self.config.source):
            args[4:4] = ["--config", os.path.abspath(self.config.source)]
        env = dict(os.environ)
        if self.metricsDir is not None:
            from xmppchat.ops.metrics import MULTIPROC_ENV

            env[MULTIPROC_ENV] = self.metricsDir
        worker = WorkerProcess(self, index, readyFD)
        worker.pid = self.reactor.spawnProcess(worker, sys.executable, args, env=env,
                                               path=os.path.abspath(self.config.baseDir),
                                               childFDs=childFDs).pid
        self.workers[index] = worker

    def reloadWorkers(self) -> None:
        """
        SIGHUP: every worker re-reads its TLS certificate and the config
        file (L{xmppchat.service.XMPPChatService.reloadAll}); no process
        restarts.
        """
        workers = [w for w in self.workers.values() if w.transport.pid]
        self.log.info("SIGHUP: {count} workers reload their TLS certificate and config", count=len(workers))
        for worker in workers:
            worker.transport.signalProcess("HUP")

    def workerStarted(self, worker, status: bytes) -> None:
        """
        A worker reported its start (issue 18 item 1): the supervisor is
        ready once every worker serves (storage and Redis answer), and fails
        with the reason of the first that cannot start.
        """
        if worker.index not in self.starting or self.stopping:
            return
        if status != b"0":
            why = status[2:].decode("utf-8", "replace") or "it exited before serving"
            self.starting.clear()
            if self.launch is not None:
                self.launch.fail(f"worker {worker.index}: {why}")
            return
        self.starting.discard(worker.index)
        if not self.starting and self.launch is not None:
            self.launch.ready()

    def workerEnded(self, worker, exitCode) -> None:
        if self.metricsDir is not None:
            from xmppchat.ops.metrics import workerDied

            workerDied(self.metricsDir, worker.pid)
        if self.workers.get(worker.index) is not worker:
            return
        del self.workers[worker.index]
        if self.stopping:
            return
        # a worker that keeps dying at start-up is restarted less and less often
        if self.reactor.seconds() - worker.started < QUICK_EXIT_SECONDS:
            self.quickExits[worker.index] = self.quickExits.get(worker.index, 0) + 1
        else:
            self.quickExits[worker.index] = 0
        delay = min(MAX_RESTART_DELAY, RESTART_DELAY * 2 ** max(0, self.quickExits[worker.index] - 1))
        self.log.warn("Worker {index} exited ({code}); restarting in {delay:.0f} s", index=worker.index,
                      code=exitCode, delay=delay)
        self.reactor.callLater(delay, self._respawn, worker.index)

    def _respawn(self, index):
        if not self.stopping and index not in self.workers:
            self.spawn(index)

    @defer.inlineCallbacks
    def stopService(self):
        self.stopping = True
        service.Service.stopService(self)
        if self._restoreSignal is not None:
            self._restoreSignal()
            self._restoreSignal = None
        workers = list(self.workers.values())
        for worker in workers:
            if worker.transport.pid:
                worker.transport.signalProcess("TERM")
        ended = defer.DeferredList([w.ended for w in workers])
        timer = self.reactor.callLater(STOP_TIMEOUT, self._kill, workers)
        yield ended
        if timer.active():
            timer.cancel()
        for socks in self.sockets.values():
            for sock in socks:
                sock.close()
        self.sockets.clear()
        try:
            os.remove(os.path.join(self.config.server.data_dir, "ports.json"))
        except OSError:
            pass
        unlock(self.lock)
        self.lock = None

    def _kill(self, workers):
        for worker in workers:
            if worker.transport.pid:
                worker.transport.signalProcess("KILL")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def watchSupervisor(reactor, lifeline: int = 0) -> None:
    """
    In a worker: end (as on SIGTERM, cleanly) when the supervisor dies, even
    by SIGKILL, so that no orphan keeps serving on the shared ports (issue
    18 #5).  On Linux the kernel sends SIGTERM at once
    (C{prctl(PR_SET_PDEATHSIG)}); everywhere, the worker also watches its
    standard input, a pipe whose only writer is the supervisor: it reads
    end-of-file when the supervisor is gone, including before this call.
    SIGHUP is ignored until the service installs its certificate reload.
    """
    _parentDeathSignal(signal.SIGTERM)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reactor.callWhenRunning(reactor.addReader, Lifeline(reactor, lifeline))


def _parentDeathSignal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc, no ldconfig run
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@implementer(IReadDescriptor)
class Lifeline:
    """
    The read end of a pipe held open by the supervisor: end-of-file (or an
    error) means it is gone, and the reactor stops.
    """

    log = Logger()

    def __init__(self, reactor, fd: int):
        self.reactor = reactor
        self.fd = fd
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "supervisor-lifeline"

    def doRead(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            return error.ConnectionDone("the supervisor is gone")
        return None

    def connectionLost(self, reason) -> None:
        self.reactor.removeReader(self)
        self.log.warn("The supervisor is gone: stopping")
        try:
            self.reactor.stop()
        except error.ReactorNotRunning:
            pass  # already stopping (SIGTERM from PR_SET_PDEATHSIG)
