"""
Soak test: N users chatting at a steady rate for a bounded time, with
random disconnects and XEP-0198 resumptions, against a fresh xmppchat.

    .venv/bin/python bench/soak.py                   # 1,000 users, 10 minutes
    .venv/bin/python bench/soak.py --minutes 3       # shorter

Each user logs in (STARTTLS, SCRAM-SHA-256), enables resumable stream
management (XEP-0198 §3) and sends presence.  Messages go at C{--rate}
per second in total from a random online user to a random other user
(online, waiting for resumption, or offline).  Every user stays online for
an exponentially distributed time (mean C{--online-mean} s), makes the
server acknowledge what it sent (C{<r/>} / C{<a/>}), then either drops the
TCP connection without C{</stream>} (share C{1 - --clean-share}, spread
evenly over all disconnects: the
session waits, and the user resumes with C{<resume previd h/>} after 0.2-2
s, getting the unacknowledged stanzas again) or closes the stream cleanly
(its unacknowledged messages go to offline storage; the user logs in
afresh and gets them with its presence).  Inbound stanzas are counted
exactly (C{h}, XEP-0198 §4), so nothing should come twice.

Checks, reported in C{bench/results/<date>-soak.json} and C{.md}:

  - every sent message id is received exactly once (or bounced back as an
    error, counted apart); the run ends with every user online, after a
    drain of up to C{--drain} s;
  - the server's RSS, sampled every C{--sample} s, grows less than
    C{--rss-bound} (default 10%) from the end of warm-up (the first quarter
    of the run) to the last sample.

The exit status is 0 when both checks pass.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
import run  # noqa: E402

MOD = 2**32


class User:
    """
    What survives a connection: the XEP-0198 id and inbound count.
    """

    def __init__(self, index: int):
        self.index = index
        self.client = None
        self.smId = None
        self.h = 0
        self.quiet = True  # not picked as a sender
        self.ackWaiter = None


class SoakClient(loadgen.Client):
    closing = False

    def connection_lost(self, exc):
        if not self.closing and self.online:
            self.gen.unexpected += 1
        super().connection_lost(exc)


class SoakGenerator(loadgen.LoadGenerator):
    """
    The load generator with XEP-0198 counting: a small scanner splits the
    stream into top-level elements.
    """

    def __init__(self, users: int, **kwargs):
        super().__init__(**kwargs)
        self.users = [User(i) for i in range(users)]
        self.disconnects = -1  # disconnects so far, less one (L{nextIsClean})
        self.sentTo: dict[int, int] = {}
        self.receivedIds: set[int] = set()
        self.bouncedIds: set[int] = set()
        self.duplicates = 0
        self.unexpected = 0
        self.resumed = self.resumeFailed = self.relogins = 0
        self.nextId = 0

    def scan(self, client, data):
        buf = client.buf + data if client.buf else data
        pos = 0
        while True:
            start = buf.find(b"<", pos)
            if start < 0:
                pos = len(buf)
                break
            end = buf.find(b">", start)
            if end < 0:
                break
            if buf[start + 1:start + 2] == b"/":
                pos = end + 1
                continue
            name = buf[start + 1:end].split(None, 1)[0].rstrip(b"/")
            if buf[end - 1:end] == b"/":
                stop = end + 1
            else:
                close = buf.find(b"</" + name + b">", end)
                if close < 0:
                    break
                stop = close + len(name) + 3
            self.element(client, name, buf[start:stop])
            pos = stop
        client.buf = buf[pos:]

    def element(self, client, name: bytes, raw: bytes):
        user = self.users[client.index]
        if client.closing:
            return  # not counted: the server sends it again (resumption or offline)
        if name in (b"message", b"iq", b"presence"):
            user.h += 1
            if name != b"message":
                return
            i = raw.find(b"<body>")
            j = raw.find(b"</body>", i)
            if i < 0 or j < 0:
                return
            parts = raw[i + 6:j].split()
            if len(parts) != 3:
                return
            sid = int(parts[1])
            if b"type='error'" in raw[:200] or b'type="error"' in raw[:200]:
                self.bouncedIds.add(sid)
            elif sid in self.receivedIds:
                self.duplicates += 1
            else:
                self.receivedIds.add(sid)
                self.latencies.append(time.monotonic_ns() - int(parts[0]))
        elif name == b"r":
            client.write(f"<a xmlns='urn:xmpp:sm:3' h='{user.h % MOD}'/>".encode())
        elif name == b"a" and user.ackWaiter is not None and not user.ackWaiter.done():
            user.ackWaiter.set_result(None)

    def send(self):
        users = self.users
        sender = random.choice(users)
        client = sender.client
        if sender.quiet or client is None or not client.online:
            return False
        r = random.randrange(len(users) - 1)
        if r >= sender.index:
            r += 1
        sid = self.nextId
        self.nextId += 1
        self.sentTo[sid] = r
        client.write(f"<message to='{self.prefix}{r}@{self.domain}' type='chat' id='s{sid}'><body>"
                     f"{time.monotonic_ns()} {sid} {r}</body></message>".encode())
        return True

    async def connectUser(self, user: User):
        resume = (user.smId, user.h % MOD) if user.smId else None
        client = await self.connect(user.index, True, factory=SoakClient, sm=True, resume=resume)
        user.client = client
        if client.resumed:
            self.resumed += 1
        else:
            if resume:
                self.resumeFailed += 1
            user.h = 0
            client.write(b"<presence/>")
        self.scan(client, b"")  # what came right after <resumed/> or <enabled/>
        user.quiet = False

    async def disconnect(self, user: User, clean: bool):
        user.quiet = True
        client = user.client
        user.ackWaiter = asyncio.get_running_loop().create_future()
        client.write(b"<r xmlns='urn:xmpp:sm:3'/>")
        try:
            await asyncio.wait_for(user.ackWaiter, 10)
        finally:
            user.ackWaiter = None
        if clean:
            client.write(f"<a xmlns='urn:xmpp:sm:3' h='{user.h % MOD}'/></stream:stream>".encode())
            client.closing = True
            client.online = False
            client.transport.close()
            user.smId = None
            self.relogins += 1
        else:
            client.closing = True
            client.online = False
            user.smId = client.smId
            client.transport.abort()

    def nextIsClean(self, cleanShare: float) -> bool:
        """
        Whether the next disconnect (of any user) is a clean logout: exactly
        C{cleanShare} of them, spread evenly (the first is a drop), so that a
        short run has both kinds whatever the random timings.
        """
        self.disconnects += 1
        k = self.disconnects
        return int((k + 1) * cleanShare) > int(k * cleanShare)

    async def life(self, user: User, endAt: float, onlineMean: float, cleanShare: float):
        loop = asyncio.get_running_loop()
        while True:
            for _attempt in range(5):
                try:
                    await self.connectUser(user)
                    break
                except (OSError, loadgen.LoginError, asyncio.TimeoutError) as e:
                    self.loginErrors.append(f"u{user.index}: {type(e).__name__}: {e}"[:200])
                    await asyncio.sleep(1)
            else:
                return
            stay = random.expovariate(1 / onlineMean)
            if loop.time() + stay >= endAt:
                return
            await asyncio.sleep(stay)
            try:
                await self.disconnect(user, self.nextIsClean(cleanShare))
            except (asyncio.TimeoutError, OSError) as e:
                self.loginErrors.append(f"u{user.index} disconnect: {type(e).__name__}: {e}"[:200])
            await asyncio.sleep(random.uniform(0.2, 2.0))

    async def soak(self, seconds: float, rate: float, onlineMean: float, cleanShare: float,
                   sample: float, drain: float, log=print) -> dict:
        self.loginErrors: list[str] = []
        loop = asyncio.get_running_loop()
        meter = loadgen.Meter(self.serverPid)
        start = loop.time()
        endAt = start + seconds
        lives = [asyncio.ensure_future(self.life(u, endAt, onlineMean, cleanShare)) for u in self.users]
        samples = []
        nextSample = start
        sent = 0
        while (now := loop.time()) < endAt:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                self.send()
            sent += due
            if now >= nextSample:
                rss = loadgen.processRSS(self.serverPid)
                online = sum(1 for u in self.users if u.client is not None and u.client.online)
                samples.append({"t_s": round(now - start, 1), "rss": rss, "online": online,
                                "sent": self.nextId, "received": len(self.receivedIds)})
                log(f"  t={now - start:6.1f}s RSS {rss / 2**20 if rss else 0:7.1f} MiB online {online:5} "
                    f"sent {self.nextId} received {len(self.receivedIds)}")
                nextSample += sample
            await asyncio.sleep(0.005)
        await asyncio.gather(*lives)
        deadline = loop.time() + drain
        while len(self.receivedIds) + len(self.bouncedIds - self.receivedIds) < self.nextId \
                and loop.time() < deadline:
            await asyncio.sleep(0.1)
        rss = loadgen.processRSS(self.serverPid)
        samples.append({"t_s": round(loop.time() - start, 1), "rss": rss, "online": len(self.online),
                        "sent": self.nextId, "received": len(self.receivedIds)})
        missing = set(self.sentTo) - self.receivedIds - self.bouncedIds
        latencies = sorted(self.latencies)
        result = meter.result(
            stage="soak", users=len(self.users), seconds=seconds, rate=rate, online_mean_s=onlineMean,
            clean_share=cleanShare, sent=self.nextId, received=len(self.receivedIds),
            bounced=len(self.bouncedIds - self.receivedIds), duplicates=self.duplicates,
            lost=len(missing), lost_samples=sorted(missing)[:10], resumed=self.resumed,
            resume_failed=self.resumeFailed, clean_relogins=self.relogins,
            unexpected_disconnects=self.unexpected, login_errors=len(self.loginErrors),
            error_samples=self.loginErrors[:3], samples=samples)
        if latencies:
            result["latency_p50_ms"] = round(loadgen._percentile(latencies, 50) / 1e6, 2)
            result["latency_p99_ms"] = round(loadgen._percentile(latencies, 99) / 1e6, 2)
        for u in self.users:
            if u.client is not None:
                u.client.closing = True
                u.client.close()
        return result


def rssCheck(samples: list[dict], warmupShare: float, bound: float) -> dict:
    """
    Growth of the last RSS sample over the first sample taken after the
    warm-up (the first C{warmupShare} of the run).
    """
    total = samples[-1]["t_s"] or 1
    after = [s for s in samples if s["t_s"] >= warmupShare * total and s["rss"]]
    if len(after) < 2:
        return {"ok": False, "reason": "fewer than two samples after warm-up"}
    base, last = after[0]["rss"], after[-1]["rss"]
    growth = (last - base) / base
    return {"ok": growth < bound, "warmup_rss": base, "last_rss": last,
            "max_rss": max(s["rss"] for s in after), "growth": round(growth, 4), "bound": bound}


def markdown(result: dict, check: dict, meta: dict) -> str:
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    lines = [
        f"Soak {meta['date']} on {meta['machine']['cpu']} ×{meta['machine']['cores']}: "
        f"{result['users']:,} users, {result['seconds'] / 60:g} min, {result['rate']:g} msgs/s offered, "
        f"online {result['online_mean_s']:g} s on average, then {100 * (1 - result['clean_share']):.0f}% "
        f"dropped + resumed (XEP-0198), {100 * result['clean_share']:.0f}% clean logout + re-login.",
        "",
        "| check | value |",
        "|---|---:|",
        f"| messages sent | {result['sent']:,} |",
        f"| received exactly once | {result['received']:,} |",
        f"| duplicates | {result['duplicates']} |",
        f"| bounced (error to sender) | {result['bounced']} |",
        f"| lost | {result['lost']} |",
        f"| resumptions / failed resumptions | {result['resumed']:,} / {result['resume_failed']} |",
        f"| clean re-logins | {result['clean_relogins']:,} |",
        f"| unexpected disconnects / login errors | {result['unexpected_disconnects']} / {result['login_errors']} |",
        f"| p50 / p99 latency (ms) | {result.get('latency_p50_ms', '-')} / {result.get('latency_p99_ms', '-')} |",
        f"| server CPU (% of wall) | {100 * result.get('server_cpu_s', 0) / result['wall_s']:.0f} |",
    ]
    if "growth" in check:
        lines.append(f"| RSS after warm-up → end (MiB) | {mib(check['warmup_rss'])} → {mib(check['last_rss'])} "
                     f"(max {mib(check['max_rss'])}) |")
        lines.append(f"| RSS growth after warm-up (bound {100 * check['bound']:g}%) | "
                     f"{100 * check['growth']:.1f}% {'ok' if check['ok'] else 'FAIL'} |")
    lines += ["", "RSS samples (s: MiB): " + ", ".join(
        f"{s['t_s']:g}: {mib(s['rss'])}" for s in result["samples"] if s["rss"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="xmppchat soak test (XEP-0198 resumption, losses, RSS)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="overrides --minutes (tests)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s in total")
    parser.add_argument("--online-mean", type=float, default=60.0,
                        help="mean seconds a user stays connected before a disconnect")
    parser.add_argument("--clean-share", type=float, default=0.2,
                        help="share of disconnects that are clean logouts (the rest resume)")
    parser.add_argument("--sample", type=float, help="seconds between RSS samples (default: run/30)")
    parser.add_argument("--drain", type=float, default=15.0)
    parser.add_argument("--rss-bound", type=float, default=0.10)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    sample = args.sample or max(1.0, seconds / 30)
    loadgen.raiseFileLimit()
    tmp = tempfile.mkdtemp(prefix="xmppchat-soak-")
    server = run.XMPPChatServer(os.path.join(tmp, "xmppchat"), os.path.dirname(sys.executable))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": run.machine(), "tmp": tmp}
    try:
        server.addUsers(args.users)
        server.start()
        print(f"xmppchat: pid {server.pid} port {server.port}; {args.users} users, {seconds:g} s")
        gen = SoakGenerator(args.users, port=server.port, domain=run.DOMAIN, password=run.PASSWORD,
                            serverPid=server.pid)
        result = loadgen.runLoop(gen.soak(seconds, args.rate, args.online_mean, args.clean_share,
                                          sample, args.drain))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    check = rssCheck(result["samples"], 0.25, args.rss_bound)
    ok = check["ok"] and result["lost"] == 0 and result["duplicates"] == 0
    table = markdown(result, check, meta)
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M")
    base = os.path.join(args.out, f"{stamp}-soak")
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "result": result, "rss_check": check, "ok": ok}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(table)
    print()
    print(table)
    print(f"{'PASS' if ok else 'FAIL'}; results: {base}.json, {base}.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
