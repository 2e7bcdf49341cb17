"""
Tests for the account administration CLI (C{python -m xmppchat.admin}).
"""

from __future__ import annotations

import io
import sys
import time

import pytest

from xmppchat import admin
from xmppchat.admin import main
from xmppchat.auth.credentials import Credentials, verifyPlain
from xmppchat.storage.sqlite import SQLiteStorage


def result(d):
    return admin.result(d)


class CLI:
    """
    Runs L{main} against a config and database in a temporary directory.
    """

    def __init__(self, tmp_path, monkeypatch, capsys):
        self.db = tmp_path / "data" / "db.sqlite3"
        self.config = tmp_path / "xmppchat.toml"
        self.config.write_text(
            f'[server]\ndomain = "localhost"\ndata_dir = "{tmp_path / "data"}"\n'
            f'[storage]\nbackend = "sqlite"\npath = "{self.db}"\n')
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        # the database exists, as after the server's first start (or `--create`)
        self.db.parent.mkdir()
        storage = SQLiteStorage(str(self.db), synchronous=True)
        result(storage.start())
        result(storage.stop())

    def __call__(self, *args, stdin="", tty=False):
        stream = io.StringIO(stdin)
        stream.isatty = lambda: tty
        self.monkeypatch.setattr(sys, "stdin", stream)
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        # every run names its config and database first (issue 18)
        self.setup, _, err = err.partition("\n")
        assert self.setup.startswith("xmppchat-admin: config "), self.setup
        return code, out, err

    def account(self, localpart):
        storage = SQLiteStorage(str(self.db), synchronous=True)
        result(storage.start())
        try:
            return result(storage.accounts.getAccountByLocalpart(localpart))
        finally:
            result(storage.stop())

    def count(self):
        storage = SQLiteStorage(str(self.db), synchronous=True)
        result(storage.start())
        try:
            return result(storage.accounts.countAccounts())
        finally:
            result(storage.stop())


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    return CLI(tmp_path, monkeypatch, capsys)


def checks(account, password):
    return verifyPlain(Credentials.fromDict(account.credentials), password)


def test_adduser(cli):
    """adduser creates the account with the password from stdin and prints its JID."""
    code, out, err = cli("adduser", "alice", stdin="s3cret pass\n")
    assert (code, err) == (0, "")
    assert "alice@localhost" in out
    account = cli.account("alice")
    assert account.id == 1
    assert checks(account, "s3cret pass")
    assert not checks(account, "wrong")


def test_adduserPreparesName(cli):
    """adduser stores the prepared (lower-case) localpart."""
    code, out, _ = cli("adduser", "Alice", stdin="pw\n")
    assert code == 0 and "alice@localhost" in out
    assert cli.account("alice") is not None


def test_adduserDuplicate(cli):
    """adduser of an existing user exits 1 with a message on stderr and keeps the old password."""
    cli("adduser", "alice", stdin="one\n")
    code, out, err = cli("adduser", "alice", stdin="two\n")
    assert code == 1
    assert out == ""
    assert "already exists" in err and "alice@localhost" in err
    assert checks(cli.account("alice"), "one")


@pytest.mark.parametrize("name", ["a b", "al@ce", "al/ce", "x" * 1024, "a\u0000b"])
def test_adduserInvalidName(cli, name):
    """adduser refuses names that are not valid localparts."""
    code, _, err = cli("adduser", name, stdin="pw\n")
    assert code == 1 and "invalid user name" in err
    assert cli.count() == 0


def test_adduserEmptyPassword(cli):
    """adduser refuses an empty password."""
    code, _, err = cli("adduser", "alice", stdin="\n")
    assert code == 1 and "empty password" in err
    assert cli.account("alice") is None


def test_adduserTTY(cli, monkeypatch):
    """On a terminal adduser asks twice with getpass."""
    answers = iter(["pw", "pw"])
    monkeypatch.setattr(admin.getpass, "getpass", lambda prompt="": next(answers))
    code, _, _ = cli("adduser", "alice", tty=True)
    assert code == 0
    assert checks(cli.account("alice"), "pw")


def test_adduserTTYMismatch(cli, monkeypatch):
    """On a terminal two different answers are refused."""
    answers = iter(["pw", "typo"])
    monkeypatch.setattr(admin.getpass, "getpass", lambda prompt="": next(answers))
    code, _, err = cli("adduser", "alice", tty=True)
    assert code == 1 and "do not match" in err
    assert cli.account("alice") is None


def test_configAfterCommand(cli, monkeypatch):
    """--config is accepted after the command name too."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert main(["adduser", "alice", "--config", str(cli.config)]) == 0
    assert cli.account("alice") is not None


def test_deluser(cli):
    """deluser deletes the account; an unknown user exits 1."""
    cli("adduser", "alice", stdin="pw\n")
    code, out, _ = cli("deluser", "alice")
    assert code == 0 and "alice@localhost" in out
    assert cli.account("alice") is None
    code, _, err = cli("deluser", "alice")
    assert code == 1 and "no such user" in err


def test_passwd(cli):
    """passwd replaces the password; an unknown user exits 1."""
    cli("adduser", "alice", stdin="old\n")
    code, _, _ = cli("passwd", "alice", stdin="new\n")
    assert code == 0
    account = cli.account("alice")
    assert checks(account, "new") and not checks(account, "old")
    code, _, err = cli("passwd", "bob", stdin="x\n")
    assert code == 1 and "no such user" in err


def test_list(cli):
    """list prints one id<TAB>jid line per account, in id order."""
    assert cli("list") == (0, "", "")
    for name in ["carol", "alice", "bob"]:
        cli("adduser", name, stdin="pw\n")
    code, out, _ = cli("list")
    assert code == 0
    assert out.splitlines() == ["1\tcarol@localhost", "2\talice@localhost", "3\tbob@localhost"]


def test_importUsersStdin(cli):
    """import-users - reads 'name password' lines from stdin and skips existing users."""
    cli("adduser", "alice", stdin="keep\n")
    code, out, err = cli("import-users", "-",
                         stdin="# comment\nalice new\nbob pass word\n\ncarol x\nbob again\n")
    assert (code, err) == (0, "")
    assert "created 2, skipped 2" in out
    assert checks(cli.account("alice"), "keep")
    assert checks(cli.account("bob"), "pass word")
    assert checks(cli.account("carol"), "x")


def test_importUsersInvalidLines(cli, tmp_path):
    """Invalid lines are reported with their line numbers, the rest imported, exit 1."""
    users = tmp_path / "users.txt"
    users.write_text("alice pw\nnopassword\nbad@name pw\nbob pw\n")
    code, out, err = cli("import-users", str(users))
    assert code == 1
    assert f"{users}:2:" in err and f"{users}:3:" in err
    assert "created 2" in out and "2 invalid" in out
    assert cli.count() == 2


def test_unusablePassword(cli):
    """A password SASLprep refuses (a control character) exits 1 without a traceback."""
    code, _, err = cli("adduser", "alice", stdin="pass\u0007word\n")
    assert code == 1 and "unusable password" in err
    assert cli.account("alice") is None


def test_importUsersUnusablePassword(cli, tmp_path):
    """An unusable password in an import is reported with its line; the other lines are imported."""
    users = tmp_path / "users.txt"
    users.write_text("alice pw\nbob bad\u0007pw\ncarol pw\n")
    code, out, err = cli("import-users", str(users))
    assert code == 1 and f"{users}:2: unusable password" in err
    assert "created 2" in out and "1 invalid" in out
    assert cli.account("bob") is None


def test_importUsersMissingFile(cli, tmp_path):
    """A missing import file exits 1."""
    code, _, err = cli("import-users", str(tmp_path / "nope.txt"))
    assert code == 1 and "cannot read" in err


def test_importUsersBulk(cli, tmp_path):
    """import-users creates 2,000 accounts through the process pool (time printed, not asserted)."""
    users = tmp_path / "users.txt"
    users.write_text("".join(f"user{i} password{i}\n" for i in range(2000)))
    started = time.monotonic()
    code, out, err = cli("import-users", str(users))
    elapsed = time.monotonic() - started
    assert (code, err) == (0, "")
    assert "created 2000, skipped 0" in out
    assert cli.count() == 2000
    assert checks(cli.account("user1999"), "password1999")
    print(f"\nimport-users: 2000 accounts in {elapsed:.2f}s", file=sys.__stderr__)
    code, out, _ = cli("import-users", str(users))
    assert code == 0 and "created 0, skipped 2000" in out


def test_configError(cli, tmp_path):
    """An invalid config file exits 1 and prints every problem."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\nbackend = "redis"\n[server]\nbogus = 1\n')
    code = main(["--config", str(bad), "list"])
    err = cli.capsys.readouterr().err
    assert code == 1 and "bogus" in err


def test_mongoUnreachable(cli, tmp_path):
    """An unreachable MongoDB server is reported with its address, quickly."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "mongo.toml"
    config.write_text(f'[storage]\nbackend = "mongodb"\nmongodb_timeout_ms = 300\n'
                      f'mongodb_uri = "mongodb://127.0.0.1:{port}/?directConnection=true"\n')
    code = main(["--config", str(config), "list"])
    err = cli.capsys.readouterr().err
    assert code == 1 and f"cannot use MongoDB at mongodb://127.0.0.1:{port}" in err


def test_noCommand(cli):
    """Running without a command is a usage error."""
    with pytest.raises(SystemExit) as info:
        main(["--config", str(cli.config)])
    assert info.value.code == 2


def test_refusesToCreateADatabase(cli, tmp_path, monkeypatch):
    """Run from another directory without --config: no new empty database, exit 1 naming --create (issue 18)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code = main(["adduser", "alice"])
    err = cli.capsys.readouterr().err
    assert code == 1
    assert f"config built-in defaults (no --config, no {elsewhere}/conf/xmppchat.dev.toml)" in err
    assert "--create" in err and str(elsewhere / "xmppchat-data" / "xmppchat.sqlite3") in err
    assert not (elsewhere / "xmppchat-data" / "xmppchat.sqlite3").exists()


def test_createFlag(cli, tmp_path, monkeypatch):
    """--create (before or after the command) creates the SQLite database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert main(["--create", "adduser", "alice"]) == 0
    assert (tmp_path / "xmppchat-data" / "xmppchat.sqlite3").exists()
    other = tmp_path / "other.toml"
    other.write_text('[server]\ndata_dir = "other-data"\n')
    assert main(["list", "--config", str(other), "--create"]) == 0
    assert (tmp_path / "other-data" / "xmppchat.sqlite3").exists()


def test_printsConfigAndDatabase(cli):
    """Every run names on stderr the config file and the database it uses."""
    code, _, _ = cli("list")
    assert code == 0
    assert cli.setup == f"xmppchat-admin: config {cli.config}; database sqlite {cli.db}"


def test_mongoCredentialsNotPrinted():
    """The MongoDB URI is printed without its user and password."""
    from xmppchat.admin import describeSetup
    from xmppchat.config import buildConfig

    config = buildConfig({"storage": {"backend": "mongodb", "mongodb_database": "chat",
                                      "mongodb_uri": "mongodb://root:s3cret@db.example:27017/?tls=true"}})
    line = describeSetup(config, "x.toml")
    assert "s3cret" not in line and "root" not in line
    assert line.endswith("database mongodb mongodb://db.example:27017 database chat\n")


def test_serverCommandsNeedTheAPI(cli):
    """sessions/kick/stats/announce/reload without a configured admin API: exit 1, saying why."""
    for args in (["sessions"], ["kick", "alice@localhost"], ["stats"], ["announce", "hi"], ["reload"]):
        code, out, err = cli(*args)
        assert (code, out) == (1, ""), args
        assert "the admin API is not configured" in err and "needs the running server" in err


def test_userCommandsFallBackToStorage(cli, tmp_path):
    """deluser with the API configured but no server answering: the storage path, said on stderr."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with cli.config.open("a") as f:
        f.write(f'[ops]\nenabled = true\nport = {port}\nadmin_key = "{"k" * 32}"\n')
    assert cli("adduser", "alice", stdin="pw\n")[0] == 0
    code, out, err = cli("deluser", "alice")
    assert code == 0 and out.startswith("deleted alice@localhost")
    assert f"no server runs on {tmp_path / 'data'} (xmppchat.lock is not held): changing the storage instead" in err
    assert cli.account("alice") is None


class Squatter:
    """
    A local process listening on the [ops] port while no server runs,
    answering every request as the admin API would, and keeping what it got.
    """

    def __init__(self):
        import http.server
        import threading

        captured = self.captured = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                captured.append((self.command, self.path, self.headers.get("Authorization"),
                                 self.rfile.read(length)))
                out = b'{"changed": "alice@localhost", "revoked": 0, "deleted": "alice@localhost", "unlocked": "x"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("command", [("passwd", "alice"), ("deluser", "alice"), ("unlock", "alice")])
def test_squatterOnOpsPortGetsNothing(cli, tmp_path, command):
    """
    Security review finding 5: with no server running, whatever listens on
    the [ops] port gets neither the admin key nor the new password; the
    command changes the storage instead.
    """
    squatter = Squatter()
    try:
        with cli.config.open("a") as f:
            f.write(f'[ops]\nenabled = true\nport = {squatter.port}\nadmin_key = "{"k" * 32}"\n')
        assert cli("adduser", "alice", stdin="old-password\n")[0] == 0
        code, out, err = cli(*command, stdin="NewSecretPassw0rd\n")
    finally:
        squatter.close()
    assert squatter.captured == []
    assert code == 0 and "changing the storage instead" in err
    if command[0] == "passwd":
        assert verifyPlain(Credentials.fromDict(cli.account("alice").credentials), "NewSecretPassw0rd")


def test_apiUsedWhileServerHoldsLock(cli, tmp_path):
    """While a server holds the data directory lock, the user commands go to its API."""
    from xmppchat.instancelock import lockDataDir, unlock

    squatter = Squatter()  # stands in for the running server's API here
    lock = lockDataDir(str(tmp_path / "data"))
    try:
        with cli.config.open("a") as f:
            f.write(f'[ops]\nenabled = true\nport = {squatter.port}\nadmin_key = "{"k" * 32}"\n')
        code, out, err = cli("deluser", "alice")
    finally:
        unlock(lock)
        squatter.close()
    assert code == 0 and [c[:3] for c in squatter.captured] == [("DELETE", "/admin/api/users/alice",
                                                                  "Bearer " + "k" * 32)]
