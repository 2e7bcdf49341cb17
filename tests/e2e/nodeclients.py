"""
Real JavaScript clients for the end-to-end tests: the npm packages pinned in
C{tests/e2e/node/package.json} (installed there on first use) and the small
driver scripts next to it, run with Node as subprocesses that report what
happened as one JSON object per line.

Without node/npm (or when the install fails) the tests are skipped, unless
the environment variable C{CI} is set: then they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
INSTALL_TIMEOUT = 300


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _installed() -> bool:
    dependencies = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    return all((NODE_DIR / "node_modules" / name / "package.json").exists() for name in dependencies)


class NodeScript:
    """
    One running driver script.
    """

    def __init__(self, process):
        self.process = process
        self.events: list[dict] = []

    async def next(self, timeout: float = 20) -> dict:
        """
        The next JSON event the script printed (libraries' own console
        output in between is skipped).
        """
        line = b""
        while not line.startswith(b'{"event"'):
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                stderr = await self.process.stderr.read()
                raise AssertionError(f"script ended early; events {self.events}; stderr:\n{stderr.decode()[-3000:]}")
        event = json.loads(line)
        self.events.append(event)
        return event

    async def wait(self, timeout: float = 20) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self):
        """
        Kill the script if it still runs, and reap it.
        """
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class NodeClients:
    def __init__(self, node: str):
        self.node = node

    async def start(self, script: str, env: dict | None = None, **options) -> NodeScript:
        """
        Run C{tests/e2e/node/<script>} with C{options} as its JSON argument
        (and C{env} added to the environment).
        """
        process = await asyncio.create_subprocess_exec(
            self.node, str(NODE_DIR / script), json.dumps(options), cwd=NODE_DIR,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        return NodeScript(process)


async def replyAndFinish(script: NodeScript, peer, fromJID: str, body: str, timeout: float = 20) -> None:
    """
    The slixmpp C{peer} gets C{body} from C{fromJID} (the script's user),
    answers it; the script gets the answer, logs out and exits cleanly.
    """
    message = await asyncio.wait_for(peer.messages.get(), timeout)
    assert message["body"] == body
    assert str(message["from"]) == fromJID
    peer.send_message(mto=message["from"], mbody="hello back over TCP", mtype="chat")
    received = await script.next()
    assert received["event"] == "message" and received["body"] == "hello back over TCP", script.events
    assert received["from"] == str(peer.boundjid), (received, str(peer.boundjid))
    assert (await script.next())["event"] == "offline"
    assert await script.wait() == 0


@pytest.fixture(scope="session")
def nodeClients():
    """
    Node with the pinned client packages, installed with npm when missing.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the JavaScript client tests")
    if not _installed():
        try:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            _unavailable("npm install timed out")
        if done.returncode != 0 or not _installed():
            _unavailable(f"npm install failed in {NODE_DIR}:\n{done.stderr[-2000:]}")
    return NodeClients(node)


TRANSPORTS = """
[websocket]
enabled = true
interface = "127.0.0.1"
port = 0

[bosh]
enabled = true
interface = "127.0.0.1"
port = 0
"""


@pytest.fixture(scope="module")
def transportServer(tmp_path_factory):
    """
    A real server with the WebSocket and BOSH listeners on ephemeral ports.
    """
    from tests.e2e.conftest import startServer, stopServer

    running = startServer(tmp_path_factory.mktemp("server"), extra=TRANSPORTS)
    yield running
    stopServer(running)
