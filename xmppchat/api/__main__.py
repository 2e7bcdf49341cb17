"""
Run the REST side-service alone, without the XMPP listeners, on the
configured storage (for deployments that scale REST separately)::

    python -m xmppchat.api [--config FILE]

It prints C{xmppchat-rest listening on <interface>:<port>} once bound
(C{port = 0} picks a free one).  Token checks, hooks and online users of a
separate XMPP process are not shared: there, C{rest-*} hooks have no
listener and C{/users/online.json} is empty.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from xmppchat.api.site import inThreadPool, makeSite
    from xmppchat.auth.throttle import UnlockWatcher
    from xmppchat.config import ConfigError, loadConfig
    from xmppchat.storage import openStorage, startStorage

    parser = argparse.ArgumentParser(prog="python -m xmppchat.api",
                                     description="Serve the xmppchat REST API alone.")
    parser.add_argument("--config", metavar="FILE", default=None)
    args = parser.parse_args(argv)
    try:
        config = loadConfig(args.config)
    except ConfigError as e:
        for problem in e.problems:
            sys.stderr.write(f"{problem}\n")
        return 1
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    storage = openStorage(config.storage, reactor)
    site = makeSite(config, storage, reactor, runCPU=inThreadPool(reactor))
    status = []

    def started(_):
        try:
            port = reactor.listenTCP(config.rest.port, site, interface=config.rest.interface)
        except Exception as e:
            sys.stderr.write(f"xmppchat-rest: cannot listen: {e}\n")
            status.append(1)
            reactor.stop()
            return
        UnlockWatcher(storage, [site.ctx.sessions.throttle], reactor).start()
        host = port.getHost()
        sys.stdout.write(f"xmppchat-rest listening on {host.host}:{host.port}\n")
        sys.stdout.flush()

    def failed(failure):
        sys.stderr.write(f"xmppchat-rest: storage failed to start: {failure.getErrorMessage()}\n")
        status.append(1)
        reactor.stop()

    reactor.callWhenRunning(lambda: startStorage(storage, config).addCallbacks(started, failed))
    reactor.addSystemEventTrigger("before", "shutdown", storage.stop)
    reactor.run()
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
