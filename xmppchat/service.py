"""
The running server as a Twisted service: storage, the host and its
listeners.  C{twistd xmppchat} builds one through L{xmppchat.tap}; tests
build one directly with ephemeral ports (C{port = 0}).
"""

from __future__ import annotations

import gc
import json
import os

from twisted.application import service
from twisted.internet import defer, error
from twisted.logger import Logger

from xmppchat import observe
from xmppchat.auth.throttle import UnlockWatcher
from xmppchat.c2s.bosh import boshResource, boshSite
from xmppchat.c2s.proxyprotocol import ProxyProtocolFactory
from xmppchat.c2s.tcp import C2SFactory
from xmppchat.c2s.websocket import webSocketFactory
from xmppchat.certs import ALPN_C2S, ALPN_HTTP, contextFactory, ensureCertificate
from xmppchat.host import Host
from xmppchat.instancelock import DataDirLocked, lockDataDir, unlock
from xmppchat.runsettings import RunSettings
from xmppchat.startup import StartupError
from xmppchat.storage import openStorage, startStorage
from xmppchat.tlsreload import SERVED_FILE, ReloadableTLS, installReloadSignal, publishServed


def _fail(message: str):
    raise StartupError(message)


def listenerURL(interface: str, port: int, domain: str) -> str:
    """
    The URL base of the REST listener (XEP-0363 slot URLs when neither
    C{[upload]} nor C{[rest] public_url} is set): its interface, or the
    server's domain when it listens on every address.  The REST listener
    speaks plain HTTP; behind a TLS-terminating proxy set a public URL.
    """
    if interface in ("", "0.0.0.0", "::"):
        interface = domain
    elif ":" in interface:
        interface = f"[{interface}]"
    return f"http://{interface}:{port}"


class XMPPChatService(service.Service):
    """
    One xmppchat process: storage, one host, its listeners.

    @ivar ports: name -> listening port (C{c2s}, C{c2s-tls}, C{websocket},
        C{bosh}, C{component}, C{rest}, C{ops}).
    @ivar inheritedPorts: name -> file descriptor of a listening socket
        bound by a parent process (C{--workers}), adopted instead of binding.
    @ivar launch: the L{xmppchat.startup.Launch} that start-up failures and
        readiness are reported to (C{twistd xmppchat}); without one (a
        service built in-process) L{listen} raises L{StartupError} and the
        L{startService} Deferred fails.
    """

    log = Logger()

    def __init__(self, config, reactor=None, inheritedPorts=None, launch=None):
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.launch = launch
        # Re-read on SIGHUP (reloadTLS): new TLS connections get the new
        # certificate, established ones are kept.
        self.tlsContext = ReloadableTLS(lambda: contextFactory(*ensureCertificate(config)))
        self._restoreSignal = None
        self.storage = openStorage(config.storage, reactor)
        # the admin panel's values over the config file's (issue 19), laid at start
        self.settings = RunSettings(config, self.storage)
        self.cluster = None
        if config.cluster.redis_uri:
            from xmppchat.cluster import ClusterSessionRegistry

            self.host = Host(config, self.storage, reactor, sessions=ClusterSessionRegistry())
        else:
            self.host = Host(config, self.storage, reactor)
        self.host.loadModules()
        self.host.metrics.instrumentStorage(self.storage)
        if config.cluster.redis_uri:
            from xmppchat.cluster import ClusterNode

            self.cluster = ClusterNode(self.host, config.cluster, reactor)
        self.ports: dict = {}
        self.factories: dict = {}
        # `admin unlock` requests, from storage (issue 15 #5)
        self.unlockWatcher = UnlockWatcher(self.storage, [self.host.loginThrottle], reactor)
        self.inheritedPorts: dict = dict(inheritedPorts or {})
        self.lock = None  # <data_dir>/xmppchat.lock (xmppchat.instancelock); a worker's is its supervisor's
        self.restAPI = None  # the REST site (xmppchat.api.site.RestSite) when [rest] enabled
        # What POST /admin/api/reload and SIGHUP re-apply from the re-read config
        # file: name -> fn(new Config), False when it failed (xmppchat.ops.adminapi).
        from xmppchat.api.reload import reloadRest
        from xmppchat.ops.adminapi import AdminAgent, reloadLimits
        from xmppchat.ops.logs import applyLogConfig

        self.reloadHooks: dict = {"tls": lambda config: self.reloadTLS(),
                                  "limits": lambda config: reloadLimits(self, config),
                                  "log": applyLogConfig,
                                  "rest": lambda config: reloadRest(self, config)}
        self.adminAgent = AdminAgent(self)

    def listen(self) -> None:
        """
        Bind every configured listener; raise L{StartupError} when one
        cannot be bound or another server holds the data directory.
        """
        if not self.inheritedPorts and self.lock is None:
            try:
                self.lock = lockDataDir(self.config.server.data_dir)
            except DataDirLocked as e:
                raise StartupError(str(e)) from None
        c2s = self.config.c2s
        logTraffic = c2s.log_traffic
        # STARTTLS and direct TLS name "xmpp-client" in ALPN (XEP-0368 §3).
        tls = self.tlsContext.forProtocols(ALPN_C2S)
        plain = C2SFactory(self.host, tls, directTLS=False, logTraffic=logTraffic)
        direct = C2SFactory(self.host, tls, directTLS=True, logTraffic=logTraffic)
        self.factories = {"c2s": plain, "c2s-tls": direct}
        try:
            self._listenC2S("c2s", c2s.port, plain)
            if c2s.direct_tls:
                self._listenC2S("c2s-tls", c2s.tls_port, direct, tls)
            self._listenHTTP()
            components = self.config.components
            if components.enabled:
                # XEP-0114 (xmppchat.component)
                from xmppchat.component import ComponentFactory

                self.factories["component"] = ComponentFactory(self.host)
                self._listenOn("component", components.port, self.factories["component"],
                               components.interface)
            rest = self.config.rest
            if rest.enabled:
                self._listenOn("rest", rest.port, self.restSite(), rest.interface)
                self.host.restURL = listenerURL(rest.interface, self.portNumber("rest"), self.config.server.domain)
            ops = self.config.ops
            if ops.enabled:
                # metrics, health, admin API (xmppchat.ops, issue 18); HTTPS
                # with the c2s certificate, reloaded with it (issue 19)
                from xmppchat.ops import opsSite

                tls = self.tlsContext.forProtocols(ALPN_HTTP) if ops.tls else None
                self._listenOn("ops", ops.port, opsSite(self), ops.interface, tls)
        except error.CannotListenError as e:
            for port in self.ports.values():
                port.stopListening()
            self.ports.clear()
            raise StartupError(f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}") from None

    def _listenC2S(self, name, port, factory, tls=None) -> None:
        """
        A c2s listener; with C{[c2s] proxy_protocol}, trusted proxies'
        connections start with a PROXY header, before TLS on the
        direct-TLS port (L{ProxyProtocolFactory}).
        """
        if self.config.c2s.proxy_protocol:
            factory, tls = ProxyProtocolFactory(self.host, factory, tls), None
        self._listenOn(name, port, factory, self.config.c2s.interface, tls)

    def _listenHTTP(self) -> None:
        """
        The XMPP over WebSocket (RFC 7395) and BOSH (XEP-0124) listeners,
        when enabled.
        """
        ws, bosh = self.config.websocket, self.config.bosh
        listeners = []
        if ws.enabled:
            factory = webSocketFactory(self.host, self.config)
            self.factories["websocket"] = factory
            listeners.append(("websocket", ws, factory))
        if bosh.enabled:
            site = boshSite(self.host, bosh, tls=bosh.tls)
            self.factories["bosh"] = site.bosh
            listeners.append(("bosh", bosh, site))
        # wss:// and https:// name "http/1.1" in ALPN (RFC 7395, XEP-0206).
        tls = self.tlsContext.forProtocols(ALPN_HTTP)
        for name, section, factory in listeners:
            self._listenOn(name, section.port, factory, section.interface, tls if section.tls else None)

    def _listenOn(self, name, port, factory, interface, tls=None) -> None:
        """
        Listen for C{name}: on the socket a cluster supervisor handed down
        (C{--workers}), else on C{interface:port}; with TLS when given the
        listener's context factory C{tls} (L{ReloadableTLS.forProtocols}).
        """
        fd = self.inheritedPorts.get(name)
        if fd is not None:
            from xmppchat.cluster.workers import adoptPort

            self.ports[name] = adoptPort(self.reactor, fd, factory, tls)
        elif tls is not None:
            self.ports[name] = self.reactor.listenSSL(port, factory, tls, interface=interface)
        else:
            self.ports[name] = self.reactor.listenTCP(port, factory, interface=interface)

    def restSite(self):
        """
        The REST side-service's site (L{xmppchat.api.site}) on this
        process's storage and hooks; a JWT given as XMPP password is
        checked through it too.
        """
        from xmppchat.api.sessions import JWTChecker
        from xmppchat.api.site import inThreadPool, makeSite

        site = makeSite(self.config, self.storage, self.reactor, hooks=self.host.hooks,
                        runCPU=inThreadPool(self.reactor), online=self.host.sessions)
        self.host.passwordCheckers.append(JWTChecker(site.ctx))
        site.metrics = self.host.metrics
        self.restAPI = site
        # one failed-login throttle and one trusted-proxy list for SASL and REST
        site.ctx.sessions.throttle = self.host.loginThrottle
        site.ctx.sessions.settings = self.settings
        site.ctx.proxies = self.host.trustedProxies
        if self.config.rest.http_bind:
            # XEP-0206 on the REST port: the long-poll fallback the SDK's
            # clients reach where WebSocket is blocked.
            bosh = boshResource(self.host)
            site.resource.putChild(b"http-bind", bosh)
            self.factories["rest-bosh"] = bosh
        return site

    def portNumber(self, name: str) -> int:
        return self.ports[name].getHost().port

    def _listenOrFail(self):
        if not self.ports:
            try:
                self.listen()
            except StartupError as e:
                if self.launch is None:
                    raise
                self.launch.fail(str(e))

    def privilegedStartService(self):
        """
        twistd binds here, before dropping privileges; the C{twist} runner
        never calls this, so L{startService} binds as well when needed.
        """
        service.Service.privilegedStartService(self)
        self._listenOrFail()

    def reloadTLS(self) -> bool:
        """
        Re-read the certificate, key and chain for new TLS connections; the
        current ones stay when the files are unusable (logged either way).
        """
        reloaded = self.tlsContext.reload()
        if reloaded:
            publishServed(self.config.server.data_dir, self.tlsContext.options)
        return reloaded

    def reloadAll(self):
        """
        SIGHUP, like Prosody's C{prosodyctl reload}: the TLS certificate
        first, at once and whatever the config file says (certificate
        renewal keeps working), then the config file re-read and every
        other part of L{reloadHooks} applied, as C{POST /admin/api/reload}
        does (L{xmppchat.ops.adminapi.AdminAgent.localReload}).  A file
        that no longer validates changes nothing else and is one error line.
        """
        self.reloadTLS()
        others = sorted(set(self.reloadHooks) - {"tls"})
        d = defer.ensureDeferred(self.adminAgent.localReload(others))

        def done(result):
            if "error" in result:
                self.log.error("SIGHUP: {source} not reloaded, keeping the running configuration: {problems}",
                               source=self.config.source, problems=result["error"])
            else:
                self.log.info("SIGHUP: {parts}", parts=", ".join(f"{k} {v}" for k, v in result.items()))
            return result

        d.addCallback(done)
        d.addErrback(lambda f: self.log.failure("SIGHUP: reloading the configuration failed", f))
        return d

    def startService(self):
        """
        Start storage, and join the cluster in cluster mode, before
        announcing the ports (issue 18 item 1): the server is ready, for
        twistd's daemon launcher too (L{xmppchat.startup.Launch.ready}),
        only once both answer.
        """
        if self.launch is not None:
            self.launch.claim()
        self._listenOrFail()
        service.Service.startService(self)
        self.host.metrics.start(self)
        if self.cluster is not None:
            observe.addObserver(self._clusterEvent)
            self.cluster.start()
        self._restoreSignal = installReloadSignal(self.reactor, self.reloadAll)
        d = startStorage(self.storage, self.config, self.settings)
        d.addErrback(lambda f: _fail(f"storage failed to start: {f.getErrorMessage()}"))
        if self.cluster is not None:
            # a node that cannot reach Redis for expiry_seconds counts as dead
            d.addCallback(lambda _: self.cluster.whenOnline(self.config.cluster.expiry_seconds)
                          .addErrback(lambda f: _fail(f.getErrorMessage())))
        d.addCallback(lambda _: self._started())
        d.addErrback(self._startFailed)
        return d

    def _clusterEvent(self, name: str, fields: dict) -> None:
        """
        This node back in its cluster re-reads the admin panel's settings
        at once: cut off, it missed the spread of any change (review 19 A2).
        """
        if (name == "cluster-node" and fields.get("state") == "joined" and self.cluster is not None
                and fields.get("node") == self.cluster.nodeId):
            self.settings.refreshQuietly()

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
        self.unlockWatcher.start()
        self.settings.watch(self.reactor)
        ports = {name: port.getHost().port for name, port in self.ports.items()}
        if not self.inheritedPorts:  # a worker: the supervisor publishes the ports
            path = os.path.join(self.config.server.data_dir, "ports.json")
            os.makedirs(self.config.server.data_dir, exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump(ports, f)
            os.replace(path + ".tmp", path)
        publishServed(self.config.server.data_dir, self.tlsContext.options)
        self.log.info("xmppchat serving {domain} on {ports}", domain=self.host.domain,
                      ports=", ".join(f"{n}={p}" for n, p in ports.items()))
        if self.launch is not None:
            self.launch.ready()

    def _startFailed(self, failure):
        """
        Storage, Redis or publishing the ports failed: the server does not
        serve.
        """
        if self.launch is None:
            return failure
        if not self.running:  # stopped while starting (SIGTERM): nothing to report
            self.log.info("Start-up interrupted: {why}", why=failure.getErrorMessage())
            return None
        if not failure.check(StartupError):
            self.log.failure("Start-up failed", failure)
        self.launch.fail(failure.getErrorMessage())
        return None

    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        self.host.metrics.stop()
        self.unlockWatcher.stop()
        self.settings.unwatch()
        observe.removeObserver(self._clusterEvent)
        if self._restoreSignal is not None:
            self._restoreSignal()
            self._restoreSignal = None
        for port in self.ports.values():
            yield port.stopListening()
        self.ports.clear()
        for factory in self.factories.values():
            for proto in list(factory.connections):
                proto.stream.close("system-shutdown", "The server is shutting down")
        if self.cluster is not None:
            yield self.cluster.stop()
        self.host.unloadModules()
        yield self.storage.stop()
        unlock(self.lock)
        self.lock = None
        if self.inheritedPorts:
            return
        for name in ("ports.json", SERVED_FILE):
            try:
                os.remove(os.path.join(self.config.server.data_dir, name))
            except OSError:
                pass
