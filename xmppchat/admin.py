"""
Account administration from the command line, on the configured storage::

    python -m xmppchat.admin [--config FILE] adduser NAME
    python -m xmppchat.admin deluser NAME
    python -m xmppchat.admin passwd NAME
    python -m xmppchat.admin list
    python -m xmppchat.admin import-users FILE      # "name password" lines, "-" for stdin
    python -m xmppchat.admin create-broadcast NAME --owner ID [--occupants 1,2]
    python -m xmppchat.admin unlock NAME|IP    # lift failed-login lockouts
    python -m xmppchat.admin backup FILE       # online SQLite snapshot + blobs (xmppchat.backup)
    python -m xmppchat.admin restore FILE      # into an empty data directory
    python -m xmppchat.admin export FILE       # XEP-0227 + dialogs, any backend (xmppchat.portable)
    python -m xmppchat.admin import FILE       # into an empty storage (SQLite -> MongoDB moves)

Passwords are read from the first line of standard input, or asked twice
when it is a terminal.  The storage is used synchronously (no reactor); the
SQLite database is in WAL mode with a busy timeout, so this works while the
server runs.
"""

from __future__ import annotations

import argparse
import getpass
import multiprocessing
import os
import sys
import time

# Below this many new accounts, credentials are derived in this process.
POOL_THRESHOLD = 200
DEFAULT_ITERATIONS = 4096


class AdminError(Exception):
    """
    A problem to report on stderr, exiting with status 1.
    """


RUNNING_SERVER = ("a running server ends the user's streams within"
                  " limits.session_recheck_seconds")


def result(d):
    """
    The result of an already-fired Deferred (synchronous storage).
    """
    out = []
    failures = []
    d.addCallbacks(out.append, failures.append)
    if failures:
        failures[0].raiseException()
    if not out:
        raise RuntimeError("storage call did not complete synchronously")
    return out[0]


def _deriveCredentials(password: str, iterations: int) -> dict:
    from xmppchat.auth.credentials import deriveCredentials

    try:
        return deriveCredentials(password, iterations=iterations).toDict()
    except ValueError as e:
        raise AdminError(f"unusable password: {e}") from None


def _deriveOne(job):
    """
    C{(number, localpart, credentials, None)}, or C{(number, localpart,
    None, problem)} when the password cannot be used.
    """
    number, localpart, password, iterations = job
    try:
        return number, localpart, _deriveCredentials(password, iterations), None
    except AdminError as e:
        return number, localpart, None, str(e)


def _parseJID(s: str):
    """
    Our bounded JID parser if present, else Twisted's; returns a JID or
    raises C{ValueError}.
    """
    try:
        from xmppchat.jid import parseJID
    except ImportError:
        from twisted.words.protocols.jabber import jid

        try:
            return jid.JID(s)
        except (jid.InvalidFormat, UnicodeError, IndexError) as e:
            raise ValueError(str(e) or "invalid JID") from None
    return parseJID(s)


def localpartOf(name: str, domain: str) -> str:
    """
    The prepared localpart for user C{name} on C{domain}; L{AdminError} if
    C{name@domain} is not a valid bare JID.
    """
    if not name or "@" in name or "/" in name:
        raise AdminError(f"invalid user name {name!r}")
    try:
        parsed = _parseJID(f"{name}@{domain}")
    except ValueError as e:
        raise AdminError(f"invalid user name {name!r}: {e}") from None
    if not parsed.user or parsed.resource is not None:
        raise AdminError(f"invalid user name {name!r}")
    return parsed.user


def newLocalpartOf(name: str, domain: str, appId: int) -> str:
    """
    L{localpartOf} for a new user: C{<id>-<otherApp>}, the shape of a
    REST/SDK account of another application, is refused (one application
    per server, issue 15 finding 2): no JID naming another application
    resolves to an account here.
    """
    from xmppchat.dialogs.addressing import appIdOf

    localpart = localpartOf(name, domain)
    other = appIdOf(localpart)
    if other is not None and other != appId:
        raise AdminError(f"invalid user name {name!r}: <id>-<appId> names another application"
                         f" (this server serves application {appId})")
    return localpart


def serverAppId(config) -> int:
    """
    The application this server serves (the one C{[[rest.apps]]}), 1 when
    none is configured (as the dialog rooms assume).
    """
    apps = config.rest.apps
    return apps[0]["application_id"] if apps else 1


def readPassword(stdin) -> str:
    """
    The new password: asked twice on a terminal, else the first line of
    C{stdin}.
    """
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise AdminError("passwords do not match")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("empty password")
    return password


class Admin:
    """
    The commands, on a started storage.
    """

    def __init__(self, storage, domain: str, stdin, stdout, stderr,
                 iterations: int = DEFAULT_ITERATIONS, processes: int | None = None,
                 appId: int = 1):
        self.storage = storage
        self.domain = domain
        self.appId = appId
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.iterations = iterations
        self.processes = processes

    def jidOf(self, localpart: str) -> str:
        return f"{localpart}@{self.domain}"

    def _account(self, name):
        localpart = localpartOf(name, self.domain)
        account = result(self.storage.accounts.getAccountByLocalpart(localpart))
        if account is None:
            raise AdminError(f"no such user: {self.jidOf(localpart)}")
        return account

    def adduser(self, args) -> int:
        from xmppchat.storage.interfaces import AlreadyExists

        localpart = newLocalpartOf(args.name, self.domain, self.appId)
        if result(self.storage.accounts.getAccountByLocalpart(localpart)) is not None:
            raise AdminError(f"user already exists: {self.jidOf(localpart)}")
        credentials = _deriveCredentials(readPassword(self.stdin), self.iterations)
        try:
            account = result(self.storage.accounts.createAccount(localpart, credentials))
        except AlreadyExists:
            raise AdminError(f"user already exists: {self.jidOf(localpart)}") from None
        self.stdout.write(f"created {self.jidOf(localpart)} (id {account.id})\n")
        return 0

    def deluser(self, args) -> int:
        account = self._account(args.name)
        result(self.storage.accounts.deleteAccount(account.id))
        self.stdout.write(f"deleted {self.jidOf(account.localpart)} with its session tokens;"
                          f" {RUNNING_SERVER}\n")
        return 0

    def passwd(self, args) -> int:
        account = self._account(args.name)
        credentials = _deriveCredentials(readPassword(self.stdin), self.iterations)
        result(self.storage.accounts.setCredentials(account.id, credentials))
        # Issue 15 finding 4: a password change revokes the session tokens.
        revoked = result(self.storage.tokens.deleteAccountTokens(account.id))
        self.stdout.write(f"password changed for {self.jidOf(account.localpart)},"
                          f" {len(revoked)} session token(s) revoked; {RUNNING_SERVER}\n")
        return 0

    def listUsers(self, args) -> int:
        page = 1000
        offset = 0
        while True:
            accounts = result(self.storage.accounts.listAccounts(offset, page))
            for account in accounts:
                self.stdout.write(f"{account.id}\t{self.jidOf(account.localpart)}\n")
            if len(accounts) < page:
                return 0
            offset += page

    def importUsers(self, args) -> int:
        started = time.monotonic()
        if args.file == "-":
            text = self.stdin.read()
        else:
            try:
                with open(args.file, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeError) as e:
                raise AdminError(f"cannot read {args.file}: {e}") from None
        # Not splitlines(): it also splits at control characters a password may hold.
        lines = text.split("\n")
        source = "<stdin>" if args.file == "-" else args.file
        jobs = []
        seen = set()
        skipped = []
        invalid = 0
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                self.stderr.write(f"{source}:{number}: expected 'name password'\n")
                invalid += 1
                continue
            name, password = parts
            try:
                localpart = newLocalpartOf(name, self.domain, self.appId)
            except AdminError as e:
                self.stderr.write(f"{source}:{number}: {e}\n")
                invalid += 1
                continue
            if localpart in seen or result(
                    self.storage.accounts.getAccountByLocalpart(localpart)) is not None:
                skipped.append(localpart)
                continue
            seen.add(localpart)
            jobs.append((number, localpart, password, self.iterations))
        entries = []
        for number, localpart, credentials, problem in self._deriveAll(jobs):
            if problem is None:
                entries.append((localpart, credentials))
            else:
                self.stderr.write(f"{source}:{number}: {problem}\n")
                invalid += 1
        created, raced = result(self.storage.accounts.createAccounts(entries))
        skipped.extend(raced)
        elapsed = time.monotonic() - started
        self.stdout.write(f"created {created}, skipped {len(skipped)} existing"
                          f"{f', {invalid} invalid' if invalid else ''} ({elapsed:.1f}s)\n")
        return 1 if invalid else 0

    def createBroadcast(self, args) -> int:
        """
        A broadcast dialog (type 1), which REST users may not create.
        """
        from xmppchat.storage.interfaces import DIALOG_BROADCAST

        if not args.name.strip() or len(args.name) > 200:
            raise AdminError("the name must be 1 to 200 characters")
        owner = result(self.storage.accounts.getAccount(args.owner))
        if owner is None:
            raise AdminError(f"no account with id {args.owner}")
        occupants = []
        for part in (args.occupants or "").split(","):
            if not part.strip():
                continue
            try:
                accountId = int(part)
            except ValueError:
                raise AdminError(f"not an account id: {part.strip()!r}") from None
            if result(self.storage.accounts.getAccount(accountId)) is None:
                raise AdminError(f"no account with id {accountId}")
            occupants.append(accountId)
        dialog = result(self.storage.dialogs.createDialog(
            DIALOG_BROADCAST, owner.id, occupantIds=occupants, name=args.name.strip()))
        self.stdout.write(f"created broadcast dialog {dialog.id} ({dialog.name!r}, owner {owner.id})\n")
        return 0

    def unlock(self, args) -> int:
        """
        Forget the failed logins of an IP address or an account (issue 15
        #5): the lockouts live in each server's memory, so this leaves a
        request in storage that running servers apply within seconds
        (L{xmppchat.auth.throttle.UnlockWatcher}).
        """
        import ipaddress

        from xmppchat.auth.throttle import UNLOCK_POLL_SECONDS

        try:
            key = what = str(ipaddress.ip_address(args.target))
        except ValueError:
            key = self._account(args.target).localpart
            what = self.jidOf(key)
        result(self.storage.unlocks.addUnlock(key))
        self.stdout.write(f"unlock of {what} requested: running servers apply it within"
                          f" {UNLOCK_POLL_SECONDS} s\n")
        return 0

    def export(self, args) -> int:
        """
        The whole deployment to an archive (L{xmppchat.portable}).
        """
        from xmppchat.portable import export

        counts = export(self.storage, self.config, args.file)["counts"]
        self.stdout.write(f"exported {_counted(counts)} to {os.path.abspath(args.file)}\n")
        return 0

    def importArchive(self, args) -> int:
        from xmppchat.portable import importArchive

        importer = importArchive(self.storage, self.config, args.file)
        for warning in importer.warnings:
            self.stderr.write(f"xmppchat-admin: warning: {warning}\n")
        self.stdout.write(f"imported {_counted(importer.counts)} from {args.file}\n")
        return 0

    def _deriveAll(self, jobs):
        """
        L{_deriveOne} for each job, in order; PBKDF2 costs milliseconds
        per password, so large imports use every core.
        """
        processes = self.processes or os.cpu_count() or 1
        if len(jobs) < POOL_THRESHOLD or processes < 2:
            return [_deriveOne(job) for job in jobs]
        # By its importable name, also when this file runs as __main__.
        from xmppchat.admin import _deriveOne as worker

        chunksize = max(1, len(jobs) // (processes * 8))
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            return pool.map(worker, jobs, chunksize)


def _counted(counts: dict) -> str:
    return ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items())


def backupCommand(config, args, stdout) -> int:
    """
    C{backup FILE} and C{restore FILE}: on the database file, without
    opening the storage (L{xmppchat.backup}).
    """
    from xmppchat import backup

    manifest = getattr(backup, args.command)(config, args.file)
    done = "backed up" if args.command == "backup" else "restored"
    stdout.write(f"{done} {config.storage.path} (schema {manifest['schema']}) and"
                 f" {manifest['blobs']} blob file(s) {'to' if args.command == 'backup' else 'from'}"
                 f" {args.file}\n")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def makeParser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="configuration file (default: conf/xmppchat.dev.toml)")
    parser = argparse.ArgumentParser(prog="python -m xmppchat.admin", description="Manage xmppchat accounts.")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="configuration file (default: conf/xmppchat.dev.toml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = commands.add_parser("adduser", parents=[common], help="create an account (password on stdin)")
    p.add_argument("name")
    p.set_defaults(run=Admin.adduser)
    p = commands.add_parser("deluser", parents=[common], help="delete an account and its data")
    p.add_argument("name")
    p.set_defaults(run=Admin.deluser)
    p = commands.add_parser("passwd", parents=[common], help="change a password (password on stdin)")
    p.add_argument("name")
    p.set_defaults(run=Admin.passwd)
    p = commands.add_parser("list", parents=[common], help="list accounts: id<TAB>jid")
    p.set_defaults(run=Admin.listUsers)
    p = commands.add_parser("import-users", parents=[common],
                            help="create accounts from 'name password' lines ('-' for stdin)")
    p.add_argument("file")
    p.add_argument("--iterations", type=_positive, default=DEFAULT_ITERATIONS,
                   help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS})")
    p.add_argument("--processes", type=_positive, default=None,
                   help="worker processes for hashing (default: one per CPU)")
    p.set_defaults(run=Admin.importUsers)
    p = commands.add_parser("create-broadcast", parents=[common],
                            help="create a broadcast dialog (type 1) owned by account ID")
    p.add_argument("name")
    p.add_argument("--owner", type=_positive, required=True, metavar="ID", help="owner account id")
    p.add_argument("--occupants", default="", metavar="IDS", help="comma-separated account ids")
    p.set_defaults(run=Admin.createBroadcast)
    p = commands.add_parser("unlock", parents=[common],
                            help="lift the failed-login lockouts of a user or an IP address")
    p.add_argument("target", metavar="NAME|IP")
    p.set_defaults(run=Admin.unlock)
    for name, text in (("backup", "online snapshot of the SQLite database and blob files"),
                       ("restore", "a backup into an empty data directory")):
        p = commands.add_parser(name, parents=[common], help=text)
        p.add_argument("file")
        p.set_defaults(offline=backupCommand)
    p = commands.add_parser("export", parents=[common],
                            help="everything to a XEP-0227 + dialogs archive (any backend)")
    p.add_argument("file")
    p.set_defaults(run=Admin.export)
    p = commands.add_parser("import", parents=[common], help="an export into an empty storage")
    p.add_argument("file")
    p.set_defaults(run=Admin.importArchive)
    return parser


def main(argv=None) -> int:
    """
    Run one command; returns the exit status.
    """
    from xmppchat.backup import ArchiveError
    from xmppchat.config import ConfigError, loadConfig
    from xmppchat.storage import openStorage
    from xmppchat.storage.interfaces import StorageError

    args = makeParser().parse_args(argv)
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    try:
        config = loadConfig(args.config)
    except ConfigError as e:
        for problem in e.problems:
            stderr.write(f"{problem}\n")
        return 1
    if hasattr(args, "offline"):
        try:
            return args.offline(config, args, stdout)
        except ArchiveError as e:
            stderr.write(f"xmppchat-admin: {e}\n")
            return 1
    try:
        storage = openStorage(config.storage, synchronous=True)
    except (NotImplementedError, ValueError, OSError) as e:
        stderr.write(f"xmppchat-admin: {e}\n")
        return 1
    try:
        result(storage.start())
    except StorageError as e:
        stderr.write(f"xmppchat-admin: {e}\n")
        return 1
    admin = Admin(storage, config.server.domain, stdin, stdout, stderr,
                  iterations=getattr(args, "iterations", DEFAULT_ITERATIONS),
                  processes=getattr(args, "processes", None), appId=serverAppId(config))
    admin.config = config
    try:
        return args.run(admin, args)
    except (AdminError, ArchiveError) as e:
        stderr.write(f"xmppchat-admin: {e}\n")
        return 1
    except StorageError as e:
        stderr.write(f"xmppchat-admin: storage error: {e}\n")
        return 1
    finally:
        result(storage.stop())


if __name__ == "__main__":
    sys.exit(main())
