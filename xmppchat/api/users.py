"""
REST users (reference/connectycube-sdk.md §4.3): signup C{POST /users.json},
C{GET /users/<id>.json}, C{GET /users.json} and C{GET /users/v2.json}
with filters, C{PUT}/C{DELETE /users/<id>.json} on one's own account, and
the C{by_login}, C{by_email} and C{external/<id>} finders.

Accounts created here (or by a token) get the XMPP localpart
C{<id>-<appId>} ("Identity model" in ARCHITECTURE.md).  Profile fields
live in C{Account.profile}; C{profile["privacy_settings"]} holds the
user's typing-indicator and read-receipt switches and his last-seen
visibility (L{xmppchat.privacysettings}), which the chat layer reads:
every change fires C{account-updated}, so they apply to his live sessions
at once (issue 17 items 3 and 4).
"""

from __future__ import annotations

import hmac

import json
import re
import secrets

from twisted.logger import Logger
from twisted.web import http

from xmppchat.api.json import (
    APP,
    EXTERNAL_ID,
    PUBLIC,
    USER,
    PAGING,
    ApiError,
    JSONResource,
    QueryLimits,
    buildQuery,
    baseError,
    fieldError,
    forbidden,
    isoTime,
    notFound,
    optionalString,
    requireDict,
    route,
    toInt,
)
from xmppchat.auth.credentials import Credentials, deriveCredentials
from xmppchat.hooks import Query, ask
from xmppchat.privacysettings import (
    LAST_SEEN,
    NOBODY,
    SWITCHES,
    VISIBILITIES,
    AccountUpdated,
    effectiveSettings,
    lastSeenOf,
)
from xmppchat.storage.interfaces import ID_PLACEHOLDER, AlreadyExists

log = Logger()

LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{2,49}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_TAGS = 10
MAX_TAG = 64

DEFAULT_PRIVACY = {key: {"enabled": True} for key in SWITCHES}
PRIVACY_KEYS = (*SWITCHES, LAST_SEEN)

# Profile fields: name -> maximum length (strings).
PROFILE_STRINGS = {
    "full_name": 255, "phone": 64, "website": 255, "avatar": 1024, "timezone": 64,
    "facebook_id": 64, "twitter_id": 64,
}
PROFILE_INTS = ("blob_id",)
SETTABLE = (set(PROFILE_STRINGS) | set(PROFILE_INTS)
            | {"login", "email", "password", "old_password", "custom_data", "tag_list",
               "user_tags", "privacy_settings", "external_user_id", "external_id"})
IGNORED = {"id", "created_at", "updated_at", "last_request_at", "is_guest", "parents_ids"}

# REST filter name -> account query field (others are profile keys).
QUERY_NAMES = {"external_user_id": "externalId", "external_id": "externalId"}
# The fields GET /users.json may filter and sort on: those userJSON shows
# to every caller.  Not the e-mail (only its owner sees it: a range filter
# on it was an oracle that recovered hidden addresses, issue 15 finding
# 10), nor privacy settings, localparts or any other stored key.
QUERYABLE = frozenset((
    "id", "login", "full_name", "phone", "website", "created_at", "updated_at",
    "last_request_at", "external_user_id", "external_id", "facebook_id", "twitter_id",
    "custom_data", "blob_id", "avatar", "user_tags", "timezone", "is_guest"))


def userJSON(ctx, account, viewer=None) -> dict:
    """
    The SDK's C{User} object; the e-mail and privacy settings only for the
    user themselves (C{viewer} C{None} means the user).
    """
    profile = account.profile or {}
    own = viewer is None or viewer == account.id
    tags = profile.get("user_tags") or []
    out = {
        "id": account.id,
        "login": account.login,
        "email": account.email if own else None,
        "full_name": profile.get("full_name"),
        "phone": profile.get("phone"),
        "website": profile.get("website"),
        "created_at": isoTime(account.createdAt),
        "updated_at": isoTime(account.updatedAt),
        "last_request_at": profile.get("last_request_at"),
        "external_user_id": account.externalId,
        "external_id": account.externalId,
        "facebook_id": profile.get("facebook_id"),
        "twitter_id": profile.get("twitter_id"),
        "custom_data": profile.get("custom_data"),
        "blob_id": profile.get("blob_id"),
        "avatar": profile.get("avatar"),
        "user_tags": ",".join(tags) if tags else None,
        "timezone": profile.get("timezone"),
        "is_guest": bool(profile.get("is_guest", False)),
    }
    if own:
        out["privacy_settings"] = effectiveSettings(account.profile, ctx.privacy.last_seen_default)
    return out


async def findAccount(storage, attribute: str, value):
    """
    The account whose C{attribute} (C{id}, C{login}, C{email},
    C{externalId}, C{localpart}) is C{value}, or C{None}.
    """
    accounts = storage.accounts
    if attribute == "id":
        return await accounts.getAccount(value)
    getter = getattr(accounts, "getAccountBy" + attribute[0].upper() + attribute[1:], None)
    if getter is None:
        raise baseError(http.NOT_IMPLEMENTED, f"finding users by {attribute} is not supported")
    return await getter(value)


async def createRestAccount(ctx, appId: int, password: str | None, login=None, email=None,
                            externalId=None, profile=None, jwt=False):
    """
    Create an account with the localpart C{<id>-<appId>}.  Without a
    password it gets unguessable credentials, so session tokens can still
    carry SCRAM keys derived with its salt.  C{jwt} marks an account made
    by a JWT login (L{Account.jwt}).
    """
    secret = password if password is not None else secrets.token_urlsafe(32)
    credentials = (await ctx.runCPU(deriveCredentials, secret)).toDict()
    profile = dict(profile or {})
    profile.setdefault("privacy_settings", {k: dict(v) for k, v in DEFAULT_PRIVACY.items()})
    return await ctx.storage.accounts.createAccount(
        f"{ID_PLACEHOLDER}-{appId}", credentials, login=login, email=email,
        externalId=externalId, profile=profile, jwt=jwt)


def _tags(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise fieldError("tag_list", "must be a comma-separated string or a list of strings")
    tags = []
    for item in items:
        tag = item.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise fieldError("tag_list", f"tags are at most {MAX_TAG} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise fieldError("tag_list", f"at most {MAX_TAGS} tags")
    return tags


def _lastSeen(entry):
    """
    The visibility of C{{"visibility": ...}}; C{None} (back to the server
    default) for C{{"visibility": null}}.
    """
    if not (isinstance(entry, dict) and set(entry) == {"visibility"}
            and (entry["visibility"] is None or entry["visibility"] in VISIBILITIES)):
        choices = "|".join(f'"{v}"' for v in VISIBILITIES)
        raise fieldError("privacy_settings", f'last_seen must be {{"visibility": {choices}|null}}')
    return entry["visibility"]


def _privacy(value, profile: dict) -> dict:
    """
    The stored C{privacy_settings} after applying C{value} to those of
    C{profile}: every switch, and C{last_seen} only when the user chose
    (else the server default applies, whatever it is then).
    """
    if not isinstance(value, dict):
        raise fieldError("privacy_settings", "must be an object")
    out = effectiveSettings(profile, None)
    for key, entry in value.items():
        if key not in PRIVACY_KEYS:
            raise fieldError("privacy_settings", f"unknown setting {key!r} (known: {', '.join(PRIVACY_KEYS)})")
        if key == LAST_SEEN:
            out[key] = {"visibility": _lastSeen(entry)}
            continue
        if not (isinstance(entry, dict) and set(entry) == {"enabled"}):
            raise fieldError("privacy_settings", f"{key} must be {{\"enabled\": true|false}}")
        enabled = entry["enabled"]
        if enabled in (0, 1) and not isinstance(enabled, float):
            enabled = bool(enabled)
        if not isinstance(enabled, bool):
            raise fieldError("privacy_settings", f"{key}.enabled must be a boolean")
        out[key] = {"enabled": enabled}
    if out[LAST_SEEN]["visibility"] is None:
        del out[LAST_SEEN]
    return out


def validateProfile(ctx, data: dict, profile: dict) -> dict:
    """
    Apply the profile fields of C{data} to a copy of C{profile}; 422 for
    wrong types, unknown fields and oversized custom data.
    """
    unknown = sorted(set(data) - SETTABLE - IGNORED)
    if unknown:
        raise fieldError(unknown[0], "unknown field")
    out = dict(profile)
    for name, maxLength in PROFILE_STRINGS.items():
        if name in data:
            value = optionalString(data, name, maxLength)
            if value is None or value == "":
                out.pop(name, None)
            else:
                out[name] = value
    if "blob_id" in data:
        value = data["blob_id"]
        out["blob_id"] = None if value in (None, "") else toInt(value, "blob_id")
    if "custom_data" in data:
        value = data["custom_data"]
        if isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if value is not None and not isinstance(value, str):
            raise fieldError("custom_data", "must be a string")
        limit = ctx.config.max_custom_data_bytes
        if value is not None and len(value.encode("utf-8")) > limit:
            raise fieldError("custom_data", f"is too large (maximum is {limit} bytes)")
        if value:
            out["custom_data"] = value
        else:
            out.pop("custom_data", None)
    for name in ("tag_list", "user_tags"):
        if name in data:
            out["user_tags"] = _tags(data[name])
    if "privacy_settings" in data:
        out["privacy_settings"] = _privacy(data["privacy_settings"], out)
    return out


def _matching(data, name, pattern, message):
    """
    C{data[name]} if it is a string matching C{pattern}; C{None} when
    absent or empty; 422 with C{message} otherwise.
    """
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise fieldError(name, message)
    return value


def _login(data):
    return _matching(data, "login", LOGIN, "must be 3-50 characters: letters, digits and . _ @ + -")


def _email(data):
    value = _matching(data, "email", EMAIL, "is not a valid e-mail address")
    return value.lower() if value else None


def _password(data, name="password"):
    value = data.get(name)
    if not isinstance(value, str):
        raise fieldError(name, "must be a string")
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise fieldError(name, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return value


async def _taken(ctx, e: AlreadyExists, exceptId=None, **wanted) -> ApiError:
    """
    The 422 naming the field another account holds (looked up, since
    backends word their duplicate errors differently).
    """
    for name, wire in (("login", "login"), ("email", "email"), ("externalId", "external_user_id")):
        value = wanted.get(name)
        if value is None:
            continue
        other = await findAccount(ctx.storage, name, value)
        if other is not None and other.id != exceptId:
            return fieldError(wire, "has already been taken")
    return baseError(422, str(e) or "already exists")


class UsersResource(JSONResource):
    """
    C{/users...}.
    """

    def _appFor(self, call) -> int:
        """
        The application of a signup: the caller's session or the
        C{CB-AuthKey} header.
        """
        if call.session is not None:
            return call.session.appId
        authKey = call.request.getHeader("cb-authkey")
        if authKey:
            self.ctx.sessions.starting()  # the key may be rotated (review 19 A3)
            for appId, app in self.ctx.apps.items():
                if hmac.compare_digest(app["auth_key"].encode("utf-8"), authKey.encode("utf-8")):
                    return appId
        token = call.request.getHeader("cb-token")
        if token:
            raise baseError(http.UNAUTHORIZED, "Required session does not exist")
        raise baseError(http.UNAUTHORIZED, "Signup needs an application session or CB-AuthKey")

    @route("POST", auth=PUBLIC)
    async def signup(self, call):
        appId = self._appFor(call)
        body = requireDict(call.body, "body")
        data = requireDict(body.get("user"), "user")
        if not data:
            raise fieldError("user", "is required")
        login, email = _login(data), _email(data)
        if login is None and email is None:
            raise fieldError("login", "login or email is required")
        password = _password(data)
        externalId = _matching(data, "external_user_id", EXTERNAL_ID,
                               "must be 1-128 characters of a-z 0-9 @ _ -")
        if externalId is not None and self.ctx.sessions.jwtApp() is not None:
            # Issue 15 finding 1: JWT logins resolve external ids; a
            # password signup must not hold one before its JWT user comes.
            raise fieldError("external_user_id", "is reserved for JWT logins in this application"
                             " (a JWT with this user_id creates its user)")
        profile = validateProfile(self.ctx, {k: v for k, v in data.items() if k not in (
            "login", "email", "password", "external_user_id", "external_id")}, {})
        try:
            account = await createRestAccount(self.ctx, appId, password, login=login, email=email,
                                              externalId=externalId, profile=profile)
        except AlreadyExists as e:
            raise await _taken(self.ctx, e, login=login, email=email, externalId=externalId) from None
        return http.CREATED, {"user": userJSON(self.ctx, account)}

    async def _get(self, userId: str):
        try:
            accountId = toInt(userId, "id")
        except ApiError:
            raise notFound("User") from None
        account = await self.ctx.storage.accounts.getAccount(accountId)
        if account is None:
            raise notFound("User")
        return account

    @route("GET", "{userId}", auth=APP)
    async def show(self, call, userId):
        account = await self._get(userId)
        return {"user": userJSON(self.ctx, account, call.session.userId)}

    @route("GET", "by_login", auth=APP)
    async def byLogin(self, call):
        return await self._by(call, "login", call.params.string("login"))

    @route("GET", "by_email", auth=APP)
    async def byEmail(self, call):
        email = call.params.string("email")
        return await self._by(call, "email", email.lower() if email else email)

    @route("GET", "external/{externalId}", auth=APP)
    async def byExternal(self, call, externalId):
        return await self._by(call, "externalId", externalId)

    async def _by(self, call, attribute, value):
        if not value:
            raise fieldError(attribute, "is required", 400)
        account = await findAccount(self.ctx.storage, attribute, value)
        if account is None:
            raise notFound("User")
        return {"user": userJSON(self.ctx, account, call.session.userId)}

    async def _list(self, call, skipNames, limit: int):
        """
        C{(total, accounts)} for the call's filters and sort.
        """
        query = buildQuery(call.params, names=QUERY_NAMES, ints=("id", "blob_id"),
                           floats=("created_at", "updated_at"), defaultLimit=limit,
                           maxLimit=self.ctx.config.max_page, skipNames=skipNames,
                           reserved=PAGING | {"filter", "order"},
                           limits=QueryLimits.of(self.ctx.config), visible=QUERYABLE)
        accounts = self.ctx.storage.accounts
        total = await accounts.countAccounts(query)
        return query, total, await accounts.findAccounts(query)

    @route("POST", "password/reset", auth=PUBLIC, text=True)
    async def resetPassword(self, call):
        raise baseError(http.NOT_IMPLEMENTED,
                        "Password reset by e-mail is not available: ask the administrator "
                        "(python -m xmppchat.admin passwd)")

    @route("GET", "online", auth=USER)
    async def online(self, call):
        """
        Users available over XMPP in this process (RFC 6121 §4.2: they sent
        presence).  Issue 15 finding 9: a user session only (an application
        session gets 403), and without the users whose privacy lists keep
        their presence from the caller (blocks, XEP-0126 invisibility: the
        C{presence-hidden} question hook of the privacy module), nor those
        whose last seen is C{nobody} (issue 17 item 4: being online is their
        last activity; read from the live sessions' accounts, no lookup).
        """
        registry = self.ctx.online
        default = self.ctx.privacy.last_seen_default
        sessions = [s for s in registry.all() if s.account is not None and s.available and (
            s.account.id == call.account.id or lastSeenOf(s.account, default) != NOBODY)] \
            if registry is not None else []
        hidden = set()
        if sessions and self.ctx.hooks is not None:
            viewer = f"{call.account.localpart}@{self.ctx.server.domain}"
            answers = await ask(self.ctx.hooks, "presence-hidden",
                                Query(None, viewer=viewer, peers={s.bare for s in sessions}))
            for answer in answers:
                hidden.update(answer or ())
        ids = sorted({s.account.id for s in sessions if s.bare not in hidden})
        if call.params.flag("count"):
            return {"count": len(ids)}
        limit = call.params.integer("limit", 10, 1, self.ctx.config.max_page)
        offset = call.params.integer("offset", 0, 0)
        page = ids[offset:offset + limit]
        found = await self.ctx.storage.accounts.getAccounts(page)
        viewer = call.session.userId
        return {"users": [userJSON(self.ctx, found[i], viewer) for i in page if i in found]}

    @route("GET", "v2", auth=APP)
    async def listV2(self, call):
        query, total, accounts = await self._list(call, ("offset", "skip"), 10)
        viewer = call.session.userId
        return {"limit": query.limit, "skip": query.skip, "total_entries": total,
                "items": [userJSON(self.ctx, a, viewer) for a in accounts]}

    @route("GET", auth=APP)
    async def listV1(self, call):
        perPage = call.params.integer("per_page", 10, 1, self.ctx.config.max_page)
        page = call.params.integer("page", 1, 1)
        call.params.values.update(limit=str(perPage), skip=str((page - 1) * perPage))
        _, total, accounts = await self._list(call, ("skip",), perPage)
        viewer = call.session.userId
        return {"current_page": page, "per_page": perPage, "total_entries": total,
                "items": [{"user": userJSON(self.ctx, a, viewer)} for a in accounts]}

    def _own(self, call, userId):
        account = call.account
        try:
            requested = toInt(userId, "id")
        except ApiError:
            raise notFound("User") from None
        if requested != account.id:
            raise forbidden("You can only change your own user")
        return account

    @route("PUT", "{userId}", auth=USER)
    async def update(self, call, userId):
        account = self._own(call, userId)
        body = requireDict(call.body, "body")
        data = requireDict(body.get("user"), "user")
        changes = {}
        if "login" in data:
            changes["login"] = _login(data)
        if "email" in data:
            changes["email"] = _email(data)
        if "external_user_id" in data:
            raise fieldError("external_user_id", "cannot be changed")
        if "password" in data:
            if account.jwt:
                raise fieldError("password", "cannot be set: this user logs in with JWTs")
            password = _password(data)
            old = data.get("old_password")
            if not isinstance(old, str) or not await self.ctx.sessions.checkPassword(
                    call.request, account, old):
                raise fieldError("old_password", "is incorrect")
            keys = Credentials.fromDict(account.credentials).sha1
            # Same salt: the live tokens' SCRAM keys stay usable.
            changes["credentials"] = (await self.ctx.runCPU(
                deriveCredentials, password, keys.salt, keys.iterations)).toDict()
        elif "old_password" in data:
            raise fieldError("password", "is required with old_password")
        rest = {k: v for k, v in data.items()
                if k not in ("login", "email", "password", "old_password")}
        profile = validateProfile(self.ctx, rest, account.profile or {})
        if profile != (account.profile or {}):
            changes["profile"] = profile
        if changes:
            try:
                account = await self.ctx.storage.accounts.updateAccount(account.id, **changes)
            except AlreadyExists as e:
                raise await _taken(self.ctx, e, account.id, login=changes.get("login"),
                                   email=changes.get("email")) from None
            # live sessions, on every node, take the new settings now
            self.ctx.fire("account-updated", AccountUpdated(account))
        if "credentials" in changes:
            await self._passwordChanged(call, account)
        return {"user": userJSON(self.ctx, account)}

    async def _passwordChanged(self, call, account) -> None:
        """
        Issue 15 finding 4: every other REST token of the account is
        revoked (the caller's stays: it just proved the old password), and
        the XMPP streams that logged in with the password or a revoked
        token end.
        """
        revoked = await self.ctx.storage.tokens.deleteAccountTokens(
            account.id, keep=call.session.tokenHash)
        self.ctx.sessions.revoked(account, tokens=tuple(revoked), password=True,
                                  text="The password was changed")

    @route("DELETE", "{userId}", auth=USER, text=True)
    async def delete(self, call, userId):
        account = self._own(call, userId)
        # its JWT must not make the account again (the other tokens go with it)
        await self.ctx.sessions.revoke(call.session, announce=False)
        await self.ctx.storage.accounts.deleteAccount(account.id)
        self.ctx.fire("rest-user-deleted", account)
        self.ctx.sessions.revoked(account, deleted=True, text="The account was deleted")
        return None


__all__ = ["UsersResource", "userJSON", "findAccount", "createRestAccount"]
