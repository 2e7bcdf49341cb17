"""
The offline/online transition, with every interleaving made explicit.

A message for a user who is becoming available must reach that session
exactly once, after the messages stored before it, and leave nothing in
offline storage (XEP-0160 with RFC 6121 §8.5.2: the offline module's
per-account lane).  The storage calls on that path (account lookup,
offline store, fetch and delete, roster load) are held here, and every
order of releasing them, and of the two clients' stanzas, is played from a
fresh host: a depth-first walk over all the choices.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer

from tests.helpers import HostHarness, sentMessages
from xmppchat.admin import result
from xmppchat.stanzas import delayElement

BOTH_BACKENDS = True

HELD = (("accounts", "getAccountByLocalpart"), ("offline", "storeOffline"), ("offline", "fetchOffline"),
        ("offline", "deleteOffline"), ("roster", "getRoster"))


class HeldStorage:
    """
    Storage calls that wait until the test releases them; a released call
    runs then (not when it was made), as a slow database would.
    """

    def __init__(self, storage):
        self.pending: list = []
        for store, name in HELD:
            self._hold(getattr(storage, store), name)

    def _hold(self, store, name):
        real = getattr(store, name)

        def held(*args, **kwargs):
            d = defer.Deferred()
            self.pending.append((name, lambda: real(*args, **kwargs), d))
            return d

        setattr(store, name, held)

    def release(self, index: int) -> str:
        name, call, d = self.pending.pop(index)
        call().chainDeferred(d)
        return name


class Scenario:
    """
    bob is bound without presence and has one message stored from before;
    the steps left are alice's message to bob's bare JID, bob's initial
    presence, and releasing any held storage call.
    """

    def __init__(self, message: str):
        self.h = h = HostHarness()
        self.alice, _ = h.connect("alice")
        self.bob, self.tb = h.connect("bob", available=False)
        old = "<message from='carol@localhost/x' to='bob@localhost' type='chat' id='old'><body>old</body></message>"
        h.storage.offline.storeOffline("bob", old, h.clock.seconds() - 60, 100)
        self.held = HeldStorage(h.storage)
        self.unsent = {"message": lambda: h.send(self.alice, message),
                       "presence": lambda: h.send(self.bob, "<presence/>")}
        self.trace: list = []

    def options(self) -> list:
        return [("send", name) for name in sorted(self.unsent)] + [
            ("release", i) for i in range(len(self.held.pending))]

    def step(self, option) -> None:
        kind, what = option
        if kind == "send":
            self.unsent.pop(what)()
            self.trace.append(what)
        else:
            self.trace.append(self.held.release(what))


def explore(message: str, check) -> int:
    """
    Play every interleaving of the scenario; C{check(scenario)} at the end
    of each.  Returns how many were played.
    """
    played = 0
    stack = [[]]
    while stack:
        prefix = stack.pop()
        scenario = Scenario(message)
        for index in prefix:
            scenario.step(scenario.options()[index])
        options = scenario.options()
        if options:
            stack.extend(prefix + [i] for i in range(len(options)))
            continue
        check(scenario)
        played += 1
    return played


def deliveredOnce(scenario, expected: list) -> None:
    got = sentMessages(scenario.tb)
    assert [m["id"] for m in got] == expected, scenario.trace
    assert all(m.delay is not None for m in got if m["id"] == "old"), scenario.trace
    assert result(scenario.h.storage.offline.countOffline("bob")) == 0, scenario.trace


#: the five message kinds of the issue: (payload, interleavings at least)
KINDS = {
    "plain chat": ("<body>hi</body>", 90),
    "XEP-0333 markable": ("<body>hi</body><markable xmlns='urn:xmpp:chat-markers:0'/>", 90),
    "XEP-0085 chat state with a body": ("<body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/>", 90),
    "XEP-0308 correction (outside the dialog history)": (
        "<body>hi!</body><replace xmlns='urn:xmpp:message-correct:0' id='first'/>", 20),
    "unknown-namespace payload only (XEP-0160 §3: worth storing)": ("<x xmlns='urn:example:unknown'/>", 20),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_everyInterleaving(kind):
    """RFC 6121 §8.5.2.1.1 / XEP-0160: in every order, a message sent as its recipient logs in is delivered once, after the stored one, and offline is empty."""
    payload, least = KINDS[kind]
    played = explore(f"<message to='bob@localhost' type='chat' id='new'>{payload}</message>",
                     lambda s: deliveredOnce(s, ["old", "new"]))
    assert played > least


def test_delayStampOfStoredMessage():
    """The message stored before keeps its original time in the XEP-0203 delay."""
    scenario = Scenario("<message to='bob@localhost' type='chat' id='new'><body>hi</body></message>")
    start = scenario.h.clock.seconds()
    while scenario.options():
        scenario.step(scenario.options()[0])
    old = [m for m in sentMessages(scenario.tb) if m["id"] == "old"]
    assert old[0].delay["stamp"] == delayElement(start - 60, "x")["stamp"]

