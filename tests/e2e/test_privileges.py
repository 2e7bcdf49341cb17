"""
Issue 18 item 6: C{twistd --uid/--gid xmppchat} started as root binds as
root and runs as the given user; the data directory, the generated
certificate and the SQLite database it creates on a first start belong to
that user (so storage starts and SIGHUP reloads the certificate), and a
configured key that user cannot read is a warning at start.  Needs root
(the real switch to C{nobody}); L{xmppchat.privileges} is unit-tested too.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.test_startup import run, stopDaemon, writeConfig

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")

NOBODY = pwd.getpwnam("nobody") if os.getuid() == 0 else None


@pytest.fixture
def directory():
    """A directory nobody can enter (pytest's tmp_path is private to root), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="xmppchat-uid-"))
    path.chmod(0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)  # the pidfile: twistd removes it as nobody
    yield path
    shutil.rmtree(path)


def start(directory: Path, config: Path) -> int:
    """twistd --uid nobody as a daemon; returns its pid."""
    done, _ = run("daemon", directory, config, uid=["--uid", "nobody", "--gid", str(NOBODY.pw_gid)])
    assert done.returncode == 0, done.stderr + log(directory)
    return int((directory / "x.pid").read_text())


def log(directory: Path) -> str:
    path = directory / "x.log"
    return path.read_text() if path.exists() else ""


def eventually(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def owner(path: Path) -> tuple:
    info = path.stat()
    return info.st_uid, info.st_gid


def test_freshDataDirBelongsToRuntimeUser(directory):
    """A first start as nobody: data dir, generated certificate and database are nobody's; it serves and reloads."""
    pid = start(directory, writeConfig(directory, generated=True))
    try:
        data = directory / "data"
        assert "c2s" in json.loads((data / "ports.json").read_text())
        nobody = (NOBODY.pw_uid, NOBODY.pw_gid)
        for path in (data, data / "tls", data / "tls" / "selfsigned.key", data / "tls" / "selfsigned.crt",
                     data / "xmppchat.sqlite3"):
            assert owner(path) == nobody, path
        assert "not readable by uid" not in log(directory)
        os.kill(pid, signal.SIGHUP)
        eventually(lambda: "TLS certificate reloaded" in log(directory))
    finally:
        stopDaemon(directory, pid)


def test_unreadableKeyWarns(directory):
    """A configured key only root can read: a warning at start that SIGHUP reloads will fail."""
    config = writeConfig(directory)
    (directory / "server.key").chmod(0o600)  # root's
    pid = start(directory, config)
    try:
        assert f"the TLS file {directory / 'server.key'} is not readable by uid {NOBODY.pw_uid}" in log(directory)
        assert "server.crt is not readable" not in log(directory)
    finally:
        stopDaemon(directory, pid)


def test_unreadableConfigWarns(directory):
    """A config file only root can read: a warning at start; SIGHUP keeps the running configuration (one line)."""
    config = writeConfig(directory)
    config.chmod(0o600)  # root's
    pid = start(directory, config)
    try:
        assert f"the config file {config} is not readable by uid {NOBODY.pw_uid}" in log(directory)
        os.kill(pid, signal.SIGHUP)
        eventually(lambda: "keeping the running configuration" in log(directory))
        assert "TLS certificate reloaded" in log(directory)
    finally:
        stopDaemon(directory, pid)


def test_asAnotherUser(directory):
    """asUser() probes as the user: root's 0600 file is unreadable for nobody, a 0644 one is fine."""
    from xmppchat.privileges import _readable, asUser

    secret, public = directory / "secret", directory / "public"
    secret.write_text("k")
    secret.chmod(0o600)
    public.write_text("c")
    public.chmod(0o644)
    probe = lambda: [str(path) for path in (secret, public) if not _readable(str(path))]  # noqa: E731
    assert asUser(NOBODY.pw_uid, NOBODY.pw_gid, probe) == [str(secret)]
    assert asUser(0, 0, probe) == []


def test_dataDirNotWritableByRuntimeUser(directory):
    """An existing data dir only root can write: exit 1 at once naming the user, not a storage error later."""
    from tests.e2e.test_startup import assertFailed

    (directory / "data").mkdir(mode=0o755)  # root's
    config = writeConfig(directory)
    assertFailed("daemon", directory, config, f"uid {NOBODY.pw_uid} / gid {NOBODY.pw_gid}, the user after"
                 f" privileges drop, cannot write in {directory / 'data'}",
                 uid=["--uid", "nobody", "--gid", str(NOBODY.pw_gid)])


def test_runtimeUser():
    """twistd's --uid alone means the user's own group; no --uid/--gid means no switch."""
    from xmppchat.privileges import runtimeUser

    assert runtimeUser({}) is None
    assert runtimeUser({"uid": NOBODY.pw_uid, "gid": None}) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert runtimeUser({"uid": None, "gid": 0}) is None
