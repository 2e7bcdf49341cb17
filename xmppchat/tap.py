"""
The C{twistd xmppchat} command: options and service construction.

    twistd -n xmppchat                       the dev config (conf/xmppchat.dev.toml)
    twistd -n xmppchat --config FILE         another config
    twistd xmppchat --check-config FILE      validate a config, print every problem, exit
    twistd xmppchat --version                xmppchat's version
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
        ["ready-fd", None, None, "(internal) where a worker reports its start to the supervisor.", int],
    ]

    def opt_version(self):
        """
        Print xmppchat's version (and Twisted's) and exit.
        """
        from twisted import version as twistedVersion

        from xmppchat import __version__

        print(f"xmppchat {__version__} (Twisted {twistedVersion.short()})")
        sys.exit(0)

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
    Validate C{path} and the deployment it describes (certificate, data
    directory, dev settings: L{xmppchat.configcheck}); print every problem
    and warning in one pass (or a confirmation); return the process exit
    code: 1 with problems, 0 with warnings only.
    """
    from xmppchat.configcheck import checkDeployment

    out = out or sys.stdout
    try:
        config, problems = loadConfig(path), []
    except ConfigError as e:
        config, problems = e.config, list(e.problems)
    warnings = []
    if config is not None:
        errors, warnings = checkDeployment(config)
        problems += errors
    for line in problems + warnings:
        out.write(f"{line}\n")
    also = f", {len(warnings)} warning(s)" if warnings else ""
    if problems:
        out.write(f"{len(problems)} problem(s) found{also}\n")
        return 1
    out.write(f"{path}: OK (domain {config.server.domain}, storage {config.storage.backend}){also}\n")
    return 0


def makeService(options):
    """
    The service for C{twistd xmppchat} or C{python -m twisted xmppchat}:
    start-up failures and readiness go to the runner through a
    L{xmppchat.startup.Launch} on its options (issue 18 item 1).
    """
    from xmppchat.ops.logs import applyLogConfig
    from xmppchat.privileges import prepare, runtimeUser
    from xmppchat.service import XMPPChatService
    from xmppchat.startup import Launch, StartupError

    # [log] (issue 18 item 2), before twistd / twist begin logging
    applyLogConfig(options.config, worker=bool(options["worker-fds"]))
    launch = Launch(options.parent, readyFD=options["ready-fd"])
    try:
        user = runtimeUser(launch.runner)
        if user is not None:  # twistd --uid/--gid (issue 18 item 6)
            prepare(options.config, *user)
        if options["workers"] > 1:
            from xmppchat.cluster.workers import WorkerSupervisor

            return WorkerSupervisor(options.config, options["workers"], launch=launch)
        inherited = None
        if options["worker-fds"]:
            from twisted.internet import reactor

            from xmppchat.cluster.workers import parseWorkerFDs, watchSupervisor

            inherited = parseWorkerFDs(options["worker-fds"])
            watchSupervisor(reactor)  # a worker ends with its supervisor (issue 18 #5)
        return XMPPChatService(options.config, inheritedPorts=inherited, launch=launch)
    except (CertificateError, StartupError) as e:
        launch.fail(str(e))
    except OSError as e:  # the data directory (storage, generated certificate)
        launch.fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))
