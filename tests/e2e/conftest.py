"""
End-to-end fixtures: a real xmppchat server started with C{twistd} in a
subprocess, on ephemeral loopback ports, with a certificate signed by a
test CA; accounts created with the admin command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmppchat.certs import makeCertificate

ROOT = Path(__file__).resolve().parents[2]
# The REST application every e2e server has (ports.json key "rest").
REST_APP_ID = 1
REST_AUTH_KEY = "e2e-auth-key"
REST_JWT_SECRET = "e2e-jwt-secret-0123456789"


class RunningServer:
    name = "xmppchat"
    host = "127.0.0.1"

    def __init__(self, process, directory: Path, config: Path, ports: dict, ca: Path):
        self.process = process
        self.directory = directory
        self.config = config
        self.ports = ports
        self.ca = ca
        self.domain = "localhost"

    @property
    def port(self) -> int:
        return self.ports["c2s"]

    def admin(self, *args, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "xmppchat.admin", "--config", str(self.config), *args],
            input=stdin, capture_output=True, text=True, cwd=self.directory, env=_env(), timeout=60,
        )

    def adduser(self, name: str, password: str) -> None:
        done = self.admin("adduser", name, stdin=password + "\n")
        assert done.returncode == 0, done.stderr

    def addusers(self, names, password=lambda name: f"{name}-pw") -> None:
        """
        Accounts C{names} in one admin command, each with C{password(name)}.
        """
        lines = "".join(f"{name} {password(name)}\n" for name in names)
        done = self.admin("import-users", "-", stdin=lines)
        assert done.returncode == 0, done.stderr

    def log(self) -> str:
        path = self.directory / "twistd.log"
        return path.read_text() if path.exists() else ""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def writeCertificates(directory: Path) -> Path:
    """
    A fresh test CA in C{directory/ca.crt} and a certificate it signed for
    localhost, muc.localhost and 127.0.0.1 in C{server.crt} and
    C{server.key}; returns the CA's path.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    caKeyPEM, caCertPEM = makeCertificate(["xmppchat test CA"], isCA=True)
    caKey = serialization.load_pem_private_key(caKeyPEM, None)
    caCert = x509.load_pem_x509_certificate(caCertPEM)
    keyPEM, certPEM = makeCertificate(["localhost", "muc.localhost", "127.0.0.1"], caKey, caCert)
    (directory / "ca.crt").write_bytes(caCertPEM)
    (directory / "server.crt").write_bytes(certPEM)
    (directory / "server.key").write_bytes(keyPEM)
    return directory / "ca.crt"


def startServer(directory: Path, extra: str = "", storage: str = "db.sqlite3",
                args=(), c2s: str = "", rest: str = "") -> RunningServer:
    """
    Write a config with port 0 everywhere and a CA-signed certificate, start
    twistd and wait for it to publish its ports in C{<data_dir>/ports.json}.
    C{storage} is the SQLite path (absolute to share one file between
    servers); C{args} are extra C{twistd xmppchat} options; C{c2s} and
    C{rest} extra lines of the C{[c2s]} and C{[rest]} tables.
    """
    writeCertificates(directory)
    # Real-client tests send bursts and open many loopback connections: the
    # per-user message rate and per-IP limits have tests of their own.
    defaults = {"message_rate": "0", "exempt_loopback": "true"}
    limits = "".join(f"{k} = {v}\n" for k, v in defaults.items() if f"{k} =" not in extra)
    if "[limits]" in extra:
        extra = extra.replace("[limits]", "[limits]\n" + limits, 1)
    else:
        extra = "\n[limits]\n" + limits + extra
    config = directory / "test.toml"
    config.write_text(f"""
[server]
domain = "localhost"
data_dir = "data"

[c2s]
interface = "127.0.0.1"
port = 0
tls_port = 0
{c2s}

[tls]
certificate = "server.crt"
private_key = "server.key"

[rest]
enabled = true
interface = "127.0.0.1"
port = 0
data_classes = ["UserReports", "MessageReports"]
{rest}

[[rest.apps]]
application_id = 1
auth_key = "{REST_AUTH_KEY}"
jwt_secret = "{REST_JWT_SECRET}"

[storage]
backend = "sqlite"
path = "{storage}"
{extra}
""")
    process = subprocess.Popen(
        [sys.executable, "-m", "twisted", "--log-file", str(directory / "twistd.log"),
         "xmppchat", "--config", str(config), *args],
        cwd=directory, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    portsFile = directory / "data" / "ports.json"
    deadline = time.monotonic() + 30
    while not portsFile.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode(errors="replace")
            log = (directory / "twistd.log").read_text() if (directory / "twistd.log").exists() else ""
            raise RuntimeError(f"server did not start:\n{output}\n{log}")
        time.sleep(0.05)
    ports = json.loads(portsFile.read_text())
    return RunningServer(process, directory, config, ports, directory / "ca.crt")


def stopServer(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("server"))
    yield running
    stopServer(running)


@pytest.fixture(scope="module")
def tlsServer(tmp_path_factory):
    """A server with wss:// and https:// BOSH beside the c2s ports, and users alice and bob."""
    running = startServer(tmp_path_factory.mktemp("tls"), extra="""
[websocket]
enabled = true
port = 0
tls = true

[bosh]
enabled = true
port = 0
tls = true
""")
    running.adduser("alice", "alice-pw")
    running.adduser("bob", "bob-pw")
    yield running
    stopServer(running)
