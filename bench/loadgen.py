"""
XMPP load generator: many real client connections from one asyncio process.

Each client speaks just enough RFC 6120 over a raw socket to log in the way
a real client does: stream header, STARTTLS (RFC 6120 §5; any certificate is
accepted) or none (C{tls=False}), SASL SCRAM-SHA-256 (RFC 5802, RFC 7677;
the client side is implemented here with hashlib/hmac and checks the
server's signature), stream restart, resource binding (RFC 6120 §7), initial
presence and a ping round trip (XEP-0199) so the server has processed the
presence before the client counts as online.  Stanzas are pre-rendered
bytes; incoming data is scanned for C{<body>} rather than parsed.

Stages (each returns a dict with wall time, the generator's own CPU seconds
and, given the server's pid, the server's CPU seconds from /proc/<pid>/stat):

  - L{loginStage}: log N users in with C concurrent attempts; logins/s;
  - L{messageStage}: online users send 1-1 chat messages to random peers,
    either at a fixed offered rate or closed-loop (a fixed number in
    flight, a new one sent for each delivered one); delivered msgs/s,
    p50/p99 end-to-end latency (the send time is in the body), losses;
  - L{idleStage}: hold N logged-in idle connections and read the server's
    RSS from /proc/<pid>/status;
  - L{groupStage}: one sender, C{groupchat} to a room whose occupants are
    all online (L{joinRoom} first where the server needs XEP-0045 joins);
    delivered copies/s and their latency.

C{Client.login(sm=True)} enables resumable stream management (XEP-0198
§3) and C{resume=(previd, h)} tries §5 resumption; C{bench/soak.py} does
the stanza counting.

Command line (one stage against a running server)::

    python bench/loadgen.py --port 5222 --users 100 --server-pid PID login
    python bench/loadgen.py --port 5222 --users 200 messages --rate 2000 --seconds 5
    python bench/loadgen.py --port 5222 --users 200 messages --closed 200
    python bench/loadgen.py --port 5222 --users 1000 idle

Users are C{<prefix><i>@<domain>} for i in 0..users-1, all with one password.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import resource
import ssl
import statistics
import sys
import time

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_CHALLENGE = re.compile(rb"<challenge[^>]*>([^<]*)</challenge>")
_SUCCESS = re.compile(rb"<success[^>]*>([^<]*)</success>")
_SM_ID = re.compile(rb"""\bid=['"]([^'"]+)['"]""")
_FAILURE = (b"<failure", b"<stream:error", b"</stream:stream>")


class LoginError(Exception):
    """
    A client could not log in; the message says at which step.
    """


# -- process measurements ------------------------------------------------------


def selfCPU() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def processCPU(pid: int | None) -> float | None:
    """
    User + system CPU seconds of process C{pid} (fields 14 and 15 of
    /proc/<pid>/stat), or C{None}.
    """
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def processRSS(pid: int | None) -> int | None:
    """
    Resident set size of process C{pid} in bytes (/proc/<pid>/statm).
    """
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return None


class Meter:
    """
    Wall time, own CPU and server CPU over one stage.
    """

    def __init__(self, serverPid: int | None):
        self.serverPid = serverPid
        self.wall = time.perf_counter()
        self.cpu = selfCPU()
        self.serverCPU = processCPU(serverPid)

    def result(self, **extra) -> dict:
        out = {
            "wall_s": round(time.perf_counter() - self.wall, 3),
            "loadgen_cpu_s": round(selfCPU() - self.cpu, 3),
        }
        server = processCPU(self.serverPid)
        if server is not None and self.serverCPU is not None:
            out["server_cpu_s"] = round(server - self.serverCPU, 3)
        out.update(extra)
        return out


# -- SCRAM-SHA-256, client side (RFC 5802 §3, §5; RFC 7677) -----------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ScramClient:
    """
    One SCRAM-SHA-256 exchange, without channel binding (gs2 header
    C{n,,}).  C{keys} caches ClientKey/StoredKey/ServerKey per
    (password, salt, iterations), as real clients do, so that PBKDF2 runs
    once per account and not at every login.
    """

    keys: dict = {}

    def __init__(self, username: str, password: str):
        self.username = username.replace("=", "=3D").replace(",", "=2C")
        self.password = password
        self.cnonce = _b64(os.urandom(18))
        self.firstBare = f"n={self.username},r={self.cnonce}"
        self.serverSignature = b""

    def first(self) -> str:
        return _b64(("n,," + self.firstBare).encode())

    def final(self, challenge: bytes) -> str:
        serverFirst = base64.b64decode(challenge).decode()
        attrs = dict(item.split("=", 1) for item in serverFirst.split(",") if "=" in item)
        nonce = attrs.get("r", "")
        if not nonce.startswith(self.cnonce) or "s" not in attrs or "i" not in attrs:
            raise LoginError(f"bad server-first-message {serverFirst!r}")
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        cacheKey = (self.password, salt, iterations)
        keys = self.keys.get(cacheKey)
        if keys is None:
            salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iterations)
            clientKey = hmac.digest(salted, b"Client Key", "sha256")
            keys = self.keys[cacheKey] = (
                clientKey,
                hashlib.sha256(clientKey).digest(),
                hmac.digest(salted, b"Server Key", "sha256"),
            )
        clientKey, storedKey, serverKey = keys
        withoutProof = f"c=biws,r={nonce}"
        authMessage = f"{self.firstBare},{serverFirst},{withoutProof}".encode()
        signature = hmac.digest(storedKey, authMessage, "sha256")
        proof = (int.from_bytes(clientKey, "big") ^ int.from_bytes(signature, "big")).to_bytes(32, "big")
        self.serverSignature = hmac.digest(serverKey, authMessage, "sha256")
        return _b64(f"{withoutProof},p={_b64(proof)}".encode())

    def verify(self, additional: bytes | None) -> None:
        if not additional:
            raise LoginError("no server signature in <success/>")
        text = base64.b64decode(additional).decode()
        if text != "v=" + _b64(self.serverSignature):
            raise LoginError(f"wrong server signature {text!r}")


# -- one client -------------------------------------------------------------------


class Client(asyncio.Protocol):
    """
    One XMPP client connection, driven by L{login}, then passive: incoming
    bytes are scanned for message bodies, which go to the generator.
    """

    def __init__(self, gen: LoadGenerator, index: int):
        self.gen = gen
        self.index = index
        self.transport = None
        self.buf = b""
        self.token = None
        self.waiter = None
        self.online = False
        self.lost = False

    # asyncio.Protocol

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.online:
            self.gen.scan(self, data)
            return
        self.buf += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.token in self.buf:
                waiter.set_result(None)
            elif any(f in self.buf for f in _FAILURE):
                waiter.set_exception(LoginError(self.buf[-300:].decode(errors="replace")))

    def connection_lost(self, exc):
        self.lost = True
        self.online = False
        self.gen.online.discard(self)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(LoginError(f"connection lost: {exc}; got {self.buf[-200:]!r}"))

    # login steps

    async def expect(self, token: bytes) -> bytes:
        """
        Wait until C{token} has arrived; return everything up to and
        including it and keep the rest.
        """
        if token not in self.buf:
            self.token = token
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        end = self.buf.index(token) + len(token)
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def write(self, data: bytes):
        self.transport.write(data)

    async def login(self, tls: bool, sslContext, sm: bool = False, resume=None) -> bool:
        """
        Log in; with C{sm}, enable resumable stream management instead of
        sending presence and a ping; with C{resume=(previd, h)}, try
        XEP-0198 resumption first (C{True} when resumed, else bind).
        """
        gen = self.gen
        username = f"{gen.prefix}{self.index}"
        self.write(gen.header)
        features = await self.expect(b"</stream:features>")
        if tls:
            if b"<starttls" not in features:
                raise LoginError("no STARTTLS offered")
            self.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            await self.expect(b"<proceed")
            self.buf = b""
            loop = asyncio.get_running_loop()
            self.transport = await loop.start_tls(self.transport, self, sslContext,
                                                  server_hostname=gen.domain)
            self.write(gen.header)
            features = await self.expect(b"</stream:features>")
        if b"SCRAM-SHA-256<" not in features:
            raise LoginError(f"no SCRAM-SHA-256 offered: {features[-300:]!r}")
        scram = ScramClient(username, gen.password)
        self.write(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{scram.first()}</auth>".encode())
        match = _CHALLENGE.search(await self.expect(b"</challenge>"))
        self.write(f"<response xmlns='{NS_SASL}'>{scram.final(match.group(1))}</response>".encode())
        match = _SUCCESS.search(await self.expect(b"</success>"))
        scram.verify(match.group(1))
        self.buf = b""
        self.write(gen.header)
        await self.expect(b"</stream:features>")
        if resume:
            # XEP-0198 §5: what follows <resumed/> (the unacknowledged
            # stanzas) stays in self.buf for the caller's scanner.
            previd, h = resume
            self.write(f"<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>".encode())
            head = await self.expect(b"/>")
            if b"<resumed" in head:
                self.smId = previd
                self.online = True
                gen.online.add(self)
                return True
            await self.expect(b"</failed>")
        self.write(b"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   b"<resource>bench</resource></bind></iq>")
        reply = await self.expect(b"</iq>")
        if b"<jid>" not in reply:
            raise LoginError(f"bind failed: {reply!r}")
        if sm:
            # XEP-0198 §3; presence is the caller's (offline messages follow it).
            self.write(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            head = await self.expect(b"<enabled")
            head = await self.expect(b"/>")
            match = _SM_ID.search(head)
            if match is None:
                raise LoginError(f"no resumable stream: {head!r}")
            self.smId = match.group(1).decode()
            self.online = True
            gen.online.add(self)
            return False
        self.write(b"<presence/><iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
        await self.expect(b"ping1")
        await self.expect(b">")
        self.buf = b""
        self.online = True
        gen.online.add(self)
        return False

    def close(self):
        if self.transport is not None and not self.lost:
            self.online = False
            try:
                self.transport.write(b"</stream:stream>")
            except Exception:
                pass
            self.transport.close()


# -- the generator ------------------------------------------------------------------


class LoadGenerator:
    """
    Opens clients against one server and runs the stages.
    """

    def __init__(self, host="127.0.0.1", port=5222, domain="localhost", prefix="u",
                 password="benchpass", serverPid=None, timeout=60.0):
        self.host = host
        self.port = port
        self.domain = domain
        self.prefix = prefix
        self.password = password
        self.serverPid = serverPid
        self.timeout = timeout
        self.header = (
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
        ).encode()
        self.sslContext = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.sslContext.check_hostname = False
        self.sslContext.verify_mode = ssl.CERT_NONE
        self.online: set[Client] = set()
        self._resetCounters()

    # -- connections

    async def connect(self, index: int, tls: bool, factory=None, **login) -> Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: (factory or Client)(self, index),
                                                 self.host, self.port)
        try:
            client.resumed = await asyncio.wait_for(client.login(tls, self.sslContext, **login),
                                                    self.timeout)
        except BaseException:
            client.close()
            raise
        return client

    async def connectMany(self, indices, tls: bool, concurrency: int):
        """
        Log in C{indices} with at most C{concurrency} logins in progress;
        return (clients, errors).
        """
        clients, errors = [], []
        it = iter(indices)

        async def worker():
            for index in it:
                try:
                    clients.append(await self.connect(index, tls))
                except (OSError, LoginError, asyncio.TimeoutError) as e:
                    errors.append(f"{self.prefix}{index}: {type(e).__name__}: {e}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return clients, errors

    async def closeAll(self, clients):
        """
        Close C{clients} and wait until the server has finished tearing
        them down, so that the next stage neither overlaps with it nor
        pays for it.
        """
        for client in clients:
            client.close()
        await asyncio.sleep(0.2)
        await self.settle()

    async def settle(self, quiet: float = 0.02, period: float = 0.5, limit: float = 15.0):
        """
        Wait (at most C{limit} seconds) until the server used less than
        C{quiet} CPU seconds over C{period}.
        """
        if not self.serverPid:
            return
        deadline = time.monotonic() + limit
        last = processCPU(self.serverPid)
        while last is not None and time.monotonic() < deadline:
            await asyncio.sleep(period)
            now = processCPU(self.serverPid)
            if now is None or now - last < quiet:
                return
            last = now

    # -- stages

    async def loginStage(self, users: int, tls: bool = True, concurrency: int = 50, first: int = 0) -> dict:
        """
        Log in C{users} accounts (from index C{first}) and disconnect them.
        """
        meter = Meter(self.serverPid)
        clients, errors = await self.connectMany(range(first, first + users), tls, concurrency)
        result = meter.result(
            stage="login", tls=tls, users=users, concurrency=concurrency,
            ok=len(clients), errors=len(errors), error_samples=errors[:3])
        result["logins_per_s"] = round(len(clients) / result["wall_s"], 1)
        await self.closeAll(clients)
        return result

    async def idleStage(self, users: int, tls: bool = True, concurrency: int = 50,
                        settle: float = 2.0, baseline: int | None = None) -> dict:
        """
        Hold C{users} logged-in idle connections; see L{idleSteps}.
        """
        return (await self.idleSteps([users], tls, concurrency, settle, baseline))[0]

    async def idleSteps(self, counts, tls: bool = True, concurrency: int = 50,
                        settle: float = 2.0, baseline: int | None = None) -> list[dict]:
        """
        Log in idle connections up to each of C{counts} (ascending) in turn
        and, C{settle} seconds after each, read the server's RSS: per
        connection, and its growth over C{baseline} (default: the RSS
        before the first step) per connection.  Then close them all.
        """
        before = processRSS(self.serverPid) if baseline is None else baseline
        clients, results, done = [], [], 0
        for count in counts:
            meter = Meter(self.serverPid)
            more, errors = await self.connectMany(range(done, count), tls, concurrency)
            clients += more
            done = count
            await asyncio.sleep(settle)
            after = processRSS(self.serverPid)
            alive = sum(1 for c in clients if not c.lost)
            result = meter.result(stage="idle", tls=tls, users=count, ok=len(clients), alive=alive,
                                  errors=len(errors), error_samples=errors[:3],
                                  rss_before=before, rss_after=after)
            if after and alive:
                result["rss_per_conn"] = round(after / alive)
                result["rss_delta_per_conn"] = round((after - before) / alive)
            results.append(result)
        await self.closeAll(clients)
        return results

    async def messageStage(self, users: int, seconds: float = 5.0, rate: float | None = None,
                           closed: int | None = None, tls: bool = True, concurrency: int = 50,
                           drain: float = 3.0, clients=None) -> dict:
        """
        With C{users} online, send chat messages between random pairs for
        C{seconds}: C{rate} messages/s in total, or closed-loop with
        C{closed} messages in flight.
        """
        ownClients = clients is None
        if ownClients:
            clients, errors = await self.connectMany(range(users), tls, concurrency)
            if errors:
                await self.closeAll(clients)
                return {"stage": "messages", "users": users, "errors": len(errors),
                        "error_samples": errors[:3]}
        clients = sorted(clients, key=lambda c: c.index)
        self.clients = clients
        self.prefixes = [
            f"<message to='{self.prefix}{c.index}@{self.domain}' type='chat' id='m'><body>".encode()
            for c in clients
        ]
        self._resetCounters()
        self.closedLoop = bool(closed)
        loop = asyncio.get_running_loop()
        meter = Meter(self.serverPid)
        self.running = True
        self.endAt = loop.time() + seconds
        if closed:
            for _ in range(closed):
                self.sendRandom()
            await asyncio.sleep(seconds)
        else:
            start = loop.time()
            sent = 0
            while (now := loop.time()) < self.endAt:
                due = int((now - start) * rate) - sent
                for _ in range(due):
                    self.sendRandom()
                sent += due
                await asyncio.sleep(0.002)
        self.running = False
        deliveredInWindow = self.received
        windowWall = time.perf_counter() - meter.wall
        deadline = loop.time() + drain
        while self.received + self.bounced < self.sent and loop.time() < deadline:
            await asyncio.sleep(0.02)
        latencies = sorted(self.latencies)
        result = meter.result(
            stage="messages", mode="closed" if closed else "rate", users=len(clients),
            offered_rate=rate, in_flight=closed, seconds=seconds,
            sent=self.sent, delivered=self.received, bounced=self.bounced,
            lost=self.sent - self.received - self.bounced,
            disconnected=sum(1 for c in clients if c.lost),
        )
        result["delivered_per_s"] = round(deliveredInWindow / windowWall, 1)
        if latencies:
            result["latency_p50_ms"] = round(_percentile(latencies, 50) / 1e6, 2)
            result["latency_p99_ms"] = round(_percentile(latencies, 99) / 1e6, 2)
            result["latency_max_ms"] = round(latencies[-1] / 1e6, 2)
        if ownClients:
            await self.closeAll(clients)
        return result

    # -- message traffic

    def _resetCounters(self):
        self.sent = self.received = self.bounced = 0
        self.latencies: list[int] = []
        self.running = False
        self.closedLoop = False

    def sendRandom(self):
        clients = self.clients
        n = len(clients)
        s = random.randrange(n)
        r = random.randrange(n - 1)
        if r >= s:
            r += 1
        sender = clients[s]
        if sender.lost:
            return
        body = f"{time.monotonic_ns()} {s} {r}".encode()
        sender.transport.write(self.prefixes[r] + body + b"</body></message>")
        self.sent += 1

    def scan(self, client: Client, data: bytes):
        """
        Find complete bodies in what C{client} received.
        """
        buf = client.buf + data if client.buf else data
        start = 0
        now = time.monotonic_ns()
        while True:
            i = buf.find(b"<body>", start)
            if i < 0:
                client.buf = buf[-6:] if len(buf) > 6 else buf
                return
            j = buf.find(b"</body>", i)
            if j < 0:
                client.buf = buf[i:]
                return
            start = j + 7
            parts = buf[i + 6:j].split()
            if len(parts) != 3:
                continue
            if parts[2] == b"g":
                self.groupReceived(client, now, int(parts[0]), int(parts[1]))
                continue
            if self.clients[int(parts[2])] is not client:
                self.bounced += 1  # an error reply carries the original body
                continue
            self.received += 1
            self.latencies.append(now - int(parts[0]))
            if self.closedLoop and self.running:
                self.sendRandom()


    # -- group fan-out (one sender, every occupant receives each message)

    async def joinRoom(self, clients, room: str, instant: bool = False):
        """
        XEP-0045 join of C{room} (a bare room JID) for each client, nick
        C{<prefix><index>}; waits for each join's ping round trip (the
        server has handled the presence).  Prosody delivers groupchat to
        joined occupants only; xmppchat's dialog rooms do not need this.
        With C{instant}, the first client makes the room an instant room
        (§10.1.2, an empty form) before the others join: a stock
        client's way into a new room that the server keeps locked.
        """
        for position, client in enumerate(clients):
            client.online = False
            client.buf = b""
            client.write(f"<presence to='{room}/{self.prefix}{client.index}'>"
                         f"<x xmlns='http://jabber.org/protocol/muc'/></presence>"
                         f"<iq type='get' id='join{client.index}x'><ping xmlns='urn:xmpp:ping'/></iq>".encode())
            await asyncio.wait_for(client.expect(f"join{client.index}x".encode()), self.timeout)
            if instant and position == 0:
                client.write(f"<iq type='set' id='instant{client.index}' to='{room}'>"
                             "<query xmlns='http://jabber.org/protocol/muc#owner'>"
                             "<x xmlns='jabber:x:data' type='submit'/></query></iq>".encode())
                await asyncio.wait_for(client.expect(f"instant{client.index}".encode()), self.timeout)
            await asyncio.sleep(0)
            client.buf = b""
            client.online = True

    async def groupStage(self, clients, room: str, seconds: float = 5.0, window: int = 10,
                         drain: float = 5.0) -> dict:
        """
        C{clients[0]} sends C{groupchat} to C{room}; closed loop with
        C{window} messages whose fan-out is incomplete.  Delivered
        stanzas/s (every copy counts), p50/p99 latency of the copies.
        """
        self._resetCounters()
        self.groupSize = len(clients)
        self.groupPending: dict[int, int] = {}
        self.groupSender = clients[0]
        self.groupPrefix = f"<message to='{room}' type='groupchat' id='g'><body>".encode()
        self.groupSeq = 0
        loop = asyncio.get_running_loop()
        meter = Meter(self.serverPid)
        self.running = True
        for _ in range(window):
            self.sendGroup()
        await asyncio.sleep(seconds)
        self.running = False
        inWindow = self.received
        windowWall = time.perf_counter() - meter.wall
        deadline = loop.time() + drain
        while self.groupPending and loop.time() < deadline:
            await asyncio.sleep(0.02)
        latencies = sorted(self.latencies)
        result = meter.result(stage="group", occupants=len(clients), window=window, seconds=seconds,
                              sent=self.sent, delivered=self.received,
                              lost=self.sent * len(clients) - self.received)
        result["delivered_per_s"] = round(inWindow / windowWall, 1)
        result["messages_per_s"] = round(inWindow / len(clients) / windowWall, 1)
        if latencies:
            result["latency_p50_ms"] = round(_percentile(latencies, 50) / 1e6, 2)
            result["latency_p99_ms"] = round(_percentile(latencies, 99) / 1e6, 2)
        return result

    def sendGroup(self):
        self.groupSeq += 1
        self.groupPending[self.groupSeq] = 0
        body = f"{time.monotonic_ns()} {self.groupSeq} g".encode()
        self.groupSender.transport.write(self.groupPrefix + body + b"</body></message>")
        self.sent += 1

    def groupReceived(self, client, now: int, sentAt: int, seq: int):
        count = self.groupPending.get(seq)
        if count is None:
            return
        self.received += 1
        self.latencies.append(now - sentAt)
        count += 1
        if count >= self.groupSize:
            del self.groupPending[seq]
            if self.running:
                self.sendGroup()
        else:
            self.groupPending[seq] = count


def _percentile(sortedValues, p):
    if not sortedValues:
        return None
    k = (len(sortedValues) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sortedValues) - 1)
    return sortedValues[lo] + (sortedValues[hi] - sortedValues[lo]) * (k - lo)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def runLoop(coro):
    """
    Run C{coro} on uvloop when it is installed, else on asyncio's loop.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def raiseFileLimit(wanted: int = 1 << 20) -> int:
    """
    Raise RLIMIT_NOFILE's soft limit towards the hard limit; the new soft
    limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5222)
    parser.add_argument("--domain", default="localhost")
    parser.add_argument("--prefix", default="u", help="usernames are PREFIX0, PREFIX1, ...")
    parser.add_argument("--password", default="benchpass")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=50, help="logins in progress at once")
    parser.add_argument("--no-tls", action="store_true", help="log in without STARTTLS")
    parser.add_argument("--server-pid", type=int, help="report this process's CPU time and RSS")
    sub = parser.add_subparsers(dest="stage", required=True)
    sub.add_parser("login")
    idle = sub.add_parser("idle")
    idle.add_argument("--hold", type=float, default=2.0, help="seconds to hold the connections")
    m = sub.add_parser("messages")
    m.add_argument("--seconds", type=float, default=5.0)
    group = m.add_mutually_exclusive_group(required=True)
    group.add_argument("--rate", type=float, help="offered messages/s in total")
    group.add_argument("--closed", type=int, help="closed loop with this many messages in flight")
    args = parser.parse_args(argv)
    raiseFileLimit()
    gen = LoadGenerator(args.host, args.port, args.domain, args.prefix, args.password, args.server_pid)
    tls = not args.no_tls
    if args.stage == "login":
        coro = gen.loginStage(args.users, tls, args.concurrency)
    elif args.stage == "idle":
        coro = gen.idleStage(args.users, tls, args.concurrency, args.hold)
    else:
        coro = gen.messageStage(args.users, args.seconds, args.rate, args.closed, tls, args.concurrency)
    print(json.dumps(runLoop(coro), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
