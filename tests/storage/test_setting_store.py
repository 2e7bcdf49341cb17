"""
The settings store contract (L{xmppchat.storage.settings}), for every
backend in L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import DIALOG_SERVER_EXTENSIONS
from xmppchat.storage.settings.interface import MAX_VALUE_BYTES


@pytest.fixture(params=BACKENDS)
def storage(request, clock):
    storage = openBackend(request.param, clock)
    yield storage
    result(storage.stop())


@pytest.fixture
def clock():
    from twisted.internet.task import Clock

    return Clock()


def test_putGetDelete(storage):
    """A value round-trips as JSON, is replaced by the next put and forgotten by delete."""
    store = storage.settings
    result(store.putSetting("panel:a", {"x.y": [1, "two", None], "$k": True}))
    result(store.putSetting("panel:b", "text"))
    assert result(store.getSettings("panel:")) == {"panel:a": {"x.y": [1, "two", None], "$k": True},
                                                   "panel:b": "text"}
    result(store.putSetting("panel:b", 3))
    assert result(store.getSettings("panel:b")) == {"panel:b": 3}
    assert result(store.deleteSetting("panel:b")) is True
    assert result(store.deleteSetting("panel:b")) is False
    assert result(store.getSettings("panel:")) == {"panel:a": {"x.y": [1, "two", None], "$k": True}}


def test_prefixIsLiteral(storage):
    """The prefix matches literally (no LIKE or regex wildcards) and leaves other names out."""
    store = storage.settings
    result(store.putSetting("p%.x", 1))
    result(store.putSetting("pa.x", 2))
    result(store.putSetting("q", 3))
    assert result(store.getSettings("p%.")) == {"p%.x": 1}
    assert result(store.getSettings("p.")) == {}


def test_storageMarkersNotListed(storage):
    """The storage's own markers in the same table (configured extension fields) are not panel settings."""
    result(storage.dialogs.configureExtensions(["color"], DIALOG_SERVER_EXTENSIONS))
    result(storage.settings.putSetting("panel:x", 1))
    assert result(storage.settings.getSettings("panel:")) == {"panel:x": 1}


def test_badInputRefused(storage):
    """Bad names and values are failed Deferreds (ValueError), nothing stored."""
    store = storage.settings
    failure(store.putSetting("", 1), ValueError)
    failure(store.putSetting(None, 1), ValueError)
    failure(store.putSetting("x", None), ValueError)
    failure(store.putSetting("x", object()), ValueError)
    failure(store.putSetting("x", "a" * MAX_VALUE_BYTES), ValueError)
    failure(store.deleteSetting(""), ValueError)
    failure(store.getSettings(""), ValueError)
    assert result(store.getSettings("x")) == {}


def test_addKeepsTheFirstValue(storage):
    """addSetting stores only when nothing is there and answers what is stored (issue 19 review #5)."""
    store = storage.settings
    assert result(store.addSetting("secret:x", "first")) == "first"
    assert result(store.addSetting("secret:x", "second")) == "first"
    assert result(store.getSettings("secret:")) == {"secret:x": "first"}
