"""
Running as root only to bind, then as an unprivileged user (issue 18 item
6): C{twistd --uid xmppchat --gid xmppchat xmppchat}.

twistd builds the service, binds the ports and only then drops to the
runtime user; what the service creates before that belongs to root.  So
the data directory (and the SQLite file's directory) and the self-signed
certificate generated on first start are created here first and handed to
the runtime user (L{prepare}): the SQLite database, the blobs and
C{ports.json} are then created by that user, after the drop.  A
certificate, key or chain the runtime user cannot read works at start
(read as root) but not at the next SIGHUP reload: L{prepare} warns of it;
an existing data directory that user cannot write is a start-up failure
at once (instead of a storage error after the drop).  Both are checked as
that user in a short-lived child process (L{asUser}: modes, ACLs, groups
and read-only mounts alike).
"""

from __future__ import annotations

import json
import os
import pwd

from twisted.logger import Logger

log = Logger()


def runtimeUser(runner) -> tuple[int, int] | None:
    """
    The C{(uid, gid)} twistd will drop to after binding (its C{--uid} and
    C{--gid}, the user's group by default), or C{None} when it keeps the
    current user.
    """
    uid, gid = runner.get("uid"), runner.get("gid")
    if uid is None and gid is None or os.getuid() != 0:
        return None
    if uid is None:
        uid = 0
    if gid is None:
        gid = pwd.getpwuid(uid).pw_gid
    return None if (uid, gid) == (0, 0) else (uid, gid)


def _makeDirs(path: str, uid: int, gid: int, mode: int = 0o777) -> None:
    """
    C{os.makedirs}, the directories it creates owned by C{uid:gid}.
    """
    path = os.path.abspath(path)
    missing = []
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        os.mkdir(directory, mode)
        os.chown(directory, uid, gid)


def prepare(config, uid: int, gid: int) -> list[str]:
    """
    Before the service is built (as root): create the data directory, the
    SQLite file's directory and the generated certificate for C{uid:gid};
    return warnings for the TLS files and the config file that user cannot
    read (also logged): reloads re-read them after the drop.

    @raise StartupError: that user cannot write in the data directory
        (storage, uploads, C{ports.json} would fail after the drop).
    """
    from xmppchat.certs import ensureCertificate
    from xmppchat.configcheck import unwritable
    from xmppchat.startup import StartupError

    dataDir = config.server.data_dir
    _makeDirs(dataDir, uid, gid)
    if config.storage.backend == "sqlite" and config.storage.path != ":memory:":
        _makeDirs(os.path.dirname(os.path.abspath(config.storage.path)), uid, gid)
    if not config.tls.certificate:
        tlsDir = os.path.join(dataDir, "tls")
        _makeDirs(tlsDir, uid, gid, 0o700)
        if os.stat(tlsDir).st_uid == uid:  # ours, not a directory the operator made
            for path in ensureCertificate(config)[:2]:
                os.chown(path, uid, gid)
    paths = [path for path in ensureCertificate(config) if path]
    # re-read by SIGHUP and the admin API's reload (issue 18 reload)
    source = config.source if config.source and os.path.isfile(config.source) else None

    def probe():
        return [unwritable(dataDir)] + [path for path in paths + [source] if path and not _readable(path)]

    why, *unreadable = asUser(uid, gid, probe) or [""]  # a failed probe checks nothing
    if why:
        raise StartupError(f"uid {uid} / gid {gid}, the user after privileges drop, {why}")
    consequence = {source: "a reload (SIGHUP, admin reload) will keep the running configuration"}
    warnings = [f"the {'config' if path == source else 'TLS'} file {path} is not readable by uid {uid}"
                f" / gid {gid}, the user after privileges drop: "
                + consequence.get(path, "reloading the certificate (SIGHUP) will fail")
                for path in unreadable]
    for warning in warnings:
        log.warn("{warning}", warning=warning)
    return warnings


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def asUser(uid: int, gid: int, probe):
    """
    Run C{probe()} in a child process switched to C{uid:gid} with that
    user's groups, as twistd switches, and return what it returned (JSON
    values; C{None} if the child failed): what that user can do, file
    modes, ACLs and read-only mounts alike.
    """
    from twisted.python.util import switchUID

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            switchUID(uid, gid)
            os.write(write, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"null")
