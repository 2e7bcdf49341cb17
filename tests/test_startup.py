"""
L{xmppchat.startup.Launch} (issue 18 item 1) in-process: twistd's status
pipe taken from its options and written only at readiness or failure, the
pidfile removed on a failure before the reactor runs, a worker's report to
its supervisor; and the service reporting storage failures to it.  The
real runners are exercised in tests/e2e/test_startup.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from tests.helpers import makeConfig
from xmppchat.service import XMPPChatService
from xmppchat.startup import PIPE_MESSAGE, Launch


class StoppedReactor(task.Clock):
    running = False


def readAll(fd: int) -> bytes:
    data = os.read(fd, 1024)
    os.close(fd)
    return data


def test_readyWritesTheStatusPipeItself():
    """The pipe is taken from twistd's options (postApplication then skips it) and gets 0 at readiness."""
    read, write = os.pipe()
    runner = {"nodaemon": True, "statusPipe": write}
    launch = Launch(runner, StoppedReactor())
    launch.claim()
    assert runner["statusPipe"] is None
    launch.ready()
    launch.ready()
    assert readAll(read) == b"0"


def test_failBeforeReactorRuns(tmp_path, capfd):
    """A failure before the reactor runs: one stderr line, the launcher told, our pidfile gone, exit 1."""
    read, write = os.pipe()
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(str(os.getpid()))
    launch = Launch({"nodaemon": True, "statusPipe": write, "pidfile": str(pidfile)}, StoppedReactor())
    with pytest.raises(SystemExit) as e:
        launch.fail("cannot listen on\n127.0.0.1:5222: in use")
    assert e.value.code == 1
    assert capfd.readouterr().err == "xmppchat: cannot listen on 127.0.0.1:5222: in use\n"
    assert readAll(read) == PIPE_MESSAGE
    assert not pidfile.exists()


def test_otherPidfileKept(tmp_path):
    """A pidfile naming another process is not ours to remove."""
    pidfile = tmp_path / "x.pid"
    pidfile.write_text("1")
    with pytest.raises(SystemExit):
        Launch({"nodaemon": True, "pidfile": str(pidfile)}, StoppedReactor()).fail("no")
    assert pidfile.exists()


def test_workerReportsToSupervisor():
    """A --workers worker writes its status with the reason on its ready fd."""
    read, write = os.pipe()
    with pytest.raises(SystemExit):
        Launch({}, StoppedReactor(), readyFD=write).fail("cannot reach Redis")
    assert readAll(read) == b"1 cannot reach Redis"
    read, write = os.pipe()
    Launch({}, StoppedReactor(), readyFD=write).ready()
    assert readAll(read) == b"0"


class FakeLaunch:
    def __init__(self):
        self.calls = []

    def claim(self):
        self.calls.append("claim")

    def ready(self):
        self.calls.append("ready")

    def fail(self, reason):
        self.calls.append(("fail", reason))


class ServiceTests(TestCase):
    def dataDir(self) -> str:
        """A data directory outside the checkout (trial's mktemp is inside)."""
        path = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, path, True)
        return path

    @defer.inlineCallbacks
    def test_readyOnlyOnceStorageStarted(self):
        """The service reports readiness after storage started and ports.json is written."""
        from twisted.internet import reactor

        launch = FakeLaunch()
        config = makeConfig(server={"data_dir": self.dataDir()}, c2s={"port": 0, "direct_tls": False})
        service = XMPPChatService(config, reactor, launch=launch)
        yield service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(launch.calls, ["claim", "ready"])
        self.assertTrue(os.path.exists(os.path.join(config.server.data_dir, "ports.json")))

    @defer.inlineCallbacks
    def test_storageFailureReported(self):
        """Storage that cannot start is a start-up failure with its reason, not a served server."""
        from twisted.internet import reactor

        launch = FakeLaunch()
        config = makeConfig(server={"data_dir": self.dataDir()}, c2s={"port": 0, "direct_tls": False})
        service = XMPPChatService(config, reactor, launch=launch)
        service.storage.start = lambda: defer.fail(RuntimeError("disk on fire"))
        yield service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(launch.calls, ["claim", ("fail", "storage failed to start: disk on fire")])
        self.assertFalse(os.path.exists(os.path.join(config.server.data_dir, "ports.json")))

    def test_withoutLaunchTheDeferredFails(self):
        """A service built in-process (tests) gets the failure in startService's Deferred."""
        from twisted.internet import reactor

        config = makeConfig(server={"data_dir": self.dataDir()}, c2s={"port": 0, "direct_tls": False})
        service = XMPPChatService(config, reactor)
        service.storage.start = lambda: defer.fail(RuntimeError("disk on fire"))
        d = service.startService()
        self.addCleanup(service.stopService)
        self.assertIn("disk on fire", str(self.failureResultOf(d).value))


def test_readyNotifiesSystemd(tmp_path, monkeypatch):
    """Under a Type=notify unit, readiness is READY=1 on $NOTIFY_SOCKET; a worker leaves that to its supervisor."""
    import socket

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        read, write = os.pipe()
        Launch({}, StoppedReactor(), readyFD=write).ready()
        assert readAll(read) == b"0"
        Launch({}, StoppedReactor()).ready()
        assert sock.recv(100) == b"READY=1"
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(100)  # the worker sent nothing
