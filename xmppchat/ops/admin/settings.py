"""
The admin API of the panel's Chat settings and Applications pages (issue
19): run-time settings over the config file (L{xmppchat.runsettings}).

    GET    settings                  {"settings": [{key, title, type, options?, config, panel, value}]}
    PUT    settings/<key>            {"value"} -> the setting, "stripped" (dialogs), "unreachable"
    DELETE settings/<key>            back to the config file's value (404: the panel had not set it)
    GET    apps                      {"apps": [{application_id, auth_key (masked), jwt_secret_set, ...}]}
    POST   apps/<id>/rotate          {"what": "auth_key"|"jwt_secret"} -> the new "value", once

Design (documented in the README, "Chat settings"): the config file stays
the source of every default; a value changed here is stored in the
storage's settings store and laid over the running config on this node at
once and on every other node of a cluster (the admin API's C{admin-q}
control frame of kind C{settings}: each node re-reads the store, no value
on the bus); the answer lists the nodes that did not confirm
(C{unreachable}), which take the value at their next poll
(L{xmppchat.runsettings.RunSettings.watch}).  A value is
checked exactly as the config file's key is (L{xmppchat.config.settingProblems}).

Rotation (ConnectyCube's "Admin panel > Overview > Application
credentials"): a new secret made here (C{secrets.token_urlsafe}), kept as
the panel's value of the application's key, in force on every node at once
and shown once, in the answer (only its last 4 characters afterwards).
What it does to what was issued with the old one:

  - C{auth_key}: C{POST /session.json} and C{CB-AuthKey} signups need the
    new key from now on; sessions and tokens already issued stay valid
    until they expire (the key names the application, not a user);
  - C{jwt_secret}: only JWTs signed with the new secret are accepted, and
    every token of the accounts a JWT made is deleted (a leaked secret
    could have minted JWTs with any expiry): their REST calls get 401 at
    once, their XMPP streams end at the next session check
    (C{[limits] session_recheck_seconds}); deleted after the other nodes
    have the new secret, and once more L{GATHER_SECONDS} later (logins in
    flight).  Reverting a rotated secret (C{DELETE
    settings/rest.apps.<id>.jwt_secret}) deletes them the same way.
    Rotating a secret the file does not set is refused (409): JWT login
    stays off unless configured.

Every change is logged with the administrator's name (C{api.audit});
secret values never are.
"""

from __future__ import annotations

import json
import secrets

from twisted.internet import defer
from twisted.logger import Logger

from xmppchat.config import MAX_EXTENSION_FIELDS
from xmppchat.ops.adminapi import GATHER_SECONDS, ApiError
from xmppchat.privacysettings import VISIBILITIES
from xmppchat.runsettings import APP_SECRETS, EXTENSIONS, KEYS, StripFailed, appKey

TITLES = {
    EXTENSIONS: ("Dialog extension fields", "The custom fields dialogs may carry and be filtered by"
                 f" (at most {MAX_EXTENSION_FIELDS}); removing one removes it from every dialog."),
    "privacy.last_seen_default": ("Last seen, by default", "Who sees a user's last activity until he"
                                  " chooses."),
    "muc.room_default_members_only": ("New rooms are members-only", "For rooms made by joining a new"
                                      " name; existing rooms keep theirs."),
    "muc.room_default_public": ("New rooms are public", "Listed in the room directory."),
    "muc.room_default_persistent": ("New rooms are persistent", "Kept when the last occupant leaves."),
    "muc.room_default_moderated": ("New rooms are moderated", "Only participants with voice may speak."),
}
OPTIONS = {"privacy.last_seen_default": list(VISIBILITIES)}
MASK = "\u2022" * 4

log = Logger()


def masked(secret: str | None) -> str | None:
    """
    C{secret} hidden but for its last 4 characters (all of it when it is
    shorter than 8).
    """
    if not secret:
        return None
    return MASK + secret[-4:] if len(secret) >= 8 else MASK


def install(api) -> None:
    """Register the routes of the Chat settings and Applications pages on C{api}."""
    settings = api.service.settings

    def describe(key: str) -> dict:
        title, help_ = TITLES[key]
        value = settings.effective(key)
        out = {"key": key, "title": title, "help": help_,
               "type": "fields" if key == EXTENSIONS else type(value).__name__,
               "config": settings.base[key], "panel": settings.panel.get(key), "value": value}
        if key in OPTIONS:
            out["options"] = OPTIONS[key]
        if key == EXTENSIONS:
            out["max"] = MAX_EXTENSION_FIELDS
        return out

    def settable(key: str, secret: bool = False) -> None:
        if key.startswith("rest.apps.") and key in settings.base and not secret:
            raise ApiError(404, f"{key} is rotated, not set: POST apps/<id>/rotate")
        if key not in settings.base:
            raise ApiError(404, f"No such setting: {key} (known: {', '.join(KEYS)})")

    async def spread() -> list:
        """
        Every other node re-reads the settings; those that did not answer
        (the cluster itself when asking failed: the change is in force
        here all the same, review 19 A4).
        """
        try:
            return (await api.agent.gather("settings", {}))[1]
        except Exception as e:
            log.failure("Telling the other nodes of a settings change failed")
            return [f"cluster ({e})"]

    async def finish(request, action: str, key: str, stripped, **details) -> list:
        """
        A stored change: audited at once, spread; when removing a field
        from the dialogs failed (L{StripFailed}), 503 once that is done
        (the same request again finishes it).  The nodes that did not answer.
        """
        failed = isinstance(stripped, StripFailed)
        api.audit(request, action, key=key, **details, stripped="failed" if failed else stripped)
        unreachable = await spread()
        if failed:
            raise ApiError(503, f"{key} is stored and in force, but removing the field from the dialogs"
                                f" failed ({stripped}): send the same change again to finish it")
        return unreachable

    async def listSettings(request, body):
        return {"settings": [describe(key) for key in KEYS]}

    async def putSetting(request, body, key):
        settable(key)
        if "value" not in body:
            raise ApiError(400, "The body must be {\"value\": ...}")
        value = body["value"]
        try:
            _, stripped = await settings.put(key, value)
        except StripFailed as e:
            stripped = e
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        unreachable = await finish(request, "setting-changed", key, stripped, value=json.dumps(value))
        return {**describe(key), "stripped": stripped, "unreachable": unreachable}

    async def revertSetting(request, body, key):
        settable(key, secret=True)
        try:
            existed, stripped = await settings.revert(key)
        except StripFailed as e:
            existed, stripped = True, e
        if not existed:
            raise ApiError(404, f"{key} has no panel value: it is the config file's already")
        if key.endswith(".jwt_secret"):
            # the tokens minted under the rotated secret go as well (review 19 A7)
            unreachable = await spread()
            revoked = await purgeJWT()
            api.audit(request, "setting-reverted", key=key, stripped=0, revoked_tokens=revoked)
            return {"key": key, "stripped": 0, "unreachable": unreachable, "revoked_tokens": revoked}
        unreachable = await finish(request, "setting-reverted", key, stripped)
        out = describe(key) if key in KEYS else {"key": key}
        return {**out, "stripped": stripped, "unreachable": unreachable}

    async def purgeJWT() -> int:
        """
        The tokens of JWT-made accounts deleted, once every node answering
        has the new JWT secret (L{spread} first), and again
        L{GATHER_SECONDS} later: a JWT login under the old secret that was
        in flight here or on a node meanwhile stores its token after the
        first purge (review 19 A1).  How many the first deleted.
        """
        def again():
            d = defer.maybeDeferred(api.storage.tokens.deleteJWTTokens)
            d.addErrback(lambda f: log.failure("Deleting the JWT-made tokens again failed", f))

        revoked = await api.storage.tokens.deleteJWTTokens()
        api.agent.clock.callLater(GATHER_SECONDS, again)
        return revoked

    def appJSON(app: dict) -> dict:
        appId = app["application_id"]
        return {"application_id": appId, "auth_key": masked(app.get("auth_key")),
                "auth_key_rotated": appKey(appId, "auth_key") in settings.panel,
                "jwt_secret_set": bool(app.get("jwt_secret")),
                "jwt_secret_rotated": appKey(appId, "jwt_secret") in settings.panel}

    async def listApps(request, body):
        # one application per server (config.py): the list is bounded
        return {"apps": [appJSON(app) for app in api.config.rest.apps]}

    async def rotate(request, body, appId):
        app = next((a for a in api.config.rest.apps if str(a["application_id"]) == appId), None)
        if app is None:
            raise ApiError(404, f"No such application: {appId}")
        what = body.get("what")
        if what not in APP_SECRETS:
            raise ApiError(400, "\"what\" must be \"auth_key\" or \"jwt_secret\"")
        if what == "jwt_secret" and not settings.base[appKey(app["application_id"], what)]:
            raise ApiError(409, "This application has no jwt_secret in the config file: JWT login is"
                                " off (set one there to turn it on)")
        value = secrets.token_urlsafe(32)
        await settings.put(appKey(app["application_id"], what), value)
        unreachable = await spread()
        revoked = await purgeJWT() if what == "jwt_secret" else 0
        api.audit(request, "app-secret-rotated", app=app["application_id"], what=what,
                  revoked_tokens=revoked)
        return {**appJSON(app), "what": what, "value": value, "revoked_tokens": revoked,
                "unreachable": unreachable}

    api.route("GET", "settings", listSettings)
    api.route("PUT", "settings/*", putSetting)
    api.route("DELETE", "settings/*", revertSetting)
    api.route("GET", "apps", listApps)
    api.route("POST", "apps/*/rotate", rotate)


__all__ = ["install", "masked"]
