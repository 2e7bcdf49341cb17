"""
In-memory REST test harness: the API site on synchronous C{:memory:}
storage and a fake clock, driven with C{treq.testing.StubTreq}.
"""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet import task

from xmppchat.api.json import RestRequest
from xmppchat.api.site import makeSite
from xmppchat.hooks import HookBus
from xmppchat.storage.sqlite import SQLiteStorage
from tests.helpers import makeConfig, result

BASE = "http://127.0.0.1:8089"
SECRET = "jwt-secret-for-tests-0123456789"
# The storage backend of new harnesses; tests/api/conftest.py runs the API
# suites once per backend.
BACKENDS = ("sqlite", "mongomock")
backend = "sqlite"


def openTestStorage(name: str, clock):
    """
    Fresh synchronous storage: SQLite C{:memory:} or MongoDB on mongomock.
    """
    if name == "mongomock":
        import mongomock

        from xmppchat.storage.mongo import MongoStorage

        return MongoStorage(client=mongomock.MongoClient(), database="api-tests", reactor=clock,
                            synchronous=True)
    return SQLiteStorage(":memory:", reactor=clock, synchronous=True)


class Response:
    """
    A finished response: status, headers and the body (raw and parsed).
    """

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def header(self, name):
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def __repr__(self):
        return f"<Response {self.status} {self.raw[:300]!r}>"


class ApiHarness:
    """
    A REST site over fresh in-memory storage.
    """

    def __init__(self, rest=None, storage=None, hooks=None, clock=None, **sections):
        """
        C{storage}, C{hooks} and C{clock} default to fresh ones; a cluster
        test passes a node's.
        """
        restConfig = {"enabled": True, "port": 0,
                      "apps": [{"application_id": 1, "auth_key": "test-key", "jwt_secret": SECRET}],
                      "data_classes": ["UserReports"]}
        restConfig.update(rest or {})
        if clock is None:
            clock = task.Clock()
            clock.advance(1_700_000_000)
        self.clock = clock
        self.config = makeConfig(rest=restConfig, **sections)
        self.backend = backend
        if storage is None:
            storage = openTestStorage(backend, self.clock)
            result(storage.start())
        self.storage = storage
        self.hooks = hooks if hooks is not None else HookBus()
        self.site = makeSite(self.config, self.storage, self.clock, hooks=self.hooks)
        self.ctx = self.site.ctx
        self.stub = StubTreq(self.site.resource)
        self.stub._agent._serverFactory.requestFactory = RestRequest
        self.stub._agent._serverFactory.maxRequestBytes = self.site.maxRequestBytes

    def request(self, method, path, body=None, token=None, headers=None, form=None, raw=None,
                contentType=None):
        """
        Send one request and return the finished L{Response}.
        """
        hdrs = dict(headers or {})
        data = None
        if token:
            hdrs["CB-Token"] = token
        if raw is not None:
            data = raw
            hdrs.setdefault("Content-Type", contentType or "application/json;charset=utf-8")
        elif form is not None:
            data = "&".join(f"{k}={v}" for k, v in form.items()).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json;charset=utf-8"
        url = path if path.startswith("http") else BASE + path
        d = self.stub.request(method, url, data=data, headers={k: [v] for k, v in hdrs.items()})
        response = result(self._pump(d))
        body = self._pump(self.stub.content(response))
        return Response(response.code, response.headers, result(body))

    def _pump(self, d, rounds=100):
        """
        Flush the in-memory connection until C{d} fires (file downloads
        are written by a pull producer, one chunk per flush).
        """
        fired = []
        d.addBoth(lambda r: (fired.append(True), r)[1])
        for _ in range(rounds):
            self.stub.flush()
            if fired:
                break
            self._advanceToDelayedAnswer()
        return d

    def _advanceToDelayedAnswer(self, within=10.0):
        """
        Let the fake clock reach a call due within C{within} seconds (a
        held failed-login answer), as real time would.
        """
        now = self.clock.seconds()
        due = [c.getTime() for c in self.clock.getDelayedCalls() if c.getTime() - now <= within]
        if due:
            self.clock.advance(max(0.0, min(due) - now))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- shortcuts ---------------------------------------------------------

    def appToken(self, appId=1, key="test-key"):
        r = self.post("/session.json", {"application_id": appId, "auth_key": key})
        assert r.status == 201, r
        return r.json["session"]["token"]

    def signup(self, login, password="password1", **fields):
        token = self.appToken()
        r = self.post("/users.json", {"user": {"login": login, "password": password, **fields}},
                      token=token)
        assert r.status == 201, r
        return r.json["user"]

    def login(self, login, password="password1"):
        """
        A user session: C{(token, user id)}.
        """
        r = self.post("/session.json", {"application_id": 1, "auth_key": "test-key",
                                        "user": {"login": login, "password": password}})
        assert r.status == 201, r
        return r.json["session"]["token"], r.json["session"]["user_id"]

    def user(self, login, password="password1", **fields):
        """
        Sign up and log in: C{(token, user id)}.
        """
        self.signup(login, password, **fields)
        return self.login(login, password)
