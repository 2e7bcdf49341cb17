"""
The PEP store: per-account XEP-0060 nodes (name -> configuration, a dict
of JSON values) and their items (id -> the payload's XML), newest first.

Quotas are the caller's numbers (C{[pep]} in the config): L{IPEPStore.createNode}
refuses a node past C{maxNodes}, L{IPEPStore.publishItem} keeps only the
newest C{maxItems} items of a node (XEP-0060 §7.1.3.1: the oldest go).
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred


def checkKey(owner, node) -> None:
    """
    C{ValueError} unless C{owner} and C{node} are non-empty strings.
    """
    if not isinstance(owner, str) or not owner or not isinstance(node, str) or not node:
        raise ValueError("owner and node must be non-empty strings")


class IPEPStore(Protocol):
    def getNode(self, owner: str, node: str) -> Deferred:
        """
        Fires with the node's configuration (a dict), or C{None}.
        """

    def listNodes(self, owner: str) -> Deferred:
        """
        Fires with C{[(node, config)]} of C{owner}, by name.
        """

    def findNodes(self, owners, nodes) -> Deferred:
        """
        Fires with C{[(owner, node, config)]} of the nodes named in C{nodes}
        of all C{owners}, by owner and name: one read for a resource's
        last-item delivery (issue 16 review finding 3).
        """

    def createNode(self, owner: str, node: str, config: dict, maxNodes: int) -> Deferred:
        """
        Create a node; fires with C{True}, or C{False} when it exists (the
        stored configuration is kept).  Fails with L{QuotaExceeded} when
        C{owner} has C{maxNodes} nodes already (0: no limit).
        """

    def setNodeConfig(self, owner: str, node: str, config: dict) -> Deferred:
        """
        Replace a node's configuration, trimming its items to
        C{config["max_items"]}; fires with C{False} when there is no node.
        """

    def deleteNode(self, owner: str, node: str) -> Deferred:
        """
        Delete a node and its items; fires with whether it existed.
        """

    def publishItem(self, owner: str, node: str, itemId: str, payload: str, publisher: str | None,
                    maxItems: int) -> Deferred:
        """
        Store an item as the node's newest (replacing one with the same
        id), then drop the oldest beyond C{maxItems}.  The node must exist.
        """

    def getItems(self, owner: str, node: str, itemIds: list | None = None,
                 maxItems: int | None = None) -> Deferred:
        """
        Fires with C{[(itemId, payload, publisher)]}, newest first: those of
        C{itemIds} that exist, or the newest C{maxItems} (all with C{None}).
        """

    def retractItem(self, owner: str, node: str, itemId: str) -> Deferred:
        """
        Delete one item; fires with whether it existed.
        """
