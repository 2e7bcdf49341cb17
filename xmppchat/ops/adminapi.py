"""
The admin API (issue 18 item 4): control of the running server, JSON
under C{/admin/api/} on the C{[ops]} listener, for C{python -m
xmppchat.admin} and the web admin panel.

Authentication: C{Authorization: Bearer <key>}, the key being C{[ops]
admin_key} or the first line of C{admin_key_file} (at least
L{MIN_KEY_LENGTH} characters).  Only its SHA-256 is kept and compared in
constant time (C{hmac.compare_digest}).  Without a configured key the API
does not exist (404); no or a malformed C{Authorization} header is 401
with C{WWW-Authenticate: Bearer} (RFC 6750 §3), a wrong key 403.

Resources (request and response bodies are JSON objects; errors are
C{{"error": text}} with the HTTP status):

    GET    sessions[?user=JID]        {"sessions": [session...], "unreachable": [node...]}
    DELETE sessions/<JID>[?reason=]   {"kicked": [full JID...]}       (404: no session)
    GET    stats                      see L{AdminAgent.localStats}, summed over the nodes
    POST   announce                   {"body", "subject"?, "to": "online"|"all"} -> counts
    POST   unlock                     {"target": NAME|IP} -> {"unlocked": key}
    POST   reload                     {"what"?: ["tls", "limits", "log", "rest", "panel"]} -> per node, per part
    POST   users                      {"name", "password"} -> 201 {"jid", "id"}
    DELETE users/<NAME>               {"deleted": jid, "ended": streams here}
    PUT    users/<NAME>/password      {"password"} -> {"changed": jid, "revoked": tokens}

Cluster-wide (L{xmppchat.cluster}): the node that gets the request asks
every other node over the bus (an C{admin-q} control frame answered by
C{admin-r}, at most L{GATHER_SECONDS}) for its sessions, its counts, to
deliver an announcement to its own sessions or to reload; a node that does
not answer is listed in C{unreachable}, and while this node is cut off
from the cluster (Redis) C{unreachable} is C{["(cluster offline)"]}.  A kick is asked of every node
the same way: each ends its own sessions of the JID, one waiting for
XEP-0198 resumption included (the bus's plain C{close} frame would leave
that one resumable).  Deleting a user and changing a password fire
C{credentials-revoked}, which L{xmppchat.auth.revocation.endRevoked}
relays to the nodes holding the user's sessions.

A kick ends the stream with C{<policy-violation/>} (RFC 6120 §4.9.3.15:
"the entity has violated some local service policy"), the reason as its
text: the administrator applied a local policy (ejabberd's kick does the
same).  C{<reset/>} (§4.9.3.16) is for revoked credentials and invites
the client to authenticate again at once; C{<not-authorized/>} is for a
deleted account.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections import Counter
from types import SimpleNamespace
from typing import NamedTuple
from dataclasses import fields

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.words.xish import domish

from xmppchat import observe
from xmppchat.api.json import QUERY_RETRY_AFTER
from xmppchat.ops.adminkey import loadAdminKey
from xmppchat.ops.apierror import ApiError  # noqa: F401 (the feature modules import it from here)
from xmppchat.ops.panel import securityHeaders
from xmppchat.ops.panel.session import SAFE_METHODS_TEXT as SAFE_METHODS, PanelAuth
from xmppchat.ops.metrics import transportOf
from xmppchat.storage.interfaces import Query, QueryTimeout

GATHER_SECONDS = 2.0
CLUSTER_OFFLINE = "(cluster offline)"  # the unreachable of a gather while Redis is out of reach
MAX_BODY_BYTES = 64 * 1024
MAX_REASON = 1024
ANNOUNCE_PAGE = 1000
ANNOUNCEMENTS_KEPT = 64  # announcement ids remembered for idempotent retries
KICK_CONDITION = "policy-violation"
KICK_TEXT = "Disconnected by the server administrator"
KEY_ADMIN = "admin-key"  # the name actions taken with the bearer key are logged under


class Route(NamedTuple):
    method: str
    pattern: str
    parts: tuple
    handler: object

log = Logger()


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


class AdminAgent:
    """
    What the API does on one node (its local sessions, counts, the
    announcement to its sessions, the reload of its configuration), and the
    gathering of the other nodes' answers in cluster mode.

    @ivar bound: full JID -> when its session was bound (C{since}).
    """

    def __init__(self, service):
        self.service = service
        self.host = service.host
        self.clock = service.reactor
        self.bound: dict[str, float] = {}
        # kind -> fn(args) answering a feature module's gather (xmppchat.ops.admin)
        self.queries: dict = {}
        self._waiting: dict[str, tuple] = {}
        self.host.hooks.add("session-bound", self._bound)
        self.host.hooks.add("session-ended", self._ended)
        cluster = self.host.cluster
        if cluster is not None:
            cluster.controlHandlers.append(self.controlReceived)

    def _bound(self, event):
        self.bound[event.session.full] = self.clock.seconds()

    def _ended(self, event):
        self.bound.pop(event.session.full, None)

    @property
    def nodeId(self):
        cluster = self.host.cluster
        return cluster.nodeId if cluster is not None else None

    # -- one node ------------------------------------------------------------

    def localSessions(self, user: str | None = None) -> list:
        """
        This node's sessions (of bare JID C{user} when given).
        """
        sessions = self.host.sessions
        local = sessions.localSessionsOf(user) if user is not None else sessions.all()
        out = []
        for session in local:
            if session.closed:
                continue
            sm = session.sm
            since = self.bound.get(session.full)
            out.append({
                "jid": session.full,
                "transport": transportOf(session.stream),
                "address": getattr(session.stream, "peer", None),
                "since": _iso(since) if since is not None else None,
                "node": self.nodeId,
                "available": session.available,
                "priority": session.priority,
                "sm": {"enabled": sm is not None, "resumable": sm is not None and sm.smid is not None,
                       "hibernating": sm is not None and sm.hibernating},
                "csi": "inactive" if session.inactive else "active",
            })
        return out

    def localStats(self) -> dict:
        sessions = self.localSessions()
        muc = self.host.modules.get("muc")
        return {
            "node": self.nodeId,
            "uptime": round(self.host.uptime(), 1),
            "sessions": len(sessions),
            "byTransport": dict(Counter(s["transport"] for s in sessions)),
            "rooms": len(muc.rooms) if muc is not None else 0,
        }

    def localKick(self, jid: str, reason: str) -> list:
        """
        End this node's sessions of C{jid} (bare: all of the user's) with
        L{KICK_CONDITION}; one waiting for XEP-0198 resumption ends too,
        so it cannot be resumed.  Their full JIDs.
        """
        bare, _, resource = jid.partition("/")
        kicked = []
        for session in list(self.host.sessions.localSessionsOf(bare)):
            if session.closed or (resource and session.resource != resource):
                continue
            log.info("Admin kick of {jid}: {reason}", jid=session.full, reason=reason)
            session.state["logout"] = "kicked"
            session.close(KICK_CONDITION, reason)
            if session.sm is not None and session.sm.hibernating:
                self.host.endSession(session)
            kicked.append(session.full)
        return kicked

    def localAnnounce(self, subject, body) -> int:
        """
        A headline to every session of this node; how many got it.
        """
        count = 0
        for session in list(self.host.sessions.all()):
            if not session.closed:
                session.send(headline(self.host.domain, session.full, subject, body))
                count += 1
        return count

    async def localReload(self, what) -> dict:
        """
        Re-read the configuration file and apply its C{what} parts
        (L{xmppchat.service.XMPPChatService.reloadHooks}), the admin
        panel's settings laid over it (issue 19: a reload never drops them).
        """
        from xmppchat.config import ConfigError, loadConfig

        config = self.service.config
        try:
            fresh = await threads.deferToThread(loadConfig, config.source, config.baseDir)
        except ConfigError as e:
            return {"error": "; ".join(e.problems)}
        settings = self.service.settings
        settings.overlay(fresh)
        done = {}
        for name in what:
            hook = self.service.reloadHooks.get(name)
            if hook is None:
                done[name] = "not available"
                continue
            try:
                done[name] = "reloaded" if hook(fresh) is not False else "failed (see the log)"
            except Exception as e:
                log.failure("Reloading {part} failed", part=name)
                done[name] = f"failed: {e}"
        settings.apply()
        return done

    async def local(self, kind: str, args: dict):
        if kind in self.queries:
            return self.queries[kind](args)
        if kind == "sessions":
            return self.localSessions(args.get("user"))
        if kind == "stats":
            return self.localStats()
        if kind == "kick":
            return self.localKick(args["jid"], args["reason"])
        if kind == "announce":
            return self.localAnnounce(args.get("subject"), args["body"])
        if kind == "reload":
            return await self.localReload(args["what"])
        if kind == "settings":
            # the admin panel changed a setting on another node (issue 19)
            return await self.service.settings.refresh()
        raise ValueError(kind)

    # -- every node ------------------------------------------------------------

    async def gather(self, kind: str, args: dict) -> tuple[list, list]:
        """
        C{kind} on this node and every other node: C{([(node, result)...],
        [unreachable node...])}.
        """
        results = [(self.nodeId, await self.local(kind, args))]
        cluster = self.host.cluster
        if cluster is None:
            return results, []
        if not cluster.online:
            # the other nodes cannot be listed or asked (review 19 A2)
            return results, [CLUSTER_OFFLINE]
        others = sorted(await cluster.directory.otherMembers())
        queryId = secrets.token_hex(8)
        answers: dict = {}
        done = defer.Deferred()
        self._waiting[queryId] = (answers, done, set(others))
        timeout = self.clock.callLater(GATHER_SECONDS, lambda: done.called or done.callback(None))
        try:
            for node in others:
                sent = await (cluster.bus.control(node, {"op": "admin-q", "id": queryId, "k": kind,
                                                         "a": args, "from": self.nodeId})
                              or defer.succeed(None))
                if not sent:
                    self._answered(queryId, node, None)  # nobody listens there
            if others and not done.called:
                await done
        finally:
            if timeout.active():
                timeout.cancel()
            self._waiting.pop(queryId, None)
        unreachable = [n for n in others if answers.get(n) is None]
        results.extend((n, answers[n]) for n in others if answers.get(n) is not None)
        return results, unreachable

    def _answered(self, queryId, node, answer) -> None:
        waiting = self._waiting.get(queryId)
        if waiting is None:
            return
        answers, done, expected = waiting
        answers[node] = answer
        expected.discard(node)
        if not expected and not done.called:
            done.callback(None)

    def controlReceived(self, payload: dict) -> bool:
        """
        A control frame of the bus (L{xmppchat.cluster.node.ClusterNode}):
        a query of another node's API, or the answer to ours.
        """
        op = payload.get("op")
        if op == "admin-r":
            self._answered(payload.get("id"), payload.get("node"), payload.get("r"))
            return True
        if op != "admin-q":
            return False
        d = defer.ensureDeferred(self.local(str(payload.get("k")), payload.get("a") or {}))

        def reply(result):
            self.host.cluster.bus.control(str(payload.get("from")), {
                "op": "admin-r", "id": payload.get("id"), "node": self.nodeId, "r": result})

        d.addCallback(reply)
        d.addErrback(lambda f: log.failure("Admin query {kind} failed", f, kind=payload.get("k")))
        return True


def headline(domain: str, to: str, subject, body) -> domish.Element:
    """
    The announcement: a C{headline} message from the server (RFC 6121
    §5.2.2), as Prosody's mod_announce and ejabberd's mod_announce send.
    """
    message = domish.Element((None, "message"))
    message["from"] = domain
    message["to"] = to
    message["type"] = "headline"
    if subject:
        message.addElement("subject", content=subject)
    message.addElement("body", content=body)
    return message


class AdminAPI(resource.Resource):
    """
    C{/admin/api/...}: authentication, then one method per resource.
    """

    isLeaf = True

    def __init__(self, service, key: str | None):
        resource.Resource.__init__(self)
        self.service = service
        self.host = service.host
        self.storage = service.storage
        self.agent = service.adminAgent
        self.announced: dict[str, defer.Deferred] = {}  # id -> its answer (review 18 #1)
        self.digest = _digest(key) if key else None
        self.panel = PanelAuth(service.config.ops, self.storage)
        self.routes: list[Route] = []
        for method, pattern, handler in (
                ("GET", "sessions", self.sessions),
                ("DELETE", "sessions/*", self.kick),
                ("GET", "stats", self.stats),
                ("POST", "announce", self.announce),
                ("POST", "unlock", self.unlock),
                ("POST", "reload", self.reload),
                ("POST", "users", self.createUser),
                ("DELETE", "users/*", self.deleteUser),
                ("PUT", "users/*/password", self.setPassword)):
            self.route(method, pattern, handler)
        service.reloadHooks["panel"] = lambda config: self.panel.reload(config)
        from xmppchat.ops.admin import installAll
        installAll(self)

    @property
    def config(self):
        """The live configuration (reloads replace its parts)."""
        return self.service.config

    def route(self, method: str, pattern: str, handler) -> None:
        """
        Serve C{method} on C{pattern} (C{/}-separated, C{*} one segment,
        given to C{handler(request, body, *segments)} unquoted).
        """
        parts = tuple(pattern.split("/"))
        if any(r.parts == parts and r.method == method for r in self.routes):
            raise ValueError(f"{method} {pattern} is routed twice")
        self.routes.append(Route(method, pattern, parts, handler))

    # -- HTTP ----------------------------------------------------------------

    def render(self, request):
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        securityHeaders(request)
        d = defer.ensureDeferred(self._serve(request))
        d.addCallbacks(lambda out: self._send(request, out),
                       lambda f: self._failed(request, f))
        return server.NOT_DONE_YET

    async def _serve(self, request):
        # twisted.web unquoted the path once already (review 19: not twice)
        path = [p.decode("utf-8", "replace") for p in request.postpath if p]
        if path == ["session"]:
            return await self.panel.serve(self, request, self._body(request))
        await self._authenticate(request)
        route, args = self._route(request, path)
        out = await route.handler(request, self._body(request), *args)
        if route.method not in SAFE_METHODS and not getattr(request, "audited", False):
            # every change is logged with who made it, audited by its handler or here
            self.audit(request, f"{route.method} {route.pattern}",
                       **{f"arg{i}": a for i, a in enumerate(args, 1)})
        return out

    async def _authenticate(self, request) -> None:
        """
        The bearer admin key, or a panel session cookie (issue 19) with
        its CSRF token on every method that changes something.
        """
        header = request.getHeader(b"authorization")
        if header is None and self.panel.enabled:
            session = await self.panel.authenticate(request)
            request.adminName = session.name
            return
        if self.digest is None:
            if self.panel.enabled:
                raise ApiError(401, "Sign in to the admin panel (the admin key is not configured)")
            raise ApiError(404, "The admin API is off: set [ops] admin_key or admin_key_file")
        scheme, _, given = (header or b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            request.setHeader(b"www-authenticate", b'Bearer realm="xmppchat-admin"')
            raise ApiError(401, "Authorization: Bearer <admin key> is required")
        if not hmac.compare_digest(_digest(given.strip()), self.digest):
            log.warn("Admin API: wrong key from {address}", address=request.getClientAddress().host)
            raise ApiError(403, "Wrong admin key")
        request.adminName = KEY_ADMIN

    def _route(self, request, path: list):
        method = request.method.decode()
        if not path:
            raise ApiError(404, "No such resource")
        matching = [r for r in self.routes if len(r.parts) == len(path)
                    and all(p == "*" or p == given for p, given in zip(r.parts, path, strict=True))]
        if not matching:
            raise ApiError(404, "No such resource")
        # the most literal pattern wins: users/search before users/*
        for r in sorted(matching, key=lambda r: r.parts.count("*")):
            if r.method == method:
                return r, [given for p, given in zip(r.parts, path, strict=True) if p == "*"]
        request.setHeader(b"allow", ", ".join(sorted({r.method for r in matching})).encode())
        raise ApiError(405, "Method not allowed")

    # -- for the feature modules (xmppchat.ops.admin) -------------------------

    def audit(self, request, action: str, **details) -> None:
        """
        Log one administrator action, after it succeeded, with who did it
        (issue 19: "every action is logged with the administrator's
        name"); never give it a secret.
        """
        request.audited = True
        observe.emit("admin-action", admin=getattr(request, "adminName", KEY_ADMIN), action=action,
                     details=" ".join(f"{k}={v}" for k, v in details.items()),
                     address=request.getClientAddress().host)

    @staticmethod
    def arg(request, name: str, default: str | None = None) -> str | None:
        """The query string value C{name} as text, C{default} when absent."""
        values = request.args.get(name.encode())
        return values[0].decode("utf-8", "replace") if values else default

    def intArg(self, request, name: str, default: int, low: int, high: int) -> int:
        """The integer query value C{name}, 400 unless within C{low..high}."""
        text = self.arg(request, name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, f"{name} must be an integer") from None
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}")
        return value

    @staticmethod
    def _body(request) -> dict:
        data = request.content.read(MAX_BODY_BYTES + 1) if request.content is not None else b""
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"The body is limited to {MAX_BODY_BYTES} bytes")
        if not data.strip():
            return {}
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object")
        return body

    def _send(self, request, out) -> None:
        status, body = out if isinstance(out, tuple) else (200, out)
        request.setResponseCode(status)
        request.write(json.dumps(body).encode("utf-8"))
        request.finish()

    def _error(self, request, e: ApiError) -> bytes:
        request.setResponseCode(e.status)
        return json.dumps({"error": e.text}).encode("utf-8")

    def _failed(self, request, failure) -> None:
        if failure.check(ApiError):
            body = self._error(request, failure.value)
        elif failure.check(QueryTimeout):  # review 19 B6: as the REST API answers it
            request.setHeader(b"retry-after", QUERY_RETRY_AFTER)
            body = self._error(request, ApiError(503, f"{failure.getErrorMessage()}: try again later, "
                                                      "or narrow the query"))
        else:
            log.failure("Admin API request failed", failure)
            request.setResponseCode(500)
            body = json.dumps({"error": f"Internal error: {failure.getErrorMessage()}"}).encode()
        request.write(body)
        request.finish()

    # -- helpers -------------------------------------------------------------

    def jid(self, text: str):
        from xmppchat.jid import parseJID

        try:
            parsed = parseJID(text)
        except ValueError as e:
            raise ApiError(400, f"Not a JID: {text!r} ({e})") from None
        if not parsed.user or parsed.host != self.host.domain:
            raise ApiError(400, f"Not a user of {self.host.domain}: {text!r}")
        return parsed

    def localpart(self, name: str, new: bool = False) -> str:
        from xmppchat.usernames import AdminError, localpartOf, newLocalpartOf, serverAppId

        if "@" in name:
            name = self.jid(name).user
        try:
            if new:
                return newLocalpartOf(name, self.host.domain, serverAppId(self.service.config))
            return localpartOf(name, self.host.domain)
        except AdminError as e:
            raise ApiError(400, str(e)) from None

    async def account(self, name: str):
        localpart = self.localpart(name)
        account = await self.storage.accounts.getAccountByLocalpart(localpart)
        if account is None:
            raise ApiError(404, f"No such user: {localpart}@{self.host.domain}")
        return account

    @staticmethod
    async def _credentials(body: dict) -> dict:
        from xmppchat.auth.credentials import deriveCredentials

        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise ApiError(400, "A non-empty \"password\" string is required")
        try:
            derived = await threads.deferToThread(deriveCredentials, password)
        except ValueError as e:
            raise ApiError(400, f"Unusable password: {e}") from None
        return derived.toDict()

    @staticmethod
    def text(body: dict, key: str, required: bool = False, limit: int = 4096):
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise ApiError(400, f"\"{key}\" must be a non-empty string of at most {limit} characters")
        return value

    # -- resources -------------------------------------------------------------

    async def sessions(self, request, body):
        user = request.args.get(b"user", [b""])[0].decode("utf-8", "replace")
        args = {"user": self.jid(user).userhost()} if user else {}
        results, unreachable = await self.agent.gather("sessions", args)
        sessions = [s for _, part in results for s in part]
        return {"sessions": sessions, "unreachable": unreachable}

    async def kick(self, request, body, target):
        reason = self.arg(request, "reason") or self.text(body, "reason", limit=MAX_REASON)
        return await self.kickSessions(request, self.jid(target).full(), reason)

    async def kickSessions(self, request, jid: str, reason: str | None) -> dict:
        """
        End the sessions of C{jid} (bare: all the user's) on every node
        (C{DELETE sessions/<JID>}, the panel's C{POST users/<NAME>/kick});
        404 when there is none.
        """
        reason = reason or KICK_TEXT
        if len(reason) > MAX_REASON:
            raise ApiError(400, f"The reason is limited to {MAX_REASON} characters")
        results, unreachable = await self.agent.gather("kick", {"jid": jid, "reason": reason})
        kicked = [full for _, part in results for full in part]
        if not kicked and not unreachable:
            raise ApiError(404, f"No session of {jid}")
        self.audit(request, "kick", jid=jid, sessions=len(kicked))
        return {"kicked": kicked, "unreachable": unreachable}

    async def stats(self, request, body):
        results, unreachable = await self.agent.gather("stats", {})
        storage = self.storage
        byTransport: Counter = Counter()
        for _, part in results:
            byTransport.update(part["byTransport"])
        mine = results[0][1]
        return {
            "node": mine["node"],
            "uptime": mine["uptime"],
            "sessions": {"total": sum(p["sessions"] for _, p in results),
                         "byTransport": dict(byTransport)},
            "accounts": await storage.accounts.countAccounts(),
            "rooms": sum(p["rooms"] for _, p in results),
            "offline": await storage.offline.countAllOffline(),
            "nodes": [part for _, part in results] if self.host.cluster is not None else [],
            "unreachable": unreachable,
        }

    async def announce(self, request, body):
        """
        One announcement per C{id} (the client's, or a new one; returned):
        a retry with the same C{id} while this process runs gets the first
        request's answer (waiting for it if needed) and sends and stores
        nothing again (review 18 #1).
        """
        text = self.text(body, "body", required=True)
        subject = self.text(body, "subject", limit=1024)
        announcementId = self.text(body, "id", limit=64) or secrets.token_hex(8)
        to = body.get("to", "online")
        if to not in ("online", "all"):
            raise ApiError(400, "\"to\" must be \"online\" or \"all\"")
        announced = self.announced.get(announcementId)
        if announced is None:
            announced = self.announced[announcementId] = defer.ensureDeferred(
                self._announce(announcementId, to, subject, text))
            while len(self.announced) > ANNOUNCEMENTS_KEPT:
                del self.announced[next(iter(self.announced))]
        answer = defer.Deferred()  # each caller's copy of the outcome

        def share(outcome):
            answer.callback(outcome)
            return outcome

        announced.addBoth(share)
        try:
            return dict(await answer)
        except Exception:
            if self.announced.get(announcementId) is announced:
                del self.announced[announcementId]  # failed: a retry starts it again
                announced.addErrback(lambda failure: None)
            raise

    async def _announce(self, announcementId, to, subject, text) -> dict:
        results, unreachable = await self.agent.gather("announce", {"subject": subject, "body": text})
        out = {"id": announcementId, "online": sum(n for _, n in results), "unreachable": unreachable}
        if to == "all":
            out["stored"], out["refused"] = await self._storeForOffline(subject, text)
        log.info("Admin announcement to {to} users: {online} online session(s)", to=to,
                 online=out["online"])
        return out

    async def _storeForOffline(self, subject, text) -> tuple[int, int]:
        """
        The announcement stored (XEP-0160) for every account with no
        session in the cluster; C{(stored, refused)} (a full queue).
        """
        offline = self.host.modules.get("offline")
        if offline is None:
            raise ApiError(409, "The offline module is not enabled: cannot store for offline users")
        domain = self.host.domain
        stored = refused = lastId = 0
        while True:
            # by key, not offset: accounts added or deleted meanwhile shift no
            # page, so none is skipped or stored twice (review 18 #1)
            accounts = await self.storage.accounts.findAccounts(
                Query(sort="id", limit=ANNOUNCE_PAGE).where("id", "gt", lastId))
            entries = [(a.localpart, headline(domain, f"{a.localpart}@{domain}", subject, text).toXml())
                       for a in accounts if not self.host.sessions.isConnected(f"{a.localpart}@{domain}")]
            # one write per page (review 18 #1), not one per account
            full = await self.storage.offline.storeOfflineMany(
                entries, self.host.clock.seconds(), self.host.config.limits.offline_messages_per_user,
                offline.shares(None, sender=domain))
            refused += len(full)
            stored += len(entries) - len(full)
            for localpart in {localpart for localpart, _ in entries} - set(full):
                self.host.hooks.fire("offline-stored", SimpleNamespace(host=self.host, localpart=localpart))
            if len(accounts) < ANNOUNCE_PAGE:
                return stored, refused
            lastId = accounts[-1].id

    async def unlock(self, request, body):
        target = self.text(body, "target", required=True, limit=1024)
        try:
            key = str(ipaddress.ip_address(target))
        except ValueError:
            key = (await self.account(target)).localpart
        # the panel's sign-in throttle of this process (review 19 #6)
        self.panel.throttle.clear(f"name:{target}", f"address:{target}")
        return await self.unlockKey(request, key)

    async def unlockKey(self, request, key: str) -> dict:
        """
        Forget the failed logins of address or localpart C{key} here
        (C{POST unlock}, the panel's C{POST users/<NAME>/unlock}).
        """
        cleared = self.host.loginThrottle.unlock(key)
        # every other process (nodes, workers) applies it within seconds
        await self.storage.unlocks.addUnlock(key)
        self.audit(request, "unlock", target=key, cleared=cleared)
        return {"unlocked": key, "cleared": cleared}

    async def reload(self, request, body):
        what = body.get("what", sorted(self.service.reloadHooks))
        if not isinstance(what, list) or not all(isinstance(w, str) for w in what):
            raise ApiError(400, "\"what\" must be a list of names")
        unknown = [w for w in what if w not in self.service.reloadHooks]
        if unknown:
            raise ApiError(400, f"Cannot reload {', '.join(unknown)}"
                                f" (known: {', '.join(sorted(self.service.reloadHooks))})")
        results, unreachable = await self.agent.gather("reload", {"what": what})
        return {"nodes": {node or "local": part for node, part in results}, "unreachable": unreachable}

    async def createUser(self, request, body):
        from xmppchat.storage.interfaces import AlreadyExists

        name = self.text(body, "name", required=True, limit=1024)
        localpart = self.localpart(name, new=True)
        fields = await self._accountFields(body)
        credentials = await self._credentials(body)
        jid = f"{localpart}@{self.host.domain}"
        try:
            account = await self.storage.accounts.createAccount(localpart, credentials, **fields)
        except AlreadyExists:
            raise ApiError(409, f"User already exists: {jid}") from None
        self.audit(request, "create-user", jid=jid, id=account.id)
        return 201, {"jid": jid, "id": account.id}

    async def _accountFields(self, body: dict) -> dict:
        """
        The optional C{full_name}, C{email} and C{custom_data} of C{POST
        users} (issue 19, the panel's create form), checked as the REST
        API checks a user's (its C{EMAIL} and C{validateProfile}: lengths,
        the custom data's size): C{createAccount} keyword arguments; 400
        when one is wrong, 409 for an e-mail address in use.
        """
        from xmppchat.api.json import ApiError as RestError
        from xmppchat.api.users import EMAIL, validateProfile

        given = {key: self.text(body, key, limit=MAX_BODY_BYTES) for key in ("full_name", "custom_data")}
        try:
            profile = validateProfile(SimpleNamespace(config=self.config.rest),
                                      {k: v for k, v in given.items() if v is not None}, {})
        except RestError as e:
            raise ApiError(400, "; ".join(f"{k} {' '.join(v)}" for k, v in e.errors.items())) from None
        email = self.text(body, "email", limit=254)
        if email is not None:
            if not EMAIL.fullmatch(email):
                raise ApiError(400, f"Not an e-mail address: {email!r}")
            if await self.storage.accounts.getAccountByEmail(email) is not None:
                raise ApiError(409, f"The e-mail address {email} is in use")
        return {"email": email, "profile": profile}

    async def deleteUser(self, request, body, name):
        from xmppchat.auth.revocation import Revocation, endRevoked

        account = await self.account(name)
        await self.storage.accounts.deleteAccount(account.id)
        ended = endRevoked(self.host, Revocation(account.localpart, deleted=True,
                                                 text="The account was deleted"))
        jid = f"{account.localpart}@{self.host.domain}"
        self.audit(request, "delete-user", jid=jid, id=account.id, ended=ended)
        return {"deleted": jid, "ended": ended}

    async def setPassword(self, request, body, name):
        from xmppchat.auth.revocation import Revocation, endRevoked

        account = await self.account(name)
        credentials = await self._credentials(body)
        await self.storage.accounts.setCredentials(account.id, credentials)
        revoked = await self.storage.tokens.deleteAccountTokens(account.id)
        endRevoked(self.host, Revocation(account.localpart, tokens=tuple(revoked), password=True,
                                         text="The password was changed"))
        jid = f"{account.localpart}@{self.host.domain}"
        self.audit(request, "set-password", jid=jid, revoked=len(revoked))
        return {"changed": jid, "revoked": len(revoked)}


def reloadLimits(service, fresh) -> bool:
    """
    C{[limits]} from a re-read configuration: the values read where they
    apply (stanza bounds of new streams, offline queue, roster, sessions
    per account...) take the new values; the login throttle and the
    connection limiter their new parameters, keeping what they counted;
    the message rate limiter its rate and burst, with fresh buckets.  The
    ping and recheck intervals stay until a restart.
    """
    host = service.host
    # built first, assigned after: an exception leaves nothing half-applied (review 18 #6)
    rebuilt = [(current, type(current).fromConfig(fresh.limits, host.clock), names)
               for current, names in ((host.loginThrottle, ("freeFailures", "lockoutFailures",
                                                            "lockoutSeconds", "sourceFailures",
                                                            "accountFailures")),
                                      (host.connectionLimiter, ("maxPerAddress", "rate", "burst",
                                                                "exemptLoopback")))]
    limits = service.config.limits
    for f in fields(limits):
        setattr(limits, f.name, getattr(fresh.limits, f.name))
    for current, new, names in rebuilt:
        for name in names:
            setattr(current, name, getattr(new, name))
    rates = host.modules.get("ratelimit")
    if rates is not None:
        rates.rate, rates.burst = limits.message_rate, limits.message_burst
        rates.buckets.clear()
    return True


def mountAdminAPI(root, service) -> None:
    """
    C{/admin/api} on the ops site's root (L{xmppchat.ops.opsSite}), and
    the web panel's files beside it (L{xmppchat.ops.panel}).
    """
    from xmppchat.ops.panel import AdminRoot

    config = service.config
    api = AdminAPI(service, loadAdminKey(config.ops, config.baseDir))
    root.putChild(b"admin", AdminRoot(api, api.panel.enabled))
