"""
TLS hardening (RFC 6120 §5, §13.7; RFC 9325): only TLS 1.2+, only
forward-secret AEAD suites, certificate reload (SIGHUP) that new
handshakes see while established sessions are kept, and ALPN (RFC 7301)
per listener.  Handshakes run in memory: Python's C{ssl} client against the
server's pyOpenSSL connection.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import ssl
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from tests.fuzz.helpers import LoggedFailures
from tests.helpers import makeConfig
from xmppchat.certs import ALPN_C2S, ALPN_HTTP, CertificateError, contextFactory, makeCertificate, selectALPN
from xmppchat.tlsreload import ReloadableTLS, installReloadSignal


def rsaCertificate(name="localhost"):
    """An RSA-2048 self-signed certificate (the key type that allows RSA key exchange)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    keyPEM = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return keyPEM, cert.public_bytes(serialization.Encoding.PEM)


def writePair(directory, keyPEM, certPEM, name="server"):
    keyPath, certPath = directory / f"{name}.key", directory / f"{name}.crt"
    keyPath.write_bytes(keyPEM)
    certPath.write_bytes(certPEM)
    return str(certPath), str(keyPath)


def fingerprint(certPEM: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(certPEM.decode())).hexdigest()


def handshake(creator, client: ssl.SSLContext):
    """
    Run a TLS handshake in memory between C{creator}'s server connection and
    C{client}; return the client's SSLObject, or raise the client's SSLError.
    """
    from types import SimpleNamespace

    tlsProtocol = SimpleNamespace(factory=SimpleNamespace(wrappedFactory=object()))
    server = creator.serverConnectionForTLS(tlsProtocol)
    server.set_accept_state()
    server.set_app_data(tlsProtocol)  # as Twisted's TLSMemoryBIOProtocol does
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname="localhost")
    for _ in range(20):
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = outgoing.read()
        if data:
            server.bio_write(data)
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error:
            pass  # the alert is in the server's output
        try:
            reply = server.bio_read(65536)
        except SSL.WantReadError:
            reply = b""
        if reply:
            incoming.write(reply)
        if done and not reply:
            return tls
    raise AssertionError("handshake did not finish")


def client(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED, ciphers=None,
           alpn=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1, on purpose
        context.minimum_version = minimum
        context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers + ":@SECLEVEL=0")
    return context


@pytest.fixture
def rsaServer(tmp_path):
    keyPEM, certPEM = rsaCertificate()
    return ReloadableTLS(lambda: contextFactory(*writePair(tmp_path, keyPEM, certPEM)))


def test_modernClientConnects(rsaServer):
    """A default client negotiates TLS 1.3 (or 1.2 with an AEAD ECDHE suite)."""
    tls = handshake(rsaServer, client())
    assert tls.version() in ("TLSv1.3", "TLSv1.2")


@pytest.mark.parametrize("suite", ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                                   "ECDHE-RSA-CHACHA20-POLY1305"])
def test_strongTLS12SuitesAccepted(rsaServer, suite):
    """TLS 1.2 clients offering only a forward-secret AEAD suite get it."""
    tls = handshake(rsaServer, client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=suite))
    assert tls.version() == "TLSv1.2" and tls.cipher()[0] == suite


@pytest.mark.parametrize("suite", [
    "AES128-GCM-SHA256",        # RSA key exchange: no forward secrecy
    "AES256-SHA",               # RSA key exchange, CBC, SHA-1
    "ECDHE-RSA-AES128-SHA",     # CBC with SHA-1 MAC
    "ECDHE-RSA-AES256-SHA384",  # CBC
])
def test_weakTLS12SuitesRefused(rsaServer, suite):
    """A TLS 1.2 client offering only a weak suite is refused by the server."""
    try:
        context = client(maximum=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL has no {suite}")
    with pytest.raises(ssl.SSLError) as caught:
        handshake(rsaServer, context)
    assert "HANDSHAKE_FAILURE" in str(caught.value).upper() or "NO_SHARED_CIPHER" in str(caught.value).upper()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_oldProtocolsRefused(rsaServer, version):
    """TLS 1.0 and 1.1 clients are refused with a protocol-version alert."""
    context = client(minimum=version, maximum=version, ciphers="ALL")
    with pytest.raises(ssl.SSLError) as caught:
        handshake(rsaServer, context)
    message = str(caught.value).upper()
    if "NO_PROTOCOLS_AVAILABLE" in message or "NO PROTOCOLS AVAILABLE" in message:
        pytest.skip("this OpenSSL client cannot speak old TLS at all")
    assert "PROTOCOL_VERSION" in message or "UNSUPPORTED_PROTOCOL" in message or "VERSION" in message


# -- reload -----------------------------------------------------------------------


def test_reloadSwapsCertificate(tmp_path):
    """After reload() new handshakes see the new certificate; a connection made before keeps working."""
    first = makeCertificate(["localhost"])
    certPath, keyPath = writePair(tmp_path, *first)
    creator = ReloadableTLS(lambda: contextFactory(certPath, keyPath))
    before = handshake(creator, client())
    assert fingerprint(first[1]) == hashlib.sha256(before.getpeercert(binary_form=True)).hexdigest()
    second = makeCertificate(["localhost"])
    writePair(tmp_path, *second)
    with LoggedFailures() as logged:
        assert creator.reload() is True
    assert not logged.events and creator.reloads == 1
    after = handshake(creator, client())
    assert hashlib.sha256(after.getpeercert(binary_form=True)).hexdigest() == fingerprint(second[1])
    assert before.getpeercert(binary_form=True) != after.getpeercert(binary_form=True)


@pytest.mark.parametrize("damage", ["garbage-cert", "missing-key", "other-key", "empty-cert"])
def test_badFilesKeepOldCertificate(tmp_path, damage):
    """Unusable new files are logged as an error and the current certificate stays in use."""
    keyPEM, certPEM = makeCertificate(["localhost"])
    certPath, keyPath = writePair(tmp_path, keyPEM, certPEM)
    creator = ReloadableTLS(lambda: contextFactory(certPath, keyPath))
    if damage == "garbage-cert":
        open(certPath, "wb").write(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    elif damage == "missing-key":
        os.remove(keyPath)
    elif damage == "other-key":
        open(keyPath, "wb").write(makeCertificate(["localhost"])[0])
    else:
        open(certPath, "wb").write(b"")
    with LoggedFailures() as logged:
        assert creator.reload() is False
    assert len(logged.events) == 1 and "keeping the current one" in logged.events[0]["log_format"]
    tls = handshake(creator, client())
    assert hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest() == fingerprint(certPEM)


def test_badFilesAtStartRaise(tmp_path):
    """At start-up unusable files are an error (the server does not start without TLS)."""
    with pytest.raises(CertificateError):
        ReloadableTLS(lambda: contextFactory(str(tmp_path / "none.crt"), str(tmp_path / "none.key")))


def test_sighupCallsReloadInReactorThread():
    """SIGHUP schedules the reload through reactor.callFromThread; restore() puts the old handler back."""

    class FakeReactor:
        def __init__(self):
            self.calls = []

        def callFromThread(self, f, *args):
            self.calls.append(f)

    reactor = FakeReactor()
    reloads = []
    previous = signal.getsignal(signal.SIGHUP)
    restore = installReloadSignal(reactor, lambda: reloads.append(1))
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        assert len(reactor.calls) == 1
        reactor.calls[0]()
        assert reloads == [1]
    finally:
        restore()
    assert signal.getsignal(signal.SIGHUP) == previous


def test_serviceReloadTLS(tmp_path):
    """XMPPChatService.reloadTLS re-reads the configured files into the factory every listener uses."""
    from xmppchat.service import XMPPChatService

    first = makeCertificate(["localhost"])
    certPath, keyPath = writePair(tmp_path, *first)
    config = makeConfig(tls={"certificate": certPath, "private_key": keyPath},
                        server={"data_dir": str(tmp_path / "data")})
    service = XMPPChatService(config)
    factory = service.tlsContext
    second = makeCertificate(["localhost"])
    writePair(tmp_path, *second)
    assert service.reloadTLS() is True
    assert service.tlsContext is factory  # the listeners keep their reference
    tls = handshake(factory, client())
    assert hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest() == fingerprint(second[1])


def test_serviceReloadSelfSigned(tmp_path):
    """Without configured files the generated self-signed pair is what a reload re-reads."""
    from xmppchat.service import XMPPChatService

    service = XMPPChatService(makeConfig(server={"data_dir": str(tmp_path / "data")}))
    generated = (tmp_path / "data" / "tls" / "selfsigned.crt").read_bytes()
    assert service.reloadTLS() is True
    tls = handshake(service.tlsContext, client())
    assert hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest() == fingerprint(generated)


# -- ALPN (RFC 7301) ----------------------------------------------------------------


def test_selectALPNPrefersOurProtocol():
    """The selection callback answers the first of our protocols the client offers, ignoring the rest."""
    select = selectALPN((b"xmpp-client",))
    assert select(None, [b"xmpp-client"]) == b"xmpp-client"
    assert select(None, [b"junk", b"h2", b"xmpp-client"]) == b"xmpp-client"
    assert selectALPN((b"b", b"a"))(None, [b"a", b"b"]) == b"b"


@pytest.mark.parametrize("protocols", [(), ALPN_C2S, ALPN_HTTP])
def test_selectALPNWithoutOverlapDeclines(protocols):
    """With no protocol in common the callback declines ALPN (no extension), neither b'' nor an alert."""
    assert selectALPN(protocols)(None, [b"junk", b"xmpp-server"]) is SSL.NO_OVERLAPPING_PROTOCOLS


@pytest.fixture
def pairPaths(tmp_path):
    return writePair(tmp_path, *makeCertificate(["localhost"]))


@pytest.mark.parametrize("protocols, offer, selected", [
    (ALPN_C2S, ["xmpp-client"], "xmpp-client"),
    (ALPN_C2S, ["junk", "xmpp-client", "h2"], "xmpp-client"),
    (ALPN_C2S, None, None),
    (ALPN_C2S, ["junk"], None),
    (ALPN_C2S, ["http/1.1"], None),
    (ALPN_HTTP, ["h2", "http/1.1"], "http/1.1"),
    (ALPN_HTTP, ["http/1.1"], "http/1.1"),
    (ALPN_HTTP, ["xmpp-client"], None),
    (ALPN_HTTP, None, None),
])
def test_listenerALPNHandshake(pairPaths, protocols, offer, selected):
    """Each listener's context selects its own protocol when offered and completes the handshake without it otherwise."""
    listener = ReloadableTLS(lambda: contextFactory(*pairPaths)).forProtocols(protocols)
    tls = handshake(listener, client(alpn=offer))
    assert tls.selected_alpn_protocol() == selected


@pytest.mark.parametrize("offer", [["xmpp-client"], ["http/1.1"], ["junk"]])
def test_noProtocolsStillCompletes(pairPaths, offer):
    """A context naming no protocols (the ReloadableTLS default) completes any ALPN offer without selecting one."""
    tls = handshake(ReloadableTLS(lambda: contextFactory(*pairPaths)), client(alpn=offer))
    assert tls.selected_alpn_protocol() is None


def test_reloadKeepsALPN(tmp_path):
    """After reload() every listener's handshakes get the new certificate and still their own ALPN protocol."""
    certPath, keyPath = writePair(tmp_path, *makeCertificate(["localhost"]))
    creator = ReloadableTLS(lambda: contextFactory(certPath, keyPath))
    c2s, http = creator.forProtocols(ALPN_C2S), creator.forProtocols(ALPN_HTTP)
    second = makeCertificate(["localhost"])
    writePair(tmp_path, *second)
    assert creator.reload() is True
    for listener, offer in ((c2s, "xmpp-client"), (http, "http/1.1")):
        tls = handshake(listener, client(alpn=["junk", "xmpp-client", "http/1.1"]))
        assert tls.selected_alpn_protocol() == offer
        assert hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest() == fingerprint(second[1])


def test_failedReloadKeepsALPN(tmp_path):
    """Unusable files on reload leave every listener with its certificate and ALPN protocol."""
    certPath, keyPath = writePair(tmp_path, *makeCertificate(["localhost"]))
    creator = ReloadableTLS(lambda: contextFactory(certPath, keyPath))
    c2s = creator.forProtocols(ALPN_C2S)
    os.remove(keyPath)
    with LoggedFailures():
        assert creator.reload() is False
    assert handshake(c2s, client(alpn=["xmpp-client"])).selected_alpn_protocol() == "xmpp-client"


def test_serviceNamesProtocolsPerListener(tmp_path, monkeypatch):
    """c2s STARTTLS and direct TLS name xmpp-client; wss:// and https:// BOSH name http/1.1, adopted sockets too."""
    from twisted.internet.testing import MemoryReactorClock

    import xmppchat.cluster.workers
    from xmppchat.service import XMPPChatService

    def protocolsOf(creator):
        return handshake(creator, client(alpn=["xmpp-client", "http/1.1"])).selected_alpn_protocol()

    listeners = {"websocket": {"enabled": True, "tls": True, "port": 0},
                 "bosh": {"enabled": True, "tls": True, "port": 0}}
    config = makeConfig(server={"data_dir": str(tmp_path / "data")}, c2s={"port": 0, "tls_port": 0}, **listeners)
    reactor = MemoryReactorClock()
    service = XMPPChatService(config, reactor=reactor)
    service.listen()
    assert protocolsOf(service.factories["c2s"].tlsContext) == "xmpp-client"  # STARTTLS
    assert protocolsOf(service.factories["c2s-tls"].tlsContext) == "xmpp-client"
    # listenSSL in order: c2s-tls, websocket, bosh (REST has no TLS setting)
    assert reactor.sslServers[0][1] is service.factories["c2s-tls"]
    assert [protocolsOf(creator) for _, _, creator, _, _ in reactor.sslServers] == [
        "xmpp-client", "http/1.1", "http/1.1"]

    adopted = {}
    monkeypatch.setattr(xmppchat.cluster.workers, "adoptPort",
                        lambda reactor, fd, factory, tls=None: adopted.setdefault(fd, tls))
    worker = XMPPChatService(config, reactor=MemoryReactorClock(), inheritedPorts={"c2s-tls": 7, "websocket": 8})
    worker.listen()
    assert protocolsOf(adopted[7]) == "xmpp-client" and protocolsOf(adopted[8]) == "http/1.1"
