"""
ALPN (RFC 7301) against a real server (twistd subprocess): clients offering
C{xmpp-client} on STARTTLS and direct TLS (XEP-0368 §3) get it and the
stream goes on; C{http/1.1} on C{wss://} and C{https://} BOSH likewise;
offers with nothing we speak still complete, also after a SIGHUP reload.
go-sendxmpp (Go's TLS, offering C{xmpp-client}) sends a message over
STARTTLS and over direct TLS.  Without go-sendxmpp its test is skipped,
unless the environment variable C{CI} is set: then it fails.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.e2e.test_slixmpp import TIMEOUT, Client, _rawTLSConnection, run
from tests.e2e.test_tlsreload import hangUp

HEADER = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"


def offering(server, protocols) -> ssl.SSLContext:
    """A client context verifying the test CA and offering the ALPN C{protocols} (none when None)."""
    context = ssl.create_default_context(cafile=str(server.ca))
    if protocols is not None:
        context.set_alpn_protocols(protocols)
    return context


def readFeatures(tls) -> bytes:
    data = b""
    while b"</stream:features>" not in data:
        chunk = tls.recv(4096)
        assert chunk, data
        data += chunk
    return data


C2S_OFFERS = [
    (["xmpp-client"], "xmpp-client"),
    (["junk", "xmpp-client", "h2"], "xmpp-client"),
    (None, None),
    (["junk"], None),
]


@pytest.mark.parametrize("offer, selected", C2S_OFFERS)
def test_starttlsALPN(tlsServer, offer, selected):
    """STARTTLS with ALPN completes, selects xmpp-client when offered, and the new stream offers SASL."""
    tls = _rawTLSConnection(tlsServer, offering(tlsServer, offer))
    try:
        assert tls.selected_alpn_protocol() == selected
        assert b"urn:ietf:params:xml:ns:xmpp-sasl" in readFeatures(tls)
    finally:
        tls.close()


@pytest.mark.parametrize("offer, selected", C2S_OFFERS)
def test_directTLSALPN(tlsServer, offer, selected):
    """Direct TLS (XEP-0368) with ALPN completes, selects xmpp-client when offered, and the stream offers SASL."""
    with socket.create_connection(("127.0.0.1", tlsServer.ports["c2s-tls"]), timeout=TIMEOUT) as sock:
        with offering(tlsServer, offer).wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == selected
            tls.sendall(HEADER)
            assert b"urn:ietf:params:xml:ns:xmpp-sasl" in readFeatures(tls)


HTTP_OFFERS = [
    (["http/1.1"], "http/1.1"),
    (["h2", "http/1.1"], "http/1.1"),
    (["xmpp-client"], None),
]


@pytest.mark.parametrize("offer, selected", HTTP_OFFERS)
def test_wssALPN(tlsServer, offer, selected):
    """wss:// with ALPN completes, selects http/1.1 when offered, and the upgrade gets 101 with 'xmpp'."""
    port = tlsServer.ports["websocket"]
    request = (f"GET / HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: xmpp\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        with offering(tlsServer, offer).wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == selected
            tls.sendall(request.encode())
            answer = tls.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 101") and "sec-websocket-protocol: xmpp\r\n" in answer.lower()


@pytest.mark.parametrize("offer, selected", HTTP_OFFERS)
def test_httpsBoshALPN(tlsServer, offer, selected):
    """https:// BOSH with ALPN completes, selects http/1.1 when offered, and a session request gets 200."""
    connection = http.client.HTTPSConnection("localhost", tlsServer.ports["bosh"], timeout=TIMEOUT,
                                             context=offering(tlsServer, offer))
    try:
        connection.connect()
        assert connection.sock.selected_alpn_protocol() == selected
        body = (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost'"
                " wait='60' hold='1' ver='1.6' xmpp:version='1.0'/>")
        connection.request("POST", "/http-bind", body.encode(), {"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        assert response.status == 200 and b"sid=" in response.read()
    finally:
        connection.close()


def test_alpnKeptAfterSIGHUP(tlsServer):
    """After a certificate reload (SIGHUP) each TLS listener still selects its own protocol."""
    hangUp(tlsServer, "TLS certificate reloaded", 1)
    offer = ["junk", "http/1.1", "xmpp-client"]
    tls = _rawTLSConnection(tlsServer, offering(tlsServer, offer))
    assert tls.selected_alpn_protocol() == "xmpp-client"
    tls.close()
    for name, selected in (("c2s-tls", "xmpp-client"), ("websocket", "http/1.1"), ("bosh", "http/1.1")):
        with socket.create_connection(("127.0.0.1", tlsServer.ports[name]), timeout=TIMEOUT) as sock:
            with offering(tlsServer, offer).wrap_socket(sock, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == selected, name


GO_SENDXMPP = shutil.which("go-sendxmpp")


def requireGoSendxmpp() -> str:
    """Skip (or, under CI, fail) when go-sendxmpp is not installed."""
    if GO_SENDXMPP is None:
        reason = "go-sendxmpp is not installed (apt-get install -y go-sendxmpp)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return GO_SENDXMPP


@pytest.mark.parametrize("directTLS", [False, True], ids=["starttls", "direct-tls"])
def test_goSendxmppDelivers(tlsServer, tmp_path, directTLS):
    """go-sendxmpp (Go TLS, offers ALPN xmpp-client) verifies the test CA and sends bob a message he receives."""
    binary = requireGoSendxmpp()
    port = tlsServer.ports["c2s-tls" if directTLS else "c2s"]
    body = f"hello from go-sendxmpp over {'direct TLS' if directTLS else 'STARTTLS'}"
    # Go reads extra trust anchors from SSL_CERT_FILE; HOME keeps any user config out.
    env = dict(os.environ, SSL_CERT_FILE=str(tlsServer.ca), HOME=str(tmp_path))
    command = [binary, "-u", "alice@localhost", "-p", "alice-pw", "-j", f"127.0.0.1:{port}",
               "--timeout", str(TIMEOUT), *(["-t"] if directTLS else []), "bob@localhost"]

    async def scenario():
        bob = Client(tlsServer, "bob@localhost", "bob-pw")
        assert await bob.login()
        loop = asyncio.get_running_loop()
        done = await loop.run_in_executor(None, lambda: subprocess.run(
            command, input=body, capture_output=True, text=True, env=env, timeout=TIMEOUT * 2))
        assert done.returncode == 0, done.stdout + done.stderr
        received = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        assert received["body"] == body and received["from"].bare == "alice@localhost"
        await bob.logout()

    run(scenario())
    assert "Traceback" not in tlsServer.log()
