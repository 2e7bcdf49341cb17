"""
The admin API behind the panel's Overview and Announcements pages (issue
19: "Overview: live counts (online sessions by transport, messages per
minute, offline queue sizes, REST error rate, cluster nodes), from the
same metrics as C{/metrics}"; "Announcements: send a headline to online
users or all users").

    GET    overview                          see L{overview}
    GET    announcements[?limit=&skip=]      {"announcements": [...], "total"}: newest first
    POST   announce                          (issue 18's route, recorded here for that list and audited)

The counts are read from the instruments of C{/metrics}
(L{xmppchat.ops.metrics.Metrics.counts}).  Every node answers the gather
C{overview} (L{xmppchat.ops.adminapi.AdminAgent.gather}) with its own
sessions, uptime and rates; with C{--workers N} every worker is such a
node, so the answer is the sum over the workers and the cluster's nodes.
A node's rates are the change of its counters since the oldest sample of
its ring (one sample every 10 s, the last minute, L{Metrics.perMinute}),
per minute; their sum is the cluster's rate over about the last minute.
A node that does not answer within the gather's time is listed in
C{unreachable} and counted in nothing.  The offline queues are read from
the shared storage, and that reading is shown again (per process) for a
hundred times as long as it took, up to L{OFFLINE_CACHE_SECONDS}
(L{OfflineQueues}: the page polls every 5 s, and reading them is a GROUP
BY over every queued message, review 19 B2): at most 1% of the time
goes to it, and a small store is shown live.

The list of announcements is kept in this process's memory (the last
L{ANNOUNCEMENTS_LISTED}): a restart forgets it, and with several workers
or nodes each lists those that went through it.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict

from xmppchat.storage.interfaces import StorageError

TOP_OFFLINE = 10  # users listed with the largest offline queues
OFFLINE_CACHE_SECONDS = 30.0  # the longest one reading of the offline queues is shown
OFFLINE_COST_FACTOR = 100  # ... for this many times as long as it took
ANNOUNCEMENTS_LISTED = 50  # announcements remembered for the list


def nodeOverview(api) -> dict:
    """
    This node's part of the overview: its sessions by transport, uptime
    and per-minute rates, with the window those were measured over.
    """
    metrics = api.host.metrics
    counts = metrics.counts()
    window, rates = metrics.perMinute(counts["totals"])
    return {"node": api.agent.nodeId, "uptime": round(api.host.uptime(), 1),
            "sessions": counts["sessions"], "window": round(window, 1), "perMinute": rates}


async def overview(api, request, body, offline=None) -> dict:
    """
    C{GET overview}: the server's version; this node's id and uptime;
    sessions (total, by transport), the per-minute rates (C{messages}
    from clients, C{delivered}, C{stored} in dialog history, put
    C{offline}; C{rest} requests and those answered C{rest4xx} and
    C{rest5xx}) summed over the nodes that measured them (C{null} when
    none has yet); the offline queues (total and the
    L{TOP_OFFLINE} largest); the cluster's nodes, each with its part, and
    those that did not answer.  C{offline}: the L{OfflineQueues} that
    reads the queues (a fresh one, which reads them now, by default).
    """
    from xmppchat import __version__

    results, unreachable = await api.agent.gather("overview", {})
    sessions: Counter = Counter()
    rates: dict = {}  # None: no node measured it yet (Metrics.perMinute)
    for _, part in results:
        sessions.update(part["sessions"])
        for name, value in part["perMinute"].items():
            rates[name] = rates.get(name) if value is None else (rates.get(name) or 0.0) + value
    mine = results[0][1]
    return {
        "version": __version__,
        "node": mine["node"],
        "uptime": mine["uptime"],
        "sessions": {"total": sum(sessions.values()), "byTransport": dict(sessions)},
        "perMinute": {name: None if value is None else round(value, 2) for name, value in rates.items()},
        "window": mine["window"],
        "offline": await (offline or OfflineQueues(api)).read(),
        "cluster": {"enabled": api.host.cluster is not None,
                    "nodes": [part for _, part in results], "unreachable": unreachable},
    }


class OfflineQueues:
    """
    The offline queues' total and largest; a reading (or its error) is
    shown again for L{OFFLINE_COST_FACTOR} times as long as it took, at
    most C{seconds}.  A slow or failing storage leaves the rest of the
    overview standing.
    """

    def __init__(self, api, seconds: float = OFFLINE_CACHE_SECONDS, now=time.monotonic):
        self.api, self.seconds, self.now = api, seconds, now
        self.value, self.until = None, float("-inf")

    async def read(self) -> dict:
        start = self.now()
        if start >= self.until:
            self.value = await self._count()
            end = self.now()
            self.until = end + min(self.seconds, (end - start) * OFFLINE_COST_FACTOR)
        return self.value

    async def _count(self) -> dict:
        store = self.api.storage.offline
        try:
            total = await store.countAllOffline()
            top = await store.largestOfflineQueues(TOP_OFFLINE)
        except StorageError as e:
            return {"error": f"the offline queues could not be counted: {e}"}
        domain = self.api.host.domain
        return {"total": total, "top": [{"jid": f"{localpart}@{domain}", "count": count}
                                        for localpart, count in top]}


class Announcements:
    """
    The last announcements sent through this process, for C{GET
    announcements}: C{POST announce} (L{xmppchat.ops.adminapi.AdminAPI.announce})
    is wrapped to record each one (once per id: a retry sends nothing
    again) and to audit it with the administrator's name.
    """

    def __init__(self, api, limit: int = ANNOUNCEMENTS_LISTED):
        self.api = api
        self.limit = limit
        self.sent: OrderedDict[str, dict] = OrderedDict()

    def wrap(self, announce):
        async def recorded(request, body):
            answer = await announce(request, body)
            if answer["id"] not in self.sent:
                self.record(request, body, answer)
            return answer

        return recorded

    def record(self, request, body: dict, answer: dict) -> None:
        to = body.get("to", "online")
        self.sent[answer["id"]] = {
            "id": answer["id"], "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "admin": getattr(request, "adminName", None), "to": to,
            "subject": body.get("subject"), "body": body["body"],
            **{k: answer[k] for k in ("online", "stored", "refused", "unreachable") if k in answer}}
        while len(self.sent) > self.limit:
            self.sent.popitem(last=False)
        counts = {k: answer[k] for k in ("online", "stored", "refused") if k in answer}
        self.api.audit(request, "announce", to=to, id=answer["id"], **counts)

    async def list(self, request, body) -> dict:
        limit = self.api.intArg(request, "limit", 20, 1, 100)
        skip = self.api.intArg(request, "skip", 0, 0, self.limit)
        newest = list(reversed(self.sent.values()))
        return {"announcements": newest[skip:skip + limit], "total": len(newest)}


def install(api) -> None:
    """Register this feature's routes on C{api} (an L{xmppchat.ops.adminapi.AdminAPI})."""
    api.agent.queries["overview"] = lambda args: nodeOverview(api)
    offline = OfflineQueues(api)
    api.route("GET", "overview", lambda request, body: overview(api, request, body, offline))
    announcements = Announcements(api)
    for index, route in enumerate(api.routes):
        if (route.method, route.pattern) == ("POST", "announce"):
            api.routes[index] = route._replace(handler=announcements.wrap(route.handler))
    api.route("GET", "announcements", announcements.list)
