"""
A private Prosody (Debian's C{prosody} package) for differential tests: a
throw-away config, data directory, pid file and log under a test directory,
c2s only, on a loopback port, with a certificate signed by the same kind of
test CA as the xmppchat e2e servers (L{tests.e2e.conftest.writeCertificates}).
The package's own system service is never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cluster.live import freePort
from tests.e2e.conftest import startServer, stopServer, writeCertificates

PROSODY = shutil.which("prosody")
PROSODYCTL = shutil.which("prosodyctl")

# What Prosody logs when it cannot bind a listening port; it keeps running
# without the listener, so the fixture must look for it.
BIND_FAILED = "Failed to open server port"

CONFIG = """\
-- Throw-away Prosody for one test run (tests/differential/prosody.py).
-- CI runs as root: Prosody refuses root unless told, and prosodyctl would
-- switch to the 'prosody' user, who cannot read this directory.
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ info = "{dir}/prosody.log" }}
certificates = "{dir}"

interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}

modules_enabled = {{
    "roster"; "saslauth"; "tls"; "disco"; "carbons"; "ping";
    "smacks"; "blocklist"; "private"; "lastactivity"; "pep"; "mam";
}}
-- presence, message, iq, offline and c2s are loaded by Prosody itself.
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}

authentication = "internal_hashed"
allow_registration = false
c2s_require_encryption = true
ssl = {{ certificate = "{dir}/server.crt"; key = "{dir}/server.key" }}

VirtualHost "localhost"

-- XEP-0045 rooms, for tests/differential/test_muc.py (Prosody's defaults:
-- new rooms locked until configured, open, public, semi-anonymous).
Component "muc.localhost" "muc"
"""


def withModules(config: str, modules) -> str:
    """
    C{config} (L{CONFIG}, formatted) with C{modules} enabled beside the
    common ones.
    """
    last = '"lastactivity"; "pep";'
    assert last in config
    return config.replace(last, last + "".join(f' "{name}";' for name in modules), 1)


def requireProsody():
    """
    Skip (or, under CI, fail) when Prosody is not installed.
    """
    if PROSODY is None or PROSODYCTL is None:
        reason = "prosody is not installed (apt-get install -y prosody)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


class ProsodyServer:
    """
    One private C{prosody -F} process; quacks like
    L{tests.e2e.conftest.RunningServer} where clients need it
    (C{ports["c2s"]}, C{ca}, C{domain}, C{adduser}).
    """

    name = "prosody"
    domain = "localhost"
    host = "127.0.0.1"

    def __init__(self, directory: Path, extraModules=()):
        """
        @param extraModules: Prosody modules enabled beside the common ones
            (C{("vcard_legacy", "bookmarks")} for profiles).
        """
        self.directory = directory
        self.extraModules = tuple(extraModules)
        self.config = directory / "prosody.cfg.lua"
        self.ca = writeCertificates(directory)
        self.process = None
        (directory / "data").mkdir(exist_ok=True)
        self._configure(freePort())  # prosodyctl needs the config before the start

    @property
    def ports(self) -> dict:
        return {"c2s": self.port}

    def start(self, timeout: float = 20) -> ProsodyServer:
        # Prosody cannot bind port 0 and report the port it got: take a port
        # the kernel says is free (bind 0, read it, release it) and try
        # again with another one if something else took it meanwhile.
        for attempt in range(5):
            if attempt:
                self._configure(freePort())
            logFile = self.directory / "prosody.log"
            if logFile.exists():
                logFile.unlink()
            self.process = subprocess.Popen(
                [PROSODY, "--config", str(self.config), "-F"], cwd=self.directory,
                stdout=subprocess.DEVNULL, stderr=(self.directory / "prosody.stderr").open("wb"))
            if self._waitReady(timeout):
                return self
            self.stop()
        raise RuntimeError(f"prosody did not start:\n{self.log()}")

    def _configure(self, port: int) -> None:
        self.port = port
        self.config.write_text(withModules(CONFIG.format(dir=self.directory, port=port), self.extraModules))

    def _waitReady(self, timeout: float) -> bool:
        """
        Until Prosody answers a stream header for localhost on its c2s port;
        false when it could not bind the port.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody exited with {self.process.returncode}:\n{self.log()}")
            if BIND_FAILED in self.log():
                return False
            if self._speaksXMPP():
                return True
            time.sleep(0.05)
        raise RuntimeError(f"prosody did not listen on {self.port} in {timeout} s:\n{self.log()}")

    def _speaksXMPP(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                s.sendall(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
                data = b""
                while b"stream:features" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return b"starttls" in data
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stopServer(self)

    def adduser(self, name: str, password: str) -> None:
        done = subprocess.run(
            [PROSODYCTL, "--config", str(self.config), "register", name, self.domain, password],
            capture_output=True, text=True, cwd=self.directory, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

    def addusers(self, names, password=lambda name: f"{name}-pw") -> None:
        for name in names:
            self.adduser(name, password(name))

    def log(self) -> str:
        text = ""
        for name in ("prosody.log", "prosody.stderr"):
            path = self.directory / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text


@contextmanager
def eitherServer(kind: str, directory: Path, prosodyClass=ProsodyServer, extra: str = ""):
    """
    A running server of C{kind} (C{xmppchat}: started as the e2e tests do,
    with C{extra} config; C{prosody}: a C{prosodyClass}), stopped on exit.
    """
    if kind == "prosody":
        requireProsody()
        running = prosodyClass(directory).start()
    else:
        running = startServer(directory, extra=extra)
    try:
        yield running
    finally:
        if kind == "prosody":
            running.stop()
        else:
            stopServer(running)
