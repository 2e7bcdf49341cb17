"""
The running server as a Twisted service: storage, the host and its
listeners.  C{twistd xmppchat} builds one through L{xmppchat.tap}; tests
build one directly with ephemeral ports (C{port = 0}).
"""

from __future__ import annotations

import gc
import json
import os
import sys

from twisted.application import service
from twisted.internet import defer, error
from twisted.logger import Logger

from xmppchat.c2s.tcp import C2SFactory
from xmppchat.certs import contextFactory, ensureCertificate
from xmppchat.host import Host
from xmppchat.storage import openStorage


class StartupError(Exception):
    """
    The server cannot start; the message says why, for a human.
    """


class XMPPChatService(service.Service):
    """
    One xmppchat process: storage, one host, its listeners.

    @ivar ports: name -> listening port (C{c2s}, C{c2s-tls}).
    """

    log = Logger()

    def __init__(self, config, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        certPath, keyPath, chainPath = ensureCertificate(config)
        self.tlsContext = contextFactory(certPath, keyPath, chainPath)
        self.storage = openStorage(config.storage, reactor)
        self.host = Host(config, self.storage, reactor)
        self.host.loadModules()
        self.ports: dict = {}
        self.factories: dict = {}

    def listen(self) -> None:
        """
        Bind every configured listener; raise L{StartupError} when one
        cannot be bound.
        """
        c2s = self.config.c2s
        logTraffic = c2s.log_traffic
        plain = C2SFactory(self.host, self.tlsContext, directTLS=False, logTraffic=logTraffic)
        direct = C2SFactory(self.host, self.tlsContext, directTLS=True, logTraffic=logTraffic)
        self.factories = {"c2s": plain, "c2s-tls": direct}
        try:
            self.ports["c2s"] = self.reactor.listenTCP(c2s.port, plain, interface=c2s.interface)
            if c2s.direct_tls:
                self.ports["c2s-tls"] = self.reactor.listenSSL(
                    c2s.tls_port, direct, self.tlsContext, interface=c2s.interface)
        except error.CannotListenError as e:
            for port in self.ports.values():
                port.stopListening()
            self.ports.clear()
            raise StartupError(f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}") from None

    def portNumber(self, name: str) -> int:
        return self.ports[name].getHost().port

    def _listenOrExit(self):
        if not self.ports:
            try:
                self.listen()
            except StartupError as e:
                sys.stderr.write(f"xmppchat: {e}\n")
                raise SystemExit(1) from None

    def privilegedStartService(self):
        """
        twistd binds here, before dropping privileges; the C{twist} runner
        never calls this, so L{startService} binds as well when needed.
        """
        service.Service.privilegedStartService(self)
        self._listenOrExit()

    def startService(self):
        self._listenOrExit()
        service.Service.startService(self)
        d = self.storage.start()
        d.addCallback(lambda _: self._started())
        d.addErrback(self._storageFailed)
        return d

    def _started(self):
        """
        Storage is up: announce the ports, in the log and in
        C{<data_dir>/ports.json} (for scripts and tests using port 0).
        """
        # Everything loaded so far lives as long as the process: keep it out
        # of the collector's full passes, which otherwise walk every module,
        # class and function at each collection (tail latency, bench/).
        gc.collect()
        gc.freeze()
        ports = {name: port.getHost().port for name, port in self.ports.items()}
        self.log.info("xmppchat serving {domain} on {ports}", domain=self.host.domain,
                      ports=", ".join(f"{n}={p}" for n, p in ports.items()))
        path = os.path.join(self.config.server.data_dir, "ports.json")
        os.makedirs(self.config.server.data_dir, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(ports, f)
        os.replace(path + ".tmp", path)

    def _storageFailed(self, failure):
        self.log.failure("Storage failed to start", failure)
        sys.stderr.write(f"xmppchat: storage failed to start: {failure.getErrorMessage()}\n")
        if self.reactor.running:
            self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        for port in self.ports.values():
            yield port.stopListening()
        self.ports.clear()
        for factory in self.factories.values():
            for proto in list(factory.connections):
                proto.stream.close("system-shutdown", "The server is shutting down")
        self.host.unloadModules()
        yield self.storage.stop()
        try:
            os.remove(os.path.join(self.config.server.data_dir, "ports.json"))
        except OSError:
            pass
