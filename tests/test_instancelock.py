"""
The data directory lock opened as root (before C{twistd --uid}) in a
directory its owner controls (security review of issue 18, finding 2):
a planted symlink, hard link or FIFO is refused and never written
through, and a lock file of another user is locked but not rewritten.
"""

from __future__ import annotations

import os
import pwd

import pytest

from xmppchat.instancelock import LOCK_NAME, DataDirLocked, lockDataDir, unlock


@pytest.fixture
def dataDir(tmp_path):
    """A data directory owned by 'nobody' when the tests run as root (as under twistd --uid)."""
    directory = tmp_path / "data"
    directory.mkdir()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    return directory


def plant(path, make):
    make()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.lchown(path, nobody.pw_uid, nobody.pw_gid)


def test_symlinkIsNotFollowed(dataDir, tmp_path):
    """A lock that is a symlink to another file is refused; that file is neither truncated nor written."""
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    lock = dataDir / LOCK_NAME
    plant(lock, lambda: os.symlink(victim, lock))
    with pytest.raises(DataDirLocked, match="is a symbolic link"):
        lockDataDir(str(dataDir))
    assert victim.read_text() == "root:secret\n"


def test_danglingSymlinkCreatesNothing(dataDir, tmp_path):
    """A symlink to a file that does not exist yet is refused and the file is not created."""
    target = tmp_path / "new-file"
    lock = dataDir / LOCK_NAME
    plant(lock, lambda: os.symlink(target, lock))
    with pytest.raises(DataDirLocked, match="is a symbolic link"):
        lockDataDir(str(dataDir))
    assert not target.exists()


def test_hardLinkIsRefused(dataDir, tmp_path):
    """A lock with a second link (a hard link to a file elsewhere) is refused and not written."""
    victim = dataDir / "victim"
    victim.write_text("keep\n")
    lock = dataDir / LOCK_NAME
    os.link(victim, lock)
    with pytest.raises(DataDirLocked, match="not a regular file with one link"):
        lockDataDir(str(dataDir))
    assert victim.read_text() == "keep\n"


def test_fifoIsRefused(dataDir):
    """A FIFO as the lock neither blocks the start nor is used."""
    lock = dataDir / LOCK_NAME
    plant(lock, lambda: os.mkfifo(lock))
    with pytest.raises(DataDirLocked, match="not a regular file"):
        lockDataDir(str(dataDir))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file of another user")
def test_otherUsersFileIsLockedNotWritten(dataDir):
    """A lock file of another user is locked (flock) but keeps its contents."""
    lock = dataDir / LOCK_NAME
    plant(lock, lambda: lock.write_text("theirs\n"))
    fd = lockDataDir(str(dataDir))
    try:
        assert fd is not None and lock.read_text() == "theirs\n"
    finally:
        unlock(fd)


def test_ownLockHoldsPid(tmp_path):
    """The ordinary case still works: the lock file is created and names this process."""
    fd = lockDataDir(str(tmp_path))
    try:
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
            lockDataDir(str(tmp_path))
    finally:
        unlock(fd)
