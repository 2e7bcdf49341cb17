"""
Prometheus metrics (issue 18, "Metrics and health"): C{GET /metrics} on
the C{[ops]} listener, in the Prometheus text exposition format
(https://prometheus.io/docs/instrumenting/exposition_formats/) written by
C{prometheus_client}.

Each host has its own L{Metrics} with its own C{CollectorRegistry} (not the
library's global one, so a test can run several servers).  Three kinds of
instruments:

- I{observers} of L{xmppchat.observe}: logins, logouts, lockouts, rate
  limits, rooms, cluster membership;
- I{direct instrumentation} on the hot paths, with the label children
  bound once (L{Metrics.stanzasIn} / L{Metrics.stanzasOut} are dicts of
  ready children: one dict lookup and one C{inc()} per stanza), and the
  storage calls timed by L{Metrics.instrumentStorage};
- I{samples} read when scraped: the cluster bus backlog, process metrics.

The admin panel's Overview (issue 19, L{xmppchat.ops.admin.overview})
reads the same instruments: L{Metrics.counts} for this process's sessions
and counters, and a ring of those counters sampled every
L{RATE_SAMPLE_SECONDS} for the last L{RATE_WINDOW_SECONDS}
(L{Metrics.perMinute}), so that a rate needs no scrape history.

Every label has a bounded set of values (L{BoundedChildren}): the REST
route is the route's pattern, never the path with its ids, and a free-form
value from an event (a SASL mechanism a client made up) becomes C{other}
past a few distinct values.

With C{--workers N} the ops socket is shared by the workers, so a scrape
reaches one of them.  The supervisor then gives every worker
C{PROMETHEUS_MULTIPROC_DIR} (C{<data_dir>/metrics}, emptied when the
supervisor starts, a dead worker's live gauges removed): C{prometheus_client}
keeps each worker's values in memory-mapped files there, and the scraped
worker answers with the sum over all of them (C{MultiProcessCollector}).
The sampled values are written by each worker every L{SAMPLE_SECONDS}.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import time
from collections import deque

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector,
    disable_created_metrics, generate_latest,
)
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from xmppchat import observe

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: how often a cluster worker writes its sampled values (bus backlog,
#: process) for the other workers' scrapes
SAMPLE_SECONDS = 5.0
#: distinct label value tuples of one metric with free-form values before C{other}
MAX_LABEL_VALUES = 32
#: series of REST requests: routes x methods x statuses seen
MAX_REST_SERIES = 512
#: the Overview's rates: this process's counters sampled this often ...
RATE_SAMPLE_SECONDS = 10.0
#: ... and kept this long (a rate is the change since the oldest sample)
RATE_WINDOW_SECONDS = 60.0
#: what L{Metrics.counts} totals: client messages in, delivered, stored,
#: put offline; REST requests, those answered 4xx and 5xx
RATED = ("messages", "delivered", "stored", "offline", "rest", "rest4xx", "rest5xx")
STANZA_KINDS = ("message", "presence", "iq")
TRANSPORTS = ("c2s", "c2s-tls", "websocket", "bosh")
#: stores of the backend's C{STORES} not timed: export and import only, never
#: called by a running server
UNTIMED = frozenset(("portable",))
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TOKEN = re.compile(r"[A-Za-z0-9_.:+/{}-]{1,64}\Z")

log = Logger()
# no C{*_created} series beside each counter: they double the output, and a
# cluster's sum over workers has none either
disable_created_metrics()


def multiprocessDir() -> str | None:
    """
    The directory shared by a cluster's workers, or C{None} in a single
    process (C{prometheus_client} reads the same variable at import).
    """
    return os.environ.get(MULTIPROC_ENV) or None


def resetMultiprocessDir(dataDir: str) -> str:
    """
    The supervisor's side: an empty C{<data_dir>/metrics} for a new set of
    workers (values of an earlier run would be added to this one's).
    """
    path = os.path.join(dataDir, "metrics")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def workerDied(path: str, pid: int) -> None:
    """
    The supervisor's side: a dead worker's sessions and backlog are no
    longer counted (its counters stay: they only ever grow).
    """
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


class BoundedChildren:
    """
    The label children of C{metric} by value tuple, created on first use:
    a value that is not a short token, or a new one past
    L{MAX_LABEL_VALUES} distinct tuples, is counted as C{other}.
    """

    def __init__(self, metric, limit: int = MAX_LABEL_VALUES):
        self.metric = metric
        self.limit = limit
        self.children: dict = {}  # cleaned tuple -> child, at most limit + 1
        self.seen: dict = {}  # raw tuple -> child, a cache of at most 4 * limit

    def __call__(self, *values):
        child = self.seen.get(values)
        if child is None:
            clean = tuple(v if isinstance(v, str) and _TOKEN.match(v) else
                          str(v) if isinstance(v, int) and not isinstance(v, bool) else "other"
                          for v in values)
            if len(self.children) >= self.limit and clean not in self.children:
                clean = ("other",) * len(values)
            child = self.children.get(clean)
            if child is None:
                child = self.children[clean] = self.metric.labels(*clean)
            if len(self.seen) < 4 * self.limit:
                # raw values a client chose are cached boundedly too
                # (security review of issue 18, minor finding)
                self.seen[values] = child
        return child


def _timed(method, histogram, onSuccess=None):
    """
    C{method}, with the time until its Deferred fires observed in
    C{histogram} (a label child), and C{onSuccess()} called when it
    succeeds.  One callback per call: a Deferred callback costs more than
    the observation.
    """
    observe = histogram.observe

    def done(result, start):
        observe(time.perf_counter() - start)
        if onSuccess is not None and not isinstance(result, Failure):
            onSuccess()
        return result

    def timed(*args, **kwargs):
        start = time.perf_counter()
        d = method(*args, **kwargs)
        if isinstance(d, defer.Deferred):
            d.addBoth(done, start)
        return d

    timed.__wrapped__ = method
    return timed


def transportOf(stream) -> str:
    """
    The C{transport} label of a bound stream (the catalogue of
    L{xmppchat.observe}).
    """
    return getattr(stream.transport, "transportName", None) or "other"


class Metrics:
    """
    The metrics of one host (see the module docstring for the list).

    @ivar registry: this host's C{CollectorRegistry}.
    @ivar stanzasIn: stanza name -> counter child, for stanzas from clients.
    @ivar stanzasOut: stanza name -> counter child, for stanzas to clients.
    """

    def __init__(self, multiproc: str | None = None):
        self.multiproc = multiproc if multiproc is not None else multiprocessDir()
        self.registry = registry = CollectorRegistry(auto_describe=True)
        live = {"multiprocess_mode": "livesum"}
        self.sessions = Gauge("xmppchat_sessions", "Bound client sessions on this server, by transport",
                              ["transport"], registry=registry, **live)
        for name in TRANSPORTS:
            self.sessions.labels(name)
        self.logins = BoundedChildren(Counter(
            "xmppchat_logins", "Logins (SASL, token, REST session) by result, mechanism and transport",
            ["result", "mechanism", "transport"], registry=registry))
        self.resumptions = BoundedChildren(Counter(
            "xmppchat_resumptions", "XEP-0198 sessions resumed (not counted as logins), by transport",
            ["transport"], registry=registry))
        self.logouts = BoundedChildren(Counter(
            "xmppchat_logouts", "Ended sessions by transport and reason", ["transport", "reason"],
            registry=registry))
        self.lockouts = BoundedChildren(Counter(
            "xmppchat_lockouts", "Failed-login lockouts by scope (pair: one source on one account; source: on all)", ["scope"],
            registry=registry))
        self.rateLimited = BoundedChildren(Counter(
            "xmppchat_rate_limited", "Requests and stanzas refused by a rate limit, by scope", ["scope"],
            registry=registry))
        self.rooms = BoundedChildren(Counter(
            "xmppchat_rooms", "Rooms created and destroyed", ["event"], registry=registry))
        self.clusterNodes = BoundedChildren(Counter(
            "xmppchat_cluster_node_changes", "Cluster nodes seen joining and leaving", ["state"],
            registry=registry))
        stanzas = Counter("xmppchat_stanzas", "Stanzas from (in) and to (out) clients, by kind",
                          ["kind", "direction"], registry=registry)
        self.stanzas = stanzas
        self.stanzasIn = {kind: stanzas.labels(kind, "in") for kind in STANZA_KINDS}
        self.stanzasOut = {kind: stanzas.labels(kind, "out") for kind in STANZA_KINDS}
        self.messagesDelivered = Counter(
            "xmppchat_messages_delivered", "Messages handed to at least one online session",
            registry=registry)
        self.messagesOffline = Counter(
            "xmppchat_messages_offline", "Messages put in offline storage", registry=registry)
        self.messagesStored = Counter(
            "xmppchat_messages_stored", "Messages stored in dialog history", registry=registry)
        pushes = Counter("xmppchat_pushes", "Push notifications by result (sent, failed, dropped)",
                         ["result"], registry=registry)
        self.pushes = {result: pushes.labels(result) for result in ("sent", "failed", "dropped")}
        self.restRequests = BoundedChildren(Counter(
            "xmppchat_rest_requests", "REST requests by method, route pattern and status",
            ["method", "route", "status"], registry=registry), limit=MAX_REST_SERIES)
        self.storageSeconds = Histogram(
            "xmppchat_storage_seconds", "Time until a storage call answered, by store",
            ["store"], buckets=LATENCY_BUCKETS, registry=registry)
        self.busFrames = Gauge("xmppchat_cluster_bus_backlog_frames",
                               "Cluster bus frames sent and not yet acknowledged",
                               registry=registry, **live)
        self.busBytes = Gauge("xmppchat_cluster_bus_backlog_bytes",
                              "Bytes of cluster bus frames sent and not yet acknowledged",
                              registry=registry, **live)
        self.process = ProcessCollector(registry=None if self.multiproc else registry)
        self.processGauges: dict = {}
        self.service = None
        self._sampling = None
        # (time, counts()["totals"]) every RATE_SAMPLE_SECONDS, the oldest RATE_WINDOW_SECONDS back
        self.rateSamples: deque = deque(maxlen=int(RATE_WINDOW_SECONDS // RATE_SAMPLE_SECONDS) + 1)
        self._rating = None

    # -- life cycle --------------------------------------------------------

    def start(self, service) -> None:
        """
        Count the operational events from now on; in a cluster worker,
        write the sampled values every L{SAMPLE_SECONDS}.
        """
        self.service = service
        observe.addObserver(self.observed)
        if self.multiproc and self._sampling is None:
            self._sampling = self._every(SAMPLE_SECONDS, self.sample)
        if self._rating is None:
            self._rating = self._every(RATE_SAMPLE_SECONDS, self.sampleRates)

    def _every(self, seconds: float, fn) -> task.LoopingCall:
        call = task.LoopingCall(fn)
        call.clock = self.service.reactor
        call.start(seconds)
        return call

    def stop(self) -> None:
        observe.removeObserver(self.observed)
        for call in (self._sampling, self._rating):
            if call is not None and call.running:
                call.stop()
        self._sampling = self._rating = None

    # -- observers of xmppchat.observe ---------------------------------------

    def observed(self, name: str, fields: dict) -> None:
        """
        The L{xmppchat.observe} observer: one counter per event.
        """
        get = fields.get
        if name == "login" and get("resumed"):
            self.resumptions(get("transport")).inc()
        elif name == "login":
            self.logins("success", get("mechanism"), get("transport")).inc()
        elif name == "login-failed":
            self.logins("failure", get("mechanism"), get("transport")).inc()
        elif name == "logout":
            reason = get("reason")
            self.logouts(get("transport"), reason.replace(" ", "_") if isinstance(reason, str) else reason).inc()
        elif name == "lockout":
            self.lockouts(get("scope")).inc()
        elif name == "rate-limited":
            self.rateLimited(get("scope")).inc()
        elif name == "room-created":
            self.rooms("created").inc()
        elif name == "room-destroyed":
            self.rooms("destroyed").inc()
        elif name == "cluster-node":
            self.clusterNodes(get("state")).inc()

    # -- direct instrumentation ------------------------------------------------

    def watchHost(self, host) -> None:
        """
        Sessions by transport, from the host's C{session-bound} and
        C{session-ended} events (the label child is kept on the session, so
        it is decremented where it was incremented).
        """
        host.hooks.add("session-bound", self._bound)
        host.hooks.add("session-ended", self._ended)

    def _bound(self, event) -> None:
        session = event.session
        gauge = self.sessions.labels(transportOf(session.stream))
        session.state["metrics"] = gauge
        gauge.inc()

    def _ended(self, event) -> None:
        gauge = event.session.state.pop("metrics", None)
        if gauge is not None:
            gauge.dec()

    def instrumentStorage(self, storage) -> None:
        """
        Time every public method of each store of C{storage} (its
        backend's C{STORES} but L{UNTIMED}: the C{xmppchat_storage_seconds}
        histogram, labelled by store, a fixed set), and
        count the messages stored in dialog history and in offline storage
        when those calls succeed.
        """
        counted = {("messages", "createMessage"): self.messagesStored.inc,
                   ("offline", "storeOffline"): self.messagesOffline.inc}
        for storeName in getattr(storage, "STORES", {}):
            store = None if storeName in UNTIMED else getattr(storage, storeName, None)
            if store is None:
                continue
            histogram = self.storageSeconds.labels(storeName)
            for name, _ in inspect.getmembers(type(store), callable):
                if name.startswith("_"):
                    continue
                method = getattr(store, name)
                if inspect.ismethod(method):
                    setattr(store, name, _timed(method, histogram, counted.get((storeName, name))))

    def restRequest(self, request) -> None:
        """
        One finished REST request: its route pattern (set by
        L{xmppchat.api.json.JSONResource} as C{request.route}), method
        and status.
        """
        route = getattr(request, "route", None)
        if route is None:
            first = request.prepath[0] if request.prepath else b""
            route = ("other", f"/{first.decode()}" if first in (b"upload", b"http-bind") else "unmatched")
        self.restRequests(route[0], route[1], request.code).inc()

    # -- the admin panel's Overview (issue 19) -------------------------------------

    def counts(self) -> dict:
        """
        This process's bound sessions by transport and its L{RATED}
        totals: C{{"sessions": {transport: n}, "totals": {name: n}}}.  In
        a cluster worker these are its own values (its node's share), not
        the sum over the workers.
        """
        sessions: dict = {}
        totals = dict.fromkeys(RATED, 0.0)
        single = {"xmppchat_messages_delivered_total": "delivered",
                  "xmppchat_messages_stored_total": "stored",
                  "xmppchat_messages_offline_total": "offline"}
        for metric in (self.sessions, self.stanzas, self.messagesDelivered, self.messagesStored,
                       self.messagesOffline, self.restRequests.metric):
            for family in metric.collect():
                for name, labels, value, *_ in family.samples:
                    if name == "xmppchat_sessions":
                        sessions[labels["transport"]] = int(value)
                    elif name in single:
                        totals[single[name]] += value
                    elif name == "xmppchat_stanzas_total":
                        if labels == {"kind": "message", "direction": "in"}:
                            totals["messages"] += value
                    elif name == "xmppchat_rest_requests_total":
                        totals["rest"] += value
                        if labels["status"][:1] in ("4", "5"):
                            totals[f"rest{labels['status'][:1]}xx"] += value
        return {"sessions": sessions, "totals": totals}

    def sampleRates(self) -> None:
        """
        One sample of the ring behind L{perMinute}.
        """
        self.rateSamples.append((self.service.reactor.seconds(), self.counts()["totals"]))

    def perMinute(self, totals: dict) -> tuple[float, dict]:
        """
        C{(window, rates)}: the change of each of C{totals} (this
        process's now) since the oldest sample of the ring, per minute,
        and how many seconds back that sample is.  Each rate is C{None}
        while that window is shorter than L{RATE_SAMPLE_SECONDS} (just
        after the start: one message in a tenth of a second is not 600
        a minute, review 19 B7).
        """
        if not self.rateSamples:
            return 0.0, dict.fromkeys(totals)
        then, old = self.rateSamples[0]
        window = max(0.0, self.service.reactor.seconds() - then)
        if window < RATE_SAMPLE_SECONDS:
            return window, dict.fromkeys(totals)
        return window, {k: round((v - old.get(k, 0.0)) * 60 / window, 2) for k, v in totals.items()}

    # -- samples -----------------------------------------------------------------

    def sample(self) -> None:
        """
        Read what is sampled rather than counted: the cluster bus backlog
        and, in a cluster worker, this process's metrics (labelled by pid
        in the sum over the workers).
        """
        cluster = getattr(self.service, "cluster", None)
        if cluster is not None:
            bus = cluster.bus
            self.busFrames.set(sum(len(flight) for flight in bus.inFlight.values()))
            self.busBytes.set(sum(bus.inFlightBytes.values()))
        if self.multiproc:
            for family in self.process.collect():
                for sample in family.samples:
                    gauge = self.processGauges.get(sample.name)
                    if gauge is None:
                        gauge = self.processGauges[sample.name] = Gauge(
                            sample.name, family.documentation, registry=None,
                            multiprocess_mode="liveall")
                    gauge.set(sample.value)

    def exposition(self) -> bytes:
        """
        The text exposition: this registry, or in a cluster worker the sum
        over every worker's files.  Blocking reads of the files: run it
        off the reactor thread.
        """
        if not self.multiproc:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiproc)
        return generate_latest(registry)


class MetricsResource(resource.Resource):
    """
    C{GET /metrics}: the exposition of the service's host metrics.
    """

    isLeaf = True

    def __init__(self, service):
        resource.Resource.__init__(self)
        self.service = service

    def render_GET(self, request):
        metrics = self.service.host.metrics
        metrics.sample()
        gone: list = []
        request.notifyFinish().addBoth(gone.append)
        d = threads.deferToThread(metrics.exposition)
        d.addCallbacks(self._write, self._failed, callbackArgs=(request, gone),
                       errbackArgs=(request, gone))
        return server.NOT_DONE_YET

    def _write(self, body: bytes, request, gone) -> None:
        if gone:
            return
        request.setHeader(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        request.write(body)
        request.finish()

    def _failed(self, failure, request, gone) -> None:
        log.failure("Collecting the metrics failed", failure)
        if gone:
            return
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(b"collecting the metrics failed\n")
        request.finish()
