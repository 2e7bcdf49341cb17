"""
Every route of every collection, checked for authentication: no token is
the SDK's session-expired 401, an application token on a user route is
403; plus the smaller endpoints not covered elsewhere.
"""

from __future__ import annotations

import pytest

from xmppchat.api import collections
from xmppchat.api.json import APP, USER
from tests.api.helpers import ApiHarness

DUMMY = {"dialogId": "0" * 24, "dialogIds": "0" * 24, "messageId": "0" * 24,
         "messageIds": "0" * 24, "userId": "1", "blobId": "1", "ref": "1", "uid": "0" * 32,
         "className": "UserReports", "recordId": "0" * 24, "recordIds": "0" * 24,
         "externalId": "x"}


def allRoutes():
    api = ApiHarness()
    out = []
    for path, cls in collections(api.ctx):
        resource = cls(api.ctx)
        for method, segments, auth, *_ in resource._routes:
            parts = [DUMMY[s[1:-1]] if s.startswith("{") else s for s in segments]
            url = "/" + "/".join([path, *parts])
            out.append((method, url + ".json", auth))
    return out


ROUTES = allRoutes()


@pytest.fixture
def api():
    return ApiHarness()


@pytest.mark.parametrize("method,path,auth", [r for r in ROUTES if r[2] in (APP, USER)])
def test_noToken(api, method, path, auth):
    """Without CB-Token every protected route is the SDK's session-expired 401."""
    r = api.request(method, path, body={} if method in ("POST", "PUT") else None)
    assert r.status == 401, r
    assert r.json == {"errors": {"base": ["Required session does not exist"]}}


@pytest.mark.parametrize("method,path,auth", [r for r in ROUTES if r[2] == USER])
def test_appTokenOnUserRoute(api, method, path, auth):
    """An application session on a user route is 403."""
    token = api.appToken()
    r = api.request(method, path, body={} if method in ("POST", "PUT") else None, token=token)
    assert r.status == 403, r
    assert "user session" in r.json["errors"]["base"][0]


def test_routesCovered():
    """The matrix sees every collection (guards against an empty parametrisation)."""
    paths = {p.split("/")[1].removesuffix(".json") for _, p, _ in ROUTES}
    assert {"session", "login", "users", "chat", "blobs", "data"} <= paths
    assert len(ROUTES) > 40


def test_externalFinder(api):
    """GET /users/external/<id>.json finds a token user by external id."""
    from xmppchat.api.sessions import encodeJWT
    from tests.api.helpers import SECRET
    jwt = encodeJWT({"user_id": "ext-9", "exp": 1_700_003_600}, SECRET)
    userId = api.get("/session.json", token=jwt).json["session"]["user_id"]
    r = api.get("/users/external/ext-9.json", token=api.appToken())
    assert r.status == 200 and r.json["user"]["id"] == userId
    assert api.get("/users/external/nobody.json", token=api.appToken()).status == 404


def test_privateOccupants(api):
    """Occupants of a group dialog are listed for members only."""
    alice, aliceId = api.user("occ-alice")
    bob, bobId = api.user("occ-bob")
    carol, _ = api.user("occ-carol")
    d = api.post("/chat/Dialog.json", {"type": 2, "name": "g", "occupants_ids": str(bobId)}, token=alice).json
    r = api.get(f"/chat/Dialog/{d['_id']}/occupants.json", token=bob)
    assert sorted(u["id"] for u in r.json["items"]) == sorted([aliceId, bobId])
    assert api.get(f"/chat/Dialog/{d['_id']}/occupants.json", token=carol).status == 403
