"""
L{xmppchat.runsettings}: the admin panel's values (issue 19) stored,
checked as the config file's, laid over the running configuration at
start, after a change and over a re-read config file.
"""

from __future__ import annotations

import pytest
from twisted.internet import defer

from tests.helpers import makeConfig
from tests.storage.test_contract import BACKENDS, openBackend, result
from tests.storage.test_dialog_seed import reopen  # noqa: F401 (a fixture)
from xmppchat.runsettings import PREFIX, RunSettings, SettingError, appKey
from xmppchat.storage import startStorage
from xmppchat.storage.interfaces import DIALOG_GROUP

APP = {"application_id": 7, "auth_key": "file-key", "jwt_secret": "file-secret-0123456789"}


def run(coroutine):
    return result(defer.ensureDeferred(coroutine))


def config(**sections):
    return makeConfig(rest={"apps": [dict(APP)]}, **sections)


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param)
    result(storage.start())
    yield storage
    result(storage.stop())


def test_putAppliesAndStores(storage):
    """A value set is stored under the prefix and read from the running config; revert gives the file's."""
    cfg = config(privacy={"last_seen_default": "contacts"})
    settings = RunSettings(cfg, storage)
    assert run(settings.put("privacy.last_seen_default", "nobody")) == (["privacy.last_seen_default"], 0)
    assert cfg.privacy.last_seen_default == "nobody"
    assert result(storage.settings.getSettings(PREFIX)) == {PREFIX + "privacy.last_seen_default": "nobody"}
    assert run(settings.revert("privacy.last_seen_default")) == (True, 0)
    assert cfg.privacy.last_seen_default == "contacts"
    assert result(storage.settings.getSettings(PREFIX)) == {}
    assert run(settings.revert("privacy.last_seen_default")) == (False, 0)


def test_checkedAsTheConfigFile(storage):
    """A value the config file would refuse is refused with its problems; nothing stored or applied."""
    cfg = config()
    settings = RunSettings(cfg, storage)
    with pytest.raises(SettingError) as e:
        run(settings.put("dialogs.extension_fields", ["a", "b", "c", "d"]))
    assert "at most 3 fields" in str(e.value)
    with pytest.raises(SettingError, match="must be one of"):
        run(settings.put("privacy.last_seen_default", "friends"))
    with pytest.raises(SettingError, match="expected bool"):
        run(settings.put("muc.room_default_public", "yes"))
    with pytest.raises(SettingError, match="at least 16"):
        run(settings.put(appKey(7, "jwt_secret"), "short"))
    with pytest.raises(KeyError):
        run(settings.put("muc.max_rooms", 3))
    assert result(storage.settings.getSettings(PREFIX)) == {}
    assert cfg.dialogs.extension_fields == [] and cfg.rest.apps[0]["jwt_secret"] == APP["jwt_secret"]


def test_removedFieldStrippedFromDialogs(storage):
    """Removing an extension field in the panel unsets it in every dialog, other fields kept."""
    cfg = config(dialogs={"extension_fields": ["topic"]})
    settings = RunSettings(cfg, storage)
    run(settings.configureExtensions())
    run(settings.put("dialogs.extension_fields", ["topic", "color"]))
    ids = [result(storage.dialogs.createDialog(DIALOG_GROUP, 1, name=str(i), extensions={
        "topic": "t", "color": str(i)})).id for i in range(3)]
    assert run(settings.put("dialogs.extension_fields", ["topic"])) == (["dialogs.extension_fields"], 3)
    assert cfg.dialogs.extension_fields == ["topic"]
    assert [result(storage.dialogs.getDialog(i)).extensions for i in ids] == [{"topic": "t"}] * 3


def test_appSecretRotatedInPlace(storage):
    """An application's secret set in the panel replaces the file's in its [[rest.apps]] table."""
    cfg = config()
    table = cfg.rest.apps[0]
    settings = RunSettings(cfg, storage)
    run(settings.put(appKey(7, "auth_key"), "new-key"))
    assert table["auth_key"] == "new-key" and settings.base[appKey(7, "auth_key")] == "file-key"
    run(settings.revert(appKey(7, "auth_key")))
    assert table["auth_key"] == "file-key"


def test_overlayOnAReloadedConfig(storage):
    """A re-read config file gets the panel values laid over it, so a reload that copies keeps them."""
    cfg = config()
    settings = RunSettings(cfg, storage)
    run(settings.put("muc.room_default_public", False))
    run(settings.put(appKey(7, "auth_key"), "new-key"))
    fresh = config()
    settings.overlay(fresh)
    assert fresh.muc.room_default_public is False and fresh.rest.apps == cfg.rest.apps
    cfg.muc.room_default_public = True  # what a reload copying the section would do
    assert settings.apply() == ["muc.room_default_public"] and cfg.muc.room_default_public is False


def test_otherNodeRefreshes(storage):
    """A second process on the same storage takes the first's change when it refreshes."""
    one, two = config(dialogs={"extension_fields": ["topic"]}), config(dialogs={"extension_fields": ["topic"]})
    first, second = RunSettings(one, storage), RunSettings(two, storage)
    run(first.put("dialogs.extension_fields", ["topic", "color"]))
    assert two.dialogs.extension_fields == ["topic"]
    assert run(second.refresh()) == ["dialogs.extension_fields"]
    assert two.dialogs.extension_fields == ["topic", "color"]


def test_panelFieldSurvivesARestart(reopen):
    """A field added in the panel (not in the file) is kept in the dialogs over a restart: the panel's
    values are laid over the config before startStorage applies the extension fields."""
    fresh = reopen
    storage = fresh()
    result(startStorage(storage, config()))
    run(RunSettings(config(), storage).put("dialogs.extension_fields", ["color"]))
    d = result(storage.dialogs.createDialog(DIALOG_GROUP, 1, name="a", extensions={"color": "red"}))
    result(storage.stop())
    storage = fresh()
    restarted = config()
    result(startStorage(storage, restarted))
    try:
        assert restarted.dialogs.extension_fields == ["color"]
        assert result(storage.dialogs.getDialog(d.id)).extensions == {"color": "red"}
    finally:
        result(storage.stop())


def test_refusedStoredValueIgnored(storage):
    """A stored value this config refuses (an import, another application's key) is ignored at load."""
    result(storage.settings.putSetting(PREFIX + "privacy.last_seen_default", "friends"))
    result(storage.settings.putSetting(PREFIX + appKey(8, "auth_key"), "other-app"))
    result(storage.settings.putSetting(PREFIX + "muc.room_default_public", False))
    cfg = config()
    settings = RunSettings(cfg, storage)
    assert run(settings.load()) == ["muc.room_default_public"]
    assert cfg.privacy.last_seen_default == "contacts" and settings.panel == {"muc.room_default_public": False}


def test_roomDefaultAppliesToTheNextRoom():
    """A MUC default set at run time applies to the next room made by joining (a non-member refused),
    not to a room made before it."""
    from tests.helpers import HostHarness
    from tests.muc.test_stock import errorOf, instantRoom, join, presences

    h = HostHarness()
    instantRoom(h)  # team@: made open
    settings = RunSettings(h.config, h.storage)
    run(settings.put("muc.room_default_members_only", True))
    alice, ta = h.connect("alice", "phone")
    join(h, alice, "Alice", room="club@muc.localhost")
    iq = "<x xmlns='jabber:x:data' type='submit'/>"
    h.send(alice, f"<iq type='set' id='c' to='club@muc.localhost'><query xmlns="
                  f"'http://jabber.org/protocol/muc#owner'>{iq}</query></iq>")
    ta.pop()
    bob, tb = h.connect("bob")
    join(h, bob, "Bobby", room="club@muc.localhost")
    assert [errorOf(p) for p in presences(tb)] == ["registration-required"]
    join(h, bob, "Bobby", sid="j2")
    assert {errorOf(p) for p in presences(tb)} == {None}  # alice's and his own


class SlowReads:
    """A settings store whose reads answer only when told (C{release}), with what was stored then."""

    def __init__(self, real):
        self.real = real
        self.pending = []

    def getSettings(self, prefix):
        d = defer.Deferred()
        self.pending.append((d, result(self.real.getSettings(prefix))))
        return d

    def release(self):
        while self.pending:
            d, snapshot = self.pending.pop(0)
            d.callback(snapshot)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_staleRefreshDoesNotUndoALocalPut(storage):
    """Review 19 A5: a refresh (another node's change) whose read started before a local put, and
    ends after it, leaves the put's value in force."""
    from types import SimpleNamespace

    cfg = config()
    settings = RunSettings(cfg, storage)
    slow = SlowReads(storage.settings)
    settings.storage = SimpleNamespace(settings=slow, dialogs=storage.dialogs)
    refresh = defer.ensureDeferred(settings.refresh())  # its read sees nothing set
    put = defer.ensureDeferred(settings.put("privacy.last_seen_default", "nobody"))
    slow.release()  # the stale read lands
    result(refresh)
    result(put)
    slow.release()
    assert result(storage.settings.getSettings(PREFIX)) == {PREFIX + "privacy.last_seen_default": "nobody"}
    assert cfg.privacy.last_seen_default == "nobody"
    assert settings.panel == {"privacy.last_seen_default": "nobody"}


def test_everyNodeReReadsPeriodically(storage):
    """Review 19 A2: a node that missed a change's spread takes it at its next poll (POLL_SECONDS);
    a refused stored value is warned about once, not at every poll."""
    from twisted.internet.task import Clock
    from twisted.logger import globalLogPublisher

    from xmppchat.runsettings import POLL_SECONDS

    clock = Clock()
    one, two = config(), config()
    first, second = RunSettings(one, storage), RunSettings(two, storage)
    run(second.load())
    second.watch(clock)
    try:
        run(first.put(appKey(7, "jwt_secret"), "rotated-secret-0123456789"))
        assert two.rest.apps[0]["jwt_secret"] == APP["jwt_secret"]
        clock.advance(POLL_SECONDS)
        assert two.rest.apps[0]["jwt_secret"] == "rotated-secret-0123456789"
        warned = []
        globalLogPublisher.addObserver(warned.append)
        try:
            result(storage.settings.putSetting(PREFIX + "privacy.last_seen_default", "friends"))
            clock.advance(POLL_SECONDS)
            clock.advance(POLL_SECONDS)
        finally:
            globalLogPublisher.removeObserver(warned.append)
        assert len([e for e in warned if "ignored" in e.get("log_format", "")]) == 1
    finally:
        second.unwatch()


def test_nodeBackInItsClusterReReads(monkeypatch):
    """Review 19 A2: a node that joins its cluster again (after losing Redis) re-reads the panel's
    settings at once; other nodes' events and leaving do not."""
    from types import SimpleNamespace

    from twisted.internet import reactor

    from xmppchat.service import XMPPChatService

    service = XMPPChatService(makeConfig(), reactor)
    service.cluster = SimpleNamespace(nodeId="n1")
    calls = []
    monkeypatch.setattr(service.settings, "refreshQuietly", lambda: calls.append(1))
    service._clusterEvent("cluster-node", {"node": "n2", "state": "joined"})
    service._clusterEvent("cluster-node", {"node": "n1", "state": "left"})
    service._clusterEvent("login", {"jid": "a@b/c"})
    assert calls == []
    service._clusterEvent("cluster-node", {"node": "n1", "state": "joined"})
    assert calls == [1]
