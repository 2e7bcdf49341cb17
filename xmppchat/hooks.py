"""
Named events with priorities, in the manner of Prosody's C{util/events}.

A handler is called with one event object; handlers run from the highest
priority down, and the first one that returns a true value stops the event.
Firing an event with no handlers costs one dictionary lookup.
"""

from __future__ import annotations

from bisect import insort
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

Handler = Callable[[Any], Any]


class HookBus:
    """
    Named events for one host.
    """

    log = Logger()

    def __init__(self):
        # name -> list of (negated priority, sequence, handler), kept sorted
        self._entries: dict[str, list] = {}
        # name -> tuple of handlers in call order (the hot path reads this)
        self._handlers: dict[str, tuple] = {}
        self._sequence = 0

    def add(self, name: str, handler: Handler, priority: int = 0) -> None:
        """
        Register C{handler} for C{name}; higher priorities run first, equal
        priorities in registration order.
        """
        self._sequence += 1
        entries = self._entries.setdefault(name, [])
        insort(entries, (-priority, self._sequence, handler), key=lambda e: e[:2])
        self._handlers[name] = tuple(e[2] for e in entries)

    def remove(self, name: str, handler: Handler) -> None:
        entries = [e for e in self._entries.get(name, []) if e[2] != handler]
        if entries:
            self._entries[name] = entries
            self._handlers[name] = tuple(e[2] for e in entries)
        else:
            self._entries.pop(name, None)
            self._handlers.pop(name, None)

    def has(self, name: str) -> bool:
        return name in self._handlers

    def fire(self, name: str, event: Any) -> Any:
        """
        Call the handlers of C{name} in order until one returns a true value,
        which is returned.  A handler that raises is logged and treated as
        having handled the event (so the stanza is not routed twice).
        """
        handlers = self._handlers.get(name)
        if not handlers:
            return None
        return self._runFrom(handlers, 0, name, event, False)

    def run(self, name: str, event: Any) -> Any:
        """
        Like L{fire}, for the stages of the message pipeline: a handler may
        return a Deferred, which I{pauses} the event instead of ending it.
        When it fires with a false value the next handlers run; a true
        value ends the event.  Returns a true value, a false one, or a
        Deferred firing with one (handler failures are logged and end the
        event, as in L{fire}).
        """
        handlers = self._handlers.get(name)
        if not handlers:
            return None
        return self._runFrom(handlers, 0, name, event, True)

    def _runFrom(self, handlers: tuple, start: int, name: str, event: Any, pause: bool) -> Any:
        for index, handler in enumerate(handlers[start:] if start else handlers, start):
            try:
                result = handler(event)
            except Exception:
                self.log.failure("Handler {handler!r} for {name} failed", handler=handler, name=name)
                return True
            if result:
                if pause and result is not True and isinstance(result, Deferred):
                    return result.addCallbacks(self._goOn, self._failedLate,
                                               (handlers, index + 1, name, event), None, (handler, name))
                return result
        return None

    def _goOn(self, result, handlers, start, name, event):
        if result:
            return result
        return self._runFrom(handlers, start, name, event, True)

    def _failedLate(self, failure, handler, name):
        self.log.failure("Handler {handler!r} for {name} failed", failure, handler=handler, name=name)
        return True


def waiting(result) -> Deferred | None:
    """
    C{result} (what L{HookBus.run} returned) when it is a Deferred that has
    not got its final result yet, else C{None}.  A Deferred's result is
    consumed: call this last.
    """
    if result is None or result is True or not isinstance(result, Deferred):
        return None  # the common answers first: Deferred's isinstance is an ABC check
    box = []
    result.addBoth(box.append)
    return None if box else result


class Query:
    """
    The event of a question hook (C{dialog-consent}, C{notifications-enabled}):
    handlers add answers (C{True}/C{False} or a Deferred firing with one) to
    C{answers} with L{answer} and normally return nothing, so every handler
    gets asked.  Keyword arguments become attributes.
    """

    def __init__(self, host, **fields):
        self.host = host
        self.answers: list = []
        self.__dict__.update(fields)

    def answer(self, value) -> None:
        self.answers.append(value)


def ask(hooks: HookBus, name: str, query: Query):
    """
    Fire the question hook C{name}; return a Deferred firing with the list
    of answers (empty when nobody implements it).  A failed answer is logged
    and counts as C{None}.
    """
    from twisted.internet import defer

    hooks.fire(name, query)
    if not query.answers:
        return defer.succeed([])

    def failed(failure):
        HookBus.log.failure("An answer to {name} failed", failure, name=name)
        return None

    return defer.gatherResults(
        [defer.maybeDeferred(lambda a=a: a).addErrback(failed) for a in query.answers])
