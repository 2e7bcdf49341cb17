"""
A small fake of the internal PEP API (/work/briefs/pep-api.md: publish,
getItems, retract, deleteNode and the C{pep-published} hook) for the
profile modules' unit tests, so they do not depend on the real service.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer


class FakePEP:
    name = "pep"
    features = ()

    def __init__(self, host):
        self.host = host
        # (owner, node) -> {item id: payload}, in publish order
        self.nodes: dict = {}
        self.options: dict = {}
        self.published: list = []

    def publish(self, owner, node, item, itemId=None, options=None, publisher=None):
        itemId = itemId or f"id{len(self.published)}"
        items = self.nodes.setdefault((owner, node), {})
        items.pop(itemId, None)
        items[itemId] = item
        self.options[(owner, node)] = options
        self.published.append((owner, node, itemId))
        self.host.hooks.fire("pep-published", SimpleNamespace(
            host=self.host, owner=owner, node=node, itemId=itemId, item=item, publisher=publisher))
        return defer.succeed(itemId)

    def getItems(self, owner, node, itemIds=None, maxItems=None):
        items = list(reversed(self.nodes.get((owner, node), {}).items()))
        if itemIds is not None:
            items = [(i, p) for i, p in items if i in itemIds]
        return defer.succeed(items[:maxItems] if maxItems else items)

    def retract(self, owner, node, itemId):
        self.nodes.get((owner, node), {}).pop(itemId, None)
        return defer.succeed(None)

    def deleteNode(self, owner, node):
        self.nodes.pop((owner, node), None)
        return defer.succeed(None)

    def load(self):
        pass

    def unload(self):
        pass


def install(harness) -> FakePEP:
    pep = harness.host.modules["pep"] = FakePEP(harness.host)
    return pep
