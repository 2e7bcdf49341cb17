"""
Operational events (issue 18): the few things an operator wants to see
in the log and count in the metrics, emitted once where they happen and
consumed by any number of observers (the log lines of L{xmppchat.ops},
the Prometheus counters of the metrics module).

Events are process-wide, like the log: the REST side-service, the c2s
streams and the login throttle emit them without holding a host.  They
are for events an operator counts (logins, lockouts, rooms), never for
per-stanza work: per-stanza counters are plain metric objects.

Catalogue (name: fields; every field is a plain str/int/float/None):

    login           jid, transport, mechanism, address, resumed (bool)
    login-failed    account, transport, mechanism, address, condition
    logout          jid, transport, reason
    lockout         what, seconds
    rate-limited    scope, key
    room-created    room, owner
    room-destroyed  room, reason
    cluster-node    node, state ("joined" / "left")

C{transport} is one of C{c2s}, C{c2s-tls}, C{websocket}, C{bosh}, C{rest}.
Secrets (passwords, tokens, keys) never appear in an event.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger

Observer = Callable[[str, dict], None]

log = Logger()
_observers: list[Observer] = []


def addObserver(observer: Observer) -> None:
    """
    Call C{observer(name, fields)} for every event from now on.
    """
    _observers.append(observer)


def removeObserver(observer: Observer) -> None:
    try:
        _observers.remove(observer)
    except ValueError:
        pass


def emit(name: str, **fields) -> None:
    """
    Tell every observer; an observer that raises is logged and skipped,
    never the caller's problem.
    """
    for observer in tuple(_observers):
        try:
            observer(name, fields)
        except Exception:
            log.failure("Observer of {event} failed", event=name)
