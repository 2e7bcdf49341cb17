"""
Cluster throughput: messages per second through one xmppchat node versus
N workers (``twistd xmppchat --workers N``) on one port, over real sockets.

    .venv/bin/python bench/cluster.py [--pairs 40] [--messages 500] [--workers 1,2]
                                      [--window 1000] [--repeat 5] [--reference]
                                      [--sm] [--sm-queue-seconds 3600]

``--reference`` also runs N unrelated single-node servers at the same time,
each with its share of the pairs: what the machine gives N processes with no
cluster traffic at all, the ceiling for N workers.  ``--window`` keeps each
sender at most that many messages ahead of its receiver (closed loop; 0
sends everything at once and measures the flow control).

For each worker count it starts a private redis-server and xmppchat on
ephemeral loopback ports (plain c2s allowed on loopback, so the load is
routing and not TLS), logs in ``2 * pairs`` clients (a raw asyncio XMPP
client: SASL PLAIN, bind, presence) in a separate load process per pair
group, has each sender send ``messages`` chat messages to its partner, and
measures from the first send until every receiver counted all of its
messages (after one warm-up message per pair).  Senders and receivers land on whichever worker accepted them,
so with N > 1 most messages cross workers through Redis.  With ``--sm`` the
receivers enable resumable XEP-0198 stream management and answer every
``<r/>`` (so their queues are mirrored in Redis, L{xmppchat.cluster.durable},
unless ``--sm-queue-seconds 0``).

The load generator shares the machine: on a 2-core box it competes with
the workers, so read the numbers as a comparison, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.live import RedisProcess  # noqa: E402

STREAM = ("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


class RawClient:
    """
    The least XMPP a load generator needs.
    """

    def __init__(self, port, user, sm=False):
        self.sm = sm
        self.port = port
        self.user = user
        self.count = 0
        self.tail = b""

    async def expect(self, marker: bytes, timeout=30):
        data = b""
        while marker not in data:
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not chunk:
                raise ConnectionError(f"{self.user}: closed while waiting for {marker!r}: {data[-300:]!r}")
            data += chunk
        return data

    async def login(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(STREAM.encode())
        await self.expect(b"</stream:features>")
        token = base64.b64encode(f"\0{self.user}\0pw".encode()).decode()
        self.writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
                          .encode())
        await self.expect(b"<success")
        self.writer.write(STREAM.encode())
        await self.expect(b"</stream:features>")
        self.writer.write(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        await self.expect(b"</iq>")
        if self.sm:
            self.writer.write(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            await self.expect(b"<enabled")
        self.writer.write(b"<presence/>")
        await self.writer.drain()

    async def receive(self, total):
        while self.count < total:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError(f"{self.user}: closed after {self.count} messages")
            data = self.tail + chunk
            self.count += data.count(b"</message>")
            self.tail = data[-9:]
            if self.sm and b"<r " in chunk:
                # h counts the messages only: never more than was sent
                self.writer.write(b"<a xmlns='urn:xmpp:sm:3' h='%d'/>" % self.count)

    async def sendBurst(self, to, count, receiver=None, window=0):
        """
        Send C{count} messages; with a C{window}, never more than that many
        ahead of what C{receiver} has counted (closed loop).
        """
        for i in range(count):
            self.writer.write(f"<message to='{to}@localhost' type='chat' id='{i}'><body>m{i}</body></message>"
                              .encode())
            if i % 50 == 0:
                await self.writer.drain()
                while window and i - receiver.count > window:
                    await asyncio.sleep(0.001)
        await self.writer.drain()


def _cpu(pid: int) -> float:
    """
    User + system CPU seconds of C{pid} (/proc/<pid>/stat fields 14, 15), 0 once it is gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def loadProcess(port, pairs, messages, window, ready, go, results, sm=False):
    """
    One load process: log in its pairs, wait for the start signal, send,
    count, report the elapsed time.
    """

    async def main():
        senders = [RawClient(port, f"s{p}") for p in pairs]
        receivers = [RawClient(port, f"r{p}", sm) for p in pairs]
        for client in receivers + senders:
            await client.login()
        await asyncio.sleep(1.0)  # presence and directory entries settle
        # warm-up: one message per pair, so that the timed burst measures the
        # steady state (each node has loaded the partners' privacy settings)
        for s, p in zip(senders, pairs, strict=True):
            s.writer.write(f"<message to='r{p}@localhost' type='chat' id='w'><body>w</body></message>".encode())
        try:
            await asyncio.wait_for(asyncio.gather(*[r.receive(1) for r in receivers]), 30)
        except asyncio.TimeoutError:
            raise RuntimeError("warm-up message not received by "
                               + ", ".join(r.user for r in receivers if r.count < 1)) from None
        for r in receivers:
            r.count = 0
        ready.release()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        start = time.monotonic()
        receiving = [asyncio.ensure_future(r.receive(messages)) for r in receivers]
        await asyncio.gather(*[s.sendBurst(f"r{p}", messages, r, window)
                               for s, r, p in zip(senders, receivers, pairs, strict=True)])
        try:
            await asyncio.wait_for(asyncio.gather(*receiving), 120)
        except asyncio.TimeoutError:
            short = {r.user: r.count for r in receivers if r.count < messages}
            raise RuntimeError(f"receivers still waiting after 120 s (received so far): {short}") from None
        results.put(time.monotonic() - start)

    try:
        asyncio.run(main())
    except Exception as e:
        results.put(f"error: {e!r}")


def runOnce(workers, pairs, messages, processes, window, barrier=None, sm=False, smQueueSeconds=3600):
    directory = Path(tempfile.mkdtemp(prefix="xmppchat-cluster-bench-"))
    procs = []
    redis = RedisProcess(directory).start()
    config = directory / "bench.toml"
    config.write_text(f"""
[server]
domain = "localhost"
data_dir = "data"
[c2s]
port = 0
tls_port = 0
direct_tls = false
starttls_required = false
allow_plain_without_tls_on_loopback = true
[storage]
path = "bench.sqlite3"
[limits]
offline_messages_per_user = 100000
message_rate = 0
exempt_loopback = true
[cluster]
redis_uri = "{redis.uri}"
node_id = "bench"
sm_queue_seconds = {smQueueSeconds}
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    users = "".join(f"s{p} pw\nr{p} pw\n" for p in range(pairs))
    subprocess.run([sys.executable, "-m", "xmppchat.admin", "--config", str(config), "--create",
                    "import-users", "-",
                    "--iterations", "64"], input=users, text=True, cwd=directory, env=env, check=True,
                   capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "twisted", "--log-file", str(directory / "server.log"),
                               "xmppchat", "--config", str(config), "--workers", str(workers)],
                              cwd=directory, env=env) if workers > 1 else subprocess.Popen(
        [sys.executable, "-m", "twisted", "--log-file", str(directory / "server.log"), "xmppchat",
         "--config", str(config)], cwd=directory, env=env)
    try:
        portsFile = directory / "data" / "ports.json"
        deadline = time.monotonic() + 30
        while not portsFile.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start: see " + str(directory / "server.log"))
            time.sleep(0.05)
        port = json.loads(portsFile.read_text())["c2s"]
        ctx = multiprocessing.get_context("spawn")
        ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        groups = [list(range(pairs))[i::processes] for i in range(processes)]
        procs[:] = [ctx.Process(target=loadProcess, args=(port, g, messages, window, ready, go, results, sm))
                    for g in groups]
        for p in procs:
            p.start()
        for _ in procs:
            if not ready.acquire(timeout=120):
                errors = []
                while not results.empty():
                    errors.append(str(results.get()))
                raise RuntimeError(f"load processes did not log in: {errors}")
        roles = {"server": [server.pid] + _children(server.pid), "redis": [redis.process.pid],
                 "load": [p.pid for p in procs]}
        before = {role: sum(_cpu(pid) for pid in pids) for role, pids in roles.items()}
        if os.environ.get("BENCH_DEBUG"):
            socks = {pid: sum(1 for fd in os.listdir(f"/proc/{pid}/fd")
                              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"))
                     for pid in roles["server"]}
            print("sockets", socks, file=sys.stderr)
            perPid = {pid: _cpu(pid) for pid in roles["server"]}
        if barrier is not None:
            barrier.wait(120)  # the reference: every independent server starts its burst together
        go.set()
        elapsed = [results.get(timeout=600) for _ in procs]
        cpu = {role: sum(_cpu(pid) for pid in pids) - before[role] for role, pids in roles.items()}
        if os.environ.get("BENCH_DEBUG"):
            print("busy cores per process:", {pid: round((_cpu(pid) - perPid[pid]) / max(elapsed), 2)
                                               for pid in roles["server"]}, file=sys.stderr)
        for p in procs:
            p.join(10)
        errors = [e for e in elapsed if isinstance(e, str)]
        if errors:
            raise RuntimeError("; ".join(errors))
        return pairs * messages / max(elapsed), {role: seconds / max(elapsed) for role, seconds in cpu.items()}
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # a failed run: load processes still waiting for the start
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        redis.stop()
        if os.environ.get("BENCH_KEEP"):
            print("kept", directory, file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--messages", type=int, default=500, help="messages per sender")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--reference", action="store_true",
                        help="also run N independent single-node servers at once (the machine's ceiling)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration (medians quoted)")
    parser.add_argument("--sm", action="store_true", help="receivers use resumable stream management")
    parser.add_argument("--sm-queue-seconds", type=int, default=3600,
                        help="[cluster] sm_queue_seconds (0: stream management queues in memory only)")
    parser.add_argument("--window", type=int, default=1000,
                        help="messages a sender may be ahead of its receiver (0: send everything at once)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    for _ in range(args.repeat):
        for workers in counts:
            rate, cores = runOnce(workers, args.pairs, args.messages, args.load_processes, args.window,
                                  sm=args.sm, smQueueSeconds=args.sm_queue_seconds)
            rows.append((f"{workers} worker{'s' if workers > 1 else ''}", workers, rate, cores))
            print(f"workers={workers}: {rate:,.0f} messages/s; cores busy: "
                  + ", ".join(f"{role} {busy:.2f}" for role, busy in cores.items()), flush=True)
            if args.reference and workers > 1:
                rate, cores = reference(workers, args)
                rows.append((f"{workers} independent servers", workers, rate, cores))
                print(f"{workers} independent servers: {rate:,.0f} messages/s", flush=True)
    sm = f", stream management (sm_queue_seconds {args.sm_queue_seconds})" if args.sm else ""
    print(f"\n{args.pairs} pairs x {args.messages} messages{sm}, window {args.window or 'none'}, "
          f"{args.load_processes} load processes, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| run | messages/s | vs 1 worker | server cores | redis cores | load cores |\n"
          "|---|---:|---:|---:|---:|---:|")
    base = statistics.median([rate for label, _, rate, _ in rows if label == "1 worker"] or [rows[0][2]])
    for label, _, rate, cores in rows:
        print(f"| {label} | {rate:,.0f} | {rate / base:.2f}x | {cores['server']:.2f} | {cores['redis']:.2f} |"
              f" {cores['load']:.2f} |")
    if args.repeat > 1:
        print("\nmedians:")
        for label in dict.fromkeys(label for label, *_ in rows):
            rates = [rate for other, _, rate, _ in rows if other == label]
            print(f"  {label}: {statistics.median(rates):,.0f} messages/s ({len(rates)} runs)")


def reference(count, args):
    """
    The machine's ceiling for C{count} workers: C{count} unrelated
    single-node servers (no cluster traffic at all), each with its share of
    the pairs and its own load processes, bursting at the same time.
    """
    barrier = threading.Barrier(count)
    out = [None] * count

    def one(i):
        out[i] = runOnce(1, args.pairs // count, args.messages, max(1, args.load_processes // count),
                         args.window, barrier, args.sm, args.sm_queue_seconds)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(r for r, _ in out)
    cores = {role: sum(c[role] for _, c in out) for role in out[0][1]}
    return rate, cores

if __name__ == "__main__":
    main()
