"""
The C{twistd xmppchat} command: options and service construction.

    twistd -n xmppchat                       the dev config (conf/xmppchat.dev.toml)
    twistd -n xmppchat --config FILE         another config
    twistd xmppchat --check-config FILE      validate a config, print every problem, exit
"""

from __future__ import annotations

import sys

from twisted.python import usage

from xmppchat.certs import CertificateError
from xmppchat.config import ConfigError, loadConfig


class Options(usage.Options):
    synopsis = "[--config FILE] [--check-config FILE]"
    longdesc = "Run the xmppchat XMPP server."
    optParameters = [
        ["config", "c", None, "Configuration file (default: conf/xmppchat.dev.toml, or built-in defaults)."],
        ["check-config", None, None, "Validate this configuration file, print every problem and exit."],
    ]

    def postOptions(self):
        if self["check-config"]:
            sys.exit(checkConfig(self["check-config"]))
        try:
            self.config = loadConfig(self["config"])
        except ConfigError as e:
            sys.stderr.write("xmppchat: invalid configuration:\n")
            for problem in e.problems:
                sys.stderr.write(f"  {problem}\n")
            sys.exit(1)


def checkConfig(path: str, out=None) -> int:
    """
    Validate C{path}; print every problem (or a confirmation); return the
    process exit code.
    """
    out = out or sys.stdout
    try:
        config = loadConfig(path)
    except ConfigError as e:
        for problem in e.problems:
            out.write(f"{problem}\n")
        out.write(f"{len(e.problems)} problem(s) found\n")
        return 1
    out.write(f"{path}: OK (domain {config.server.domain}, storage {config.storage.backend})\n")
    return 0


def makeService(options):
    from xmppchat.service import XMPPChatService

    try:
        return XMPPChatService(options.config)
    except CertificateError as e:
        sys.stderr.write(f"xmppchat: {e}\n")
        sys.exit(1)
