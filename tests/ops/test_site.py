"""
The C{[ops]} listener's HTTP hygiene (security review of issue 18, finding
3), over loopback against a real service: a body over 64 KiB gets 413
before it is read (announced or chunked, authenticated or not), and
scrapes and probes write no access log line.
"""

from __future__ import annotations

import shutil
import socket
import tempfile

from twisted.internet import defer, reactor, threads
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.helpers import makeConfig
from xmppchat.ops.adminapi import MAX_BODY_BYTES
from xmppchat.service import XMPPChatService

KEY = "k" * 40


def exchange(port, head: bytes, chunks=(), timeout=5.0) -> bytes:
    """
    Send C{head} then C{chunks} (stopping when the server closes) and
    return what the server answered within C{timeout}.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            for chunk in chunks:
                s.sendall(chunk)
        except OSError:
            pass  # closed by the server after its answer
        answer = b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
        except (socket.timeout, ConnectionResetError):
            pass
        return answer


class OpsSiteTests(TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        dataDir = tempfile.mkdtemp(prefix="xmppchat-opssite-")
        self.addCleanup(shutil.rmtree, dataDir, True)
        config = makeConfig(server={"data_dir": dataDir}, c2s={"port": 0, "direct_tls": False},
                            ops={"enabled": True, "port": 0, "admin_key": KEY})
        self.service = XMPPChatService(config, reactor)
        yield self.service.startService()
        self.addCleanup(self.service.stopService)
        self.port = self.service.portNumber("ops")

    @defer.inlineCallbacks
    def test_announcedLargeBodyRefusedUnread(self):
        """A 200 MiB Content-Length to the admin API with a wrong key is answered 413 before any body byte."""
        answer = yield threads.deferToThread(
            exchange, self.port, b"POST /admin/api/announce HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer nope\r\nContent-Length: %d\r\n\r\n" % (200 << 20))
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:100])
        self.assertIn(b"larger than 65536 bytes", answer)

    @defer.inlineCallbacks
    def test_chunkedLargeBodyRefused(self):
        """A chunked body to /health is answered 413 once past the limit, and the connection closed."""
        chunk = b"A" * 16384
        chunks = [b"4000\r\n" + chunk + b"\r\n"] * (4 * MAX_BODY_BYTES // len(chunk))
        answer = yield threads.deferToThread(
            exchange, self.port, b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunks)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:100])

    @defer.inlineCallbacks
    def test_smallBodiesStillServed(self):
        """A body under the limit still reaches the admin API (an authenticated announce)."""
        body = b'{"body": "maintenance at noon", "to": "online"}'
        answer = yield threads.deferToThread(
            exchange, self.port, b"POST /admin/api/announce HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])

    @defer.inlineCallbacks
    def test_noAccessLogLine(self):
        """Scrapes of /metrics and probes of /health write no access log line."""
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for path in (b"/health", b"/metrics"):
            response = yield Agent(reactor).request(b"GET", b"http://127.0.0.1:%d%s" % (self.port, path))
            yield readBody(response)
            self.assertEqual(response.code, 200)
        logged = [formatEvent(e) for e in events]
        self.assertEqual([line for line in logged if "/health" in line or "/metrics" in line], [])
