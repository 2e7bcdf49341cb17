"""
Review 18 #1: C{announce to=all} pages the accounts by key, so accounts
deleted (or added) while it runs shift no page: every account that exists
throughout gets the announcement exactly once.  Both backends.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from twisted.internet import defer

from tests.helpers import makeConfig, result
from tests.storage.test_contract import CREDS, backend, clock, storage  # noqa: F401 (fixtures)
from xmppchat.ops.adminapi import ANNOUNCE_PAGE, AdminAPI
from xmppchat.storage.interfaces import OfflineShares


def fakeAPI(storage, clock, fire=lambda name, event: None):
    """An L{AdminAPI} on C{storage}, on a node with no session (offline module stubbed)."""
    offline = SimpleNamespace(shares=lambda stanza, sender: OfflineShares(sender, None, 10, 10, 10))
    api = AdminAPI.__new__(AdminAPI)
    api.storage = storage
    api.announced = {}
    api.host = SimpleNamespace(
        domain="localhost", modules={"offline": offline}, clock=clock, config=makeConfig(),
        hooks=SimpleNamespace(fire=fire), sessions=SimpleNamespace(isConnected=lambda bare: False))
    return api


def test_announceToAllPagesByKey(storage, clock):  # noqa: F811
    """
    A few thousand accounts; the first is deleted once the announcement
    reached it: the others each get it once (paging by offset skipped
    the first account of every later page).
    """
    total = 2 * ANNOUNCE_PAGE + 500
    result(storage.accounts.createAccounts([(f"u{i:05}", CREDS) for i in range(total)]))
    first = result(storage.accounts.getAccountByLocalpart("u00000"))
    got = Counter()

    def fire(name, event):
        assert name == "offline-stored"
        got[event.localpart] += 1
        if event.localpart == "u00000":
            result(storage.accounts.deleteAccount(first.id))

    api = fakeAPI(storage, clock, fire)
    stored, refused = result(defer.ensureDeferred(AdminAPI._storeForOffline(api, None, "hello")))
    assert (stored, refused) == (total, 0)
    assert set(got.values()) == {1} and len(got) == total
    assert result(storage.offline.countAllOffline()) == total - 1  # u00000 deleted with its queue


def test_announceRetryWithSameId(storage, clock):  # noqa: F811
    """
    A retry of C{to=all} with the same id (the CLI timed out, the operator
    runs it again) answers as the first did and stores nothing twice; a new
    id is a new announcement.
    """
    result(storage.accounts.createAccounts([(f"u{i}", CREDS) for i in range(50)]))
    api = fakeAPI(storage, clock)
    gathered = []

    async def gather(kind, args):
        gathered.append(kind)
        return [(None, 2)], []

    api.agent = SimpleNamespace(gather=gather)
    body = {"body": "maintenance at 22:00", "to": "all", "id": "maint-1"}
    first = result(defer.ensureDeferred(api.announce(None, body)))
    assert first == {"id": "maint-1", "online": 2, "unreachable": [], "stored": 50, "refused": 0}
    assert result(defer.ensureDeferred(api.announce(None, body))) == first
    assert gathered == ["announce"] and result(storage.offline.countAllOffline()) == 50
    other = result(defer.ensureDeferred(api.announce(None, {"body": "again", "to": "all"})))
    assert other["id"] != "maint-1" and other["stored"] == 50
    assert result(storage.offline.countAllOffline()) == 100
