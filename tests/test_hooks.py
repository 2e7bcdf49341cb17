"""
Tests for L{xmppchat.hooks.HookBus}.
"""

from xmppchat.hooks import HookBus


def test_priorityOrder():
    """Handlers run from the highest priority down; equal priorities in registration order."""
    bus, calls = HookBus(), []
    bus.add("e", lambda ev: calls.append("low"), priority=-5)
    bus.add("e", lambda ev: calls.append("first"), priority=10)
    bus.add("e", lambda ev: calls.append("second"), priority=10)
    bus.add("e", lambda ev: calls.append("zero"))
    assert bus.fire("e", None) is None
    assert calls == ["first", "second", "zero", "low"]


def test_trueStops():
    """The first handler that returns a true value stops the event and its value is returned."""
    bus, calls = HookBus(), []
    bus.add("e", lambda ev: calls.append(1) or "handled", priority=1)
    bus.add("e", lambda ev: calls.append(2))
    assert bus.fire("e", None) == "handled"
    assert calls == [1]


def test_noHandlers():
    """Firing an event without handlers returns None."""
    assert HookBus().fire("nothing", object()) is None


def test_remove():
    """A removed handler is no longer called, and removing the last one forgets the event."""
    bus = HookBus()

    def handler(ev):
        return True

    bus.add("e", handler)
    assert bus.has("e")
    bus.remove("e", handler)
    assert not bus.has("e")
    assert bus.fire("e", None) is None


def test_raisingHandlerStops():
    """A handler that raises is logged and counts as handled, so nothing runs twice."""
    bus, calls = HookBus(), []

    def broken(ev):
        raise RuntimeError("boom")

    bus.add("e", broken, priority=1)
    bus.add("e", lambda ev: calls.append("later"))
    assert bus.fire("e", None)
    assert calls == []
