"""
The log an operator reads (issue 18 item 2): the C{[log]} section and one
readable line per operational event.

L{applyLogConfig} puts a level filter (C{level}, and C{levels} per
namespace: a namespace and everything under it, Twisted's
L{LogLevelFilterPredicate}) and the chosen format in front of the
runner's file observer: the one C{twistd} (L{twisted.application.app}'s
C{AppLogger}) or C{twist} (which wraps it in its own level filter, replaced
here) began logging to.  It can run again at reload.  C{text} is Twisted's
classic line (C{time [namespace#level] message}); C{json} is one object a
line: C{time}, C{level}, C{namespace}, C{message}, C{traceback} for a
failure, and for an operational event C{event} and its fields.

L{EventLog} observes L{xmppchat.observe} and writes each event as one
line in the namespace C{xmppchat.events} (e.g. C{login
alice@example.com/phone via websocket (SCRAM-SHA-1) from 203.0.113.5}).
Rate-limit lines are bounded: one per scope and key per
C{rate_limit_interval}, the next one saying how many were left out.
Events carry no secrets (L{xmppchat.observe}), so neither do the lines.

A cluster worker keeps Twisted's own JSON records on its stdout (they
carry level, namespace and fields); the supervisor turns each back into
an event of its log, tagged with the worker's index (L{relayWorkerLine}).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    eventFromJSON,
    formatEvent,
    globalLogBeginner,
    globalLogPublisher,
    textFileLogObserver,
)
from zope.interface import implementer

from xmppchat import observe

NAMESPACE = "xmppchat.events"
TRAFFIC_NAMESPACE = "xmppchat.c2s"
# Keys of a log event that carry an operational event (EventLog) and the
# index of the worker a relayed event came from.
EVENT, FIELDS, WORKER = "xmppchat_event", "xmppchat_fields", "xmppchat_worker"
LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}
# rate-limit keys remembered for bounding; beyond, the oldest go
MAX_KEYS = 10_000


def _clean(value):
    """
    A field as it may appear in a line: control characters escaped (a
    client-chosen name must not start a forged line of its own).
    """
    if isinstance(value, str) and not value.isprintable():
        return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value)
    return value


def describe(name: str, fields: dict) -> str:
    """
    The readable text of one operational event.
    """
    f = dict.fromkeys(("jid", "transport", "mechanism", "address", "account", "condition",
                       "reason"), None)
    f.update({key: _clean(value) for key, value in fields.items()})
    via = f" via {f['transport']}" + (f" ({f['mechanism']})" if f["mechanism"] else "")
    source = f" from {f['address']}" if f["address"] else ""
    if name == "login":
        return f"login {f['jid']}{via}{source}" + (" (resumed)" if f.get("resumed") else "")
    if name == "login-failed":
        who = f" for {f['account']}" if f["account"] else ""
        return f"login failed{who}{via}{source}: {f['condition']}"
    if name == "logout":
        return f"logout {f['jid']} ({f['transport']}): {f['reason']}"
    if name == "lockout":
        return f"Failed-login lockout: {f['what']}, for {f['seconds']} s"
    if name == "rate-limited":
        return f"rate limited: {f['scope']} {f['key']}"
    if name == "room-created":
        return f"room created: {f['room']}" + (f" by {f['owner']}" if f.get("owner") else "")
    if name == "room-destroyed":
        return f"room destroyed: {f['room']} ({f.get('reason') or 'no reason'})"
    if name == "cluster-node":
        return f"cluster node {f['node']} {f['state']}"
    if name == "admin-action":
        details = f" {f['details']}" if f.get("details") else ""
        return f"Admin {f['admin']}: {f['action']}{details}" + source
    return " ".join([_clean(name)] + [f"{k}={v}" for k, v in f.items() if k in fields])


class EventLog:
    """
    An L{xmppchat.observe} observer: one log line per event; at most one
    C{rate-limited} line per scope and key per C{interval} seconds.
    """

    WARN = frozenset(("lockout", "rate-limited"))

    def __init__(self, clock, interval: float = 60, maxKeys: int = MAX_KEYS, observer=None):
        self.log = Logger(namespace=NAMESPACE, observer=observer)
        self.clock = clock
        self.interval = interval
        self.maxKeys = maxKeys
        # (scope, key) -> [start of its window, lines left out in it]
        self.windows: dict[tuple, list] = {}

    def __call__(self, name: str, fields: dict) -> None:
        text = describe(name, fields)
        if name == "rate-limited":
            left = self._bound((fields.get("scope"), fields.get("key")))
            if left is None:
                return
            if left:
                text += f" ({left} more since the last line)"
        level = LogLevel.warn if name in self.WARN else LogLevel.info
        self.log.emit(level, "{text}", text=text, **{EVENT: name, FIELDS: dict(fields)})

    def _bound(self, key) -> int | None:
        """
        C{None} when C{key} was logged less than C{interval} ago (then
        counted), else how many lines the last window left out.
        """
        now = self.clock.seconds()
        window = self.windows.get(key)
        if window is not None and now - window[0] < self.interval:
            window[1] += 1
            return None
        self.windows.pop(key, None)
        if len(self.windows) >= self.maxKeys:
            self._shrink(now)
        self.windows[key] = [now, 0]
        return window[1] if window is not None else 0

    def _shrink(self, now: float) -> None:
        for key in [k for k, (start, left) in self.windows.items()
                    if now - start >= self.interval and not left]:
            del self.windows[key]
        if len(self.windows) >= self.maxKeys:
            for key in list(self.windows)[: max(1, len(self.windows) // 2)]:
                del self.windows[key]


def jsonLine(event: dict) -> str:
    """
    The C{json} format: one object a line.
    """
    message = formatEvent(event)
    worker = event.get(WORKER)
    if worker is not None:
        message = message.removeprefix(f"[worker {worker}] ")
    level = event.get("log_level")
    record = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), timezone.utc)
                        .isoformat(timespec="milliseconds"),
        "level": level.name if level is not None else "info",
        "namespace": event.get("log_namespace") or "-",
        "message": message,
    }
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = repr(failure)
    if worker is not None:
        record["worker"] = worker
    name = event.get(EVENT)
    if name is not None:
        record["event"] = name
        for key, value in (event.get(FIELDS) or {}).items():
            record.setdefault(key, value)
    return json.dumps(record, default=str) + "\n"


def _fileOf(observer):
    """
    The file the runner's observer writes to, or C{None} when it is not a
    file observer (a custom C{--logger}, syslog): then only the levels
    apply, not the format.
    """
    if isinstance(observer, FilteringLogObserver):
        observer = observer._observer  # twist's own level filter: ours replaces it
    return getattr(observer, "_outFile", None) if isinstance(observer, FileLogObserver) else None


@implementer(ILogObserver)
class Route:
    """
    One of the runner's observers behind the level filter, in the
    configured format.
    """

    def __init__(self, original, predicate: LogLevelFilterPredicate):
        self.original = original
        self.outFile = _fileOf(original)
        self.predicate = predicate
        self.observer = original

    def setFormat(self, format: str | None) -> None:
        """
        C{text}, C{json}, or C{None}: the runner's own format (a worker's
        Twisted JSON records, read back by the supervisor).
        """
        if format is None or self.outFile is None:
            self.observer = self.original
            if isinstance(self.original, FilteringLogObserver):
                self.observer = self.original._observer
        elif format == "json":
            self.observer = FileLogObserver(self.outFile, jsonLine)
        else:
            self.observer = textFileLogObserver(self.outFile)

    def __call__(self, event: dict) -> None:
        if self.predicate(event) != PredicateResult.no:
            self.observer(event)


class LogSetup:
    """
    The filter, format and event log of one log publisher (the global one
    in a server; tests bring their own).
    """

    def __init__(self, publisher, clock=None):
        self.publisher = publisher
        self.clock = clock
        self.predicate = LogLevelFilterPredicate()
        self.routes: list[Route] = []
        self.eventLog: EventLog | None = None
        self.format: str | None = None
        self.worker = False

    def wrap(self, observer, runners: bool = False):
        """
        C{observer} behind the filter and in the format when it writes to
        a file, or is one of the C{runners}' observers (syslog, a custom
        C{--logger}: then only the levels apply); else unchanged.
        """
        if isinstance(observer, Route) or (not runners and _fileOf(observer) is None):
            return observer
        route = Route(observer, self.predicate)
        route.setFormat(self.format)
        self.routes.append(route)
        return route

    def apply(self, log, worker: bool | None = None) -> None:
        """
        C{log} (a L{xmppchat.config.LogConfig}) from now on; a C{worker}
        keeps the runner's format (C{None}: what the last call said).
        """
        if worker is not None:
            self.worker = worker
        predicate = self.predicate
        predicate.defaultLogLevel = LEVELS[log.level]
        predicate.clearLogLevels()
        for namespace, level in log.levels.items():
            predicate.setLogLevelForNamespace(namespace, LEVELS[level])
        self.format = None if self.worker else log.format
        for observer in list(self.publisher._observers):
            route = self.wrap(observer)
            if route is not observer:
                self.publisher.removeObserver(observer)
                self.publisher.addObserver(route)
        for route in self.routes:
            route.setFormat(self.format)
        if self.eventLog is None:
            if self.clock is None:
                from twisted.internet import reactor as clock
            else:
                clock = self.clock
            self.eventLog = EventLog(clock, observer=self.publisher)
            observe.addObserver(self.eventLog)
        self.eventLog.interval = log.rate_limit_interval

    def close(self) -> None:
        """
        Put the runner's observers back and stop logging events.
        """
        for route in self.routes:
            self.publisher.removeObserver(route)
            self.publisher.addObserver(route.original)
        self.routes = []
        if self.eventLog is not None:
            observe.removeObserver(self.eventLog)
            self.eventLog = None


_setup: LogSetup | None = None


def effectiveLog(config):
    """
    C{config.log}, with C{[c2s] log_traffic} (debug lines of the c2s
    transports) shown unless C{levels} says otherwise for C{xmppchat.c2s}.
    """
    log = config.log
    if config.c2s.log_traffic and TRAFFIC_NAMESPACE not in log.levels:
        log = dataclasses.replace(log, levels={**log.levels, TRAFFIC_NAMESPACE: "debug"})
    return log


def applyLogConfig(config, worker: bool | None = None) -> LogSetup:
    """
    Apply C{config.log} (a L{xmppchat.config.Config}) to this process's
    log: at start (L{xmppchat.tap.makeService}, before the runner begins
    logging), and again at reload (C{applyLogConfig(newConfig)}).  A
    cluster C{worker} (said at start, remembered at reload) keeps the
    runner's format, which its supervisor reads back.
    """
    global _setup
    if _setup is None:
        _setup = LogSetup(globalLogPublisher)
    _setup.apply(effectiveLog(config), worker)
    beginner = globalLogBeginner
    if beginner._temporaryObserver is not None and "beginLoggingTo" not in vars(beginner):
        # Not logging yet (called from makeService): the runner's
        # observers get the filter and format as twistd / twist begins
        # logging, before the buffered start-up events are replayed to them.
        begin = beginner.beginLoggingTo

        def beginLoggingTo(observers, *args, **kwargs):
            del beginner.beginLoggingTo
            return begin([_setup.wrap(o, runners=True) for o in observers], *args, **kwargs)

        beginner.beginLoggingTo = beginLoggingTo
    return _setup


def relayWorkerLine(line: str, index: int, log: Logger) -> None:
    """
    One line of a worker's output into this log: a Twisted JSON record
    becomes the event it was (level, namespace, fields), tagged with the
    worker; anything else (a crash before logging began) an info line.
    """
    text = line.lstrip("\x1e").strip()
    if not text:
        return
    event = None
    if text.startswith("{"):
        try:
            event = eventFromJSON(text)
        except (ValueError, TypeError, KeyError, AttributeError):
            event = None
    if not isinstance(event, dict) or not isinstance(event.get("log_level"), type(LogLevel.info)):
        log.info("[worker {index}] {line}", index=index, line=text)
        return
    # rendered here, from the worker's flattened fields (its objects
    # did not survive JSON)
    event["xmppchat_message"] = formatEvent(event)
    event.pop("log_flattened", None)
    event[WORKER] = index
    event["log_format"] = "[worker {%s}] {xmppchat_message}" % WORKER
    log.observer(event)
