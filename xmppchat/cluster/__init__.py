"""
Cluster mode: several xmppchat processes (nodes) serving one domain, on one
machine or several, sharing the storage (SQLite in WAL mode on one machine,
MongoDB across machines) and a Redis server that holds the session
directory (L{directory}) and carries stanzas between nodes (L{bus}).
L{workers} starts one node per core on a shared listening socket.
"""

from xmppchat.cluster.node import ClusterNode
from xmppchat.cluster.registry import ClusterSessionRegistry

__all__ = ["ClusterNode", "ClusterSessionRegistry"]
