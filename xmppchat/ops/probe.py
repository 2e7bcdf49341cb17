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
import sys
import urllib.error
import urllib.request

from xmppchat.config import ConfigError, loadConfig

TIMEOUT = 4.0
HEALTH_PATH = "/health"


def localHost(interface: str) -> str:
    """
    The address this machine reaches a listener on C{interface} at:
    loopback when it listens on every address (also the admin command's,
    L{xmppchat.admin.ApiClient}).
    """
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(interface, interface)


def httpURL(host: str, port: int, path: str) -> str:
    """
    C{http://host:port/path}, an IPv6 address in brackets.
    """
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def healthURL(config) -> str:
    """
    Where the server of C{config} serves C{/health}: its C{[ops]} address
    (loopback when it listens on every address).
    """
    return httpURL(localHost(config.ops.interface), config.ops.port, HEALTH_PATH)


def probe(config, timeout: float = TIMEOUT) -> str | None:
    """
    C{None} when C{/health} answers 200, else why not.
    """
    if not config.ops.enabled:
        return "[ops] is not enabled: no /health to probe"
    url = healthURL(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
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
