"""
XEP-0363 HTTP File Upload against xmppchat and Prosody 0.12's
mod_http_file_share (issue 16 item 4): one slixmpp scenario, run on both,
records what the client sees (discovery, slot errors, HTTP statuses, the
bytes and safety headers of the download) and both must agree.

Prosody runs with a throw-away config (L{tests.differential.prosody}) plus
an HTTP port of its own on loopback and the component
C{upload.localhost}; its daily quota and xmppchat's byte quota are both
250000 bytes, both size limits 100000.

Where the two may differ, and this test does not compare: a PUT body
shorter than the slot (Prosody 413, xmppchat 400: not too large, but
wrong), the Content-Disposition's C{filename} parameter (xmppchat adds an
ASCII fallback beside C{filename*}) and the CSP value.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.live import freePort
from tests.differential.prosody import CONFIG, ProsodyServer, requireProsody
from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import run
from tests.e2e.test_upload import discover, httpCall, login, put, requestSlot, slotError

LIMIT = 100000
QUOTA = 250000
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
NS = "{urn:xmpp:http:upload:0}"


class UploadProsody(ProsodyServer):
    """
    The differential Prosody with mod_http_file_share on upload.localhost,
    served on its own loopback HTTP port.
    """

    def _configure(self, port: int) -> None:
        self.port = port
        http = freePort()
        text = CONFIG.format(dir=self.directory, port=port).replace(
            "http_ports = { }",
            f'http_ports = {{ {http} }}\nhttp_interfaces = {{ "127.0.0.1" }}\n'
            f'http_external_url = "http://127.0.0.1:{http}/"\nhttp_default_host = "upload.localhost"')
        text += (f'\nComponent "upload.localhost" "http_file_share"\n'
                 f"    http_file_share_size_limit = {LIMIT}\n    http_file_share_daily_quota = {QUOTA}\n")
        self.config.write_text(text)


@pytest.fixture(scope="module", params=["xmppchat", "prosody"])
def server(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param + "-upload")
    if request.param == "prosody":
        requireProsody()
        running = UploadProsody(directory).start()
        running.addusers(["alice"])
        yield running
        running.stop()
    else:
        running = startServer(directory, extra=f"""
[upload]
max_file_bytes = {LIMIT}

[quotas]
blob_bytes_per_user = {QUOTA}
""")
        running.addusers(["alice"])
        yield running
        stopServer(running)


def test_uploadScenario(server):
    """Discovery, a binary non-ASCII file round trip, too large, reuse, too long, unknown id, quota: the same."""
    async def scenario():
        seen = {}
        alice = await login(server, "alice")
        seen["service"] = await discover(alice)
        data = bytes(range(256)) * 100 + b"\x00\xff"
        putURL, headers, getURL = await requestSlot(alice, "upload.localhost", "Grüße ☃.bin", len(data))
        seen["authorization"] = headers.get("Authorization", "").split(" ")[0]
        seen["put"] = (await put(putURL, headers, data))[0]
        status, got, body = await asyncio.to_thread(httpCall, "GET", getURL)
        seen["get"] = (status, body == data, got.get("Content-Type"), got.get("X-Content-Type-Options"),
                       got.get("Content-Disposition", "").split(";")[0],
                       # percent-encoding is case-insensitive (Prosody writes %c3)
                       "filename*=utf-8''gr%c3%bc%c3%9fe%20%e2%98%83.bin" in got.get("Content-Disposition", "").lower())
        seen["reuse"] = (await put(putURL, headers, data))[0]
        error = await slotError(alice, "upload.localhost", "big.bin", LIMIT + 1)
        seen["tooLarge"] = (error.get("type"), error.find(STANZAS + "not-acceptable") is not None,
                            error.find(f"{NS}file-too-large/{NS}max-file-size").text)
        putURL, headers, _ = await requestSlot(alice, "upload.localhost", "a.txt", 5, "text/plain")
        seen["tooLong"] = (await put(putURL, headers, b"hello!", "text/plain"))[0]
        base, _, _ = getURL.rpartition("/")
        seen["unknown"] = (await asyncio.to_thread(httpCall, "GET", base.rpartition("/")[0] + "/" + "0" * 32 + "/x"))[0]
        await requestSlot(alice, "upload.localhost", "b.bin", LIMIT)
        await requestSlot(alice, "upload.localhost", "c.bin", LIMIT)
        error = await slotError(alice, "upload.localhost", "d.bin", LIMIT)
        seen["quota"] = (error.get("type"), error.find(STANZAS + "resource-constraint") is not None)
        await alice.logout()
        return seen

    assert run(scenario()) == {
        "service": ("upload.localhost", LIMIT),
        "authorization": "Bearer",
        "put": 201,
        "get": (200, True, "application/octet-stream", "nosniff", "attachment", True),
        "reuse": 409,
        "tooLarge": ("modify", True, str(LIMIT)),
        "tooLong": 413,
        "unknown": 404,
        "quota": ("wait", True),
    }
