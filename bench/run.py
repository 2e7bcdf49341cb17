"""
Benchmark xmppchat side by side with Prosody on this machine.

    python bench/run.py --quick        # ~5 minutes: 1,000 users, 200/1,000 online
    python bench/run.py --full         # ~20 minutes: 10,000 users, 200/1,000/5,000 online
    python bench/run.py --quick --only xmppchat    # one server (no ratios)

Needs Prosody (C{apt-get install -y prosody}; the script installs nothing)
and the project's venv (C{uvloop} is used by the load generator when
installed: C{pip install uvloop}).  Both servers run on free loopback
ports from a throwaway directory (C{--keep} keeps it):

  - xmppchat: C{twistd -n xmppchat} with C{conf/xmppchat.dev.toml}, ports and
    data_dir overridden; users created with C{python -m xmppchat.admin
    import-users};
  - Prosody: a generated config (c2s_require_encryption, internal_hashed
    SCRAM-SHA-256 with 4096 iterations like xmppchat, its own self-signed
    certificate, s2s/HTTP off), users written straight into its internal
    storage (C{data/localhost/accounts/<user>.dat}, the format
    C{prosodyctl register} writes: SCRAM salt, iteration count, StoredKey and
    ServerKey), since C{prosodyctl register} starts a Lua process per user.

The identical load (L{loadgen}) runs against each server in turn, the order
alternating between repetitions; the medians of C{--runs} (default 3)
repetitions are reported, with the ratio xmppchat/Prosody, in
C{bench/results/<date>.json} and C{.md}.  The group fan-out stage uses a
group dialog seeded through the storage API (L{seed}) on xmppchat and a MUC
room joined by every occupant on Prosody; the REST history stage (xmppchat
only) a dialog pre-filled with 100,000 messages.  No-TLS logins need
C{c2s_require_encryption = false}: both servers are restarted for that last
stage.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import loadgen  # noqa: E402

PASSWORD = "benchpass"
ITERATIONS = 4096
DOMAIN = "localhost"

PROFILES = {
    "smoke": {"users": 40, "idle": [10, 30], "login": 20, "online": [10],
              "seconds": 1.0, "in_flight": 10, "group": [10], "history": 2000},
    "dev": {"users": 1000, "idle": [1000], "login": 400, "online": [100],
            "seconds": 3.0, "in_flight": 100},
    "idle10k": {"users": 10000, "idle": [10000], "login": 400, "online": [100],
                "seconds": 3.0, "in_flight": 100},
    "quick": {"users": 1000, "idle": [1000], "login": 1000, "online": [200, 1000],
              "seconds": 5.0, "in_flight": 1000, "group": [100, 1000], "history": 100000},
    "full": {"users": 10000, "idle": [1000, 10000], "login": 3000, "online": [200, 1000, 5000],
             "seconds": 10.0, "in_flight": 1000, "group": [100, 1000], "history": 100000},
}

TODO_STAGES: list[str] = []
# Fan-out: messages whose delivery to every occupant is incomplete, at once.
GROUP_WINDOW = 10
HISTORY_REQUESTS = 7


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForPort(port: int, process, deadline: float, what: str, log: str) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on {port}:\n{_tail(log)}")


def _env() -> dict:
    # twistd finds the xmppchat plugin (twisted/plugins/) through sys.path.
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _tail(path: str) -> str:
    return open(path, errors="replace").read()[-3000:] if os.path.exists(path) else ""


def tomlValue(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(tomlValue(v) for v in value) + "]"
    raise TypeError(value)


def writeTOML(path: str, data: dict) -> None:
    """
    Tables and arrays of tables one level deep (C{[[rest.apps]]}).
    """
    with open(path, "w") as f:
        for section, values in data.items():
            f.write(f"[{section}]\n")
            nested = {k: v for k, v in values.items()
                      if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)}
            for key, value in values.items():
                if key not in nested:
                    f.write(f"{key} = {tomlValue(value)}\n")
            f.write("\n")
            for key, items in nested.items():
                for item in items:
                    f.write(f"[[{section}.{key}]]\n")
                    for k, v in item.items():
                        f.write(f"{k} = {tomlValue(v)}\n")
                    f.write("\n")


class Server:
    name = ""
    process = None

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def stop(self):
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class XMPPChatServer(Server):
    """
    twistd with the dev config, ports 0 and a temporary data_dir.
    """

    name = "xmppchat"

    def __init__(self, directory: str, venvBin: str, mucJoin: bool = False):
        self.directory = directory
        self.venvBin = venvBin
        self.mucJoin = mucJoin
        self.port = None
        os.makedirs(directory, exist_ok=True)

    def configure(self, requireTLS: bool = True):
        with open(os.path.join(ROOT, "conf", "xmppchat.dev.toml"), "rb") as f:
            data = tomllib.load(f)
        data.setdefault("server", {})["data_dir"] = os.path.join(self.directory, "data")
        c2s = data.setdefault("c2s", {})
        c2s.update(port=0, tls_port=0, interface="127.0.0.1", starttls_required=requireTLS)
        for section in ("websocket", "rest", "ops"):
            if section in data:
                data[section].update(port=0, interface="127.0.0.1")
        self.config = os.path.join(self.directory, "xmppchat.toml")
        writeTOML(self.config, data)

    def addUsers(self, count: int) -> float:
        self.configure()
        path = os.path.join(self.directory, "users.txt")
        with open(path, "w") as f:
            f.writelines(f"u{i} {PASSWORD}\n" for i in range(count))
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "xmppchat.admin", "--config", self.config, "--create",
                        "import-users", "--iterations", str(ITERATIONS), path],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return time.monotonic() - started

    def start(self, requireTLS: bool = True):
        self.configure(requireTLS)
        portsFile = os.path.join(self.directory, "data", "ports.json")
        if os.path.exists(portsFile):
            os.remove(portsFile)
        twistd = os.path.join(self.venvBin, "twistd")
        log = os.path.join(self.directory, "twistd.log")
        self.log = log
        self.process = subprocess.Popen(
            [twistd, "-n", "--pidfile=", "--logfile", log, "xmppchat", "--config", self.config],
            cwd=ROOT, env=_env(), stdout=open(log + ".out", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(portsFile):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("xmppchat did not start:\n" + _tail(log) + _tail(log + ".out"))
            time.sleep(0.1)
        with open(portsFile) as f:
            ports = json.load(f)
        self.port = ports["c2s"]
        self.restPort = ports.get("rest")

    def seed(self, users: int, groups, history: int) -> dict:
        """
        Group dialogs and a pre-filled history dialog through the storage
        API (L{seed}); the rooms are C{1_<dialogId>@muc.localhost}.
        """
        out = subprocess.run([sys.executable, os.path.join(HERE, "seed.py"), "--config", self.config,
                              "--users", str(users), "--history", str(history)]
                             + [f"--group={n}" for n in groups],
                             check=True, cwd=ROOT, capture_output=True, text=True).stdout
        self.seeded = json.loads(out)
        return self.seeded

    def room(self, size: int) -> tuple[str, bool]:
        """
        The room JID for a fan-out to C{size} occupants, and whether the
        occupants must join it first.
        """
        if self.mucJoin:  # --muc-join: a room made by joining a new name, as on Prosody
            return f"fanout{size}@muc.{DOMAIN}", True
        return f"1_{self.seeded['groups'][str(size)]}@muc.{DOMAIN}", False

    def version(self) -> str:
        import xmppchat

        return getattr(xmppchat, "__version__", "dev")


def _prosodyAccount(index: int) -> tuple[str, str]:
    salt = str(uuid.uuid4())
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt.encode(), ITERATIONS)
    clientKey = hmac.digest(salted, b"Client Key", "sha256")
    storedKey = hashlib.sha256(clientKey).hexdigest()
    serverKey = hmac.digest(salted, b"Server Key", "sha256").hex()
    return f"u{index}", (
        "return {\n"
        f'\t["iteration_count"] = {ITERATIONS};\n'
        f'\t["salt"] = "{salt}";\n'
        f'\t["server_key"] = "{serverKey}";\n'
        f'\t["stored_key"] = "{storedKey}";\n'
        "};\n"
    )


class ProsodyServer(Server):
    """
    Prosody with a throwaway config and data directory.
    """

    name = "prosody"

    def __init__(self, directory: str, nagle: bool = False):
        self.directory = directory
        self.nagle = nagle
        self.data = os.path.join(directory, "data")
        os.makedirs(self.data, exist_ok=True)
        from xmppchat.certs import makeCertificate

        keyPEM, certPEM = makeCertificate([DOMAIN, "127.0.0.1"])
        self.cert = os.path.join(directory, "cert.pem")
        self.key = os.path.join(directory, "key.pem")
        with open(self.cert, "wb") as f:
            f.write(certPEM)
        with open(self.key, "wb") as f:
            f.write(keyPEM)
        self.port = None

    def addUsers(self, count: int) -> float:
        started = time.monotonic()
        accounts = os.path.join(self.data, DOMAIN, "accounts")
        os.makedirs(accounts, exist_ok=True)
        with multiprocessing.get_context("fork").Pool() as pool:
            for name, text in pool.imap_unordered(_prosodyAccount, range(count), 64):
                with open(os.path.join(accounts, name + ".dat"), "w") as f:
                    f.write(text)
        return time.monotonic() - started

    def start(self, requireTLS: bool = True):
        self.port = freePort()
        log = os.path.join(self.directory, "prosody.log")
        self.log = log
        config = os.path.join(self.directory, "prosody.cfg.lua")
        with open(config, "w") as f:
            f.write(f"""
-- Generated by bench/run.py: a throwaway Prosody on a private loopback port.
run_as_root = true
daemonize = false
pidfile = "{self.directory}/prosody.pid"
data_path = "{self.data}"
log = {{ warn = "{log}" }}
network_backend = "epoll"
network_settings = {{ nagle = {"true" if self.nagle else "false"} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{self.directory}/prosody.sock"
certificates = "{self.directory}"
c2s_require_encryption = {"true" if requireTLS else "false"}
allow_registration = false
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = {ITERATIONS}
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version", "time", "offline" }}
modules_disabled = {{ "s2s" }}
ssl = {{ certificate = "{self.cert}"; key = "{self.key}"; }}
VirtualHost "{DOMAIN}"
Component "muc.{DOMAIN}" "muc"
    muc_room_locking = false
    max_history_messages = 0
""")
        self.process = subprocess.Popen(["prosody", "-F", "--config", config],
                                        stdout=open(log + ".out", "w"), stderr=subprocess.STDOUT)
        waitForPort(self.port, self.process, time.monotonic() + 30, "Prosody", log + ".out")

    def room(self, size: int) -> tuple[str, bool]:
        return f"fanout{size}@muc.{DOMAIN}", True

    def version(self) -> str:
        try:
            out = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        for line in out.splitlines():
            if line.startswith("Prosody "):
                return line.split(" ", 1)[1].strip()
        return "?"


# -- the measurement plan ------------------------------------------------------------------


class Bench:
    def __init__(self, servers, profile: dict, runs: int, log=print):
        self.servers = servers
        self.profile = profile
        self.runs = runs
        self.log = log
        self.raw: dict[str, dict[str, list]] = {}
        self.fresh: dict[str, int] = {}

    def gen(self, server):
        return loadgen.LoadGenerator(port=server.port, domain=DOMAIN, password=PASSWORD,
                                     serverPid=server.pid)

    def record(self, key: str, server, result: dict):
        self.raw.setdefault(key, {}).setdefault(server.name, []).append(result)
        brief = {k: v for k, v in result.items() if k not in ("error_samples",) and v is not None}
        self.log(f"  {key:24} {server.name:9} {json.dumps(brief)}")
        for sample in result.get("error_samples") or ():
            self.log(f"      error: {sample}")

    def ordered(self, rep: int):
        return self.servers if rep % 2 == 0 else list(reversed(self.servers))

    async def warmup(self):
        """
        Log every account in once (server caches, client SCRAM key cache).
        """
        for server in self.servers:
            result = await self.gen(server).loginStage(self.profile["users"], True, 100)
            self.record("warmup", server, result)

    async def logins(self, tls: bool):
        count = self.profile["login"]
        for rep in range(self.runs):
            for server in self.ordered(rep):
                result = await self.gen(server).loginStage(count, tls, 50, first=(rep * count) % self.profile["users"])
                self.record(f"login_{'tls' if tls else 'plain'}", server, result)

    async def idle(self):
        """
        Idle connections first, so that the RSS growth is measured from the
        fresh server's RSS (C{self.fresh}); later repetitions mostly reuse
        what the first one allocated, so growth is always taken from there.
        Each repetition logs in up to each count in turn (1,000 then 10,000).
        """
        counts = self.profile["idle"]
        for rep in range(self.runs):
            for server in self.ordered(rep):
                results = await self.gen(server).idleSteps(counts, True, 100,
                                                           baseline=self.fresh.get(server.name))
                for count, result in zip(counts, results):
                    self.record(f"idle_{count}", server, result)

    async def messages(self):
        seconds = self.profile["seconds"]
        inFlight = self.profile["in_flight"]
        for online in self.profile["online"]:
            gens, clients = {}, {}
            for server in self.servers:
                gen = gens[server.name] = self.gen(server)
                clients[server.name], errors = await gen.connectMany(range(online), True, 100)
                if errors:
                    self.log(f"  {server.name}: {len(errors)} logins failed, e.g. {errors[0]}")
            for rep in range(self.runs):
                for server in self.ordered(rep):
                    result = await gens[server.name].messageStage(
                        online, seconds, closed=inFlight, clients=clients[server.name])
                    self.record(f"msg_max_{online}", server, result)
            # Offered load at half Prosody's maximum (or half our own without Prosody).
            reference = "prosody" if "prosody" in self.raw[f"msg_max_{online}"] else self.servers[0].name
            rate = 0.5 * loadgen.median(r["delivered_per_s"] for r in self.raw[f"msg_max_{online}"][reference])
            for rep in range(self.runs):
                for server in self.ordered(rep):
                    result = await gens[server.name].messageStage(online, seconds, rate=rate,
                                                                  clients=clients[server.name])
                    self.record(f"msg_half_{online}", server, result)
            for server in self.servers:
                await gens[server.name].closeAll(clients[server.name])

    async def fanout(self):
        """
        One group of N occupants (all online), one sender (the first).
        xmppchat: a stored group dialog, no MUC join (the SDK's way);
        Prosody: a MUC room every occupant has joined.
        """
        for size in self.profile.get("group", []):
            gens, clients = {}, {}
            for server in self.servers:
                gen = gens[server.name] = self.gen(server)
                clients[server.name], errors = await gen.connectMany(range(size), True, 100)
                clients[server.name].sort(key=lambda c: c.index)
                if errors:
                    self.log(f"  {server.name}: {len(errors)} logins failed, e.g. {errors[0]}")
                room, join = server.room(size)
                if join:
                    await gen.joinRoom(clients[server.name], room, instant=True)
            for rep in range(self.runs):
                for server in self.ordered(rep):
                    room, _ = server.room(size)
                    result = await gens[server.name].groupStage(
                        clients[server.name], room, self.profile["seconds"], GROUP_WINDOW)
                    self.record(f"group_{size}", server, result)
            for server in self.servers:
                await gens[server.name].closeAll(clients[server.name])

    def history(self):
        """
        REST C{GET /chat/Message.json} on the pre-filled dialog (xmppchat
        only: Prosody has no such API): first page and skip=90% deep page,
        limit 100, median of L{HISTORY_REQUESTS} requests.
        """
        import http.client

        for server in self.servers:
            if not getattr(server, "restPort", None) or "history" not in getattr(server, "seeded", {}):
                continue
            info = server.seeded["history"]
            conn = http.client.HTTPConnection("127.0.0.1", server.restPort, timeout=60)

            def call(method, path, body=None, token=None):
                headers = {"Content-Type": "application/json"}
                if token:
                    headers["CB-Token"] = token
                conn.request(method, path, json.dumps(body) if body is not None else None, headers)
                response = conn.getresponse()
                data = response.read()
                if response.status >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
                return json.loads(data)

            token = call("POST", "/session.json", {"application_id": 1, "auth_key": "dev-auth-key",
                                                   "user": {"login": "u0", "password": PASSWORD}})["session"]["token"]
            deep = info["messages"] * 9 // 10
            for label, skip in (("first", 0), ("deep", deep)):
                path = f"/chat/Message.json?chat_dialog_id={info['dialog']}&limit=100&skip={skip}"
                times, count = [], 0
                for _ in range(HISTORY_REQUESTS):
                    cpu = loadgen.processCPU(server.pid)
                    started = time.perf_counter()
                    count = len(call("GET", path, token=token)["items"])
                    times.append(time.perf_counter() - started)
                self.record(f"history_{label}", server, {
                    "stage": "history", "skip": skip, "messages": info["messages"], "items": count,
                    "requests": HISTORY_REQUESTS, "latency_ms": round(loadgen.median(times) * 1000, 2),
                    "latency_max_ms": round(max(times) * 1000, 2), "insert_s": info["insert_s"]})
            conn.close()


def summarise(raw: dict, runs: int) -> list[dict]:
    """
    One row per metric: the medians per server and the ratio
    xmppchat/Prosody (how many times Prosody's figure ours is).
    """
    rows = []

    def add(label, key, field, better, scale=1.0, derived=None, source=raw):
        if key not in source:
            return
        row = {"metric": label, "better": better, "key": key, "field": field}
        for name, results in source[key].items():
            values = [derived(r) if derived else r.get(field) for r in results]
            value = loadgen.median(v for v in values if v is not None)
            row[name] = None if value is None else round(value * scale, 3)
        if row.get("xmppchat") and row.get("prosody"):
            row["ratio"] = round(row["xmppchat"] / row["prosody"], 2)
        rows.append(row)

    def cpuPer(count):
        return lambda r: (r["server_cpu_s"] / r[count] * 1e6) if r.get(count) and "server_cpu_s" in r else None

    add("TLS logins/s", "login_tls", "logins_per_s", "higher")
    add("server CPU per TLS login (µs)", "login_tls", None, "lower", derived=cpuPer("ok"))
    add("plain logins/s (no TLS)", "login_plain", "logins_per_s", "higher")
    add("server CPU per plain login (µs)", "login_plain", None, "lower", derived=cpuPer("ok"))
    for key in sorted(k for k in raw if k.startswith("msg_max_")):
        n = key.rsplit("_", 1)[1]
        add(f"{n} online: max delivered msgs/s", key, "delivered_per_s", "higher")
        add(f"{n} online: server CPU per msg (µs)", key, None, "lower", derived=cpuPer("delivered"))
        add(f"{n} online: p99 at max (ms)", key, "latency_p99_ms", "lower")
        add(f"{n} online: lost at max", key, "lost", "lower")
        add(f"{n} online: server CPU at max (% of wall)", key, None, "-", scale=100,
            derived=lambda r: r["server_cpu_s"] / r["wall_s"] if "server_cpu_s" in r else None)
        add(f"{n} online: load generator CPU at max (% of wall)", key, None, "-", scale=100,
            derived=lambda r: r["loadgen_cpu_s"] / r["wall_s"])
    for key in sorted((k for k in raw if k.startswith("group_")), key=lambda k: int(k.split("_")[1])):
        n = key.split("_")[1]
        add(f"group of {n} (1 sender): delivered stanzas/s", key, "delivered_per_s", "higher")
        add(f"group of {n}: p50 latency (ms)", key, "latency_p50_ms", "lower")
        add(f"group of {n}: p99 latency (ms)", key, "latency_p99_ms", "lower")
        add(f"group of {n}: server CPU per delivered stanza (µs)", key, None, "lower",
            derived=cpuPer("delivered"))
        add(f"group of {n}: lost copies", key, "lost", "lower")
    for label, where in (("first", "skip 0"), ("deep", "skip 90%")):
        add(f"REST history of {raw.get(f'history_{label}', {}).get('xmppchat', [{}])[0].get('messages', '?'):,}"
            f" msgs, 100-message page, {where} (ms)" if f"history_{label}" in raw else "", f"history_{label}",
            "latency_ms", "lower")
    for key in sorted(k for k in raw if k.startswith("msg_half_")):
        n = key.rsplit("_", 1)[1]
        add(f"{n} online: offered msgs/s (½ Prosody max)", key, "offered_rate", "-")
        add(f"{n} online: delivered msgs/s at ½ max", key, "delivered_per_s", "higher")
        add(f"{n} online: p50 at ½ max (ms)", key, "latency_p50_ms", "lower")
        add(f"{n} online: p99 at ½ max (ms)", key, "latency_p99_ms", "lower")
        add(f"{n} online: lost at ½ max", key, "lost", "lower")
    # Idle steps below the largest count are valid in the first repetition
    # only: later ones run in a process that already held the largest
    # count, whose memory it keeps.
    idle = sorted(int(k.split("_")[1]) for k in raw if k.startswith("idle_"))
    firstOnly = {n: {name: results[:1] for name, results in raw[f"idle_{n}"].items()}
                 for n in idle[:-1]}
    idleRaw = dict(raw, **{f"idle_{n}": v for n, v in firstOnly.items()})
    for n in idle:
        key = f"idle_{n}"
        note = " (1st run)" if n in firstOnly else ""
        add(f"{n} idle conns: connected", key, "alive", "higher", source=idleRaw)
        add(f"{n} idle conns: RSS/conn (KiB){note}", key, "rss_per_conn", "lower", scale=1 / 1024,
            source=idleRaw)
        add(f"{n} idle conns: RSS growth/conn over fresh server (KiB){note}", key, "rss_delta_per_conn",
            "lower", scale=1 / 1024, source=idleRaw)
    if len(idle) >= 2:
        lo, hi = idle[0], idle[-1]
        row = {"metric": f"RSS per added idle conn, {lo:,}→{hi:,}, 1st run (KiB)", "better": "lower",
               "key": f"idle_{lo}-{hi}", "field": "slope"}
        for name in raw[f"idle_{hi}"]:
            a, b = raw[f"idle_{lo}"][name][0], raw[f"idle_{hi}"][name][0]
            if a.get("rss_after") and b.get("rss_after") and b["alive"] > a["alive"]:
                row[name] = round((b["rss_after"] - a["rss_after"]) / (b["alive"] - a["alive"]) / 1024, 3)
        if row.get("xmppchat") and row.get("prosody"):
            row["ratio"] = round(row["xmppchat"] / row["prosody"], 2)
        rows.append(row)
    return rows


def markdown(rows, meta) -> str:
    lines = [
        f"Benchmark {meta['date']} on {meta['machine']['cpu']} ×{meta['machine']['cores']}, "
        f"{meta['machine']['kernel']}; xmppchat {meta.get('xmppchat', '-')} (Python {meta['machine']['python']}), "
        f"Prosody {meta.get('prosody', '-')}; profile {meta['profile']}, median of {meta['runs']} runs.",
        "",
        "| metric | xmppchat | Prosody | xmppchat/Prosody | better |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        def fmt(v):
            if v is None:
                return "-"
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"
        lines.append(f"| {row['metric']} | {fmt(row.get('xmppchat'))} | {fmt(row.get('prosody'))} | "
                     f"{row.get('ratio', '-')} | {row['better']} |")
    lines.append("")
    if meta.get("error"):
        lines.append(f"The run stopped early ({meta['error']}); the rows above are what was measured.")
        lines.append("")
    if any(r["key"].startswith("group_") for r in rows) and meta.get("muc_join"):
        lines.append("Group fan-out (`--muc-join`): on both servers every occupant joined "
                     "`fanout<N>@muc.localhost`, an instant room made by the first (XEP-0045 "
                     "§10.1.2), as stock clients do. Both reflect the message to the sender; every "
                     "copy counts.")
    elif any(r["key"].startswith("group_") for r in rows):
        lines.append("Group fan-out: xmppchat delivers a `groupchat` to a stored group dialog's room "
                     "without a MUC join (the ConnectyCube way); Prosody delivers to joined MUC "
                     "occupants only, so there every occupant joined first. Both reflect the "
                     "message to the sender; every copy counts.")
    if TODO_STAGES:
        lines.append("Not measured yet (TODO stages): " + "; ".join(TODO_STAGES) + ".")
    return "\n".join(lines) + "\n"


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_start": os.getloadavg()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="xmppchat vs Prosody benchmark")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="profile", const="quick")
    mode.add_argument("--full", action="store_const", dest="profile", const="full")
    mode.add_argument("--profile", choices=sorted(PROFILES), help="smoke: a few users, for development")
    parser.add_argument("--only", choices=["xmppchat", "prosody"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stages", default="warmup,idle,login,messages,fanout,history,plain",
                        help="comma-separated subset of warmup,idle,login,messages,fanout,history,plain")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--prosody-nagle", action="store_true",
                        help="leave Nagle on for Prosody (its default); by default both servers use TCP_NODELAY")
    parser.add_argument("--resummarise", metavar="JSON",
                        help="rewrite the table of an earlier results file from its raw data and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--muc-join", action="store_true",
                        help="group fan-out on xmppchat through a room every occupant joins (a new name,"
                             " an instant room), as on Prosody, instead of a dialog room without joining")
    args = parser.parse_args(argv)
    if args.resummarise:
        with open(args.resummarise) as f:
            data = json.load(f)
        data["summary"] = summarise(data["raw"], data["meta"]["runs"])
        with open(args.resummarise, "w") as f:
            json.dump(data, f, indent=1)
        table = markdown(data["summary"], data["meta"])
        with open(args.resummarise[: -len(".json")] + ".md", "w") as f:
            f.write(table)
        print(table)
        return 0
    profile = PROFILES[args.profile or "quick"]
    stages = set(args.stages.split(","))
    nofile = loadgen.raiseFileLimit()
    print(f"RLIMIT_NOFILE {nofile}; uvloop: {_hasUvloop()}")
    if shutil.which("prosody") is None and args.only != "xmppchat":
        print("prosody is not installed: apt-get install -y prosody (or --only xmppchat)")
        return 2
    tmp = tempfile.mkdtemp(prefix="xmppchat-bench-")
    servers = []
    if args.only in (None, "xmppchat"):
        servers.append(XMPPChatServer(os.path.join(tmp, "xmppchat"), os.path.dirname(sys.executable),
                                      mucJoin=args.muc_join))
    if args.only in (None, "prosody"):
        servers.append(ProsodyServer(os.path.join(tmp, "prosody"), nagle=args.prosody_nagle))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "profile": args.profile or "quick", "runs": args.runs,
            "muc_join": args.muc_join,
            "profile_settings": profile, "tmp": tmp}
    bench = Bench(servers, profile, args.runs)
    try:
        for server in servers:
            took = server.addUsers(profile["users"])
            print(f"{server.name}: {profile['users']} users created in {took:.1f}s")
            meta[server.name] = server.version()
            if isinstance(server, XMPPChatServer) and stages & {"fanout", "history"}:
                seeded = server.seed(profile["users"], profile.get("group", []) if "fanout" in stages else [],
                                     profile.get("history", 0) if "history" in stages else 0)
                print(f"{server.name}: seeded groups {seeded['groups']}, history {seeded.get('history')}")
            server.start(requireTLS=True)
            print(f"{server.name}: pid {server.pid} port {server.port}")

        async def measure():
            for server in servers:
                bench.fresh[server.name] = loadgen.processRSS(server.pid)
            if "idle" in stages:
                await bench.idle()
            if "warmup" in stages and ("idle" not in stages or max(profile["idle"]) < profile["users"]):
                await bench.warmup()
            if "login" in stages:
                await bench.logins(tls=True)
            if "messages" in stages:
                await bench.messages()
            if "fanout" in stages:
                await bench.fanout()

        try:
            loadgen.runLoop(measure())
            if "history" in stages:
                bench.history()
            if "plain" in stages:
                for server in servers:
                    server.stop()
                    server.start(requireTLS=False)
                loadgen.runLoop(bench.logins(tls=False))
        except Exception as e:
            # Keep what was measured: the table says the run was cut short.
            import traceback

            traceback.print_exc()
            meta["error"] = f"{type(e).__name__}: {e}"
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["machine"]["loadavg_end"] = os.getloadavg()
    for stage in TODO_STAGES:
        print(f"TODO stage: {stage}")
    rows = summarise(bench.raw, args.runs)
    table = markdown(rows, meta)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M")
    base = os.path.join(args.out, f"{stamp}-{meta['profile']}")
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "summary": rows, "raw": bench.raw}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(table)
    print()
    print(table)
    print(f"results: {base}.json, {base}.md")
    return 0


def _hasUvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
