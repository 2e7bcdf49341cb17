"""
The REST side-service in a real server: HTTP over loopback to the C{rest}
port, then the session token (and a JWT) as the XMPP password of a real
slixmpp client, with SCRAM and PLAIN.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from xmppchat.api.sessions import encodeJWT
from tests.e2e.conftest import REST_AUTH_KEY, REST_JWT_SECRET
from tests.e2e.test_slixmpp import Client, run


def call(server, method, path, body=None, token=None):
    return exchange(server, method, path, body, token)[:2]


def exchange(server, method, path, body=None, token=None, timeout=10):
    """
    One JSON request to the REST port: C{(status, parsed body, headers)}.
    """
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['rest']}{path}", data=data,
                                     method=method)
    request.add_header("Content-Type", "application/json;charset=utf-8")
    if token:
        request.add_header("CB-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, response.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def restUsers(server, *names):
    """REST accounts: C{{name: (token, id)}}, each with password <name>-pw-1."""
    _, app = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    out = {}
    for name in names:
        status, body = call(server, "POST", "/users.json",
                            {"user": {"login": name, "password": f"{name}-pw-1"}},
                            token=app["session"]["token"])
        assert status == 201, body
        status, body = call(server, "POST", "/session.json", {
            "application_id": 1, "auth_key": REST_AUTH_KEY,
            "user": {"login": name, "password": f"{name}-pw-1"}})
        assert status == 201, body
        out[name] = (body["session"]["token"], body["session"]["user_id"])
    return out


@pytest.fixture(scope="module")
def restUser(server):
    status, body = call(server, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    assert status == 201, body
    app = body["session"]["token"]
    status, body = call(server, "POST", "/users.json",
                        {"user": {"login": "resty", "password": "resty-pw-1"}}, token=app)
    assert status == 201, body
    status, body = call(server, "POST", "/login.json", {"login": "resty", "password": "resty-pw-1"},
                        token=app)
    assert status == 202, body
    return app, body["user"]["id"]


def test_restListening(server):
    """The rest port is in ports.json and answers JSON 404s for unknown paths."""
    assert "rest" in server.ports
    status, body = call(server, "GET", "/nothing.json")
    assert status == 404 and body == {"errors": {"base": ["Not found"]}}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "PLAIN"])
def test_tokenAsXMPPPassword(server, restUser, mechanism):
    """slixmpp logs in as <id>-<appId> with the REST session token as password."""
    token, userId = restUser

    async def scenario():
        client = Client(server, f"{userId}-1@localhost", token, mechanism)
        assert await client.login()
        await client.logout()
        wrong = Client(server, f"{userId}-1@localhost", "0" * 40, mechanism)
        assert not await wrong.login()

    run(scenario())


def test_jwtAsXMPPPassword(server):
    """A JWT never seen by REST works as the PLAIN password of its (REST-created) user."""
    jwt = encodeJWT({"user_id": "ext-e2e", "exp": int(time.time()) + 600}, REST_JWT_SECRET)
    status, body = call(server, "GET", "/session.json", token=jwt)
    assert status == 200, body
    userId = body["session"]["user_id"]
    fresh = encodeJWT({"user_id": "ext-e2e", "exp": int(time.time()) + 900}, REST_JWT_SECRET)

    async def scenario():
        client = Client(server, f"{userId}-1@localhost", fresh, "PLAIN")
        assert await client.login()
        await client.logout()

    run(scenario())


def test_oversizedBody(server):
    """A body over max_body_bytes gets a JSON 413 from the real listener."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports['rest']}/session.json",
                                     data=b"{" + b" " * (2 * 1024 * 1024) + b"}", method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 413
        assert json.loads(e.read())["errors"]["base"][0].startswith("Request body too large")
    else:
        raise AssertionError("no 413")


def test_standalone(tmp_path):
    """python -m xmppchat.api serves REST alone on the configured storage."""
    import subprocess
    import sys

    from tests.e2e.conftest import ROOT, _env
    config = tmp_path / "rest.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
                      '[storage]\nbackend = "sqlite"\npath = "db.sqlite3"\n'
                      '[rest]\nenabled = true\nport = 0\n'
                      '[[rest.apps]]\napplication_id = 7\nauth_key = "solo-key"\n')
    process = subprocess.Popen([sys.executable, "-m", "xmppchat.api", "--config", str(config)],
                               cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    import threading
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    try:
        line = process.stdout.readline()
        assert "listening on" in line, process.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        server = type("S", (), {"ports": {"rest": port}})()
        status, body = call(server, "POST", "/session.json", {"application_id": 7, "auth_key": "solo-key"})
        assert status == 201 and body["session"]["application_id"] == 7
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=15)
