"""
Packaging (issue 18 #8): the systemd unit, the container image and its
config, the constraints file and the health probe, checked with what this
machine has: C{systemd-analyze verify} when installed, twistd's own option
parser for the command lines, a real start of the unit's command line, a
real HTTP server for the probe.  Docker itself is not needed.
"""

from __future__ import annotations

import configparser
import fnmatch
import http.server
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.e2e.conftest import _env
from xmppchat.config import buildConfig, loadConfig
from xmppchat.ops import probe
from xmppchat.tap import checkConfig

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "contrib" / "systemd" / "xmppchat.service"
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_CONFIG = ROOT / "conf" / "xmppchat.container.toml"
TLS_STACK = ("twisted", "pyopenssl", "cryptography", "service-identity", "autobahn", "wokkel",
             "pymongo", "prometheus-client")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unitEntries(path: Path = UNIT) -> dict:
    """C{section -> key -> [values]} of a systemd unit (keys may repeat)."""
    entries: dict = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = entries.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return entries


def twistdOptions(argv: list, config: Path):
    """
    Parse a C{twistd ... xmppchat ...} command line with twistd's own
    options and xmppchat's (its C{--config} replaced by C{config}).
    """
    from twisted.scripts._twistd_unix import ServerOptions

    assert Path(argv[0]).name == "twistd", argv
    args = list(argv[1:])
    args[args.index("--config") + 1] = str(config)
    options = ServerOptions()
    options.parseOptions(args)
    return options


def portZeroConfig(tmp_path: Path, source: Path) -> Path:
    """C{source} with its data dir in C{tmp_path} and every port 0 (nothing on this machine is touched)."""
    text = source.read_text()
    text = re.sub(r'^data_dir = ".*"', f'data_dir = "{tmp_path / "data"}"', text, flags=re.M)
    text = re.sub(r"^(port|tls_port) = \d+", r"\1 = 0", text, flags=re.M)
    path = tmp_path / source.name
    path.write_text(text)
    return path


# -- constraints.txt --------------------------------------------------------

def constraints() -> dict:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonical(name)] = version.strip()
    return pins


def test_constraintsPinTheTestedTLSStack():
    """constraints.txt pins the TLS stack to exactly the versions installed here (the ones the suite ran on)."""
    pins = constraints()
    for name in TLS_STACK:
        assert name in pins, f"{name} is not pinned"
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, f"{name}: pinned {version}, tested {importlib.metadata.version(name)}"


def test_constraintsSatisfySetupCfg():
    """Every pinned version is allowed by setup.cfg's install_requires (pip would refuse the pair otherwise)."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    pins = constraints()
    for line in filter(None, parser["options"]["install_requires"].splitlines()):
        requirement = Requirement(line)
        name = canonical(requirement.name)
        assert name in pins, f"{name} (setup.cfg) is not pinned"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"


def runtimeClosure() -> set:
    """The installed distributions xmppchat needs at run time: setup.cfg's install_requires and theirs."""
    from packaging.markers import default_environment

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    todo = [Requirement(line) for line in filter(None, parser["options"]["install_requires"].splitlines())]
    seen: dict = {}
    while todo:
        requirement = todo.pop()
        name = canonical(requirement.name)
        if name in seen and set(requirement.extras) <= seen[name]:
            continue
        extras = seen.setdefault(name, set())
        extras.update(requirement.extras)
        for line in importlib.metadata.requires(name) or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate(dict(default_environment(), extra=extra))
                                            for extra in ["", *extras]):
                todo.append(needed)
    return set(seen)


def test_constraintsCoverEveryRuntimeDependency():
    """Nothing xmppchat imports at run time floats: every dependency, direct or not, is pinned."""
    assert runtimeClosure() <= set(constraints()), runtimeClosure() - set(constraints())


# -- systemd ----------------------------------------------------------------

def test_systemdUnit():
    """The unit runs twistd in the foreground as its own user, ready when it serves (sd_notify), reloads with SIGHUP, restarts on failure, and is hardened."""
    service = unitEntries()["Service"]
    expected = {"Type": "notify", "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
                "StateDirectory": "xmppchat", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ReadWritePaths": "/var/lib/xmppchat", "WorkingDirectory": "/var/lib/xmppchat",
                "KillMode": "mixed"}
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert service["User"] != ["root"] and service["User"] == service["Group"]
    assert unitEntries()["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemdCommandLinesParse(tmp_path):
    """ExecStart and ExecStartPre parse with twistd's and xmppchat's options: foreground, no pidfile, the config of the unit."""
    service = unitEntries()["Service"]
    config = portZeroConfig(tmp_path, ROOT / "conf" / "xmppchat.example.toml")
    start = shlex.split(service["ExecStart"][0])
    assert start[start.index("--config") + 1] == "/etc/xmppchat/xmppchat.toml"
    options = twistdOptions(start, config)
    assert options["nodaemon"] and options["pidfile"] == ""
    assert options.subCommand == "xmppchat" and options.subOptions["config"] == str(config)
    check = shlex.split(service["ExecStartPre"][0])
    assert check[1:3] == ["xmppchat", "--check-config"]
    assert check[3] == "/etc/xmppchat/xmppchat.toml"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemdAnalyzeVerify(tmp_path):
    """systemd-analyze verify accepts the unit without a warning (twistd at its real path here)."""
    twistd = Path(sys.executable).parent / "twistd"
    unit = tmp_path / "xmppchat.service"
    unit.write_text(UNIT.read_text().replace("/opt/xmppchat/venv/bin/twistd", str(twistd)))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done


def test_unitCommandLineRunsReloadsAndStops(tmp_path):
    """The unit's ExecStart (port-0 config) serves in the foreground, survives ExecReload's SIGHUP, and stops on SIGTERM."""
    config = portZeroConfig(tmp_path, ROOT / "conf" / "xmppchat.example.toml")
    argv = shlex.split(unitEntries()["Service"]["ExecStart"][0])
    argv[0] = str(Path(sys.executable).parent / "twistd")
    argv[argv.index("--config") + 1] = str(config)
    process = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        ports = tmp_path / "data" / "ports.json"
        deadline = time.monotonic() + 30
        while not ports.exists():
            assert process.poll() is None and time.monotonic() < deadline, "twistd did not start"
            time.sleep(0.05)
        assert json.loads(ports.read_text())["c2s"] > 0
        assert not (tmp_path / "twistd.pid").exists()
        process.send_signal(signal.SIGHUP)  # ExecReload
        time.sleep(1)
        assert process.poll() is None
        process.terminate()
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "TLS certificate reloaded" in output  # the log goes to stdout (the journal)


# -- the container ----------------------------------------------------------

def dockerfile() -> list:
    """C{(instruction, arguments)} of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def instruction(name: str) -> list:
    return [rest for word, rest in dockerfile() if word == name]


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p.removeprefix("**/")) or path.startswith(p + "/") for p in patterns)


def test_dockerfileCopiesWhatExists():
    """Every COPY source exists in the checkout and is not excluded from the build context by .dockerignore."""
    copies = instruction("COPY")
    assert copies
    for rest in copies:
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), source
    assert "constraints.txt" in copies[0] and any("--constraint constraints.txt" in r for r in instruction("RUN"))


def test_dockerfileRunsAsAUserWithDataInTheVolume():
    """python:3.11-slim, a non-root user, the volume is the container config's data_dir, and every listener port is exposed."""
    assert instruction("FROM") == ["python:3.11-slim"]
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0")
    config = loadConfig(str(CONTAINER_CONFIG))
    assert instruction("VOLUME") == [config.server.data_dir] == ["/var/lib/xmppchat"]
    from xmppchat.cluster.workers import listenerSpecs

    specs = listenerSpecs(config)
    assert {port for _, _, port in specs} == {int(p) for p in instruction("EXPOSE")[0].split()}
    assert {interface for _, interface, _ in specs} == {"0.0.0.0"}


def test_dockerfileCommandAndHealthcheckParse(tmp_path):
    """CMD parses with twistd's options (foreground, no pidfile, the container config); HEALTHCHECK probes /health with that config."""
    (cmd,) = instruction("CMD")
    argv = json.loads(cmd)
    installed = "/etc/xmppchat/xmppchat.toml"
    assert argv[argv.index("--config") + 1] == installed
    assert any(rest.endswith(installed) for rest in instruction("COPY") if "xmppchat.container.toml" in rest)
    options = twistdOptions(argv, portZeroConfig(tmp_path, CONTAINER_CONFIG))
    assert options["nodaemon"] and options["pidfile"] == "" and options.subCommand == "xmppchat"
    (health,) = instruction("HEALTHCHECK")
    probeArgv = json.loads(health.split("CMD", 1)[1])
    assert probeArgv == ["python", "-m", "xmppchat.ops.probe", "--config", installed]


def test_containerConfigPassesCheckConfig(tmp_path):
    """The container config is valid (--check-config), with [ops] on for the health check."""
    out = tmp_path / "out.txt"
    with out.open("w") as f:
        assert checkConfig(str(portZeroConfig(tmp_path, CONTAINER_CONFIG)), f) == 0, out.read_text()
    config = loadConfig(str(CONTAINER_CONFIG))
    assert config.ops.enabled and probe.healthURL(config) == f"http://127.0.0.1:{config.ops.port}/health"


def test_defaultListenerPortsDistinct():
    """With every listener enabled at its default port no two collide (BOSH had [ops]' 5290)."""
    on = {"enabled": True}
    config = buildConfig({"websocket": on, "bosh": on, "rest": on, "ops": on})
    ports = [config.c2s.port, config.c2s.tls_port, config.websocket.port, config.bosh.port,
             config.rest.port, config.ops.port, config.components.port]
    assert len(set(ports)) == len(ports), ports


# -- the health probe -------------------------------------------------------

class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def healthServer():
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def probeConfig(tmp_path, port) -> Path:
    path = tmp_path / "probe.toml"
    path.write_text(f'[ops]\nenabled = true\ninterface = "0.0.0.0"\nport = {port}\n')
    return path


def test_probeHealthy(tmp_path, healthServer):
    """The probe exits 0 when /health on the configured [ops] port answers 200."""
    Health.status = 200
    assert probe.main(["--config", str(probeConfig(tmp_path, healthServer.server_port))]) == 0


def test_probeUnhealthy(tmp_path, healthServer, capsys):
    """503 from /health, or nothing listening: exit 1 with one line naming the URL."""
    Health.status = 503
    path = probeConfig(tmp_path, healthServer.server_port)
    assert probe.main(["--config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"xmppchat probe: unhealthy: http://127.0.0.1:{healthServer.server_port}/health: HTTP 503"]
    healthServer.shutdown()
    healthServer.server_close()
    done = subprocess.run([sys.executable, "-m", "xmppchat.ops.probe", "--config", str(path)],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1 and "unhealthy" in done.stderr


def test_containerConfigIsTOML():
    """The container config is plain TOML with no REST secrets in it (the image is public)."""
    data = tomllib.loads(CONTAINER_CONFIG.read_text())
    assert "rest" not in data and os.path.isabs(data["server"]["data_dir"])


def test_wheelCarriesThePanelFiles(tmp_path):
    """
    An installed server (not a checkout) serves the web admin panel: every
    file of xmppchat/ops/panel/static is in the wheel (issue 19).
    """
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("xmppchat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "xmppchat" / "ops" / "panel" / "static"
    expected = {p.relative_to(ROOT).as_posix() for p in static.rglob("*") if p.is_file()}
    assert expected and expected <= names, sorted(expected - names)
