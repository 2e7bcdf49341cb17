"""
Issue 19, "HTTPS where TLS is configured": C{[ops] tls = true} on a real
server.  The ops listener then speaks only HTTPS with the server's C{[tls]}
certificate (signed by the e2e test CA here); the panel (its cookie
C{Secure}, C{Strict-Transport-Security} on every answer), the admin API,
C{/metrics}, the health probe and C{python -m xmppchat.admin} keep working
over it, and plain HTTP to that port gets no answer.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ADMIN, ADMIN_KEY as KEY, PANEL_PASSWORD, panelConfig
from tests.e2e.conftest import _env, startServer, stopServer, writeCertificates
from tests.e2e.test_tlsreload import peerFingerprint
from xmppchat.certs import makeCertificate
from xmppchat.ops.panel.auth import COOKIE
from xmppchat.tlsreload import SERVED_FILE

TLS_OPS = panelConfig().replace("panel = true\n", "panel = true\ntls = true\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("opstls"), extra=TLS_OPS)
    yield running
    stopServer(running)


def httpsGet(server, path, headers=None, method="GET", body=None):
    """C{(status, body, headers)} of a request over HTTPS, the certificate checked against the test CA and the name 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(server.ca))
    request = urllib.request.Request(f"https://127.0.0.1:{server.ports['ops']}{path}", headers=headers or {},
                                     method=method, data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def test_adminAPIOverHTTPS(server):
    """The admin API answers over HTTPS with the CA-signed server certificate."""
    status, body, _ = httpsGet(server, "/admin/api/stats", {"Authorization": f"Bearer {KEY}"})
    assert status == 200
    assert json.loads(body)["sessions"]["total"] == 0
    status, _, _ = httpsGet(server, "/admin/api/stats")
    assert status == 401


def test_panelOverHTTPS(server):
    """
    The panel's files and its sign-in over HTTPS: every answer has
    Strict-Transport-Security; the session cookie is Secure (and still
    HttpOnly, SameSite=Strict) and opens the API.
    """
    for path in ("/admin/", "/admin/core.js", "/admin/pages/overview.js", "/admin/api/session"):
        status, _, headers = httpsGet(server, path)
        assert status in (200, 401), path
        assert headers["Strict-Transport-Security"].startswith("max-age="), path
    status, body, headers = httpsGet(server, "/admin/api/session", {"Content-Type": "application/json"},
                                     "POST", {"name": ADMIN, "password": PANEL_PASSWORD})
    assert status == 200, body
    setCookie = headers["Set-Cookie"]
    flags = [flag.strip().lower() for flag in setCookie.split(";")[1:]]
    assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags
    cookie = setCookie.split(";", 1)[0]
    assert cookie.startswith(COOKIE + "=")
    status, body, headers = httpsGet(server, "/admin/api/overview", {"Cookie": cookie})
    assert status == 200 and body and headers["Strict-Transport-Security"]


def test_metricsAndHealthOverHTTPS(server):
    """/metrics and /health answer over HTTPS too."""
    status, body, _ = httpsGet(server, "/metrics")
    assert status == 200 and b"xmppchat_sessions" in body
    assert httpsGet(server, "/health")[0] == 200


def test_plainHTTPRefused(server):
    """Plain HTTP to the TLS port gets no HTTP answer (the handshake fails and the connection is closed)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.ports["ops"], timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.request("GET", "/health")
            connection.getresponse()
    finally:
        connection.close()


def test_untrustedCertificateRefused(server):
    """A client that does not trust the test CA refuses the listener (it really is the configured certificate)."""
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(f"https://127.0.0.1:{server.ports['ops']}/health", timeout=10,
                               context=ssl.create_default_context())
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_adminCommandOverHTTPS(server):
    """python -m xmppchat.admin stats talks to the HTTPS listener, trusting the server's own certificate."""
    done = server.admin("stats")
    assert done.returncode == 0, done.stderr
    assert "sessions" in done.stdout


def test_adminCommandRefusesAnotherCertificate(server):
    """
    The admin command pins the configured certificate or the one the
    server published as served: a listener with neither is refused, the
    key not sent.
    """
    config = server.config.read_text().replace('certificate = "server.crt"', 'certificate = "other.crt"')
    other = server.directory / "other.toml"
    other.write_text(config)
    (server.directory / "other.crt").write_bytes(makeCertificate(["localhost", "127.0.0.1"])[1])
    served = server.directory / "data" / SERVED_FILE
    published = served.read_text()
    served.write_text(json.dumps({"sha256": "0" * 64}))
    try:
        done = subprocess.run([sys.executable, "-m", "xmppchat.admin", "--config", str(other), "stats"],
                              capture_output=True, text=True, cwd=server.directory, env=_env(), timeout=60)
    finally:
        served.write_text(published)
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr


def probe(server, plain=False) -> subprocess.CompletedProcess:
    """python -m xmppchat.ops.probe with the server's config (its ops port fixed), over plain HTTP with C{plain}."""
    text = server.config.read_text().replace("port = 0\nadmin_key", f"port = {server.ports['ops']}\nadmin_key")
    path = server.directory / ("plain.toml" if plain else "probe.toml")
    path.write_text(text.replace("tls = true\n", "") if plain else text)
    return subprocess.run([sys.executable, "-m", "xmppchat.ops.probe", "--config", str(path)],
                          capture_output=True, text=True, cwd=server.directory, env=_env(), timeout=60)


def test_healthProbeOverHTTPS(server):
    """python -m xmppchat.ops.probe (the container HEALTHCHECK) succeeds over HTTPS; probing that port as plain HTTP fails."""
    for plain, expected in ((False, 0), (True, 1)):
        done = probe(server, plain)
        assert done.returncode == expected, (plain, done.stderr)


def test_renewedCertificateFilesBeforeTheReload(server):
    """
    Review 19 B3: a renewal replaces the certificate files while the
    server still serves the old certificate: the health probe stays
    healthy and `python -m xmppchat.admin reload tls` (the documented way
    to apply it) works; the server then serves, and publishes, the new one.
    """
    served = server.directory / "data" / SERVED_FILE
    old = peerFingerprint(server.ports["ops"])
    assert json.loads(served.read_text()) == {"sha256": old}
    writeCertificates(server.directory)
    new = hashlib.sha256(ssl.PEM_cert_to_DER_cert((server.directory / "server.crt").read_text())).hexdigest()
    assert new != old and peerFingerprint(server.ports["ops"]) == old
    done = probe(server)
    assert done.returncode == 0, done.stderr
    done = server.admin("reload", "tls")
    assert done.returncode == 0, done.stderr
    assert peerFingerprint(server.ports["ops"]) == new
    assert json.loads(served.read_text()) == {"sha256": new}
    assert probe(server).returncode == 0 and server.admin("stats").returncode == 0
    assert httpsGet(server, "/health")[0] == 200  # the new certificate, signed by the new test CA
