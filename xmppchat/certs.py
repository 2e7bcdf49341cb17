"""
TLS certificates and contexts (RFC 6120 §5, §13.7.1).

The dev configuration has no certificate: on first start a self-signed one
for the domain, its MUC domain, C{localhost} and 127.0.0.1 is written to
C{<data_dir>/tls/}.  Contexts are pyOpenSSL C{CertificateOptions} with TLS
1.2 as the minimum and an explicit cipher list (RFC 9325 §4.2): for TLS 1.2
only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, so no RSA key
exchange, no CBC and no SHA-1 MACs; TLS 1.3 suites are all AEAD.

Each context names the ALPN protocols (RFC 7301) of the listener it serves:
L{ALPN_C2S} for STARTTLS and direct TLS (XEP-0368), L{ALPN_HTTP} for
C{wss://} and C{https://} BOSH (L{selectALPN}).
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl


# RFC 9325 §4.2 recommended TLS 1.2 suites; OpenSSL keeps its (AEAD-only)
# TLS 1.3 suites whatever this says.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
ACCEPTABLE_CIPHERS = ssl.AcceptableCiphers.fromOpenSSLCipherString(CIPHERS)

# ALPN protocol IDs (RFC 7301 §6, IANA registry) per kind of listener, in
# order of preference: XEP-0368 §3 names "xmpp-client" for client streams
# (clients send it on STARTTLS as well); WebSocket opens with an HTTP/1.1
# upgrade (RFC 6455 §4.1, RFC 7395 §3.3) and BOSH is HTTP/1.1 (XEP-0206).
ALPN_C2S = (b"xmpp-client",)
ALPN_HTTP = (b"http/1.1",)


class CertificateError(Exception):
    """
    A certificate or key cannot be used; the message says which and why.
    """


def makeCertificate(names: list[str], issuerKey=None, issuerCert=None, isCA: bool = False,
                    days: int = 825, validFrom: datetime.datetime | None = None):
    """
    A new EC P-256 key and a certificate for C{names} (DNS names or IP
    addresses), self-signed unless an issuer key and certificate are given,
    valid C{days} from C{validFrom} (default: a few minutes ago).
    Returns C{(keyPEM, certPEM)} as bytes.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = validFrom or datetime.datetime.now(datetime.timezone.utc)
    sans = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuerCert.subject if issuerCert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=isCA, path_length=None), critical=True)
    )
    if not isCA:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuerKey if issuerKey is not None else key, hashes.SHA256())
    keyPEM = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return keyPEM, cert.public_bytes(serialization.Encoding.PEM)


def certificatePaths(config) -> tuple[str, str, str]:
    """
    The certificate, key and chain paths the server uses: the configured
    ones, or the self-signed pair under C{<data_dir>/tls/} (made by
    L{ensureCertificate}).
    """
    tls = config.tls
    if tls.certificate:
        return tls.certificate, tls.private_key, tls.chain
    directory = os.path.join(config.server.data_dir, "tls")
    return os.path.join(directory, "selfsigned.crt"), os.path.join(directory, "selfsigned.key"), ""


def ensureCertificate(config) -> tuple[str, str, str]:
    """
    The certificate, key and chain paths to use: the configured ones, or a
    self-signed pair generated once under C{<data_dir>/tls/}.
    """
    certPath, keyPath, chain = certificatePaths(config)
    if config.tls.certificate:
        return certPath, keyPath, chain
    directory = os.path.dirname(certPath)
    if not (os.path.exists(certPath) and os.path.exists(keyPath)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        names = [config.server.domain, config.server.muc_domain, "localhost", "127.0.0.1", "::1"]
        keyPEM, certPEM = makeCertificate(list(dict.fromkeys(names)))
        fd = os.open(keyPath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(keyPEM)
        with open(certPath, "wb") as f:
            f.write(certPEM)
    return certPath, keyPath, ""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CertificateError(f"cannot read the TLS {what} {path}: {e.strerror}") from None


def selectALPN(protocols):
    """
    An ALPN selection callback (RFC 7301 §3.2) for a listener that speaks
    C{protocols}: the first of them the client offers, whatever else it
    offers.

    When the client offers none of them the handshake goes on without ALPN
    (no extension in the ServerHello): a deliberate departure from the
    fatal C{no_application_protocol} alert that §3.2 asks for, in favour of
    interoperability.  Our listeners speak one protocol each, fixed by the
    port, so there is nothing to negotiate: a client offering only C{h2} or
    C{xmpp-server} then meets an XMPP stream error or an HTTP status it can
    report, exactly as against a server without ALPN support (which every
    client has to handle), while TLS proxies and clients that offer a
    private or stale token still connect.

    This replaces Twisted's callback, which answers C{b""} when the
    listener's factory names no protocols (every c2s listener, STARTTLS,
    C{wss://}): OpenSSL turns that into an C{internal_error} alert.
    """

    def select(connection, offered):
        for protocol in protocols:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def serverOptions(privateKey, certificate, chain=(), protocols=()) -> ssl.CertificateOptions:
    """
    Server TLS options from loaded pyOpenSSL objects: TLS 1.2 or later,
    strong ciphers only (L{CIPHERS}), the ALPN C{protocols} (L{selectALPN}).
    Raises when the key does not fit the certificate.
    """
    options = ssl.CertificateOptions(
        privateKey=privateKey,
        certificate=certificate,
        extraCertChain=list(chain),
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=ACCEPTABLE_CIPHERS,
    )
    # After Twisted's getContext, which installs its own callback.
    options.getContext().set_alpn_select_callback(selectALPN(tuple(protocols)))
    return options


def contextFactory(certPath: str, keyPath: str, chainPath: str = "",
                   protocols=()) -> ssl.CertificateOptions:
    """
    Server TLS options: TLS 1.2 or later, strong ciphers only (L{CIPHERS}),
    the certificate chain, the key, the ALPN C{protocols} (L{selectALPN}).
    """
    certPEM = _read(certPath, "certificate")
    keyPEM = _read(keyPath, "private key")
    try:
        certificate = ssl.Certificate.loadPEM(certPEM)
        privateKey = ssl.KeyPair.load(keyPEM, crypto.FILETYPE_PEM)
    except Exception as e:
        raise CertificateError(f"cannot load the TLS certificate {certPath} / key {keyPath}: {e}") from None
    chain = []
    if chainPath:
        data = _read(chainPath, "chain")
        try:
            chain = [c.original for c in _splitPEM(data)]
        except Exception as e:
            raise CertificateError(f"cannot load the TLS chain {chainPath}: {e}") from None
    try:
        return serverOptions(privateKey.original, certificate.original, chain, protocols)
    except Exception as e:
        raise CertificateError(f"the TLS key {keyPath} does not fit {certPath}: {e}") from None


def _splitPEM(data: bytes) -> list:
    marker = b"-----END CERTIFICATE-----"
    parts = [p + marker for p in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in p]
    return [ssl.Certificate.loadPEM(p.strip()) for p in parts]
