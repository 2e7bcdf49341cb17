"""
Reloading the TLS certificate without a restart (RFC 6120 §13.7.1: servers
renew certificates; sessions must not be dropped for it).

L{ReloadableTLS} holds the certificate every TLS listener and STARTTLS
use, each through L{ReloadableTLS.forProtocols} with its own ALPN protocols
(RFC 7301, L{xmppchat.certs.selectALPN}): each new TLS connection takes the
options current at its handshake, and L{ReloadableTLS.reload} re-reads the
configured certificate, key and chain and swaps them in for every listener
at once, ALPN included.  When the new files cannot be used (missing,
unreadable, a key that does not fit the certificate) the old ones stay and
the reason is logged.  Established connections keep the keys they were
made with.  L{installReloadSignal} ties a reload to SIGHUP (the server's
is L{xmppchat.service.XMPPChatService.reloadAll}: this certificate first,
then the config file).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from xmppchat.certs import CertificateError, serverOptions


# <data_dir>/<this>: the SHA-256 of the certificate the server serves (review 19 B3)
SERVED_FILE = "tls-served.json"


def fingerprint(options) -> str:
    """The SHA-256 (hex) of the certificate of C{options}."""
    return options.certificate.to_cryptography().fingerprint(hashes.SHA256()).hex()


def describe(options) -> str:
    """
    A line naming the certificate of C{options}: subject, expiry, SHA-256.
    """
    certificate = options.certificate.to_cryptography()
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = names[0].value if names else "?"
    notAfter = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"CN={subject}, notAfter={notAfter}, sha256={fingerprint(options)}"


def publishServed(dataDir: str, options) -> None:
    """
    Write C{<data_dir>/}L{SERVED_FILE}: C{{"sha256": ...}} of the
    certificate of C{options}, the one served since the start or the last
    reload.  The clients on this machine (the admin command, the health
    probe: L{xmppchat.ops.probe.clientTLS}) trust it as well as the
    certificate file's, so a renewed file (not yet reloaded) does not
    lock them out of C{reload tls} (review 19 B3).
    """
    os.makedirs(dataDir, exist_ok=True)
    path = os.path.join(dataDir, SERVED_FILE)
    temporary = f"{path}.{os.getpid()}.tmp"  # workers write it too
    with open(temporary, "w") as f:
        json.dump({"sha256": fingerprint(options)}, f)
    os.replace(temporary, path)


def servedFingerprint(dataDir: str) -> str | None:
    """What L{publishServed} wrote, C{None} when nothing (readable) was."""
    try:
        with open(os.path.join(dataDir, SERVED_FILE)) as f:
            digest = json.load(f).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ReloadableTLS:
    """
    Server TLS options that can be replaced while listening.

    @param load: builds the options (a C{CertificateOptions}) from the
        configured files, raising L{CertificateError} when they are unusable;
        called once here (errors propagate: the server cannot start) and
        again on each L{reload}.
    @ivar options: the options new connections get.
    @ivar variants: ALPN protocols -> the same certificate with those
        protocols, one per L{forProtocols}.
    @ivar reloads: successful reloads so far.
    """

    log = Logger()

    def __init__(self, load: Callable[[], object]):
        self.load = load
        self.options = load()
        self.variants: dict = {}
        self.reloads = 0

    def serverConnectionForTLS(self, protocol):
        return self.options.serverConnectionForTLS(protocol)

    def getContext(self):
        return self.options.getContext()

    def forProtocols(self, protocols) -> ListenerTLS:
        """
        The context factory of a listener speaking the ALPN C{protocols}
        (RFC 7301 §3.2), with this certificate through every reload.
        """
        protocols = tuple(protocols)
        if protocols not in self.variants:
            self.variants[protocols] = _variant(self.options, protocols)
        return ListenerTLS(self, protocols)

    def reload(self) -> bool:
        """
        Re-read the certificate files; return whether the new ones are in use.
        """
        try:
            options = self.load()
            variants = {protocols: _variant(options, protocols) for protocols in self.variants}
        except CertificateError as e:
            self.log.error("TLS certificate not reloaded, keeping the current one: {error}", error=str(e))
            return False
        except Exception:
            self.log.failure("TLS certificate not reloaded, keeping the current one")
            return False
        self.options, self.variants = options, variants
        self.reloads += 1
        self.log.info("TLS certificate reloaded: {certificate}", certificate=describe(options))
        return True


def _variant(options, protocols):
    return serverOptions(options.privateKey, options.certificate, options.extraCertChain, protocols)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ListenerTLS:
    """
    One listener's view of a L{ReloadableTLS}: its current certificate, the
    listener's ALPN protocols.
    """

    def __init__(self, reloadable: ReloadableTLS, protocols: tuple):
        self.reloadable = reloadable
        self.protocols = protocols

    def serverConnectionForTLS(self, protocol):
        return self.reloadable.variants[self.protocols].serverConnectionForTLS(protocol)

    def getContext(self):
        return self.reloadable.variants[self.protocols].getContext()


def installReloadSignal(reactor, reload: Callable[[], object]) -> Callable[[], None]:
    """
    Call C{reload} in the reactor thread on each SIGHUP; return a function
    that puts the previous handler back.  Does nothing where there is no
    SIGHUP, or outside the main thread (where handlers cannot be set).
    """
    if not hasattr(signal, "SIGHUP"):
        return lambda: None

    def handler(signum, frame):
        reactor.callFromThread(reload)

    try:
        previous = signal.signal(signal.SIGHUP, handler)
    except ValueError:
        return lambda: None

    def restore():
        if signal.getsignal(signal.SIGHUP) is handler:
            signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)

    return restore
