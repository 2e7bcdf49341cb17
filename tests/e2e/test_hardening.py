"""
Hardening against clients that stop reading or never finish negotiating,
on a real server over loopback TLS (twistd subprocess): the server stops
reading from them instead of queueing answers, drops them once
C{max_unsent_bytes} more are queued, and closes connections stuck before
binding (even before the TLS handshake) after C{negotiation_seconds},
while other clients keep chatting.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("hardening"), extra="""
[limits]
max_unsent_bytes = 200000
negotiation_seconds = 4
""")
    for name in ("alice", "bob", "mallory", "trudy"):
        running.adduser(name, f"{name}-pw")
    yield running
    stopServer(running)


def rss(pid: int) -> int:
    """Resident memory of C{pid} in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def readUntil(sock, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def boundRawClient(server, user: str):
    """A direct-TLS socket logged in (PLAIN) and bound, with a small receive buffer."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(TIMEOUT)
    raw.connect(("127.0.0.1", server.ports["c2s-tls"]))
    context = ssl.create_default_context(cafile=str(server.ca))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(HEADER)
    readUntil(tls, b"</stream:features>")
    token = base64.b64encode(f"\0{user}\0{user}-pw".encode()).decode()
    tls.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
    readUntil(tls, b"<success")
    tls.sendall(HEADER)
    readUntil(tls, b"</stream:features>")
    tls.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq><presence/>")
    readUntil(tls, b"</iq>")
    return tls


def test_slowReaderDroppedOthersKeepChatting(server):
    """A client that stops reading is dropped after max_unsent_bytes of messages for it; others keep chatting."""

    async def scenario():
        loop = asyncio.get_running_loop()
        mallory = await loop.run_in_executor(None, boundRawClient, server, "mallory")
        before = rss(server.process.pid)
        alice = Client(server, "alice@localhost", "alice-pw")
        bob = Client(server, "bob@localhost", "bob-pw")
        assert await alice.login() and await bob.login()
        body = "x" * 100_000
        deadline = time.monotonic() + TIMEOUT
        while "unread" not in server.log():
            assert time.monotonic() < deadline, "the slow reader was never dropped"
            for _ in range(5):
                alice.send_message(mto="mallory@localhost", mbody=body, mtype="chat")
            await asyncio.sleep(0.05)
        assert rss(server.process.pid) - before < 64 * 1024 * 1024
        alice.send_message(mto="bob@localhost", mbody="still fine", mtype="chat")
        assert (await asyncio.wait_for(bob.messages.get(), TIMEOUT))["body"] == "still fine"
        await alice.logout()
        await bob.logout()
        mallory.close()

    run(scenario())
    assert "Traceback" not in server.log()


def test_nonReadingFlooderIsNotRead(server):
    """A client flooding pings without reading the answers is throttled by the server not reading it."""
    # not mallory: the slow-reader test leaves messages for her in offline storage,
    # whose delivery at her next login would be a flood of its own
    tls = boundRawClient(server, "trudy")
    tls.settimeout(3)
    ping = b"<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>" * 100
    before = rss(server.process.pid)
    sent = 0
    with pytest.raises((socket.timeout, ssl.SSLError, ConnectionError)):
        while sent < 200 * 1024 * 1024:
            tls.sendall(ping)
            sent += len(ping)
    # the answers the server could not write stayed bounded, and so did its memory
    assert sent < 50 * 1024 * 1024, sent
    assert rss(server.process.pid) - before < 64 * 1024 * 1024
    tls.close()


def closedWithin(sock, seconds: float) -> float:
    """Read until the server closes C{sock}; return how long it took."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - start


def test_stuckConnectionsClosed(server):
    """Connections that never finish TLS, the header or SASL are closed after negotiation_seconds (+5 s grace)."""
    silentTLS = socket.create_connection(("127.0.0.1", server.ports["c2s-tls"]), timeout=TIMEOUT)
    partial = socket.create_connection(("127.0.0.1", server.ports["c2s"]), timeout=TIMEOUT)
    partial.sendall(HEADER[:40])
    elapsed = [closedWithin(s, 15) for s in (silentTLS, partial)]
    assert all(e < 14 for e in elapsed), elapsed
    silentTLS.close()
    partial.close()
