"""
One server per data directory (issue 18 #5).

A second C{twistd xmppchat} on the same data directory would share the
database with the first and, with C{--workers}, even its listening ports
(C{SO_REUSEPORT} lets a second process join them).  The server, or the
C{--workers} supervisor, therefore holds an exclusive C{flock} on
C{<data_dir>/xmppchat.lock} from before it binds a port until it has
stopped; the file names the holder's pid.  The workers inherit the lock's
descriptor, so it stays held while any process of the instance is alive.
The kernel drops the lock when the last of them exits, even by SIGKILL:
there is no stale lock to clean up by hand.

The server may open the lock as root (before C{twistd --uid} drops to the
data directory's owner), who can plant anything there (security review
of issue 18, finding 2): the file is opened without following a symlink
(C{O_NOFOLLOW}) or blocking on a FIFO, must be a regular file with one
link, and is written (the pid) only when the current user owns it.  The
descriptor is not close-on-exec for the workers: they get it through
C{childFDs} (a C{dup2}), which clears that flag anyway.
"""

from __future__ import annotations

import fcntl
import os
import stat

from twisted.logger import Logger

LOCK_NAME = "xmppchat.lock"

log = Logger()


class DataDirLocked(Exception):
    """
    Another xmppchat holds the lock; the message says which, for a human.
    """


def lockDataDir(dataDir: str) -> int | None:
    """
    Take the lock of C{dataDir} (created if missing) and return its file
    descriptor, to be closed when the server stops.

    @raise DataDirLocked: another process holds it.
    @return: C{None} when the lock file cannot be opened at all (a
        read-only data directory: storage reports that itself).
    """
    path = os.path.join(dataDir, LOCK_NAME)
    try:
        os.makedirs(dataDir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _SAFE, 0o644)
    except PermissionError:
        fd = _openReadOnly(path)  # left by another user (root before --uid): flock still works
    except OSError as e:
        fd = _unusable(path, e)
    if fd is None:
        return None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
        os.close(fd)
        _refuse(path, "is not a regular file with one link")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _readPid(fd)
        os.close(fd)
        running = f"another xmppchat (pid {holder})" if holder else "another xmppchat"
        raise DataDirLocked(f"{running} is running on {dataDir} ({path} is locked); "
                            f"stop it first") from None
    if status.st_uid == os.geteuid():
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # opened read-only: locked all the same, without the pid
    return fd


_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK


def _refuse(path: str, what: str):
    raise DataDirLocked(f"{path} {what}: not using it as the lock (remove it; the server"
                        f" creates its own)")


def _openReadOnly(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | _SAFE)
    except OSError as e:
        return _unusable(path, e)


def _unusable(path: str, error: OSError) -> None:
    """
    The lock file cannot be opened: refused when it is a symbolic link
    (C{O_NOFOLLOW}), else a warning, and no lock.
    """
    if os.path.islink(path):
        _refuse(path, "is a symbolic link")
    log.warn("Cannot open {path} ({error}): a second instance is not prevented",
             path=path, error=error.strerror)


def _readPid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def serverHolds(dataDir: str) -> bool | None:
    """
    Whether a server holds the lock of C{dataDir} now: C{True}, C{False}
    (no lock file, or nobody holds it), or C{None} when the file cannot
    be read.  Creates and writes nothing; for the admin CLI, which talks
    to the admin API only while a server holds the lock (security review
    of issue 18, finding 5: with no server, whatever listens on the
    C{[ops]} port would get the admin key and new passwords).
    """
    try:
        fd = os.open(os.path.join(dataDir, LOCK_NAME), os.O_RDONLY | _SAFE)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also releases the shared lock just taken
    return False


def unlock(fd: int | None) -> None:
    """
    Release a lock taken by L{lockDataDir} (the file stays).
    """
    if fd is not None:
        os.close(fd)
