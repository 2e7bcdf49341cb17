"""
The admin API's cluster side (issue 18 item 4) on in-memory nodes: one
node gathers the others' answers over the bus (C{admin-q}/C{admin-r}
control frames), lists a node that does not answer as unreachable after
L{GATHER_SECONDS}, and a kick asked of every node ends a session on
another node.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer

from tests.cluster.harness import ClusterHarness
from tests.helpers import result
from xmppchat.ops.adminapi import GATHER_SECONDS, AdminAgent


def agents(cluster):
    return [AdminAgent(SimpleNamespace(host=n.host, reactor=cluster.clock, config=cluster.config,
                                       reloadHooks={})) for n in cluster.nodes]


def gather(cluster, agent, kind, args, wait=0.0):
    d = defer.ensureDeferred(agent.gather(kind, args))
    cluster.pump(wait)
    return result(d)


def test_sessionsOfEveryNode():
    """The sessions of all nodes, each with its node, asked from a third node."""
    cluster = ClusterHarness()
    node0, node1, alice, _, bob, _ = cluster.pair()
    answers, unreachable = gather(cluster, agents(cluster)[2], "sessions", {})
    assert unreachable == []
    assert sorted((s["jid"], s["node"]) for _, part in answers for s in part) == sorted(
        [(alice.full, "node0"), (bob.full, "node1")])


def test_silentNodeIsUnreachable():
    """A node that does not answer is listed as unreachable once GATHER_SECONDS have passed."""
    cluster = ClusterHarness()
    cluster.pair()
    mine = agents(cluster)
    cluster.nodes[1].node.controlHandlers.clear()  # node1 no longer answers
    answers, unreachable = gather(cluster, mine[0], "stats", {}, wait=GATHER_SECONDS + 0.5)
    assert unreachable == ["node1"]
    assert sorted(part["node"] for _, part in answers) == ["node0", "node2"]


def test_kickOnAnotherNode():
    """A kick asked on node2 ends alice's stream on node0 with policy-violation."""
    cluster = ClusterHarness()
    node0, node1, alice, aliceTransport, bob, _ = cluster.pair()
    answers, _ = gather(cluster, agents(cluster)[2], "kick", {"jid": "alice@localhost", "reason": "bye"})
    assert [full for _, part in answers for full in part] == [alice.full]
    error = aliceTransport.closed.toXml()
    assert "policy-violation" in error and ">bye<" in error


def test_panelSettingReachesEveryNode():
    """Issue 19: a setting changed on node0 is in force on the other nodes once node0 gathers 'settings'
    (each re-reads the shared storage: the extension fields and a rotated key), a silent node unreachable."""
    from tests.helpers import makeConfig
    from xmppchat.runsettings import RunSettings, appKey

    cluster = ClusterHarness()
    cluster.pair()
    configs = [makeConfig(rest={"apps": [{"application_id": 1, "auth_key": "file-key"}]})
               for _ in cluster.nodes]
    mine = [AdminAgent(SimpleNamespace(host=n.host, reactor=cluster.clock, config=config, reloadHooks={},
                                       settings=RunSettings(config, cluster.storage)))
            for n, config in zip(cluster.nodes, configs, strict=True)]
    result(defer.ensureDeferred(mine[0].service.settings.put("dialogs.extension_fields", ["color"])))
    result(defer.ensureDeferred(mine[0].service.settings.put(appKey(1, "auth_key"), "rotated-key")))
    assert configs[1].dialogs.extension_fields == []
    cluster.nodes[2].node.controlHandlers.clear()  # node2 does not answer
    answers, unreachable = gather(cluster, mine[0], "settings", {}, wait=GATHER_SECONDS + 0.5)
    assert unreachable == ["node2"]
    assert dict(answers)["node1"] == ["dialogs.extension_fields", appKey(1, "auth_key")]
    assert configs[1].dialogs.extension_fields == ["color"] and configs[1].rest.apps[0]["auth_key"] == "rotated-key"
    assert configs[2].dialogs.extension_fields == []


def test_blockEndsSessionsOnEveryNode():
    """Issue 19: blocking asked on node2 marks the shared account and ends alice's stream on node0."""
    from xmppchat.ops.admin import moderation

    cluster = ClusterHarness()
    _, _, alice, aliceTransport, bob, bobTransport = cluster.pair()
    host = cluster.nodes[2].host
    routes, audits = {}, []

    async def account(name):
        return await cluster.storage.accounts.getAccountByLocalpart(name)

    api = SimpleNamespace(host=host, storage=cluster.storage, agent=agents(cluster)[2],
                          config=cluster.config, account=account, text=lambda body, key, **_: None,
                          route=lambda method, pattern, handler: routes.update({(method, pattern): handler}),
                          audit=lambda request, action, **details: audits.append(action))
    moderation.install(api)
    d = defer.ensureDeferred(routes[("POST", "users/*/block")](SimpleNamespace(), {}, "alice"))
    cluster.pump()
    answer = result(d)
    assert answer["ended"] == [alice.full] and answer["unreachable"] == []
    assert "policy-violation" in aliceTransport.closed.toXml()
    assert bobTransport.closed is None
    assert result(cluster.storage.accounts.getAccountByLocalpart("alice")).blocked is True
    assert audits == ["block-user"]


def test_offlineClusterIsUnreachable():
    """Review 19 A2: a node cut off from the cluster answers for itself and reports the cluster as
    unreachable, not an empty list (the others did not get a settings change, say)."""
    cluster = ClusterHarness()
    cluster.pair()
    mine = agents(cluster)
    cluster.nodes[0].node.directory.online = False
    answers, unreachable = gather(cluster, mine[0], "stats", {})
    assert unreachable == ["(cluster offline)"] and [part["node"] for _, part in answers] == ["node0"]
