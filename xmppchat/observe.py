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
    lockout         what, scope ("pair": a source on one account; "source": on all), seconds
    rate-limited    scope, key
    room-created    room, owner
    room-destroyed  room, reason
    cluster-node    node, state ("joined" / "left")
    admin-action    admin, action, details, address

C{transport} is one of C{c2s}, C{c2s-tls}, C{websocket}, C{bosh}, C{rest}.
Secrets (passwords, tokens, keys) never appear in an event.

Where they happen (L{xmppchat.ops.logs} writes each as one line):
  - C{login}: a client stream bound a resource (C{jid} the full JID,
    C{mechanism} the SASL mechanism) or resumed a session (XEP-0198,
    C{resumed} true, also when taken over from another cluster node); a
    REST session created with a password or a JWT (C{jid} the bare JID,
    C{mechanism} C{password} / C{jwt}).
  - C{login-failed}: a SASL failure except the client's own abort
    (C{account} the bare JID tried, when known; C{condition} the RFC 6120
    §6.5 one, C{temporary-auth-failure} while locked out); a refused REST
    login (C{account} as the client named it).
  - C{logout}: a bound session ended here (C{reason}: C{client closed},
    C{connection lost}, C{timeout}, C{shutdown}, C{replaced},
    C{resumption timeout}, C{stream error <condition>}, or what whoever
    ended it put in C{session.state["logout"]} first, e.g. C{kicked}); a
    REST user session deleted by its client.  A session handed over to
    another cluster node does not log out.
  - C{lockout}: L{xmppchat.auth.throttle} locked a source out.
  - C{rate-limited}: C{scope} C{messages} (key: sender's bare JID),
    C{connections} / C{connection-rate} (key: address), C{rest-address}
    (key: address), C{rest-session} (key: first 12 hex digits of the
    token's hash), C{room-openings} (key: account id).
  - C{room-created}: a join created a room (XEP-0045 §10.1); C{owner} its
    bare JID.  C{room-destroyed}: an open room was destroyed (§10.9, its
    dialog deleted, creation cancelled or timed out, a temporary room left
    empty).
  - C{admin-action}: an administrator changed something through the
    admin API or the web panel, signed in or out, or failed to sign in
    (C{admin} his name, C{admin-key} for the bearer key; C{details} a
    readable C{key=value} list; issue 19).
  - C{cluster-node}: this node went online / left (clean stop, lost
    Redis), or found another node expired (C{left}).
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
