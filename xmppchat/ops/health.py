"""
C{GET /health} for a load balancer or an orchestrator (issue 18, "Metrics
and health"): 200 only when storage answers a cheap real query (an
account looked up by primary key) and, in cluster mode, Redis answers
C{PING}, each within C{[ops] health_timeout_ms}; 503 otherwise, naming
the part that failed::

    {"status": "ok", "checks": {"storage": "ok", "redis": "ok"}}
    {"status": "unavailable", "checks": {"storage": "no answer within 3 s"}}
    {"status": "unavailable", "checks": {"redis": "error"}}  (the error is logged)
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

OK = "ok"

log = Logger()


def _outcome(part: str, d: defer.Deferred, timeout: float, clock) -> defer.Deferred:
    """
    C{d} as C{"ok"} or a short fixed reason, never failing; the error
    itself goes to the log, not to the unauthenticated client (security
    review of issue 18, finding 3: it could name hosts, paths or
    credentials in a connection string).
    """

    def failed(failure):
        if failure.check(defer.TimeoutError, defer.CancelledError):
            return f"no answer within {timeout:g} s"
        log.warn("Health check of {part} failed: {error}", part=part,
                 error=failure.getErrorMessage() or failure.type.__name__)
        return "error"

    d.addTimeout(timeout, clock)
    return d.addCallbacks(lambda _: OK, failed)


@defer.inlineCallbacks
def check(service) -> defer.Deferred:
    """
    Fires with C{{part: "ok" or why not}} for storage and, with a cluster,
    Redis; the checks run at the same time.
    """
    timeout = service.config.ops.health_timeout_ms / 1000
    clock = service.reactor
    parts = {"storage": defer.maybeDeferred(service.storage.accounts.getAccount, 1)}
    if service.cluster is not None:
        parts["redis"] = defer.maybeDeferred(service.cluster.redis.execute, "PING")
    names = list(parts)
    results = yield defer.gatherResults([_outcome(n, parts[n], timeout, clock) for n in names])
    return dict(zip(names, results, strict=True))


class HealthResource(resource.Resource):
    """
    C{GET /health}, see the module docstring.
    """

    isLeaf = True

    def __init__(self, service):
        resource.Resource.__init__(self)
        self.service = service

    def render_GET(self, request):
        gone: list = []
        request.notifyFinish().addBoth(gone.append)
        check(self.service).addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _write(self, checks: dict, request, gone) -> None:
        if gone:
            return
        healthy = all(value == OK for value in checks.values())
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        request.write(json.dumps(body).encode("utf-8") + b"\n")
        request.finish()
