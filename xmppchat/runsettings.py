"""
Run-time settings: the values an administrator changes in the admin panel
(issue 19, the Chat settings and Applications pages), layered over the
configuration file.

The config file stays the source of every default.  A value changed in
the panel is kept in the storage (L{xmppchat.storage.settings}, under
L{PREFIX}), never written back to the TOML file: a cluster's nodes share
their storage but not their config files, and rewriting a file would lose
its comments and make the nodes' files diverge.  The panel values are laid
over the running configuration, in place (every reader of C{config.x.y}
sees them from its next use):

  - at start (L{xmppchat.storage.startStorage}), before the dialog
    extension fields are applied to the stored dialogs, so a field added in
    the panel survives a restart;
  - after every change (L{RunSettings.put}, L{RunSettings.revert});
  - after every reload of the config file (SIGHUP, C{POST reload}:
    L{RunSettings.overlay} on the re-read config before its parts are
    applied, L{RunSettings.apply} after), so a reload never drops them;
  - on every other node of a cluster, which re-reads them from the storage
    when told that they changed (L{xmppchat.ops.admin.settings}; no value
    travels on the bus), and every L{POLL_SECONDS} on every node in any
    case (L{RunSettings.watch}: a node that was not told takes them then).

The config values shown beside them are those the process started with:
none of these keys is re-read from the file by a reload (as before the
panel), so a changed file applies at the next restart, under any panel
value.  What can be set (L{KEYS}, L{APP_SECRETS}), all of it read where it
applies, so it needs no restart:

  - C{[dialogs] extension_fields}: a field removed is removed from every
    dialog (L{xmppchat.storage.interfaces.IDialogStore.configureExtensions},
    one bulk statement per backend);
  - C{[privacy] last_seen_default}: for every user who never chose;
  - C{[muc] room_default_*} (all four): a room made by joining a new name
    copies them into its stored settings when it is made
    (L{xmppchat.muc.roomconfig.defaults}), so existing rooms keep theirs;
  - the C{auth_key} and C{jwt_secret} of the C{[[rest.apps]]} application,
    rotated to a new random value (L{xmppchat.ops.admin.settings}).
"""

from __future__ import annotations

import copy
import functools

from twisted.internet import defer, task
from twisted.logger import Logger

from xmppchat.config import settingProblems

PREFIX = "panel:"
EXTENSIONS = "dialogs.extension_fields"
KEYS = (EXTENSIONS, "privacy.last_seen_default", "muc.room_default_members_only",
        "muc.room_default_public", "muc.room_default_persistent", "muc.room_default_moderated")
APP_SECRETS = ("auth_key", "jwt_secret")
# every node re-reads the panel values this often (L{RunSettings.watch}):
# a node that missed a change's spread, its bus down, takes it then
POLL_SECONDS = 10

log = Logger()


def appKey(appId: int, what: str) -> str:
    """
    The setting name of an application's secret C{what} (L{APP_SECRETS}).
    """
    return f"rest.apps.{appId}.{what}"


class SettingError(ValueError):
    """
    A value the config file would not accept for its key: C{problems}.
    """

    def __init__(self, key: str, problems: list[str]):
        ValueError.__init__(self, f"{key}: {'; '.join(problems)}")
        self.problems = problems


def _serialised(method):
    """
    C{method} run under the instance's lock: a L{RunSettings.refresh}
    whose read started before a local L{RunSettings.put} cannot lay its
    older values over the newer one (review 19 A5).
    """

    @functools.wraps(method)
    async def run(self, *args):
        return await self._lock.run(lambda: defer.ensureDeferred(method(self, *args)))

    return run


class StripFailed(Exception):
    """
    A change of the extension fields is stored and in force, but removing
    a field from the stored dialogs failed; the same change again retries.
    """


class RunSettings:
    """
    The panel values of one process and the config values under them.

    @ivar base: key -> the config file's value (at start).
    @ivar panel: key -> the panel's value, for the keys the panel set.
    """

    def __init__(self, config, storage):
        self.config = config
        self.storage = storage
        self.base = {key: copy.deepcopy(self._get(config, key)) for key in self._keys(config)}
        self.panel: dict = {}
        self._lock = defer.DeferredLock()
        # the panel values were read once (L{load}): until then a rotated
        # application secret is not in force (review 19 A3)
        self.loaded = False
        self._ignored: dict = {}  # key -> the stored value refused (warned once)
        self._poll = None

    @staticmethod
    def _keys(config) -> list:
        return list(KEYS) + [appKey(app["application_id"], what) for app in config.rest.apps
                             for what in APP_SECRETS]

    @staticmethod
    def _app(apps: list, key: str):
        """
        The C{[[rest.apps]]} table of C{apps} and the secret an L{appKey} names.
        """
        _, _, appId, what = key.split(".")
        return next(app for app in apps if str(app["application_id"]) == appId), what

    def _get(self, config, key):
        if key.startswith("rest.apps."):
            app, what = self._app(config.rest.apps, key)
            return app.get(what)
        section, _, name = key.partition(".")
        return getattr(getattr(config, section), name)

    def _set(self, config, key, value) -> None:
        if key.startswith("rest.apps."):
            app, what = self._app(config.rest.apps, key)
            if value is None:
                app.pop(what, None)
            else:
                app[what] = value
        else:
            section, _, name = key.partition(".")
            setattr(getattr(config, section), name, copy.deepcopy(value))

    def effective(self, key):
        return self.panel.get(key, self.base[key])

    # -- checks ----------------------------------------------------------------

    def check(self, key: str, value) -> None:
        """
        Raise C{KeyError} for a key that cannot be set, L{SettingError}
        with the config file's own problems for a value it would refuse
        (L{xmppchat.config.settingProblems}).
        """
        if key not in self.base:
            raise KeyError(key)
        if key.startswith("rest.apps."):
            apps = copy.deepcopy(self.config.rest.apps)
            app, what = self._app(apps, key)
            app[what] = value
            problems = settingProblems(self.config, "rest.apps", apps)
        else:
            problems = settingProblems(self.config, key, value)
        if problems:
            raise SettingError(key, problems)

    # -- layering --------------------------------------------------------------

    def overlay(self, config) -> None:
        """
        Lay the panel values over C{config} (a re-read config file, before
        its parts are applied: what a reload copies carries them).
        """
        keys = set(self._keys(config))
        for key, value in self.panel.items():
            if key in keys:
                self._set(config, key, value)

    def apply(self) -> list:
        """
        Every key of the running config at its effective value; the keys
        whose value changed.
        """
        changed = []
        for key in self.base:
            value = self.effective(key)
            if self._get(self.config, key) != value:
                self._set(self.config, key, value)
                changed.append(key)
        return changed

    @_serialised
    async def load(self) -> list:
        """
        Read the panel values from the storage and apply them (at start,
        before L{configureExtensions}); the keys changed.
        """
        return await self._load()

    async def _load(self) -> list:
        panel = {}
        for name, value in (await self.storage.settings.getSettings(PREFIX)).items():
            key = name[len(PREFIX):]
            try:
                self.check(key, value)
            except (KeyError, SettingError) as e:
                # another application's key, or an imported value this
                # config refuses: the file's value applies
                if self._ignored.get(key, self) != value:
                    self._ignored[key] = value
                    log.warn("Admin panel setting {key} ignored: {why}", key=key,
                             why="not settable here" if isinstance(e, KeyError) else e)
                continue
            panel[key] = value
        self.panel = panel
        changed = self.apply()
        self.loaded = True
        return changed

    @_serialised
    async def refresh(self) -> list:
        """
        L{load} when another node changed a value, the stored dialogs
        brought in line when the extension fields changed; the keys changed.
        """
        changed = await self._load()
        if EXTENSIONS in changed:
            await self.configureExtensions()
        return changed

    def watch(self, clock, interval: float = POLL_SECONDS) -> None:
        """
        L{refresh} every C{interval} seconds (review 19 A2): a node that
        missed a change's spread (its bus or Redis down, a gather timed
        out) does not keep an old value, a rotated secret above all,
        until it restarts.  One read of the few panel values per period.
        """
        self._poll = task.LoopingCall(self.refreshQuietly)
        self._poll.clock = clock
        self._poll.start(interval, now=False)

    def unwatch(self) -> None:
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        self._poll = None

    def refreshQuietly(self):
        """
        L{refresh} now, once the values were first loaded (a poll, a node
        back in its cluster), what went wrong only logged.
        """
        if not self.loaded:
            return defer.succeed([])
        d = defer.ensureDeferred(self.refresh())
        d.addCallback(lambda changed: changed and log.info(
            "Admin panel settings changed elsewhere, now in force here: {keys}", keys=", ".join(changed)))
        d.addErrback(lambda f: log.warn("Cannot re-read the admin panel settings: {e}",
                                        e=f.getErrorMessage()))
        return d

    async def _applied(self, key: str) -> tuple[list, int]:
        """
        L{apply} after a change of C{key}, then, when C{key} is the
        extension fields, the stored dialogs brought in line whether or
        not the value changed here (idempotent: a put repeated after a
        failed strip finishes it; review 19 A4): C{(keys changed, dialogs
        stripped)}; L{StripFailed} when that fails.
        """
        changed = self.apply()
        if key != EXTENSIONS:
            return changed, 0
        try:
            return changed, await self.configureExtensions()
        except Exception as e:
            log.failure("Bringing the dialogs in line with the extension fields failed")
            raise StripFailed(str(e)) from e

    async def configureExtensions(self) -> int:
        """
        The stored dialogs brought in line with the effective extension
        fields (indexes; a removed field unset in every dialog).
        """
        from xmppchat.storage.interfaces import DIALOG_SERVER_EXTENSIONS

        removed = await self.storage.dialogs.configureExtensions(self.config.dialogs.extension_fields,
                                                                 DIALOG_SERVER_EXTENSIONS)
        if removed:
            log.warn("Removed the dialog extension fields that are not in [dialogs] extension_fields"
                     " (or the admin panel's) from {count} dialogs", count=removed)
        return removed

    # -- changes -----------------------------------------------------------------

    @_serialised
    async def put(self, key: str, value) -> tuple[list, int]:
        """
        Set C{key} to C{value} (checked, L{check}), stored then applied
        here: C{(keys changed, dialogs stripped of a removed field)}.
        """
        self.check(key, value)
        await self.storage.settings.putSetting(PREFIX + key, value)
        self.panel[key] = copy.deepcopy(value)
        return await self._applied(key)

    @_serialised
    async def revert(self, key: str) -> tuple[bool, int]:
        """
        Back to the config file's value: C{(whether the panel had set
        C{key}, dialogs stripped of a removed field)}.
        """
        if key not in self.base:
            raise KeyError(key)
        existed = await self.storage.settings.deleteSetting(PREFIX + key)
        existed = self.panel.pop(key, None) is not None or existed
        return existed, (await self._applied(key))[1]


__all__ = ["PREFIX", "POLL_SECONDS", "KEYS", "APP_SECRETS", "RunSettings", "SettingError", "StripFailed", "appKey"]
