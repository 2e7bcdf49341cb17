"""
Roster versions in the roster store (RFC 6121 §2.6, issue 16 item 6), for
every backend in L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, addAccount, openBackend, result
from xmppchat.storage.interfaces import RosterItem


@pytest.fixture(params=BACKENDS)
def clockAndStorage(request):
    clock = Clock()
    clock.advance(1_700_000_000)
    storage = openBackend(request.param, clock)
    yield clock, storage
    result(storage.stop())


def test_neverChangedRosterIsVersionZero(clockAndStorage):
    """A roster nobody ever wrote has version "0"."""
    _, storage = clockAndStorage
    assert result(storage.roster.getRosterVersion("alice")) == "0"


def test_everyWriteAdvancesTheVersion(clockAndStorage):
    """Each set and each removal returns a new version, which getRosterVersion then reads."""
    _, storage = clockAndStorage
    first = result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    assert first == str(1_700_000_000_000)
    second = result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost", name="Bob")))
    third = result(storage.roster.removeRosterItem("alice", "bob@localhost"))
    assert int(first) < int(second) < int(third)
    assert result(storage.roster.getRosterVersion("alice")) == third
    assert result(storage.roster.getRosterVersion("bob")) == "0"


def test_removingNothingKeepsTheVersion(clockAndStorage):
    """Removing an item that is not there answers None and leaves the version alone."""
    _, storage = clockAndStorage
    version = result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    assert result(storage.roster.removeRosterItem("alice", "carol@localhost")) is None
    assert result(storage.roster.getRosterVersion("alice")) == version


def test_invalidItemKeepsTheVersion(clockAndStorage):
    """A refused item changes neither the roster nor its version."""
    _, storage = clockAndStorage
    version = result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    d = storage.roster.setRosterItem("alice", RosterItem("carol@localhost", subscription="bogus"))
    d.addErrback(lambda f: f.trap(ValueError))
    assert result(storage.roster.getRosterVersion("alice")) == version


def test_recreatedAccountNeverReusesAVersion(clockAndStorage):
    """
    An account deleted and created again gets versions its old clients
    never cached: a cached version cannot hide the new roster.
    """
    clock, storage = clockAndStorage
    alice = addAccount(storage, "alice")
    old = result(storage.roster.setRosterItem("alice", RosterItem("bob@localhost")))
    result(storage.roster.setRosterItem("alice", RosterItem("carol@localhost")))
    assert result(storage.accounts.deleteAccount(alice.id)) is True
    assert result(storage.roster.getRosterVersion("alice")) == "0"
    clock.advance(1)
    addAccount(storage, "alice")
    new = result(storage.roster.setRosterItem("alice", RosterItem("dave@localhost")))
    assert int(new) > int(old) + 1
