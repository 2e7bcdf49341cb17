"""
XEP-0363 HTTP File Upload with a real client (issue 16 item 4): slixmpp
finds the upload service through the server's disco#items, reads its
max-file-size, requests slots, and PUTs and GETs over plain HTTP to the
REST listener of a real server on loopback.  (slixmpp's xep_0363 plugin
needs aiohttp, which the test environment does not have: the slot request
is sent as the plugin would, as a raw IQ.)
"""

from __future__ import annotations

import asyncio
import http.client
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import Client, run

NS = "urn:xmpp:http:upload:0"
MAX = 300000


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("upload"), extra=f"""
[upload]
max_file_bytes = {MAX}
slot_seconds = 3

[quotas]
blob_bytes_per_user = 750000
""")
    running.addusers(["alice", "bob", "carol"])
    yield running
    stopServer(running)


def httpCall(method, url, body=None, headers=None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        connection.request(method, parts.path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


async def login(server, name):
    client = Client(server, f"{name}@localhost", f"{name}-pw")
    client.register_plugin("xep_0030")
    assert await client.login()
    return client


async def requestSlot(client, service, filename, size, contentType="application/octet-stream"):
    iq = client.make_iq_get(ito=service)
    request = ET.Element(f"{{{NS}}}request", filename=filename, size=str(size))
    request.set("content-type", contentType)
    iq.append(request)
    reply = await iq.send(timeout=20)
    slot = reply.xml.find(f"{{{NS}}}slot")
    put = slot.find(f"{{{NS}}}put")
    headers = {h.get("name"): h.text for h in put.findall(f"{{{NS}}}header")}
    return put.get("url"), headers, slot.find(f"{{{NS}}}get").get("url")


async def slotError(client, service, filename, size):
    with pytest.raises(IqError) as caught:
        await requestSlot(client, service, filename, size)
    return caught.value.iq.xml.find("{jabber:client}error")


async def put(url, headers, data, contentType="application/octet-stream"):
    return await asyncio.to_thread(httpCall, "PUT", url, data,
                                   {**headers, "Content-Type": contentType, "Content-Length": str(len(data))})


async def discover(client, domain="localhost"):
    """
    What Conversations does: disco#items of the server, disco#info of each
    item, the one with the feature is the service; its max-file-size.
    """
    items = await client["xep_0030"].get_items(jid=domain, timeout=20)
    for jid, _, _ in items["disco_items"]["items"]:
        info = await client["xep_0030"].get_info(jid=jid, timeout=20)
        if NS in info["disco_info"]["features"]:
            assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
            form = info.xml.find(".//{jabber:x:data}x")
            sizes = [f.find("{jabber:x:data}value").text for f in form
                     if f.get("var") == "max-file-size"]
            return jid, int(sizes[0])
    raise AssertionError("no upload service in disco#items")


def test_discoverUploadAndDownload(uploads):
    """A binary file with a non-ASCII name: slot, PUT (201), GET byte-identical with safe headers; HEAD."""
    async def scenario():
        alice = await login(uploads, "alice")
        service, limit = await discover(alice)
        assert (service, limit) == ("upload.localhost", MAX)
        data = bytes(range(256)) * 800 + b"\x00\xff"  # spooled to a temporary file, served in 4 chunks
        putURL, headers, getURL = await requestSlot(alice, service, "Grüße ☃.bin", len(data))
        assert putURL.startswith(f"http://127.0.0.1:{uploads.ports['rest']}/upload/")
        status, _, _ = await put(putURL, headers, data)
        assert status == 201
        status, got, body = await asyncio.to_thread(httpCall, "GET", getURL)
        assert status == 200 and body == data
        assert got["Content-Type"] == "application/octet-stream"
        assert got["X-Content-Type-Options"] == "nosniff"
        assert got["Content-Disposition"].startswith("attachment; filename=")
        status, got, body = await asyncio.to_thread(httpCall, "HEAD", getURL)
        assert status == 200 and body == b"" and got["Content-Length"] == str(len(data))
        await alice.logout()

    run(scenario())


def test_tooLargeAndQuota(uploads):
    """Over max-file-size: not-acceptable + file-too-large/max-file-size; over the byte quota: resource-constraint."""
    async def scenario():
        bob = await login(uploads, "bob")
        error = await slotError(bob, "upload.localhost", "big.bin", MAX + 1)
        assert error.get("type") == "modify"
        assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
        assert error.find(f"{{{NS}}}file-too-large/{{{NS}}}max-file-size").text == str(MAX)
        await requestSlot(bob, "upload.localhost", "a.bin", MAX)
        await requestSlot(bob, "upload.localhost", "b.bin", MAX)
        error = await slotError(bob, "upload.localhost", "c.bin", MAX)
        assert error.get("type") == "wait"
        assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint") is not None
        await bob.logout()

    run(scenario())


def test_putRefusals(uploads):
    """Wrong length, a reused slot and an expired slot are refused; an unknown id is 404."""
    async def scenario():
        carol = await login(uploads, "carol")
        putURL, headers, getURL = await requestSlot(carol, "upload.localhost", "c.txt", 5, "text/plain")
        status, _, _ = await put(putURL, headers, b"hello!", "text/plain")
        assert status == 413
        status, _, _ = await put(putURL, headers, b"hell", "text/plain")
        assert status == 400
        status, _, _ = await put(putURL, headers, b"hello", "text/plain")
        assert status == 201
        status, _, _ = await put(putURL, headers, b"HELLO", "text/plain")
        assert status == 409
        status, _, body = await asyncio.to_thread(httpCall, "GET", getURL)
        assert (status, body) == (200, b"hello")
        putURL, headers, _ = await requestSlot(carol, "upload.localhost", "late.bin", 3)
        await asyncio.sleep(3.5)  # [upload] slot_seconds = 3; swept 3 s later
        status, _, _ = await put(putURL, headers, b"abc")
        assert status == 410
        unknown = getURL.rsplit("/", 2)[0] + "/" + "0" * 32 + "/x"
        status, _, _ = await asyncio.to_thread(httpCall, "GET", unknown)
        assert status == 404
        await carol.logout()

    run(scenario())


def test_slotsWorkAcrossWorkers(tmp_path_factory):
    """--workers 2: slots requested on one worker are PUT over fresh connections the kernel spreads over both."""
    from tests.cluster.live import Cluster, RedisProcess, requireRedis

    requireRedis()
    directory = tmp_path_factory.mktemp("upload-workers")
    redis = RedisProcess(directory).start()
    cluster = Cluster(directory, redis)
    try:
        server = cluster.startNode("up", args=("--workers", "2"), nodeIds=("up-w0", "up-w1"))
        server.addusers(["dave"])

        async def scenario():
            dave = await login(server, "dave")
            slots = [await requestSlot(dave, "upload.localhost", f"f{i}.bin", 3 + i) for i in range(8)]
            for i, (putURL, headers, getURL) in enumerate(slots):
                data = bytes([i]) * (3 + i)
                status, _, _ = await put(putURL, headers, data)
                assert status == 201, (i, status)
                status, _, body = await asyncio.to_thread(httpCall, "GET", getURL)
                assert (status, body) == (200, data)
            await dave.logout()

        run(scenario())
    finally:
        cluster.stop()
        redis.stop()
