"""
Administration from the command line: accounts on the configured storage,
and the running server through its admin API (L{xmppchat.ops.adminapi})::

    python -m xmppchat.admin [--config FILE] [--create] adduser NAME
    python -m xmppchat.admin deluser NAME      # API when the server runs, else storage
    python -m xmppchat.admin passwd NAME       # API when the server runs, else storage
    python -m xmppchat.admin list
    python -m xmppchat.admin import-users FILE      # "name password" lines, "-" for stdin
    python -m xmppchat.admin create-broadcast NAME --owner ID [--occupants 1,2]
    python -m xmppchat.admin unlock NAME|IP    # lift failed-login lockouts (API, else storage)
    python -m xmppchat.admin sessions [--user JID] | kick JID [--reason TEXT] | stats
    python -m xmppchat.admin announce [--all] [--subject S] TEXT|- | reload [tls limits log]
    python -m xmppchat.admin backup FILE       # online SQLite snapshot + blobs (xmppchat.backup)
    python -m xmppchat.admin restore FILE      # into an empty data directory
    python -m xmppchat.admin hash-password     # a panel administrator's password_hash
    python -m xmppchat.admin export FILE       # XEP-0227 + dialogs, any backend (xmppchat.portable)
    python -m xmppchat.admin import FILE       # into an empty storage (SQLite -> MongoDB moves)

Passwords are read from the first line of standard input, or asked twice
when it is a terminal.  The storage is used synchronously (no reactor); the
SQLite database is in WAL mode with a busy timeout, so this works while the
server runs.  Every run prints (stderr) the config and the database it
uses, and a SQLite database that does not exist is created only with
C{--create} (issue 18: run from another directory without C{--config},
the dev config's relative path silently made a new empty database).

C{deluser}, C{passwd} and C{unlock} go through the admin API when the
configuration enables it (C{[ops]} with an admin key) and the server
answers: the user's streams end at once, on every cluster node.  When it
does not answer they change the storage, and a running server ends the
streams within C{limits.session_recheck_seconds} (its periodic check,
L{xmppchat.auth.revocation.StreamCheck}).
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import multiprocessing
import os
import sys
import time
from urllib.parse import quote, urlencode

# the user name rules, shared with the admin API and import (re-exported here)
from xmppchat.storage.common import result  # noqa: F401 (tests and scripts import it from here)
from xmppchat.usernames import AdminError, localpartOf, newLocalpartOf, serverAppId  # noqa: F401

# Below this many new accounts, credentials are derived in this process.
POOL_THRESHOLD = 200
DEFAULT_ITERATIONS = 4096


RUNNING_SERVER = ("a running server ends the user's streams within"
                  " limits.session_recheck_seconds")
API_TIMEOUT = 30
# announce --all stores for every offline account before it answers (review 18 #1)
ANNOUNCE_ALL_TIMEOUT = 3600


class ServerUnreachable(Exception):
    """
    The admin API is not configured, or the server does not answer.
    """


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


class ApiClient:
    """
    The running server's admin API (L{xmppchat.ops.adminapi}), at the
    C{[ops]} listener's address (its port from C{<data_dir>/ports.json}
    when the server published one) with the configured key.
    """

    def __init__(self, config):
        from xmppchat.ops.adminkey import loadAdminKey
        from xmppchat.ops.probe import localHost

        ops = config.ops
        self.dataDir = config.server.data_dir
        self.key = loadAdminKey(ops, config.baseDir) if ops.enabled else None
        host = localHost(ops.interface)
        port = ops.port
        try:
            with open(os.path.join(config.server.data_dir, "ports.json")) as f:
                port = json.load(f).get("ops", port)
        except (OSError, ValueError, AttributeError):
            pass
        self.host, self.port = host, port
        self.config = config

    @property
    def where(self) -> str:
        from xmppchat.ops.probe import httpURL

        return httpURL(self.host, self.port, "/admin/api", self.config.ops.tls)

    def _connection(self, timeout: float):
        """
        Plain HTTP, or HTTPS trusting the server's own certificate with
        C{[ops] tls} (L{xmppchat.ops.probe.clientTLS}).
        """
        from xmppchat.ops.probe import clientTLS

        try:
            tls = clientTLS(self.config)
        except OSError as e:
            raise ServerUnreachable(f"cannot read the server's certificate for {self.where}: {e}") from None
        if tls is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=tls)

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
             timeout: float = API_TIMEOUT):
        """
        The decoded JSON answer; L{ServerUnreachable} when there is no API
        to call, L{AdminError} with the server's text for an error status.
        """
        if self.key is None:
            raise ServerUnreachable("the admin API is not configured ([ops] enabled with admin_key"
                                    " or admin_key_file)")
        from xmppchat.instancelock import LOCK_NAME, serverHolds

        if serverHolds(self.dataDir) is False:
            # Security review of issue 18, finding 5: the key and a new
            # password go only to a port a running server holds.
            raise ServerUnreachable(f"no server runs on {self.dataDir} ({LOCK_NAME} is not held)")
        url = "/admin/api/" + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        connection = self._connection(timeout)
        try:
            connection.request(method, url, body=data, headers={
                "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
            response = connection.getresponse()
            text = response.read()
        except ConnectionRefusedError:
            raise ServerUnreachable(f"no server answers at {self.where}") from None
        except OSError as e:
            raise ServerUnreachable(f"cannot reach {self.where}: {e}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(text)
        except ValueError:
            raise AdminError(f"{method} {url}: HTTP {response.status}, not JSON") from None
        if response.status >= 400:
            raise AdminError(f"{answer.get('error') or 'error'} (HTTP {response.status})")
        return answer


class RemoteAdmin:
    """
    The commands that act on the running server, through L{ApiClient}.
    """

    def __init__(self, api: ApiClient, stdin, stdout, stderr):
        self.api = api
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    def _unreachable(self, answer) -> None:
        if answer.get("unreachable"):
            self.stderr.write(f"xmppchat-admin: no answer from node(s) {', '.join(answer['unreachable'])}\n")

    def sessions(self, args) -> int:
        answer = self.api.call("GET", "sessions", query={"user": args.user} if args.user else None)
        if args.json:
            self.stdout.write(json.dumps(answer, indent=2) + "\n")
        for s in [] if args.json else answer["sessions"]:
            sm = "sm-resumable" if s["sm"]["resumable"] else "sm" if s["sm"]["enabled"] else "-"
            self.stdout.write("\t".join(str(v) for v in (
                s["jid"], s["transport"], s["address"], s["since"], s["node"] or "-", sm, s["csi"])) + "\n")
        self._unreachable(answer)
        return 0

    def kick(self, args) -> int:
        answer = self.api.call("DELETE", "sessions/" + quote(args.jid, safe="@"),
                               query={"reason": args.reason} if args.reason else None)
        for full in answer["kicked"]:
            self.stdout.write(f"kicked {full}\n")
        return 0

    def stats(self, args) -> int:
        self.stdout.write(json.dumps(self.api.call("GET", "stats"), indent=2) + "\n")
        return 0

    def announce(self, args) -> int:
        text = self.stdin.read() if args.text == "-" else args.text
        body = {"body": text, "to": "all" if args.all else "online"}
        if args.subject:
            body["subject"] = args.subject
        if args.id:
            body["id"] = args.id
        answer = self.api.call("POST", "announce", body,
                               timeout=ANNOUNCE_ALL_TIMEOUT if args.all else API_TIMEOUT)
        stored = f", stored for {answer['stored']} offline user(s)" if "stored" in answer else ""
        refused = f" ({answer['refused']} full queue(s))" if answer.get("refused") else ""
        self.stdout.write(f"announced to {answer['online']} online session(s){stored}{refused}\n")
        self._unreachable(answer)
        return 0

    def reload(self, args) -> int:
        answer = self.api.call("POST", "reload", {"what": args.parts} if args.parts else {})
        failed = False
        for node, parts in answer["nodes"].items():
            label = "" if node == "local" else f"{node}: "
            for part, outcome in parts.items():
                failed = failed or outcome != "reloaded"
                self.stdout.write(f"{label}{part}: {outcome}\n")
        self._unreachable(answer)
        return 1 if failed else 0

    def unlock(self, args) -> int:
        answer = self.api.call("POST", "unlock", {"target": args.target})
        self.stdout.write(f"unlocked {answer['unlocked']} (every node applies it within seconds)\n")
        return 0

    def deluser(self, args) -> int:
        answer = self.api.call("DELETE", "users/" + quote(args.name, safe="@"))
        self.stdout.write(f"deleted {answer['deleted']} with its session tokens; its streams ended\n")
        return 0

    def passwd(self, args) -> int:
        self.api.call("GET", "stats")  # reachable before asking for a password
        answer = self.api.call("PUT", f"users/{quote(args.name, safe='@')}/password",
                               {"password": readPassword(self.stdin)})
        self.stdout.write(f"password changed for {answer['changed']}, {answer['revoked']} session"
                          f" token(s) revoked; its password and token streams ended\n")
        return 0


def describeSetup(config, path) -> str:
    """
    The config file and database a run uses, for stderr.
    """
    from urllib.parse import urlsplit

    if path is not None:
        where = os.path.abspath(path)
    elif config.source == "<defaults>":
        where = f"built-in defaults (no --config, no {os.path.join(os.getcwd(), 'conf', 'xmppchat.dev.toml')})"
    else:
        where = f"{os.path.abspath(config.source)} (default)"
    storage = config.storage
    if storage.backend == "mongodb":
        uri = urlsplit(storage.mongodb_uri)
        hostpart = uri.netloc.rpartition("@")[2]  # never the credentials
        database = f"mongodb {uri.scheme}://{hostpart} database {storage.mongodb_database}"
    else:
        database = f"sqlite {storage.path}"
    return f"xmppchat-admin: config {where}; database {database}\n"


def missingDatabase(config) -> str | None:
    """
    Why the storage must not be opened without C{--create}: the SQLite
    file does not exist (MongoDB creates databases on first write; the
    printed URI and name show which one is used).
    """
    storage = config.storage
    if storage.backend == "sqlite" and storage.path != ":memory:" and not os.path.exists(storage.path):
        return (f"no database at {storage.path}: check --config (run from another directory?),"
                f" or pass --create to create a new one")
    return None


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
    common.add_argument("--create", action="store_true", default=argparse.SUPPRESS,
                        help="create the SQLite database if it does not exist")
    parser = argparse.ArgumentParser(prog="python -m xmppchat.admin",
                                     description="Manage xmppchat accounts and the running server.")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="configuration file (default: conf/xmppchat.dev.toml)")
    parser.add_argument("--create", action="store_true", default=False,
                        help="create the SQLite database if it does not exist")
    from xmppchat import __version__

    parser.add_argument("--version", action="version", version=f"xmppchat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = commands.add_parser("hash-password",
                            help="the password_hash of a panel administrator (password on stdin)")
    p.set_defaults(standalone=hashPasswordCommand)
    p = commands.add_parser("adduser", parents=[common], help="create an account (password on stdin)")
    p.add_argument("name")
    p.set_defaults(run=Admin.adduser)
    p = commands.add_parser("deluser", parents=[common], help="delete an account and its data")
    p.add_argument("name")
    p.set_defaults(run=Admin.deluser, api=RemoteAdmin.deluser)
    p = commands.add_parser("passwd", parents=[common], help="change a password (password on stdin)")
    p.add_argument("name")
    p.set_defaults(run=Admin.passwd, api=RemoteAdmin.passwd)
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
    p.set_defaults(run=Admin.unlock, api=RemoteAdmin.unlock)
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
    p.set_defaults(run=Admin.importArchive, creates=True)
    _addServerCommands(commands, common)
    return parser


def _addServerCommands(commands, common) -> None:
    """
    The commands only the running server can do (admin API).
    """
    p = commands.add_parser("sessions", parents=[common], help="list the sessions (running server)")
    p.add_argument("--user", metavar="JID", help="only this user's sessions")
    p.add_argument("--json", action="store_true", help="the API's JSON answer")
    p.set_defaults(api=RemoteAdmin.sessions)
    p = commands.add_parser("kick", parents=[common], help="end a user's sessions (bare JID) or one session")
    p.add_argument("jid", metavar="JID")
    p.add_argument("--reason", help="text of the stream error")
    p.set_defaults(api=RemoteAdmin.kick)
    p = commands.add_parser("stats", parents=[common], help="sessions, accounts, rooms, offline queue, nodes")
    p.set_defaults(api=RemoteAdmin.stats)
    p = commands.add_parser("announce", parents=[common], help="send a headline to online users ('-': stdin)")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--subject")
    p.add_argument("--all", action="store_true", help="also store it for every offline user")
    p.add_argument("--id", help="announcement id: a retry with the same id sends and stores nothing twice")
    p.set_defaults(api=RemoteAdmin.announce)
    p = commands.add_parser("reload", parents=[common], help="re-read the config: tls, limits, log, rest, panel (default all)")
    p.add_argument("parts", nargs="*", metavar="PART")
    p.set_defaults(api=RemoteAdmin.reload)


def hashPasswordCommand(stdin, stdout, stderr) -> int:
    """
    Print the C{password_hash} of an C{[[ops.administrators]]} table (the
    web admin panel, issue 19) for the password read like L{readPassword}.
    """
    from xmppchat.ops.panel.auth import hashPassword

    try:
        password = readPassword(stdin)
    except AdminError as e:
        stderr.write(f"xmppchat-admin: {e}\n")
        return 1
    if len(password) < 12:
        stderr.write("xmppchat-admin: an administrator's password needs at least 12 characters\n")
        return 1
    stdout.write(hashPassword(password) + "\n")
    return 0


def main(argv=None) -> int:
    """
    Run one command; returns the exit status.
    """
    from xmppchat.backup import ArchiveError
    from xmppchat.config import ConfigError, loadConfig
    from xmppchat.storage.interfaces import StorageError

    args = makeParser().parse_args(argv)
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    if hasattr(args, "standalone"):
        return args.standalone(stdin, stdout, stderr)
    try:
        config = loadConfig(args.config)
    except ConfigError as e:
        for problem in e.problems:
            stderr.write(f"{problem}\n")
        return 1
    stderr.write(describeSetup(config, args.config))
    try:
        if hasattr(args, "offline"):
            return args.offline(config, args, stdout)
        if getattr(args, "api", None) is not None:
            try:
                return args.api(RemoteAdmin(ApiClient(config), stdin, stdout, stderr), args)
            except ServerUnreachable as e:
                if getattr(args, "run", None) is None:
                    raise AdminError(f"{e}; this command needs the running server") from None
                stderr.write(f"xmppchat-admin: {e}: changing the storage instead\n")
        return runOnStorage(args, config, stdin, stdout, stderr)
    except (AdminError, ArchiveError) as e:
        stderr.write(f"xmppchat-admin: {e}\n")
        return 1
    except StorageError as e:
        stderr.write(f"xmppchat-admin: storage error: {e}\n")
        return 1


def runOnStorage(args, config, stdin, stdout, stderr) -> int:
    """
    Run C{args.run} on the configured storage (synchronously), which must
    exist unless C{--create} was given or the command makes a new one
    (C{set_defaults(creates=True)}, e.g. an import into an empty store).
    """
    from xmppchat.storage import openStorage
    from xmppchat.storage.interfaces import StorageError

    creates = args.create or getattr(args, "creates", False)
    problem = None if creates else missingDatabase(config)
    if problem is not None:
        raise AdminError(problem)
    try:
        storage = openStorage(config.storage, synchronous=True)
    except (NotImplementedError, ValueError, OSError) as e:
        raise AdminError(str(e)) from None
    try:
        result(storage.start())
    except StorageError as e:
        raise AdminError(str(e)) from None
    admin = Admin(storage, config.server.domain, stdin, stdout, stderr,
                  iterations=getattr(args, "iterations", DEFAULT_ITERATIONS),
                  processes=getattr(args, "processes", None), appId=serverAppId(config))
    admin.config = config
    try:
        return args.run(admin, args)
    finally:
        result(storage.stop())


if __name__ == "__main__":
    sys.exit(main())
