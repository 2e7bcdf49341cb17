"""
Issue 15 finding 6, TCP behind a load balancer: with C{[c2s]
proxy_protocol} a trusted proxy (127.0.0.1 here) names each client in a
PROXY v1/v2 header, and the per-address limits count that client; the
header from an untrusted peer (127.0.0.2) is not believed.  On a real
server, the direct-TLS port receiving the header and the TLS ClientHello
in one segment.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_hardening import HEADER

TIMEOUT = 20
V2_PREFIX = b"\r\n\r\n\x00\r\nQUIT\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("proxy-protocol"), c2s="proxy_protocol = true", extra="""
[limits]
exempt_loopback = false
connections_per_ip = 2
trusted_proxies = ["127.0.0.1/32"]
""")
    running.adduser("alice", "alice-pw")
    yield running
    stopServer(running)


def v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 5222\r\n".encode()


def v2(client: str) -> bytes:
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, 5223)
    return V2_PREFIX + b"\x21\x11" + struct.pack("!H", len(addresses)) + addresses


def connect(server, port="c2s", source="127.0.0.1"):
    return socket.create_connection(("127.0.0.1", server.ports[port]), timeout=TIMEOUT,
                                    source_address=(source, 0))


def receive(sock) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return data
        if not chunk:
            return data
        data += chunk
        if b"</stream:features>" in data or b"</stream:stream>" in data:
            return data


class TLSOverSocket:
    """
    TLS through memory BIOs, so that the PROXY header and the ClientHello
    leave in one segment.
    """

    def __init__(self, server, sock, header: bytes):
        context = ssl.create_default_context(cafile=str(server.ca))
        self.sock, self.incoming, self.outgoing = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        first = True
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall((header if first else b"") + self.outgoing.read())
                first = False
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the TLS handshake") from None
                self.incoming.write(data)
        self._flush()

    def _flush(self):
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def send(self, data: bytes):
        self.tls.write(data)
        self._flush()

    def readUntil(self, marker: bytes) -> bytes:
        data = b""
        while marker not in data:
            try:
                data += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            chunk = self.sock.recv(65536)
            assert chunk, data
            self.incoming.write(chunk)
        return data


def test_v1HeaderCountsTheClient(server):
    """Each client named in a v1 header gets connections_per_ip; the third of one client gets policy-violation."""
    held = []
    for _ in range(2):
        sock = connect(server)
        sock.sendall(v1("203.0.113.5") + HEADER)
        assert b"<starttls" in receive(sock)
        held.append(sock)
    refused = connect(server)
    refused.sendall(v1("203.0.113.5") + HEADER)
    answer = receive(refused)
    assert b"<policy-violation" in answer and b"Too many connections from 203.0.113.5" in answer
    other = connect(server)
    other.sendall(v1("203.0.113.6") + HEADER)
    assert b"<starttls" in receive(other)
    for sock in held + [refused, other]:
        sock.close()


def test_starttlsAndLoginAfterV1Header(server):
    """STARTTLS and SASL work on a connection that began with a PROXY header."""
    sock = connect(server)
    sock.sendall(v1("203.0.113.20") + HEADER)
    assert b"<starttls" in receive(sock)
    sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert b"<proceed" in sock.recv(4096)
    tls = ssl.create_default_context(cafile=str(server.ca)).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(HEADER)
    assert b"PLAIN" in receive(tls)
    token = base64.b64encode(b"\0alice\0alice-pw").decode()
    tls.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
    assert b"<success" in tls.recv(4096)
    tls.close()


def test_v2HeaderThenTLSInOneSegmentAndLogin(server):
    """On the direct-TLS port a v2 header followed at once by the ClientHello works; the limit counts the client."""
    held = []
    for _ in range(2):
        tls = TLSOverSocket(server, connect(server, "c2s-tls"), v2("198.51.100.9"))
        tls.send(HEADER)
        tls.readUntil(b"</stream:features>")
        held.append(tls)
    token = base64.b64encode(b"\0alice\0alice-pw").decode()
    held[0].send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
    assert b"<success" in held[0].readUntil(b"success")
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        TLSOverSocket(server, connect(server, "c2s-tls"), v2("198.51.100.9"))
    TLSOverSocket(server, connect(server, "c2s-tls"), v2("198.51.100.10")).sock.close()
    for tls in held:
        tls.sock.close()


def test_headerFromUntrustedPeerNotBelieved(server):
    """127.0.0.2 is no trusted proxy: its PROXY line is not XML (not-well-formed) and cannot dodge its own limit."""
    sock = connect(server, source="127.0.0.2")
    sock.sendall(v1("192.0.2.1") + HEADER)
    assert b"<not-well-formed" in receive(sock)
    sock.close()
    plain = connect(server, source="127.0.0.2")
    plain.sendall(HEADER)
    assert b"<starttls" in receive(plain)
    plain.close()


def test_trustedProxyWithoutHeaderDropped(server):
    """A trusted proxy's connection that does not start with a PROXY header is closed."""
    sock = connect(server)
    sock.sendall(HEADER)
    assert receive(sock) == b""
    sock.close()



def test_noTracebacks(server):
    """None of the above left a traceback in the server's log."""
    assert "Traceback" not in server.log()
