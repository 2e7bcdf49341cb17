"""
The REST side-service's resource tree and HTTP site: a ConnectyCube-
compatible API (reference/connectycube-sdk.md §4) on plain C{twisted.web}
resources, one module per collection.  L{makeSite} builds it on the same
storage as the XMPP host, so one process serves both; the listener is
added by L{xmppchat.service.XMPPChatService} when C{[rest] enabled}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from xmppchat.api.json import NotFoundResource, RestRequest
from xmppchat.clientaddress import TrustedProxies
from xmppchat.config import DialogsConfig, PrivacyConfig, QuotasConfig, UploadConfig

log = Logger()

PURGE_SECONDS = 3600


@dataclass
class ApiContext:
    """
    What every collection needs.

    @ivar config: the L{xmppchat.config.RestConfig}.
    @ivar server: the L{xmppchat.config.ServerConfig} (domain, MUC domain,
        data directory).
    @ivar hooks: the host's L{xmppchat.hooks.HookBus} (REST events such as
        C{rest-message-created} for the chat layer), or C{None}.
    @ivar runCPU: runs a CPU-bound function (password hashing) and returns
        a Deferred: on the reactor's thread pool in production, inline in
        tests.
    """

    config: object
    server: object
    storage: object
    clock: object
    hooks: object = None
    runCPU: object = None
    sessions: object = None
    apps: dict = field(default_factory=dict)
    limits: object = None
    # the host's SessionRegistry, for /users/online.json (None: nobody online)
    online: object = None
    # request rate limits (xmppchat.api.ratelimit.RestRateLimits), or None
    rateLimits: object = None
    # per-user quotas: the xmppchat.config.QuotasConfig
    quotas: object = field(default_factory=QuotasConfig)
    # whose X-Forwarded-For names the client (xmppchat.clientaddress)
    proxies: object = field(default_factory=TrustedProxies)
    # the xmppchat.config.DialogsConfig (extension fields, issue 17 item 5)
    dialogs: object = field(default_factory=DialogsConfig)
    # the [privacy] section: the last-seen default users see as theirs
    privacy: object = field(default_factory=PrivacyConfig)
    # the [upload] section (XEP-0363 PUT and GET, xmppchat/api/upload.py)
    upload: object = field(default_factory=UploadConfig)

    def clientAddress(self, request) -> str:
        """
        The client's IP address, behind a trusted proxy too (issue 15 #6).
        """
        return self.proxies.ofRequest(request)

    def fire(self, name: str, event) -> None:
        """
        Fire a host hook if there is a host (C{rest-message-created}...).
        """
        if self.hooks is not None:
            self.hooks.fire(name, event)


def inline(f, *args, **kwargs):
    return defer.maybeDeferred(f, *args, **kwargs)


def inThreadPool(reactor):
    def run(f, *args, **kwargs):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args, **kwargs)

    return run


class Dispatch(Resource):
    """
    A path level that maps C{name} and C{name.json} to its children and
    anything else to a JSON 404.
    """

    def __init__(self, ctx):
        Resource.__init__(self)
        self.ctx = ctx
        self.notFound = NotFoundResource(ctx)

    def getChild(self, name, request):
        if name.endswith(b".json"):
            child = self.children.get(name[:-5])
            if child is not None:
                return child
        return self.notFound

    def render(self, request):
        return self.notFound.render(request)


class RestSite(server.Site):
    """
    The HTTP site: L{RestRequest}s (bounded bodies), no access log of
    tokens (query strings may hold C{?token=}).  While it listens, expired
    tokens are purged every L{PURGE_SECONDS}, and incomplete uploads are
    swept every C{[quotas] sweep_seconds} (issue 15 finding 15), expired
    XEP-0363 slots every C{[upload] slot_seconds}.
    """

    requestFactory = RestRequest
    noisy = False  # no "Starting factory <...>" lines (issue 18 item 2)
    ctx = None
    _purging = None
    _sweeping = None
    _slotSweeping = None

    def __init__(self, resource, maxRequestBytes: int, **kwargs):
        server.Site.__init__(self, resource, **kwargs)
        self.maxRequestBytes = maxRequestBytes

    # the host's xmppchat.ops.metrics.Metrics when served by xmppchat.service
    metrics = None

    def log(self, request):
        if self.metrics is not None:
            self.metrics.restRequest(request)

    def startFactory(self):
        server.Site.startFactory(self)
        if self.ctx is not None and self._purging is None:
            self._purging = task.LoopingCall(self.purge)
            self._purging.clock = self.ctx.clock
            self._purging.start(PURGE_SECONDS, now=False)
            self._sweeping = task.LoopingCall(self.sweep)
            self._sweeping.clock = self.ctx.clock
            self._sweeping.start(self.ctx.quotas.sweep_seconds, now=False)
            self._slotSweeping = task.LoopingCall(self.sweepSlots)
            self._slotSweeping.clock = self.ctx.clock
            self._slotSweeping.start(self.ctx.upload.slot_seconds, now=False)

    def stopFactory(self):
        for loop in (self._purging, self._sweeping, self._slotSweeping):
            if loop is not None and loop.running:
                loop.stop()
        self._purging = self._sweeping = self._slotSweeping = None
        server.Site.stopFactory(self)

    def purge(self):
        """
        Drop expired application sessions and stored tokens.
        """
        self.ctx.sessions.purgeAppSessions()
        d = self.ctx.storage.tokens.purgeExpired()
        d.addErrback(lambda f: log.failure("Purging expired tokens failed", f))
        return d

    def sweepSlots(self):
        """
        Delete the blobs of expired XEP-0363 slots (L{sweepExpiredSlots}).
        """
        from xmppchat.api.upload import sweepExpiredSlots

        d = defer.ensureDeferred(sweepExpiredSlots(self.ctx))
        d.addErrback(lambda f: log.failure("Sweeping expired upload slots failed", f))
        return d

    def sweep(self):
        """
        Delete stale incomplete uploads (L{sweepIncompleteUploads}); a
        failure is logged and the next round tries again.
        """
        from xmppchat.api.storage import sweepIncompleteUploads

        d = defer.ensureDeferred(sweepIncompleteUploads(self.ctx))
        d.addErrback(lambda f: log.failure("Sweeping incomplete uploads failed", f))
        return d


def buildContext(config, storage, clock, hooks=None, runCPU=None, online=None) -> ApiContext:
    """
    The L{ApiContext} for a full L{xmppchat.config.Config}.
    """
    from xmppchat.api.ratelimit import RestRateLimits
    from xmppchat.api.sessions import SessionManager

    rest = config.rest
    ctx = ApiContext(config=rest, server=config.server, storage=storage, clock=clock,
                     hooks=hooks, runCPU=runCPU or inline,
                     apps={app["application_id"]: app for app in rest.apps}, limits=config.limits,
                     online=online, quotas=config.quotas, dialogs=config.dialogs,
                     privacy=config.privacy, upload=config.upload,
                     proxies=TrustedProxies.fromConfig(config.limits))
    ctx.sessions = SessionManager(ctx)
    ctx.rateLimits = RestRateLimits(rest, clock, ctx.clientAddress)
    return ctx


def makeRoot(ctx) -> Resource:
    """
    The resource tree: C{/session.json}, C{/login.json}, C{/users...},
    C{/chat/Dialog...}, C{/chat/Message...}, C{/chat/search.json},
    C{/blobs...}, C{/data/<class>...}; C{/upload/...} (XEP-0363).
    """
    from xmppchat.api import collections
    from xmppchat.api.upload import UploadResource

    root = Dispatch(ctx)
    chat = Dispatch(ctx)
    root.putChild(b"chat", chat)
    for path, cls in collections(ctx):
        parent = chat if path.startswith("chat/") else root
        parent.putChild(path.rpartition("/")[2].encode("ascii"), cls(ctx))
    root.putChild(b"upload", UploadResource(ctx))
    return root


def requestLimit(config) -> int:
    """
    The most bytes one request may buffer: the largest JSON body, blob
    upload (with its multipart envelope) or XEP-0363 upload.
    """
    rest = config.rest
    return max(rest.max_body_bytes, rest.blob_max_bytes + 65536, config.upload.max_file_bytes)


def makeSite(config, storage, clock, hooks=None, runCPU=None, online=None) -> RestSite:
    """
    The REST site for C{config} on C{storage}; C{hooks} and C{online} are
    the host's L{xmppchat.hooks.HookBus} and
    L{xmppchat.sessions.SessionRegistry} when it runs in the XMPP process.
    """
    ctx = buildContext(config, storage, clock, hooks, runCPU, online)
    site = RestSite(makeRoot(ctx), maxRequestBytes=requestLimit(config))
    site.ctx = ctx
    return site


__all__ = ["ApiContext", "Dispatch", "RestSite", "buildContext", "makeRoot", "makeSite",
           "requestLimit"]
