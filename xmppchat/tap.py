"""
The C{twistd xmppchat} command: options and service construction.

    twistd -n xmppchat                       the dev config (conf/xmppchat.dev.toml)
    twistd -n xmppchat --config FILE         another config
    twistd xmppchat --check-config FILE      validate a config, print every problem, exit
    twistd -n xmppchat --workers N           N cluster nodes on shared sockets (needs [cluster])
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
        ["workers", "w", 1, "Start N worker processes sharing the listening sockets (needs [cluster]).", int],
        ["worker-fds", None, None, "(internal) listening sockets inherited from the supervisor."],
        ["worker-index", None, None, "(internal) this worker's number.", int],
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
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")
        if self["workers"] > 1 and not self.config.cluster.redis_uri:
            sys.stderr.write("xmppchat: --workers needs cluster mode: set [cluster] redis_uri\n")
            sys.exit(1)
        if self["worker-index"] is not None and self.config.cluster.node_id:
            self.config.cluster.node_id += f"-w{self['worker-index']}"


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
    """
    The service for C{twistd xmppchat} or C{python -m twisted xmppchat}:
    start-up failures and readiness go to the runner through a
    L{xmppchat.startup.Launch} on its options (issue 18 item 1).
    """
    from xmppchat.service import XMPPChatService
    from xmppchat.startup import Launch

    launch = Launch(options.parent)
    if options["workers"] > 1:
        from xmppchat.cluster.workers import WorkerSupervisor

        return WorkerSupervisor(options.config, options["workers"], launch=launch)
    inherited = None
    if options["worker-fds"]:
        from xmppchat.cluster.workers import parseWorkerFDs

        inherited = parseWorkerFDs(options["worker-fds"])
    try:
        return XMPPChatService(options.config, inheritedPorts=inherited, launch=launch)
    except CertificateError as e:
        launch.fail(str(e))
    except OSError as e:  # the data directory (storage, generated certificate)
        launch.fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))
