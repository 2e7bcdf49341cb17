"""
Backup and restore of an embedded (SQLite) deployment, and the archive
format shared with export/import (issue 18 item 8;
C{python -m xmppchat.admin backup FILE} / C{restore FILE}).

A backup is an online snapshot: SQLite's backup API
(L{sqlite3.Connection.backup}, all pages in one step) copies the database
inside one read transaction, which in WAL mode never blocks the server's
writer, so the copy is the database as of one instant however much the
server writes meanwhile.  The blob files (C{<data_dir>/blobs/}: REST
uploads and XEP-0363 files) are copied after the snapshot, so every blob
the snapshot knows is in the archive unless it was deleted meanwhile.

An archive is a gzip-compressed tar whose first member is C{manifest.json}
(format, version, creation time, the xmppchat version, the database schema
version and each member's size and SHA-256); reading one checks every
member against the manifest before anything is written.  A restore only
goes into an empty place: it refuses to overwrite a database or blob file.

MongoDB deployments back up with MongoDB's own tool (C{mongodump}, or a
replica-set snapshot); C{admin export} moves data between backends.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time

from xmppchat import __version__

MANIFEST = "manifest.json"
BACKUP_FORMAT = "xmppchat-backup"
DATABASE = "database.sqlite3"
BLOBS = "blobs"
BLOB_UID = re.compile(r"[0-9a-f]{32}")
"""A blob's uid (REST C{blobs}, XEP-0363 slots): its file name; L{re.fullmatch} only."""
_CHUNK = 1 << 20


class ArchiveError(Exception):
    """
    A backup, restore, export or import cannot be done; the message says
    why (the admin CLI prints it and exits with status 1).
    """


def reported(f):
    """
    C{f} with its file system errors (a full disk, a directory it may not
    write) as L{ArchiveError}s naming the file.
    """

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except OSError as e:
            raise ArchiveError(f"{e.filename or 'file system'}: {e.strerror or e}") from None

    return wrapper


def _private(path: str):
    """
    C{path} created for writing with mode 0600 (a restored database or blob
    is the owner's only: security review of issue 18, finding 4).
    """
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def blobMember(uid: str) -> str:
    return f"{BLOBS}/{uid}"


def blobFiles(dataDir: str):
    """
    C{(uid, path)} of every blob file under C{<data_dir>/blobs/<uid[:2]>/},
    without the temporary files of uploads in progress.
    """
    root = os.path.join(dataDir, BLOBS)
    if not os.path.isdir(root):
        return
    for prefix in sorted(os.listdir(root)):
        directory = os.path.join(root, prefix)
        if not os.path.isdir(directory):
            continue
        for uid in sorted(os.listdir(directory)):
            path = os.path.join(directory, uid)
            if BLOB_UID.fullmatch(uid) and uid[:2] == prefix and os.path.isfile(path):
                yield uid, path


def blobTarget(dataDir: str, uid: str) -> str:
    """
    Where the blob C{uid} lives (also L{xmppchat.api.storage.blobPath}); a
    C{uid} that is not L{BLOB_UID} (one from a damaged or crafted database)
    is a L{ValueError}, never a path outside C{<data_dir>/blobs/}
    (security review of issue 18, finding 1).
    """
    if not isinstance(uid, str) or not BLOB_UID.fullmatch(uid):
        raise ValueError(f"not a blob uid: {uid!r}")
    return os.path.join(dataDir, BLOBS, uid[:2], uid)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ArchiveWriter:
    """
    Collects the files of an archive in a temporary directory beside the
    destination, then writes the tar.gz (manifest first) under a temporary
    name and renames it into place: a failed run leaves no partial archive.
    """

    def __init__(self, path: str, kind: str):
        self.path = os.path.abspath(path)
        if os.path.exists(self.path):
            raise ArchiveError(f"{self.path} exists; not overwriting it")
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise ArchiveError(f"no directory {directory}")
        self.kind = kind
        self.work = tempfile.mkdtemp(prefix=".xmppchat-archive-", dir=directory)
        self.members: dict[str, str] = {}

    def file(self, name: str) -> str:
        """
        The path to write member C{name} to.
        """
        path = os.path.join(self.work, "m", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.members[name] = path
        return path

    def add(self, name: str, source: str) -> bool:
        """
        Add an existing file (copied now); C{False} if it vanished.
        """
        try:
            shutil.copyfile(source, self.file(name))
        except FileNotFoundError:
            del self.members[name]
            return False
        return True

    def close(self, **fields) -> dict:
        """
        Write the archive with a manifest holding C{fields}; returns the
        manifest.
        """
        manifest = {"format": self.kind, "version": 1, "xmppchat": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields,
                    "files": {name: {"bytes": os.path.getsize(path), "sha256": _sha256(path)}
                              for name, path in sorted(self.members.items())}}
        manifestPath = os.path.join(self.work, MANIFEST)
        with open(manifestPath, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        temporary = os.path.join(self.work, "archive.tar.gz")
        with tarfile.open(temporary, "w:gz") as tar:
            tar.add(manifestPath, MANIFEST)
            for name, path in sorted(self.members.items()):
                tar.add(path, name)
        # the archive holds password hashes and every message: owner only
        # (security review of issue 18, finding 4)
        os.chmod(temporary, 0o600)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self.discard()
        return manifest

    def discard(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


class ArchiveReader:
    """
    An archive unpacked into a temporary directory beside C{near} after
    every member was checked against the manifest: unknown, missing,
    altered or unsafe members are an L{ArchiveError}.
    """

    def __init__(self, path: str, kind: str, near: str):
        os.makedirs(near, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix=".xmppchat-archive-", dir=near)
        try:
            self._unpack(path, kind)
        except BaseException:
            self.discard()
            raise

    def _unpack(self, path, kind):
        try:
            tar = tarfile.open(path, "r:gz")
        except (OSError, tarfile.TarError) as e:
            raise ArchiveError(f"cannot read {path}: {e}") from None
        with tar:
            try:
                first = tar.next()
                if first is None or first.name != MANIFEST or not first.isfile():
                    raise ArchiveError(f"{path} is not an xmppchat archive (no {MANIFEST} first)")
                self.manifest = json.load(tar.extractfile(first))
                if self.manifest.get("format") != kind or self.manifest.get("version") != 1:
                    raise ArchiveError(f"{path} is a {self.manifest.get('format')!r} archive"
                                       f" (version {self.manifest.get('version')!r}), not {kind!r} 1")
                expected = self.manifest["files"]
                seen = set()
                for member in tar:
                    if member is first:
                        continue
                    name = member.name
                    if name not in expected or name in seen or not member.isfile():
                        raise ArchiveError(f"{path}: unexpected member {name!r}")
                    seen.add(name)
                    size = expected[name]["bytes"]
                    if member.size != size:
                        # a tar bomb stops here, before a byte is written
                        # (security review of issue 18, finding 8)
                        raise ArchiveError(f"{path}: {name} has {member.size} bytes, the manifest"
                                           f" says {size}")
                    target = self.path(name)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    digest = hashlib.sha256()
                    written = 0
                    with tar.extractfile(member) as source, _private(target) as out:
                        for chunk in iter(lambda: source.read(_CHUNK), b""):
                            written += len(chunk)
                            if written > size:
                                raise ArchiveError(f"{path}: {name} is longer than its manifest says")
                            digest.update(chunk)
                            out.write(chunk)
                    if digest.hexdigest() != expected[name]["sha256"]:
                        raise ArchiveError(f"{path}: {name} does not match its checksum")
            except (OSError, EOFError, tarfile.TarError, ValueError, KeyError, TypeError) as e:
                raise ArchiveError(f"{path} is damaged: {type(e).__name__}: {e}") from None
        missing = set(expected) - seen
        if missing:
            raise ArchiveError(f"{path}: missing {', '.join(sorted(missing))}")

    def path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise ArchiveError(f"unsafe member name {name!r}")
        return os.path.join(self.work, *name.split("/"))

    def blobs(self):
        """
        C{(uid, path)} of the archive's blob files.
        """
        for name in self.manifest["files"]:
            if name.startswith(BLOBS + "/"):
                uid = name[len(BLOBS) + 1:]
                if not BLOB_UID.fullmatch(uid):
                    raise ArchiveError(f"bad blob name {name!r}")
                yield uid, self.path(name)

    def discard(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def requireNewBlobs(reader: ArchiveReader, dataDir: str) -> list[tuple[str, str]]:
    """
    C{(archive path, target path)} of every blob file of the archive;
    L{ArchiveError} when one of the targets exists.
    """
    moves = [(source, blobTarget(dataDir, uid)) for uid, source in reader.blobs()]
    for _, target in moves:
        if os.path.exists(target):
            raise ArchiveError(f"{target} exists; not overwriting it")
    return moves


def copyBlobsIn(reader: ArchiveReader, dataDir: str) -> int:
    """
    Move the archive's blob files into C{dataDir}; refuses to replace one.
    """
    moves = requireNewBlobs(reader, dataDir)
    for source, target in moves:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(source, target)
    return len(moves)


def _sqlitePath(config) -> str:
    storage = config.storage
    if storage.backend != "sqlite":
        raise ArchiveError(
            f"backup and restore are for the embedded SQLite storage; this configuration uses"
            f" {storage.backend}: back MongoDB up with mongodump (and its blobs directory"
            f" {os.path.join(config.server.data_dir, BLOBS)}), or move the data with"
            " 'admin export' and 'admin import'")
    if storage.path == ":memory:":
        raise ArchiveError("the storage is ':memory:': nothing to back up or restore")
    return storage.path


@reported
def backup(config, path: str) -> dict:
    """
    Write an online snapshot of the SQLite database and the blob files to
    C{path}; returns the manifest.
    """
    database = _sqlitePath(config)
    if not os.path.isfile(database):
        raise ArchiveError(f"no database at {database}")
    writer = ArchiveWriter(path, BACKUP_FORMAT)
    try:
        copy = writer.file(DATABASE)
        schema = _snapshot(database, copy)
        blobs = sum(writer.add(blobMember(uid), source)
                    for uid, source in blobFiles(config.server.data_dir))
        return writer.close(schema=schema, domain=config.server.domain, blobs=blobs)
    except BaseException:
        writer.discard()
        raise


def _snapshot(database: str, copy: str) -> int:
    """
    Copy C{database} to C{copy} with the backup API; returns the schema
    version of the copy after checking it.
    """
    try:
        source = sqlite3.connect(database, timeout=30)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
                problem = target.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise ArchiveError(f"the snapshot of {database} fails its check: {problem}")
                row = target.execute("SELECT max(version) FROM schema_version").fetchone()
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as e:
        raise ArchiveError(f"cannot snapshot {database}: {e}") from None
    return row[0] or 0


@reported
def restore(config, path: str) -> dict:
    """
    Unpack a backup into the configured (empty) database path and data
    directory; returns the manifest.
    """
    from xmppchat.storage.sqlite import SCHEMA_VERSION

    database = _sqlitePath(config)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            raise ArchiveError(f"{database + suffix} exists; restore goes into an empty data"
                               " directory (stop the server and move the old database away)")
    reader = ArchiveReader(path, BACKUP_FORMAT, os.path.dirname(database))
    try:
        schema = reader.manifest.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ArchiveError(f"the backup has database schema {schema!r}; this xmppchat reads"
                               f" up to {SCHEMA_VERSION} (older ones are migrated at start)")
        copyBlobsIn(reader, config.server.data_dir)
        os.replace(reader.path(DATABASE), database)
        return reader.manifest
    finally:
        reader.discard()
