"""
A virtual host: one domain with its hooks, sessions, router, storage and
loaded modules.  Transports hand bound streams to L{Host.bindSession}.
"""

from __future__ import annotations

import secrets

from twisted.logger import Logger

from xmppchat import observe
from xmppchat.auth.throttle import LoginThrottle
from xmppchat.clientaddress import TrustedProxies
from xmppchat.hooks import HookBus
from xmppchat.modules import moduleClass
from xmppchat.ratelimit import ConnectionLimiter
from xmppchat.router import StanzaRouter
from xmppchat.sessions import Session, SessionRegistry


class SessionEvent:
    """
    The event of C{session-bound} / C{session-ended}.
    """

    __slots__ = ("host", "session", "origin", "stanza")

    def __init__(self, host, session):
        self.host = host
        self.session = session
        self.origin = session
        self.stanza = None


# how a stream error reads as the reason of a logout
CONDITION_REASONS = {"system-shutdown": "shutdown", "connection-timeout": "timeout",
                     "conflict": "replaced", None: "connection lost"}


def logoutReason(session) -> str:
    """
    Why C{session} ended, for the log: what its ender said in
    C{session.state["logout"]} (e.g. C{kicked}), else what its stream
    tells (the client closed it, or a stream error, RFC 6120 §4.9).
    """
    reason = session.state.get("logout")
    if reason:
        return reason
    if session.state.get("replaced"):
        return "replaced"
    stream = session.stream
    if getattr(stream, "clientClosed", False):
        return "client closed"
    condition = getattr(stream, "closeCondition", None)
    return CONDITION_REASONS.get(condition) or f"stream error {condition}"


def emitLogout(session) -> None:
    """
    The C{logout} event (L{xmppchat.observe}) of a session that ended
    here; not for one handed over to another cluster node, which goes on.
    """
    if not session.state.get("handover"):
        observe.emit("logout", jid=session.full, transport=getattr(session.stream, "kind", "c2s"),
                     reason=logoutReason(session))


class Host:
    """
    One XMPP domain served by this process.

    @ivar components: domain -> component (an object with
        C{receive(origin, stanza, toJID)}), e.g. the MUC service.
    @ivar deliveryFilters: see L{Session.send}.
    @ivar restURL: C{http://host:port} of the REST listener once it
        listens (XEP-0363 slot URLs when no public URL is configured).
    @ivar secret: random bytes for this process (fake SCRAM salts and the
        like); not persisted.
    """

    log = Logger()

    def __init__(self, config, storage, clock, sessions=None):
        self.config = config
        self.domain = config.server.domain
        self.storage = storage
        self.clock = clock
        self.hooks = HookBus()
        self.sessions = sessions if sessions is not None else SessionRegistry()
        self.cluster = None
        self.router = StanzaRouter(self)
        self.components: dict = {}
        self.restURL: str | None = None
        # callables (session, stanza) -> bool run on every stanza sent to a
        # session; False drops it (privacy lists, XEP-0016)
        self.deliveryFilters: list = []
        self.connectionLimiter = ConnectionLimiter.fromConfig(config.limits, clock)
        # failed logins of SASL and, in this process, of REST (issue 15 #5)
        self.loginThrottle = LoginThrottle.fromConfig(config.limits, clock)
        # whose X-Forwarded-For names the client (WebSocket, BOSH, REST)
        self.trustedProxies = TrustedProxies.fromConfig(config.limits)
        self.modules: dict = {}
        self.secret = secrets.token_bytes(32)
        # Extra SASL PLAIN checks: async callables (account, password) -> a
        # false value, or the session token's TokenRecord it accepted (e.g.
        # the REST service's JWT check).
        self.passwordCheckers: list = []
        self.startTime = clock.seconds()

    def loadModules(self, names=None) -> None:
        for name in names if names is not None else self.config.modules.enabled:
            if name in self.modules:
                continue
            module = moduleClass(name)(self)
            self.modules[name] = module
            module.load()

    def unloadModules(self) -> None:
        for module in reversed(list(self.modules.values())):
            module.unload()
        self.modules.clear()

    def features(self) -> list[str]:
        """
        The disco#info features of every loaded module (XEP-0030 §3.1).
        """
        seen = []
        for module in self.modules.values():
            for feature in module.features:
                if feature not in seen:
                    seen.append(feature)
        return seen

    def bindSession(self, stream, jid, account) -> Session:
        """
        Register a newly bound resource (RFC 6120 §7).  A session already
        bound to the same full JID is replaced: it gets a C{conflict} stream
        error (RFC 6120 §7.7.2.2).
        """
        session = Session(self, stream, jid, account)
        old = self.sessions.add(session)
        if old is not None:
            old.state["replaced"] = True
            emitLogout(old)
            self.hooks.fire("session-ended", SessionEvent(self, old))
            old.close("conflict", "Replaced by a new connection for the same resource")
            old.closed = True
        self.hooks.fire("session-bound", SessionEvent(self, session))
        return session

    def endSession(self, session: Session) -> None:
        """
        The stream of C{session} is gone: unregister it and let modules
        clean up (unavailable presence, offline queues...).
        """
        if session.closed:
            return
        session.closed = True
        if self.sessions.remove(session):
            emitLogout(session)
            self.hooks.fire("session-ended", SessionEvent(self, session))

    def uptime(self) -> float:
        return self.clock.seconds() - self.startTime
