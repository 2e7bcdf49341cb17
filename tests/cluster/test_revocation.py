"""
Issue 15 finding 4 across the cluster: credentials revoked through the REST
service of one node end the streams they opened on another node (a
C{revoke} control frame on the stanza bus, L{xmppchat.auth.revocation}).
"""

from __future__ import annotations

from tests.api.helpers import ApiHarness
from tests.auth.test_revocation import condition
from tests.cluster.harness import ClusterHarness

REST = {"enabled": True, "apps": [{"application_id": 1, "auth_key": "test-key"}]}


def restOn(cluster, node):
    """
    The REST API served by C{node}: its hooks, the cluster's storage and clock.
    """
    return ApiHarness(storage=cluster.storage, hooks=node.host.hooks, clock=cluster.clock)


def test_passwordChangeOnNodeAEndsStreamOnNodeB():
    """A password changed through node0's REST ends the password streams on node1 with reset."""
    cluster = ClusterHarness(count=2, rest=REST)
    a, b = cluster.nodes
    api = restOn(cluster, a)
    token, userId = api.user("alice", "alice-pw-1")
    localpart = f"{userId}-1"
    _, onB = b.connect(localpart, "phone")
    _, onA = a.connect(localpart, "desk")
    cluster.pump()
    r = api.put(f"/users/{userId}.json", {"user": {"password": "alice-pw-2",
                                                   "old_password": "alice-pw-1"}}, token=token)
    assert r.status == 200, r
    assert condition(onA) == "reset"
    cluster.pump()
    assert condition(onB) == "reset"


def test_accountDeletedOnNodeAEndsStreamOnNodeB():
    """An account deleted through node0's REST ends its streams on node1 with not-authorized."""
    cluster = ClusterHarness(count=2, rest=REST)
    a, b = cluster.nodes
    api = restOn(cluster, a)
    token, userId = api.user("bob")
    _, onB = b.connect(f"{userId}-1", "phone")
    cluster.pump()
    assert api.delete(f"/users/{userId}.json", token=token).status == 200
    cluster.pump()
    assert condition(onB) == "not-authorized"
