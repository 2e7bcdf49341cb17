"""
The container health probe (issue 18, packaging): GET C{/health} on the
C{[ops]} listener of the running server, with the address and port read
from the same config the server uses, so the Dockerfile's C{HEALTHCHECK}
follows a changed C{[ops] port}.

    python -m xmppchat.ops.probe [--config FILE]

Exit status 0 when the server answers 200, 1 otherwise (one line on
standard error says why), as C{HEALTHCHECK} and other probes expect.
"""

from __future__ import annotations

import argparse
import hashlib
import ssl
import sys
import urllib.error
import urllib.request

from xmppchat.config import ConfigError, loadConfig

TIMEOUT = 4.0
HEALTH_PATH = "/health"
PEM_END = "-----END CERTIFICATE-----"


def localHost(interface: str) -> str:
    """
    The address this machine reaches a listener on C{interface} at:
    loopback when it listens on every address (also the admin command's,
    L{xmppchat.admin.ApiClient}).
    """
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(interface, interface)


def httpURL(host: str, port: int, path: str, tls: bool = False) -> str:
    """
    C{http://host:port/path} (C{https} with C{tls}), an IPv6 address in
    brackets.
    """
    return f"http{'s' if tls else ''}://{f'[{host}]' if ':' in host else host}:{port}{path}"


def healthURL(config) -> str:
    """
    Where the server of C{config} serves C{/health}: its C{[ops]} address
    (loopback when it listens on every address).
    """
    return httpURL(localHost(config.ops.interface), config.ops.port, HEALTH_PATH, config.ops.tls)


class _PinnedSocket(ssl.SSLSocket):
    """A client TLS socket that goes on only with a certificate its context pins."""

    def do_handshake(self, block=False):
        super().do_handshake(block)
        digest = hashlib.sha256(self.getpeercert(binary_form=True) or b"").hexdigest()
        if digest not in self.context.pins:
            raise ssl.SSLCertVerificationError(
                f"CERTIFICATE_VERIFY_FAILED: the server's certificate (sha256 {digest}) is neither"
                " the configured one nor the one the server published as served")


def clientTLS(config) -> ssl.SSLContext | None:
    """
    With C{[ops] tls} (issue 19), the TLS context of a client on this
    machine (this probe, L{xmppchat.admin.ApiClient}): it trusts exactly
    the server's certificate, by its SHA-256: the first one of its file
    (L{xmppchat.certs.certificatePaths}) or the one the running server
    published as served (L{xmppchat.tlsreload.servedFingerprint}: after a
    renewal replaced the file, until C{reload tls}; review 19 B3), and
    nothing else.  The listener is reached at loopback rather than at the
    certificate's names, so this pin stands in for the name check.
    C{None} for plain HTTP; C{OSError} when the certificate cannot be read.
    """
    if not config.ops.tls:
        return None
    from xmppchat.certs import certificatePaths
    from xmppchat.tlsreload import servedFingerprint

    path = certificatePaths(config)[0]
    with open(path) as f:
        pem = f.read()
    start, end = pem.find(ssl.PEM_HEADER), pem.find(PEM_END)
    if not 0 <= start < end:
        raise OSError(f"no PEM certificate in {path}")
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start:end + len(PEM_END)])
    except ValueError as e:
        raise OSError(f"no PEM certificate in {path}: {e}") from None
    pins = {hashlib.sha256(der).hexdigest(), servedFingerprint(config.server.data_dir)}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # checked against the pins after the handshake
    context.sslsocket_class = _PinnedSocket
    context.pins = pins - {None}
    return context


def probe(config, timeout: float = TIMEOUT) -> str | None:
    """
    C{None} when C{/health} answers 200, else why not.
    """
    if not config.ops.enabled:
        return "[ops] is not enabled: no /health to probe"
    url = healthURL(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=clientTLS(config)) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmppchat.ops.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", help="the server's configuration file")
    args = parser.parse_args(argv)
    try:
        config = loadConfig(args.config)
    except ConfigError as e:
        sys.stderr.write(f"xmppchat probe: invalid configuration: {e.problems[0]}\n")
        return 1
    problem = probe(config)
    if problem is not None:
        sys.stderr.write(f"xmppchat probe: unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
