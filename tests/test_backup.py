"""
C{admin backup} / C{admin restore} (L{xmppchat.backup}, issue 18 item 8):
an online snapshot of the SQLite database taken while another connection
keeps writing is consistent (every committed transaction whole, nothing
half), holds the blob files, restores into an empty data directory only,
and an altered archive is refused before anything is written.
"""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
import threading

import pytest

from xmppchat.admin import main, result
from xmppchat.storage.sqlite import SQLiteStorage


def writeConfig(directory, backend="sqlite"):
    (directory / "data").mkdir(parents=True, exist_ok=True)
    path = directory / "xmppchat.toml"
    path.write_text(f'[server]\ndomain = "localhost"\ndata_dir = "{directory / "data"}"\n'
                    f'[storage]\nbackend = "{backend}"\npath = "db.sqlite3"\n')
    return path


def admin(capsys, config, *args):
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    setup, _, err = err.partition("\n")  # every run names its config and database first
    assert setup.startswith("xmppchat-admin: config "), setup
    return code, out, err


class Writer(threading.Thread):
    """
    Commits, as fast as it can, transactions that each add one account and
    its roster item: a consistent copy has as many of one as of the other.
    """

    def __init__(self, path):
        threading.Thread.__init__(self, daemon=True)
        self.path = path
        self.stopping = threading.Event()
        self.committed = 0
        self.started = threading.Event()

    def run(self):
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            while not self.stopping.is_set():
                n = self.committed
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO accounts (localpart, created_at, updated_at)"
                                   " VALUES (?, 0, 0)", (f"user{n}",))
                connection.execute("INSERT INTO roster (localpart, jid) VALUES (?, 'friend@x')",
                                   (f"user{n}",))
                connection.execute("COMMIT")
                self.committed += 1
                if self.committed == 50:
                    self.started.set()
        finally:
            connection.close()


@pytest.fixture
def deployment(tmp_path):
    config = writeConfig(tmp_path / "live")
    database = tmp_path / "live" / "data" / "db.sqlite3"
    storage = SQLiteStorage(str(database), synchronous=True)
    result(storage.start())
    result(storage.stop())
    blob = tmp_path / "live" / "data" / "blobs" / "ab" / ("ab" + "0" * 30)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\x00file bytes\xff")
    return config, database, blob


def test_onlineBackupIsConsistent(deployment, tmp_path, capsys):
    """Backups taken while a writer commits restore to whole transactions only, with the blob file."""
    config, database, blob = deployment
    writer = Writer(str(database))
    writer.start()
    try:
        assert writer.started.wait(30)
        archives = []
        for n in range(3):
            archive = tmp_path / f"backup{n}.tar.gz"
            code, out, err = admin(capsys, config, "backup", str(archive))
            assert (code, err) == (0, ""), err
            assert "schema" in out
            archives.append(archive)
    finally:
        writer.stopping.set()
        writer.join(30)
    counts = []
    for n, archive in enumerate(archives):
        target = writeConfig(tmp_path / f"restored{n}")
        code, out, err = admin(capsys, target, "restore", str(archive))
        assert (code, err) == (0, ""), err
        restored = tmp_path / f"restored{n}" / "data"
        connection = sqlite3.connect(restored / "db.sqlite3")
        try:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            accounts = connection.execute("SELECT count(*) FROM accounts").fetchone()[0]
            roster = connection.execute("SELECT count(*) FROM roster").fetchone()[0]
        finally:
            connection.close()
        assert accounts == roster >= 50
        counts.append(accounts)
        assert (restored / "blobs" / blob.parent.name / blob.name).read_bytes() == blob.read_bytes()
    assert counts == sorted(counts) and counts[-1] <= writer.committed


def test_restoreRefusesExistingDatabase(deployment, tmp_path, capsys):
    """A restore over an existing database fails with a readable reason and changes nothing."""
    config, database, _ = deployment
    archive = tmp_path / "b.tar.gz"
    assert admin(capsys, config, "backup", str(archive))[0] == 0
    before = database.read_bytes()
    code, out, err = admin(capsys, config, "restore", str(archive))
    assert code == 1
    assert "exists; restore goes into an empty data directory" in err
    assert database.read_bytes() == before


def test_backupRefusesToOverwrite(deployment, tmp_path, capsys):
    """An existing archive file is never overwritten."""
    config, _, _ = deployment
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(b"precious")
    code, out, err = admin(capsys, config, "backup", str(archive))
    assert code == 1 and "not overwriting" in err
    assert archive.read_bytes() == b"precious"


def test_restoreRefusesAlteredArchive(deployment, tmp_path, capsys):
    """An archive whose database no longer matches the manifest is refused; no database appears."""
    config, _, _ = deployment
    archive = tmp_path / "b.tar.gz"
    assert admin(capsys, config, "backup", str(archive))[0] == 0
    altered = tmp_path / "altered.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(altered, "w:gz") as out:
        for member in tar.getmembers():
            data = bytearray(tar.extractfile(member).read())
            if member.name == "database.sqlite3":
                data[-1] ^= 1
            out.addfile(member, io.BytesIO(bytes(data)))
    target = writeConfig(tmp_path / "t")
    code, out, err = admin(capsys, target, "restore", str(altered))
    assert code == 1 and "does not match its checksum" in err
    assert not (tmp_path / "t" / "data" / "db.sqlite3").exists()


def test_mongoBackupNamesMongodump(tmp_path, capsys):
    """On a MongoDB configuration, backup says to use mongodump or export, and fails."""
    config = writeConfig(tmp_path / "m", backend="mongodb")
    code, out, err = admin(capsys, config, "backup", str(tmp_path / "b.tar.gz"))
    assert code == 1
    assert "mongodump" in err and "export" in err


def test_fullDiskIsOneLine(deployment, tmp_path, capsys, monkeypatch):
    """A full disk while copying the blobs fails with one line naming the file and leaves no archive."""
    import errno
    import shutil

    config, _, blob = deployment

    def full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    monkeypatch.setattr(shutil, "copyfile", full)
    code, out, err = admin(capsys, config, "backup", str(tmp_path / "b.tar.gz"))
    assert code == 1 and "No space left on device" in err and blob.name in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]


def test_archivesAndRestoredFilesAreOwnerOnly(deployment, tmp_path, capsys):
    """
    Security review finding 4: under a umask of 022 a backup, an export and
    the restored database and blob files are still mode 0600 (they hold
    password hashes and every message).
    """
    config, _, blob = deployment
    old = os.umask(0o022)
    try:
        archive, exported = tmp_path / "b.tar.gz", tmp_path / "e.tar.gz"
        assert admin(capsys, config, "backup", str(archive))[0] == 0
        assert admin(capsys, config, "export", str(exported))[0] == 0
        target = writeConfig(tmp_path / "t")
        assert admin(capsys, target, "restore", str(archive))[0] == 0
    finally:
        os.umask(old)
    restored = tmp_path / "t" / "data"
    for path in (archive, exported, restored / "db.sqlite3", restored / "blobs" / blob.parent.name / blob.name):
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o600), path


def craftedBackup(path, name, size, declared, data=None):
    """
    A backup archive whose member C{name} is C{size} zero bytes (or
    C{data}) while the manifest says C{declared} bytes with the right hash.
    """
    import hashlib
    import json

    data = b"\0" * size if data is None else data
    manifest = {"format": "xmppchat-backup", "version": 1, "schema": 1, "blobs": 0,
                "files": {name: {"bytes": declared, "sha256": hashlib.sha256(data).hexdigest()}}}
    with tarfile.open(path, "w:gz") as tar:
        for member, body in (("manifest.json", json.dumps(manifest).encode()), (name, data)):
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def test_restoreRefusesTarBomb(tmp_path, capsys):
    """
    Security review finding 8: a member far larger than the manifest's
    'bytes' (a few KiB of gzip unpacking to 16 MiB) is refused before any
    of it is written beside the database.
    """
    archive = tmp_path / "bomb.tar.gz"
    craftedBackup(archive, "database.sqlite3", 16 << 20, 1)
    target = writeConfig(tmp_path / "t")
    code, out, err = admin(capsys, target, "restore", str(archive))
    assert code == 1 and "database.sqlite3 has 16777216 bytes, the manifest says 1" in err
    assert os.listdir(tmp_path / "t" / "data") == []


def test_restoreRefusesBlobNameWithNewline(tmp_path, capsys):
    """Security review finding 8: a blob member named '<uid>\\n' is not a blob name."""
    archive = tmp_path / "lf.tar.gz"
    craftedBackup(archive, "blobs/" + "0" * 32 + "\n", 1, 1)
    target = writeConfig(tmp_path / "t")
    code, out, err = admin(capsys, target, "restore", str(archive))
    assert code == 1 and "bad blob name" in err
    assert not (tmp_path / "t" / "data" / "blobs").exists()
