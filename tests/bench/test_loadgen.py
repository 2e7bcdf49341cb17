"""
Smoke test of the benchmark load generator (bench/loadgen.py) against a real
xmppchat started with twistd on ephemeral ports: a handful of users log in
over STARTTLS with SCRAM-SHA-256 (the server's signature checked) and
exchange messages for a second.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.e2e.conftest import ROOT, startServer, stopServer

sys.path.insert(0, os.path.join(str(ROOT), "bench"))
import loadgen  # noqa: E402

USERS = 6


@pytest.fixture(scope="module")
def benchServer(tmp_path_factory):
    server = startServer(tmp_path_factory.mktemp("bench"), extra="""
[limits]
message_rate = 0
""")
    users = "".join(f"u{i} benchpass\n" for i in range(USERS))
    done = server.admin("import-users", "-", stdin=users)
    assert done.returncode == 0, done.stderr
    yield server
    stopServer(server)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_scramClientProof():
    """The SCRAM-SHA-256 client matches RFC 7677 §3's example exchange."""
    client = loadgen.ScramClient("user", "pencil")
    client.cnonce = "rOprNGfwEbeRWgbNEkqO"
    client.firstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    serverFirst = ("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    import base64

    final = base64.b64decode(client.final(base64.b64encode(serverFirst.encode()))).decode()
    assert final == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client.verify(base64.b64encode(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
    with pytest.raises(loadgen.LoginError):
        client.verify(base64.b64encode(b"v=AAAA"))


def test_loginTLSAndMessages(benchServer):
    """Users log in with STARTTLS and SCRAM, and every message sent is delivered."""
    gen = loadgen.LoadGenerator(port=benchServer.ports["c2s"], serverPid=benchServer.process.pid)
    login = _run(gen.loginStage(USERS, tls=True, concurrency=3))
    assert login["ok"] == USERS and login["errors"] == 0
    assert login["server_cpu_s"] >= 0
    messages = _run(gen.messageStage(USERS, seconds=1.0, closed=4, tls=True))
    assert messages["delivered"] > 10
    assert messages["lost"] == 0 and messages["bounced"] == 0
    assert messages["latency_p99_ms"] >= messages["latency_p50_ms"] > 0


def test_wrongPasswordFails(benchServer):
    """A wrong password is reported as a login error, not counted as a login."""
    gen = loadgen.LoadGenerator(port=benchServer.ports["c2s"], password="wrong")
    result = _run(gen.loginStage(1, tls=True, concurrency=1))
    assert result["ok"] == 0 and result["errors"] == 1
    assert "failure" in result["error_samples"][0] or "not-authorized" in result["error_samples"][0]


def test_idleReportsServerMemory(benchServer):
    """The idle stage holds connections and reads the server's RSS."""
    gen = loadgen.LoadGenerator(port=benchServer.ports["c2s"], serverPid=benchServer.process.pid)
    result = _run(gen.idleStage(3, tls=True, concurrency=3, settle=0.2))
    assert result["alive"] == 3 and result["rss_after"] > 10 * 1024 * 1024
