"""
The admin API of the panel's Users page (issue 19: "search, view profile
and custom data, create, reset password, delete, kick live sessions, see
a user's dialogs and lockout state, unlock").

    GET    users[?q=&skip=&limit=]    {"users": [summary...], "total", "skip", "limit"}
    GET    users/<NAME>               the user's view (L{userView})
    POST   users/<NAME>/kick          {"reason"?} -> {"kicked": [full JID...], "unreachable": [node...]}
    POST   users/<NAME>/unlock        {} -> {"unlocked": localpart, "cleared": counters}

C{POST users} (which also takes C{full_name}, C{email} and
C{custom_data}), C{PUT users/<NAME>/password} and
C{DELETE users/<NAME>} are in L{xmppchat.ops.adminapi}, as the kick
(C{kickSessions}: every session of the user on every node, ended with
C{policy-violation}) and the unlock (C{unlockKey}) this module calls.
C{<NAME>} is a localpart or a bare JID of the domain.

C{q} finds the accounts whose localpart, login, e-mail or full name
contains it (case-sensitive, but the localpart is matched lower-case as
it is stored) or whose id it is; ordered by id, at most 100 a page.  The
lockout state is the login throttle's (L{xmppchat.auth.throttle}) in the
process that answers; an unlock reaches every process.
"""

from __future__ import annotations

from xmppchat.api.json import intOf
from xmppchat.ops.adminapi import MAX_REASON, ApiError, _iso
from xmppchat.storage.interfaces import Query

MAX_QUERY = 256
MAX_SKIP = 100_000
PAGE = 20
DIALOGS_SHOWN = 20


def install(api) -> None:
    """Register the Users page's routes on C{api} (an L{xmppchat.ops.adminapi.AdminAPI})."""

    async def search(request, body):
        text = searchText(api, request)
        query = Query(sort="id", skip=api.intArg(request, "skip", 0, 0, MAX_SKIP),
                      limit=api.intArg(request, "limit", PAGE, 1, 100), anyOf=searchFilters(text))
        accounts = await api.storage.accounts.findAccounts(query)
        return {"users": [summary(api, a) for a in accounts],
                "total": await api.storage.accounts.countAccounts(query),
                "skip": query.skip, "limit": query.limit}

    async def view(request, body, name):
        return await userView(api, await api.account(name))

    async def kick(request, body, name):
        account = await api.account(name)
        reason = api.text(body, "reason", limit=MAX_REASON)
        return await api.kickSessions(request, jidOf(api, account), reason)

    async def unlock(request, body, name):
        return await api.unlockKey(request, (await api.account(name)).localpart)

    api.route("GET", "users", search)
    api.route("GET", "users/*", view)
    api.route("POST", "users/*/kick", kick)
    api.route("POST", "users/*/unlock", unlock)


def searchText(api, request) -> str:
    """
    The C{q} of an admin search (this page's, the Dialogs page's), at most
    L{MAX_QUERY} characters and no NUL (MongoDB refuses one in the
    C{$regex} of a substring match: review 19 B8); 400 otherwise.
    """
    text = (api.arg(request, "q") or "").strip()
    if len(text) > MAX_QUERY:
        raise ApiError(400, f"q is limited to {MAX_QUERY} characters")
    if "\0" in text:
        raise ApiError(400, "q cannot contain a NUL character")
    return text


def searchFilters(text: str) -> list:
    """The L{Query.anyOf} of a search for C{text} (none without text)."""
    if not text:
        return []
    filters = [("localpart", "ctn", text.lower()), ("login", "ctn", text),
               ("email", "ctn", text), ("full_name", "ctn", text)]
    if intOf(text) is not None:  # an id (review 19 B1: ASCII digits, 64-bit)
        filters.append(("id", "eq", intOf(text)))
    return filters


def jidOf(api, account) -> str:
    return f"{account.localpart}@{api.host.domain}"


def summary(api, account) -> dict:
    """One row of the search results."""
    return {"id": account.id, "name": account.localpart, "jid": jidOf(api, account),
            "login": account.login, "email": account.email,
            "full_name": (account.profile or {}).get("full_name"),
            "created": _iso(account.createdAt)}


async def userView(api, account) -> dict:
    """
    The user's page: the profile (every stored profile key, custom data
    included), the last activity (XEP-0012's, stored at logout), the live
    sessions in the cluster, the login throttle's lockout state, and the
    first L{DIALOGS_SHOWN} dialogs the user sees (the latest updated
    first) with their total.
    """
    storage = api.storage
    jid = jidOf(api, account)
    results, unreachable = await api.agent.gather("sessions", {"user": jid})
    last = await storage.lastActivity.getLastActivity(account.localpart)
    page = Query(sort="updated_at", descending=True, limit=DIALOGS_SHOWN)
    dialogs = await storage.dialogs.listDialogs(account.id, page)
    lockout = api.host.loginThrottle.accountState(account.localpart)
    return {
        **summary(api, account),
        "external_id": account.externalId,
        "jwt": account.jwt,
        "blocked": account.blocked,  # POST users/<NAME>/block, unblock (xmppchat.ops.admin.moderation)
        "updated": _iso(account.updatedAt),
        "profile": account.profile or {},
        "last_activity": None if last is None else {"at": _iso(last[0]), "status": last[1]},
        "sessions": [s for _, part in results for s in part],
        "unreachable": unreachable,
        "lockout": {**lockout, "until": lockout["until"] and _iso(lockout["until"]),
                    "sources": [{**s, "until": _iso(s["until"])} for s in lockout["sources"]]},
        "dialogs": [{"id": d.id, "type": d.type, "name": d.name, "occupants": len(d.occupantIds),
                     "updated": _iso(d.updatedAt)} for d in dialogs],
        "dialogs_total": await storage.dialogs.countDialogs(account.id, page),
    }
