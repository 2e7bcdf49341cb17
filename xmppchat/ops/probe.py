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


def clientTLS(config) -> ssl.SSLContext | None:
    """
    With C{[ops] tls} (issue 19), the TLS context of a client on this
    machine (this probe, L{xmppchat.admin.ApiClient}): it trusts exactly
    the server's certificate, the first one of its file
    (L{xmppchat.certs.certificatePaths}), and nothing else.  The listener
    is reached at loopback rather than at the certificate's names, so this
    pin stands in for the name check.  C{None} for plain HTTP; C{OSError}
    when the certificate cannot be read.
    """
    if not config.ops.tls:
        return None
    from xmppchat.certs import certificatePaths

    path = certificatePaths(config)[0]
    with open(path) as f:
        pem = f.read()
    end = pem.find(PEM_END)
    if end < 0:
        raise OSError(f"no PEM certificate in {path}")
    context = ssl.create_default_context(cadata=pem[:end + len(PEM_END)])
    context.check_hostname = False
    # the pinned certificate is a trust anchor of its own, not a CA's
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
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
