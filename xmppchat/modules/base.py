"""
What a feature module is: hooks, options, disco features, stream features.

A module subclasses L{Module}, names itself, lists the disco features it
implements and decorates its handlers with L{hook}.  Loading registers the
handlers on the host's L{HookBus}; unloading removes them.  A handler may
return a Deferred; a L{StanzaError} it raises (or its Deferred fails with)
becomes the matching error reply, any other failure is logged and answered
with C{internal-server-error} for IQ requests.  A L{StorageError} (the
database is unreachable) is answered for every stanza, messages included,
with C{internal-server-error} (of type C{wait}, RFC 6120 §8.3.2: temporary,
retry later), so a message that could not be stored or routed
is never lost silently.  A Deferred returned for a
stanza of a client with stream management holds back that client's XEP-0198
acknowledgement until it fires (the stanza is only "handled" then).  For
the stages of the message pipeline (L{xmppchat.router}) a Deferred pauses
the event: when it fires with a false value the next handlers run (a
store stage), a true value (or an error answered here) ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.dialogs.errors import DialogError
from xmppchat.stanzas import StanzaError, iqResult
from xmppchat.storage.interfaces import StorageError

STORAGE_UNAVAILABLE = "Storage unavailable, try again"


@dataclass
class Option:
    """
    A module option: its type, default and an optional validator returning
    an error message (or C{None}).
    """

    type: type
    default: Any
    validate: Callable[[Any], str | None] | None = None


def hook(name: str, priority: int = 0):
    """
    Mark a method as the handler of the named event C{name}.  A module may
    use C{{domain}} in the name, filled in with the host's domain.
    """

    def decorate(f):
        f.__dict__.setdefault("hookNames", []).append((name, priority))
        return f

    return decorate


class KeyedLocks:
    """
    One C{DeferredLock} per key (a user's localpart, say), made on first use
    and dropped once nothing holds or waits for it, so that work on one key
    runs one at a time without a lock kept for every key ever seen.
    """

    def __init__(self):
        self._locks: dict = {}

    def run(self, key, f, *args) -> defer.Deferred:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()

        def release(result):
            if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                del self._locks[key]
            return result

        return lock.run(f, *args).addBoth(release)


class Module:
    """
    Base class of feature modules.

    @cvar name: the name used in C{modules.enabled}.
    @cvar features: disco#info features (XEP-0030) this module implements.
    """

    name: str = ""
    features: tuple = ()
    options: dict[str, Option] = {}

    def __init__(self, host):
        self.host = host
        self.log = Logger(namespace=f"xmppchat.modules.{self.name}")
        self._registered: list = []

    @property
    def router(self):
        return self.host.router

    @property
    def storage(self):
        return self.host.storage

    def load(self) -> None:
        for attr in dir(type(self)):
            method = getattr(type(self), attr, None)
            for name, priority in getattr(method, "hookNames", ()):
                name = name.format(domain=self.host.domain)
                handler = self._wrap(getattr(self, attr))
                self.host.hooks.add(name, handler, priority)
                self._registered.append((name, handler))
        self.setUp()

    def unload(self) -> None:
        for name, handler in self._registered:
            self.host.hooks.remove(name, handler)
        self._registered = []
        self.tearDown()

    def setUp(self) -> None:
        """
        Called after the hooks are registered.
        """

    def tearDown(self) -> None:
        """
        Called after the hooks are removed.
        """

    def _wrap(self, method):
        def handler(event):
            try:
                result = method(event)
            except StanzaError as e:
                self._sendStanzaError(event, e)
                return True
            except DialogError as e:
                self._sendStanzaError(event, StanzaError(e.condition, text=e.text))
                return True
            except StorageError:
                self.log.failure("{module}: storage failed", module=self.name)
                self._storageError(event)
                return True
            except Exception:
                self.log.failure("{module} failed on an event", module=self.name)
                self._internalError(event)
                return True
            if result is None or result is True:  # most handlers (Deferred's isinstance is an ABC check)
                return result
            if isinstance(result, defer.Deferred):
                result.addErrback(self._failed, event)
                # XEP-0198: the sender's <a/> waits until this is done
                sm = getattr(getattr(event, "origin", None), "sm", None)
                if sm is not None:
                    sm.track(result)
            return result

        handler.__name__ = getattr(method, "__name__", "handler")
        return handler

    def _failed(self, failure, event):
        if failure.check(StanzaError):
            self._sendStanzaError(event, failure.value)
        elif failure.check(DialogError):
            e = failure.value
            self._sendStanzaError(event, StanzaError(e.condition, text=e.text))
        elif failure.check(StorageError):
            self.log.failure("{module}: storage failed", failure, module=self.name)
            self._storageError(event)
        else:
            self.log.failure("{module} failed on an event", failure, module=self.name)
            self._internalError(event)
        return True  # answered: the event ends here (L{HookBus.run})

    def _sendStanzaError(self, event, error: StanzaError) -> None:
        stanza = getattr(event, "stanza", None)
        if stanza is not None:
            self.router.sendError(event.origin, stanza, error.condition, error.text)

    def _internalError(self, event) -> None:
        stanza = getattr(event, "stanza", None)
        if stanza is not None and stanza.name == "iq" and stanza.getAttribute("type") in ("get", "set"):
            self.router.sendError(event.origin, stanza, "internal-server-error")

    def _storageError(self, event) -> None:
        stanza = getattr(event, "stanza", None)
        if stanza is not None and not (stanza.name == "iq" and stanza.getAttribute("type") in ("result", "error")):
            self.router.sendError(event.origin, stanza, "internal-server-error", STORAGE_UNAVAILABLE)

    # -- helpers for handlers --------------------------------------------

    def reply(self, event, child=None) -> bool:
        """
        Send the IQ result for C{event} to its origin, with an optional
        payload; return C{True} so the handler can end with it.
        """
        result = iqResult(event.stanza, child)
        if result.getAttribute("from") is None:
            result["from"] = self.host.domain
        self.sendTo(event, result)
        return True

    @staticmethod
    def requireSession(event):
        """
        The client session that sent C{event}'s stanza; C{forbidden} for
        stanzas the server or a component generated.
        """
        if event.origin is None:
            raise StanzaError("forbidden")
        return event.origin

    def sendTo(self, event, stanza) -> None:
        if event.origin is not None:
            event.origin.send(stanza)
        else:
            self.router.deliver(stanza)
