"""
Certificate reload on SIGHUP against a real server (twistd subprocess):
slixmpp sessions made before the reload keep chatting, new STARTTLS,
direct TLS, wss:// and https:// BOSH handshakes get the new certificate,
unusable files keep the current one, and old protocol versions are refused
on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import ssl
import time

import pytest

from tests.e2e.test_slixmpp import TIMEOUT, Client, _rawTLSConnection, run
from xmppchat.certs import makeCertificate


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peerFingerprint(port: int) -> str:
    """The SHA-256 of the certificate a new direct TLS handshake on C{port} gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        with unverified().wrap_socket(sock, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def starttlsFingerprint(server) -> str:
    tls = _rawTLSConnection(server, unverified())
    try:
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    finally:
        tls.close()


def pemFingerprint(certPEM: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(certPEM.decode())).hexdigest()


def replaceFiles(server, keyPEM: bytes, certPEM: bytes) -> None:
    """Write the new pair next to the configured files and rename over them, as certbot does."""
    for name, data in (("server.key", keyPEM), ("server.crt", certPEM)):
        path = server.directory / name
        (server.directory / (name + ".new")).write_bytes(data)
        os.replace(server.directory / (name + ".new"), path)


def hangUp(server, expect: str, count: int) -> None:
    """Send SIGHUP and wait for the C{count}-th log line containing C{expect}."""
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + TIMEOUT
    while server.log().count(expect) < count:
        assert server.process.poll() is None, server.log()
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def allFingerprints(server) -> set:
    return {peerFingerprint(server.ports["c2s-tls"]), peerFingerprint(server.ports["websocket"]),
            peerFingerprint(server.ports["bosh"]), starttlsFingerprint(server)}


def test_reloadOnSIGHUPKeepsSessions(tlsServer):
    """After SIGHUP new TLS handshakes see the new certificate while slixmpp sessions made before keep chatting."""
    original = pemFingerprint((tlsServer.directory / "server.crt").read_bytes())
    assert allFingerprints(tlsServer) == {original}

    async def scenario():
        alice = Client(tlsServer, "alice@localhost", "alice-pw")
        bob = Client(tlsServer, "bob@localhost", "bob-pw", directTLS=True)
        assert await alice.login() and await bob.login()
        keyPEM, certPEM = makeCertificate(["localhost", "127.0.0.1"])
        replaceFiles(tlsServer, keyPEM, certPEM)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, hangUp, tlsServer, "TLS certificate reloaded", 1)
        assert await loop.run_in_executor(None, allFingerprints, tlsServer) == {pemFingerprint(certPEM)}
        alice.send_message(mto="bob@localhost", mbody="after the reload", mtype="chat")
        received = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        assert received["body"] == "after the reload"
        bob.send_message(mto=str(alice.boundjid), mbody="still here", mtype="chat")
        assert (await asyncio.wait_for(alice.messages.get(), TIMEOUT))["body"] == "still here"

        # unusable files: logged, the current certificate stays, sessions too
        (tlsServer.directory / "server.crt").write_bytes(b"not a certificate")
        await loop.run_in_executor(None, hangUp, tlsServer, "keeping the current one", 1)
        assert await loop.run_in_executor(None, allFingerprints, tlsServer) == {pemFingerprint(certPEM)}
        alice.send_message(mto="bob@localhost", mbody="bad files ignored", mtype="chat")
        assert (await asyncio.wait_for(bob.messages.get(), TIMEOUT))["body"] == "bad files ignored"
        await alice.logout()
        await bob.logout()

    run(scenario())
    assert "Traceback" not in tlsServer.log()


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_oldTLSRefusedOnTheWire(tlsServer, version):
    """A TLS 1.0/1.1 client is refused on the direct TLS port."""
    import warnings

    context = unverified()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = getattr(ssl.TLSVersion, version)
        context.maximum_version = getattr(ssl.TLSVersion, version)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", tlsServer.ports["c2s-tls"]), timeout=TIMEOUT) as sock:
        with pytest.raises(ssl.SSLError) as caught:
            context.wrap_socket(sock, server_hostname="localhost")
    if "NO_PROTOCOLS_AVAILABLE" in str(caught.value).upper():
        pytest.skip("this OpenSSL client cannot speak old TLS at all")
    assert "VERSION" in str(caught.value).upper()


def test_weakCipherRefusedOnTheWire(tlsServer):
    """A TLS 1.2 client offering only CBC/SHA-1 suites is refused on the direct TLS port."""
    context = unverified()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", tlsServer.ports["c2s-tls"]), timeout=TIMEOUT) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname="localhost")
