"""
The PEP store contract (L{xmppchat.storage.pep}), for every backend in
L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import QuotaExceeded

CONFIG = {"access_model": "presence", "max_items": 2}


@pytest.fixture(params=BACKENDS)
def store(request):
    storage = openBackend(request.param, Clock())
    yield storage.pep
    result(storage.stop())


def test_createAndList(store):
    """A node is created once; its config is read back; nodes list by name; owners are separate."""
    assert result(store.createNode("alice", "b", CONFIG, 10)) is True
    assert result(store.createNode("alice", "b", {"access_model": "open", "max_items": 1}, 10)) is False
    result(store.createNode("alice", "a", CONFIG, 10))
    assert result(store.getNode("alice", "b")) == CONFIG
    assert result(store.getNode("bob", "b")) is None
    assert [n for n, _ in result(store.listNodes("alice"))] == ["a", "b"]
    assert result(store.listNodes("bob")) == []


def test_findNodesOfManyOwners(store):
    """Review finding 3: the named nodes of many owners in one read, by owner and name; others are left out."""
    for owner, node in (("bob", "mood"), ("alice", "tune"), ("alice", "mood"), ("carol", "mood"), ("alice", "x")):
        result(store.createNode(owner, node, dict(CONFIG, node=node), 10))
    found = result(store.findNodes({"alice", "bob", "dave"}, {"mood", "tune"}))
    assert [(o, n) for o, n, _ in found] == [("alice", "mood"), ("alice", "tune"), ("bob", "mood")]
    assert found[0][2] == dict(CONFIG, node="mood")
    assert result(store.findNodes(set(), {"mood"})) == [] and result(store.findNodes({"alice"}, set())) == []


def test_nodeQuota(store):
    """The node past maxNodes fails with QuotaExceeded and is not stored."""
    result(store.createNode("alice", "a", CONFIG, 1))
    failure(store.createNode("alice", "b", CONFIG, 1), QuotaExceeded)
    assert result(store.getNode("alice", "b")) is None


def test_itemsNewestFirstAndTrimmed(store):
    """Items come newest first; republishing an id makes it newest; beyond maxItems the oldest go."""
    result(store.createNode("alice", "n", CONFIG, 10))
    for itemId in ("1", "2", "1", "3"):
        result(store.publishItem("alice", "n", itemId, f"<v xmlns='v'>{itemId}</v>", "alice@localhost/r", 2))
    assert [i for i, _, _ in result(store.getItems("alice", "n"))] == ["3", "1"]
    assert result(store.getItems("alice", "n", maxItems=1))[0][:2] == ("3", "<v xmlns='v'>3</v>")
    assert [i for i, _, _ in result(store.getItems("alice", "n", itemIds=["1", "9"]))] == ["1"]
    assert result(store.getItems("alice", "n", itemIds=[])) == []
    assert result(store.getItems("alice", "other")) == []


def test_retractDeleteAndConfigure(store):
    """Retract removes one item; a smaller max_items trims; deleting a node removes its items."""
    result(store.createNode("alice", "n", {"max_items": 5}, 10))
    for itemId in ("1", "2", "3"):
        result(store.publishItem("alice", "n", itemId, "<v xmlns='v'/>", None, 5))
    assert result(store.retractItem("alice", "n", "2")) is True
    assert result(store.retractItem("alice", "n", "2")) is False
    assert result(store.setNodeConfig("alice", "n", {"max_items": 1})) is True
    assert [i for i, _, _ in result(store.getItems("alice", "n"))] == ["3"]
    assert result(store.getNode("alice", "n")) == {"max_items": 1}
    assert result(store.setNodeConfig("alice", "none", {"max_items": 1})) is False
    assert result(store.deleteNode("alice", "n")) is True
    assert result(store.deleteNode("alice", "n")) is False
    result(store.createNode("alice", "n", {"max_items": 5}, 10))
    assert result(store.getItems("alice", "n")) == []


def test_badKeys(store):
    """An empty owner or node is a failed Deferred (ValueError)."""
    failure(store.getNode("", "n"), ValueError)
    failure(store.createNode("alice", "", CONFIG, 1), ValueError)
