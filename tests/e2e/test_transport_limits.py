"""
Issue 15 finding 6 as the attack, on a real server over loopback: one
address opening WebSocket connections or BOSH sessions beyond
C{connections_per_ip} is refused while other clients still get in; behind
the trusted proxy (127.0.0.1 here) each forwarded client has its own
share; from an untrusted peer (127.0.0.2) X-Forwarded-For changes nothing.
"""

from __future__ import annotations

import base64
import os
import socket
import urllib.request

import pytest

from tests.e2e.conftest import startServer, stopServer

TIMEOUT = 20
LIMIT = 5
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("transport-limits"), extra=f"""
[limits]
exempt_loopback = false
connections_per_ip = {LIMIT}
connection_burst_per_ip = 100
trusted_proxies = ["127.0.0.1/32"]

[websocket]
enabled = true
port = 0

[bosh]
enabled = true
port = 0
""")
    yield running
    stopServer(running)


def upgrade(server, source="127.0.0.1", forwardedFor=None):
    """
    A WebSocket upgrade request from C{source}; (status line or b"" if the
    connection was dropped, the open socket).
    """
    sock = socket.create_connection(("127.0.0.1", server.ports["websocket"]), timeout=TIMEOUT,
                                    source_address=(source, 0))
    headers = ["GET / HTTP/1.1", "Host: localhost", "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: xmpp",
               "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]
    if forwardedFor:
        headers.append(f"X-Forwarded-For: {forwardedFor}")
    try:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        data = b""
    return data.split(b"\r\n", 1)[0], sock


def boshCreate(server, forwardedFor):
    body = (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='1000' to='localhost'"
            f" wait='30' hold='1' xmpp:version='1.0'/>").encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.ports['bosh']}/http-bind", data=body, method="POST",
        headers={"Content-Type": "text/xml", "X-Forwarded-For": forwardedFor})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read().decode()


def test_webSocketFloodThroughTrustedProxy(server):
    """The proxy's client 203.0.113.5 gets connections_per_ip WebSockets, then 429; 203.0.113.6 still connects."""
    held = [upgrade(server, forwardedFor="203.0.113.5") for _ in range(LIMIT)]
    assert [status for status, _ in held] == [b"HTTP/1.1 101 Switching Protocols"] * LIMIT
    status, sock = upgrade(server, forwardedFor="203.0.113.5")
    assert status.startswith(b"HTTP/1.1 429")
    sock.close()
    status, other = upgrade(server, forwardedFor="203.0.113.6")
    assert status.startswith(b"HTTP/1.1 101")
    for _, sock in held + [(None, other)]:
        sock.close()


def test_webSocketForwardedForIgnoredFromUntrustedPeer(server):
    """127.0.0.2 is no trusted proxy: made-up X-Forwarded-For values do not get it past its own limit."""
    held = [upgrade(server, "127.0.0.2", forwardedFor=f"198.51.100.{i}") for i in range(LIMIT)]
    assert all(status.startswith(b"HTTP/1.1 101") for status, _ in held)
    status, sock = upgrade(server, "127.0.0.2", forwardedFor="198.51.100.99")
    assert status == b""
    sock.close()
    assert upgrade(server, forwardedFor="203.0.113.7")[0].startswith(b"HTTP/1.1 101")
    for _, sock in held:
        sock.close()


def test_boshTableFloodFromOneClient(server):
    """One client fills its share of the BOSH table and gets policy-violation; another client still gets a session."""
    for _ in range(LIMIT):
        assert "sid=" in boshCreate(server, "192.0.2.50")
    refused = boshCreate(server, "192.0.2.50")
    assert "type='terminate'" in refused and "condition='policy-violation'" in refused
    assert "sid=" in boshCreate(server, "192.0.2.51")
