"""
Issue 15 finding 8, as the attack on every backend: one sender, or one
dialog's fan-out, fills a victim's offline queue so that everyone else's
1-1 messages bounce.  L{OfflineShares} caps each source's part of the
queue.
"""

from __future__ import annotations

import pytest

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import OfflineShares, QuotaExceeded

LIMIT = 8


@pytest.fixture(params=BACKENDS)
def offline(request):
    storage = openBackend(request.param)
    yield storage.offline
    result(storage.stop())


def fromSender(sender, dialogId=None):
    return OfflineShares(sender=sender, dialogId=dialogId, perSender=2, perDialog=3, dialogs=4)


def test_oneSenderCannotFillTheQueue(offline):
    """A flooder stops at his share; another sender's 1-1 message is still stored."""
    for i in range(2):
        result(offline.storeOffline("victim", f"<m{i}/>", 1.0, LIMIT, fromSender("mallory@x")))
    error = failure(offline.storeOffline("victim", "<m/>", 1.0, LIMIT, fromSender("mallory@x")),
                    QuotaExceeded)
    assert "from you" in str(error)
    result(offline.storeOffline("victim", "<hi/>", 1.0, LIMIT, fromSender("alice@x")))
    assert result(offline.countOffline("victim")) == 3


def test_groupFanOutCannotFillTheQueue(offline):
    """Many flooders in one dialog, then in many dialogs, leave room for 1-1 messages."""
    for sender in ("m1@x", "m2@x", "m3@x"):
        result(offline.storeOffline("victim", "<g/>", 1.0, LIMIT, fromSender(sender, "d" * 24)))
    failure(offline.storeOffline("victim", "<g/>", 1.0, LIMIT, fromSender("m4@x", "d" * 24)),
            QuotaExceeded)
    result(offline.storeOffline("victim", "<g/>", 1.0, LIMIT, fromSender("m4@x", "e" * 24)))
    error = failure(offline.storeOffline("victim", "<g/>", 1.0, LIMIT, fromSender("m5@x", "f" * 24)),
                    QuotaExceeded)
    assert "dialog messages" in str(error)
    for sender in ("alice@x", "bob@x"):
        result(offline.storeOffline("victim", "<hi/>", 1.0, LIMIT, fromSender(sender)))
    assert result(offline.countOffline("victim")) == 6


def test_sharesAreCountedPerRecipient(offline):
    """One recipient's full share does not limit the same sender to another recipient."""
    for _ in range(2):
        result(offline.storeOffline("victim", "<m/>", 1.0, LIMIT, fromSender("alice@x")))
    result(offline.storeOffline("other", "<m/>", 1.0, LIMIT, fromSender("alice@x")))


def test_deliveredMessagesFreeTheShare(offline):
    """Once delivered (deleted), a sender's messages no longer count."""
    ids = [result(offline.storeOffline("victim", "<m/>", 1.0, LIMIT, fromSender("alice@x")))
           for _ in range(2)]
    result(offline.deleteOffline("victim", ids))
    result(offline.storeOffline("victim", "<m/>", 1.0, LIMIT, fromSender("alice@x")))


def test_totalLimitStillApplies(offline):
    """Without shares (or within them) the per-user limit is the last word."""
    for _ in range(3):
        result(offline.storeOffline("victim", "<m/>", 1.0, 3))
    error = failure(offline.storeOffline("victim", "<m/>", 1.0, 3, fromSender("alice@x")), QuotaExceeded)
    assert "full" in str(error)
