"""
Node.js test infrastructure, reusable by any test that drives a real JS
client (the ConnectyCube SDK pinned in C{tests/sdk/package.json}, or
anything else added there) against a real server.

- C{sdk} fixture (session scope): the C{tests/sdk} directory with
  C{node_modules} installed (C{npm ci}/C{npm install} runs once when it
  is missing).  Without node/npm, or when the install fails, the test is
  skipped, unless the environment variable C{CI} is set: then it fails.
- L{runNode}: run a script from C{tests/sdk} with a JSON argument and a
  timeout; returns the JSON object the script printed last.

See C{tests/sdk/README.md}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent
INSTALL_TIMEOUT = 300


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sdk():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("node and npm are needed for the JS SDK tests")
    if not (SDK_DIR / "node_modules" / "connectycube").is_dir():
        command = [npm, "ci" if (SDK_DIR / "package-lock.json").exists() else "install",
                   "--no-audit", "--no-fund"]
        try:
            done = subprocess.run(command, cwd=SDK_DIR, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            _unavailable("npm install timed out")
        if done.returncode != 0:
            _unavailable(f"npm install failed:\n{done.stdout}\n{done.stderr}")
    return SDK_DIR


def runNode(script: str, argument, timeout: float = 60) -> dict:
    """
    Run C{node <script> <json argument>} in C{tests/sdk}; return the last
    JSON line it printed (fails the test with its output otherwise).
    """
    done = subprocess.run(["node", script, json.dumps(argument)], cwd=SDK_DIR,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail(f"{script} printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])
