"""
Tests for L{xmppchat.ops.logs} (issue 18 item 2): the readable line of
each operational event, bounded rate-limit lines, the C{[log]} section
(levels, per-namespace levels, text and JSON formats, applied again at
reload) and the relay of cluster workers' log records.
"""

from __future__ import annotations

import io
import json

import pytest
from twisted.internet.task import Clock
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    eventAsJSON,
    jsonFileLogObserver,
    textFileLogObserver,
)

from tests.helpers import makeConfig
from xmppchat import observe
from xmppchat.config import ConfigError, buildConfig
from xmppchat.ops.logs import EventLog, LogSetup, describe, effectiveLog, relayWorkerLine


@pytest.mark.parametrize("name, fields, line", [
    ("login", {"jid": "alice@example.com/phone", "transport": "websocket", "mechanism": "SCRAM-SHA-1",
               "address": "203.0.113.5", "resumed": False},
     "login alice@example.com/phone via websocket (SCRAM-SHA-1) from 203.0.113.5"),
    ("login", {"jid": "alice@example.com/phone", "transport": "c2s", "mechanism": "PLAIN",
               "address": "203.0.113.5", "resumed": True},
     "login alice@example.com/phone via c2s (PLAIN) from 203.0.113.5 (resumed)"),
    ("login-failed", {"account": "alice@example.com", "transport": "rest", "mechanism": "password",
                      "address": "198.51.100.7", "condition": "not-authorized"},
     "login failed for alice@example.com via rest (password) from 198.51.100.7: not-authorized"),
    ("login-failed", {"account": None, "transport": "bosh", "mechanism": None, "address": "::1",
                      "condition": "invalid-mechanism"},
     "login failed via bosh from ::1: invalid-mechanism"),
    ("logout", {"jid": "alice@example.com/phone", "transport": "c2s-tls", "reason": "client closed"},
     "logout alice@example.com/phone (c2s-tls): client closed"),
    ("lockout", {"what": "source 203.0.113.5 for account alice", "seconds": 300},
     "Failed-login lockout: source 203.0.113.5 for account alice, for 300 s"),
    ("rate-limited", {"scope": "messages", "key": "alice@example.com"},
     "rate limited: messages alice@example.com"),
    ("room-created", {"room": "team@muc.example.com", "owner": "alice@example.com"},
     "room created: team@muc.example.com by alice@example.com"),
    ("room-destroyed", {"room": "team@muc.example.com", "reason": None},
     "room destroyed: team@muc.example.com (no reason)"),
    ("cluster-node", {"node": "node-2", "state": "joined"}, "cluster node node-2 joined"),
])
def test_describe(name, fields, line):
    """Each catalogued event reads as one plain line naming who, how and from where."""
    assert describe(name, fields) == line


def test_controlCharactersEscaped():
    """A client-chosen name with a newline cannot forge a line of its own."""
    line = describe("login-failed", {"account": "x\n2026-12-07 [xmppchat#info] login root@x",
                                     "transport": "c2s", "mechanism": "PLAIN", "address": "192.0.2.1",
                                     "condition": "not-authorized"})
    assert "\n" not in line and "x\\x0a2026" in line


def recorder():
    events = []
    publisher = LogPublisher(events.append)
    return events, publisher


def test_rateLimitedLinesBounded():
    """One rate-limit line per scope and key per interval; the next says how many were left out."""
    clock = Clock()
    events, publisher = recorder()
    log = EventLog(clock, interval=60, observer=publisher)
    for _ in range(5):
        log("rate-limited", {"scope": "messages", "key": "alice@localhost"})
    log("rate-limited", {"scope": "messages", "key": "bob@localhost"})
    log("rate-limited", {"scope": "connections", "key": "alice@localhost"})
    clock.advance(59)
    log("rate-limited", {"scope": "messages", "key": "alice@localhost"})
    clock.advance(1)
    log("rate-limited", {"scope": "messages", "key": "alice@localhost"})
    log("rate-limited", {"scope": "messages", "key": "alice@localhost"})
    lines = [e["text"] for e in events]
    assert lines == ["rate limited: messages alice@localhost",
                     "rate limited: messages bob@localhost",
                     "rate limited: connections alice@localhost",
                     "rate limited: messages alice@localhost (5 more since the last line)"]
    assert {e["log_level"] for e in events} == {LogLevel.warn}


def test_rateLimitKeysBounded():
    """At most maxKeys keys are remembered, however many addresses hit a limit."""
    clock = Clock()
    events, publisher = recorder()
    log = EventLog(clock, interval=60, maxKeys=100, observer=publisher)
    for i in range(1000):
        log("rate-limited", {"scope": "connections", "key": f"10.0.{i // 256}.{i % 256}"})
    assert len(log.windows) <= 100 and len(events) == 1000


def test_eventLineCarriesFields():
    """The log event of an operational event keeps its name and fields (for the JSON format)."""
    events, publisher = recorder()
    EventLog(Clock(), observer=publisher)("logout", {"jid": "a@b/c", "transport": "bosh", "reason": "timeout"})
    [event] = events
    assert event["log_namespace"] == "xmppchat.events" and event["log_level"] == LogLevel.info
    assert event["xmppchat_event"] == "logout" and event["xmppchat_fields"]["reason"] == "timeout"


# -- [log]: levels and formats ------------------------------------------------------


@pytest.fixture
def logFile():
    """A publisher writing text to a file, as twistd's, and a LogSetup over it (closed after)."""
    out = io.StringIO()
    publisher = LogPublisher(textFileLogObserver(out))
    setup = LogSetup(publisher, Clock())
    yield out, publisher, setup
    setup.close()


def logConfig(**log):
    return makeConfig(log=log).log


def test_levelAndNamespaceLevels(logFile):
    """level hides what is below it; levels lowers or raises it for a namespace and those under it."""
    out, publisher, setup = logFile
    setup.apply(logConfig(level="info", levels={"xmppchat.c2s": "debug", "xmppchat.muc": "error"}))
    for namespace in ("xmppchat.c2s.tcp.C2STCPProtocol", "xmppchat.router", "xmppchat.muc.room"):
        log = Logger(namespace=namespace, observer=publisher)
        log.debug("debug from {ns}", ns=namespace)
        log.info("info from {ns}", ns=namespace)
        log.error("error from {ns}", ns=namespace)
    text = out.getvalue()
    assert "debug from xmppchat.c2s.tcp" in text and "info from xmppchat.c2s.tcp" in text
    assert "debug from xmppchat.router" not in text and "info from xmppchat.router" in text
    assert "info from xmppchat.muc" not in text and "error from xmppchat.muc" in text


def test_jsonFormat(logFile):
    """json: one object a line with time, level, namespace, message, and an event's name and fields."""
    out, publisher, setup = logFile
    setup.apply(logConfig(format="json"))
    Logger(namespace="xmppchat.service", observer=publisher).warn("port {port} busy", port=5222)
    observe.emit("login", jid="alice@localhost/phone", transport="websocket", mechanism="SCRAM-SHA-1",
                 address="203.0.113.5", resumed=False)
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert set(first) == {"time", "level", "namespace", "message"}
    assert (first["level"], first["namespace"], first["message"]) == ("warn", "xmppchat.service",
                                                                      "port 5222 busy")
    assert first["time"].endswith("+00:00")
    assert second["message"] == "login alice@localhost/phone via websocket (SCRAM-SHA-1) from 203.0.113.5"
    assert second["event"] == "login" and second["namespace"] == "xmppchat.events"
    assert (second["jid"], second["transport"], second["address"], second["resumed"]) == (
        "alice@localhost/phone", "websocket", "203.0.113.5", False)


def test_jsonFormatTraceback(logFile):
    """A failure's traceback is a field of its JSON line, not extra lines."""
    out, publisher, setup = logFile
    setup.apply(logConfig(format="json"))
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        Logger(namespace="xmppchat.router", observer=publisher).failure("Routing failed")
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "critical" and "ZeroDivisionError" in record["traceback"]


def test_applyAgainAtReload(logFile):
    """applyLogConfig runs again at reload: the new level and format apply from then on."""
    out, publisher, setup = logFile
    log = Logger(namespace="xmppchat.c2s", observer=publisher)
    setup.apply(logConfig())
    log.debug("hidden")
    log.info("as text")
    setup.apply(logConfig(level="debug", format="json"))
    log.debug("shown")
    assert len(publisher._observers) == 1  # wrapped once, not twice
    lines = out.getvalue().splitlines()
    assert "hidden" not in out.getvalue()
    assert lines[0].endswith("[xmppchat.c2s#info] as text")
    assert json.loads(lines[1])["message"] == "shown"


def test_twistFilterReplaced():
    """twist's own level filter (info) gives way to [log]: level debug shows debug lines."""
    out = io.StringIO()
    publisher = LogPublisher(FilteringLogObserver(jsonFileLogObserver(out), [LogLevelFilterPredicate()]))
    setup = LogSetup(publisher, Clock())
    try:
        setup.apply(logConfig(level="debug"))
        Logger(namespace="xmppchat.c2s", observer=publisher).debug("RECV hello")
    finally:
        setup.close()
    assert out.getvalue().endswith("[xmppchat.c2s#debug] RECV hello\n")


def test_otherObserversUntouched():
    """An observer that writes no file (a custom --logger, a test's list) is left as it is."""
    events = []
    publisher = LogPublisher(events.append)
    setup = LogSetup(publisher, Clock())
    try:
        setup.apply(logConfig(format="json"))
    finally:
        setup.close()
    assert publisher._observers == [events.append]


@pytest.mark.parametrize("section, problem", [
    ({"level": "verbose"}, "log.level: must be one of 'debug', 'info', 'warn', 'error', not 'verbose'"),
    ({"levels": {"xmppchat.c2s": "loud"}}, "log.levels.xmppchat.c2s: must be one of"),
    ({"levels": {"": "debug"}}, "log.levels: not a namespace"),
    ({"levels": ["xmppchat.c2s"]}, "log.levels: expected dict, got list"),
    ({"format": "xml"}, "log.format: must be 'text' or 'json', not 'xml'"),
    ({"rate_limit_interval": 0}, "log.rate_limit_interval: must be at least 1 second"),
])
def test_logConfigValidated(section, problem):
    """Bad [log] values are configuration errors naming the key."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"log": section})
    assert any(problem in p for p in e.value.problems), e.value.problems


def test_logConfigDefaults():
    """Defaults: info, no namespace levels, text, one rate-limit line per key per minute."""
    log = buildConfig({}).log
    assert (log.level, log.levels, log.format, log.rate_limit_interval) == ("info", {}, "text", 60)


# -- cluster workers ----------------------------------------------------------------


def workerRecord(level, namespace, format, **fields) -> str:
    """A line of a worker's stdout: Twisted's JSON record of one event."""
    event = {"log_level": level, "log_namespace": namespace, "log_format": format,
             "log_time": 1_796_000_000.25, **fields}
    return "\x1e" + eventAsJSON(event)


def test_workerRecordRelayedWithLevelAndNamespace():
    """A worker's record becomes the same event in the supervisor's log, tagged with the worker."""
    out = io.StringIO()
    publisher = LogPublisher(textFileLogObserver(out))
    setup = LogSetup(publisher, Clock())
    setup.apply(logConfig(format="json", levels={"xmppchat.c2s": "warn"}))
    supervisor = Logger(namespace="xmppchat.cluster.workers", observer=publisher)
    try:
        relayWorkerLine(workerRecord(LogLevel.info, "xmppchat.events", "{text}", text="login a@b/c via c2s",
                                     xmppchat_event="login", xmppchat_fields={"jid": "a@b/c"}),
                        1, supervisor)
        relayWorkerLine(workerRecord(LogLevel.info, "xmppchat.c2s.tcp", "hidden {x}", x=1), 0, supervisor)
        relayWorkerLine(workerRecord(LogLevel.error, "xmppchat.c2s.tcp", "shown {x}", x=2), 0, supervisor)
        relayWorkerLine("Traceback (most recent call last):", 0, supervisor)
    finally:
        setup.close()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["level"], r["namespace"], r["message"], r.get("worker")) for r in records] == [
        ("info", "xmppchat.events", "login a@b/c via c2s", 1),
        ("error", "xmppchat.c2s.tcp", "shown 2", 0),
        ("info", "xmppchat.cluster.workers", "[worker 0] Traceback (most recent call last):", None),
    ]
    assert records[0]["time"] == "2026-11-30T00:53:20.250+00:00"
    assert records[0]["event"] == "login" and records[0]["jid"] == "a@b/c"


def test_workerRecordAsText():
    """In the text format a relayed line shows the worker's namespace, level and index."""
    out = io.StringIO()
    publisher = LogPublisher(textFileLogObserver(out))
    relayWorkerLine(workerRecord(LogLevel.warn, "xmppchat.service", "port {p} busy", p=5222), 3,
                    Logger(observer=publisher))
    assert out.getvalue().endswith("[xmppchat.service#warn] [worker 3] port 5222 busy\n")


def test_workerKeepsTwistedRecords():
    """A worker keeps the runner's Twisted JSON records (what its supervisor reads), filtered by [log]."""
    out = io.StringIO()
    publisher = LogPublisher(FilteringLogObserver(jsonFileLogObserver(out), [LogLevelFilterPredicate()]))
    setup = LogSetup(publisher, Clock())
    try:
        setup.apply(logConfig(format="text", level="warn"), worker=True)
        log = Logger(namespace="xmppchat.c2s", observer=publisher)
        log.info("hidden")
        log.warn("shown {n}", n=1)
        setup.apply(logConfig(format="json", level="info"))  # a reload in the worker
        log.info("reloaded {n}", n=2)
    finally:
        setup.close()
    records = [json.loads(r) for r in out.getvalue().split("\x1e")[1:]]
    assert [r["log_format"] for r in records] == ["shown {n}", "reloaded {n}"]


def test_logTrafficShownAtInfo():
    """[c2s] log_traffic (debug lines) shows without a [log] change, unless levels names xmppchat.c2s."""
    assert effectiveLog(makeConfig()).levels == {}
    assert effectiveLog(makeConfig(c2s={"log_traffic": True})).levels == {"xmppchat.c2s": "debug"}
    quiet = makeConfig(c2s={"log_traffic": True}, log={"levels": {"xmppchat.c2s": "info"}})
    assert effectiveLog(quiet).levels == {"xmppchat.c2s": "info"}
