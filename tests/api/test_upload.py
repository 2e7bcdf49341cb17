"""
XEP-0363 HTTP File Upload (issue 16 item 4): the component
(L{xmppchat.modules.upload}) driven with XML literals, and the PUT/GET on
the REST site (L{xmppchat.api.upload}), on one storage and clock; every
test runs on SQLite and mongomock (tests/api/conftest.py).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from twisted.internet.task import Clock

from tests.api.helpers import BASE, ApiHarness
from tests.helpers import result, xml
from xmppchat.host import Host
from xmppchat.jid import parseJID

NS = "urn:xmpp:http:upload:0"
DISCO = "http://jabber.org/protocol/disco#info"


class Client:
    """
    What the component sees of a client session: its account and send().
    """

    def __init__(self, account):
        self.account = account
        self.jid = parseJID(f"{account.localpart}@localhost/res")
        self.sent = []

    def send(self, stanza):
        self.sent.append(stanza)


@pytest.fixture
def up(tmp_path):
    api = ApiHarness(server={"data_dir": str(tmp_path)},
                     upload={"max_file_bytes": 1000, "slots_per_user": 3, "slot_seconds": 300},
                     quotas={"blob_bytes_per_user": 2500})
    api.host = Host(api.config, api.storage, api.clock)
    api.host.loadModules(["disco", "upload"])
    api.host.restURL = BASE
    api.module = api.host.modules["upload"]
    for name in ("alice", "bob"):
        token, userId = api.user(name)
        client = Client(result(api.storage.accounts.getAccount(userId)))
        client.token = token
        setattr(api, name, client)
    return api


def ask(api, client, payload, to="upload.localhost", kind="get"):
    stanza = xml(f"<iq type='{kind}' id='q1' from='{client.jid.full()}' to='{to}'>{payload}</iq>")
    d = api.module.receive(client, stanza, parseJID(to))
    if d is not None:
        result(d)
    [reply] = client.sent
    client.sent = []
    return reply


def requestSlot(api, client, filename="a.bin", size=10, ctype="application/octet-stream"):
    return ask(api, client, f"<request xmlns='{NS}' filename='{filename}' size='{size}' content-type='{ctype}'/>")


def slotOf(reply):
    assert reply["type"] == "result", reply.toXml()
    slot = reply.slot
    put, get = slot.put, slot.get
    headers = {h["name"]: str(h) for h in put.elements(NS, "header")}
    return put["url"], headers, get["url"]


def condition(reply):
    assert reply["type"] == "error", reply.toXml()
    error = reply.error
    names = [e.name for e in error.elements()]
    return error["type"], names


def httpPut(api, url, data, headers, contentType="application/octet-stream"):
    hdrs = dict(headers)
    if contentType is not None:
        hdrs["Content-Type"] = contentType
    return api.request("PUT", url, raw=data, headers=hdrs, contentType=contentType)


def test_discoInfoAdvertisesMaxFileSize(up):
    """disco#info of upload.localhost: identity store/file, the feature and max-file-size (§3)."""
    reply = ask(up, up.alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    query = reply.query
    identity = next(query.elements(DISCO, "identity"))
    assert (identity["category"], identity["type"]) == ("store", "file")
    assert NS in [f["var"] for f in query.elements(DISCO, "feature")]
    fields = {f["var"]: str(f.value) for f in query.x.elements("jabber:x:data", "field")}
    assert fields == {"FORM_TYPE": NS, "max-file-size": "1000"}


def test_serverItemsListUploadService(up):
    """The server's disco#items names upload.localhost, so clients find the service."""
    assert "upload.localhost" in up.host.components


def test_slotPutGetByteIdentical(up):
    """A slot, a PUT with its header (201) and a GET of the same bytes with safe headers."""
    data = bytes(range(256))[:200]
    putURL, headers, getURL = slotOf(requestSlot(up, up.alice, "ü ber.bin", len(data)))
    assert putURL == getURL and putURL.startswith(BASE + "/upload/")
    assert headers["Authorization"].startswith("Bearer ")
    assert httpPut(up, putURL, data, headers).status == 201
    r = up.get(getURL)
    assert r.status == 200 and r.raw == data
    assert r.header("content-type") == "application/octet-stream"
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("content-disposition").startswith('attachment; filename="')
    assert "filename*=UTF-8''%C3%BC%20ber.bin" in r.header("content-disposition")
    head = up.request("HEAD", getURL)
    assert head.status == 200 and head.raw == b"" and head.header("content-length") == "200"
    # the same blob store as REST: it is the user's blob, counted in the quota
    assert result(up.storage.blobs.blobUsage(up.alice.account.id)) == (1, 200)


def test_restSeesAndDeletesUploads(up):
    """An uploaded file is in the owner's REST blob list; a REST delete removes its download."""
    putURL, headers, getURL = slotOf(requestSlot(up, up.alice, "r.bin", 4))
    assert httpPut(up, putURL, b"data", headers).status == 201
    r = up.get("/blobs.json", token=up.alice.token)
    [item] = r.json["items"]
    assert (item["blob"]["name"], item["blob"]["size"], item["blob"]["public"]) == ("r.bin", 4, True)
    assert up.delete(f"/blobs/{item['blob']['id']}.json", token=up.alice.token).status == 200
    assert up.get(getURL).status == 404
    assert result(up.storage.blobs.blobUsage(up.alice.account.id)) == (0, 0)


def test_tooLargeRefusedWithMaxSize(up):
    """A request over max_file_bytes: not-acceptable (modify) with <file-too-large><max-file-size>."""
    reply = requestSlot(up, up.alice, size=1001)
    assert condition(reply) == ("modify", ["not-acceptable", "text", "file-too-large"])
    assert str(reply.error.__getattr__("file-too-large").__getattr__("max-file-size")) == "1000"


@pytest.mark.parametrize("attrs", ["filename='' size='5'", "filename='a/b' size='5'", "filename='x' size='-1'",
                                   "filename='x' size='abc'", "filename='x'", "size='5'",
                                   "filename='x' size='5' content-type='not a type'"])
def test_badRequests(up, attrs):
    """Missing or unusable filename, size or content-type: bad-request."""
    reply = ask(up, up.alice, f"<request xmlns='{NS}' {attrs}/>")
    assert condition(reply)[1][0] == "bad-request"


def test_byteQuotaExceeded(up):
    """A slot beyond [quotas] blob_bytes_per_user (shared with REST): resource-constraint, no slot."""
    slotOf(requestSlot(up, up.alice, size=1000))
    slotOf(requestSlot(up, up.alice, size=1000))
    reply = requestSlot(up, up.alice, size=1000)
    assert condition(reply) == ("wait", ["resource-constraint", "text"])
    assert result(up.storage.blobs.blobUsage(up.alice.account.id)) == (2, 2000)


def test_pendingSlotLimitHasRetryStamp(up):
    """The fourth pending slot is refused with resource-constraint and <retry stamp> at the first expiry."""
    for _ in range(3):
        slotOf(requestSlot(up, up.alice, size=1))
    reply = requestSlot(up, up.alice, size=1)
    assert condition(reply) == ("wait", ["resource-constraint", "text", "retry"])
    assert reply.error.retry["stamp"] == "2023-11-14T22:18:20Z"  # 1_700_000_000 + 300
    slotOf(requestSlot(up, up.bob, size=1))  # others are not affected


def test_putRefusals(up):
    """PUT without or with a wrong token, wrong length or content type, and a reused slot are refused."""
    putURL, headers, getURL = slotOf(requestSlot(up, up.alice, "a.txt", 5, "text/plain"))
    assert httpPut(up, putURL, b"hello", {}, "text/plain").status == 401
    assert httpPut(up, putURL, b"hello", {"Authorization": "Bearer nope"}, "text/plain").status == 403
    assert httpPut(up, putURL, b"hello!", headers, "text/plain").status == 413
    assert httpPut(up, putURL, b"hell", headers, "text/plain").status == 400
    assert httpPut(up, putURL, b"hello", headers, "image/png").status == 415
    assert up.get(getURL).status == 404  # nothing stored yet
    assert httpPut(up, putURL, b"hello", headers, "text/plain").status == 201
    assert httpPut(up, putURL, b"HELLO", headers, "text/plain").status == 409
    assert up.get(getURL).raw == b"hello"


def test_expiredSlotRefusedAndSwept(up):
    """A PUT after slot_seconds gets 410; the sweep deletes the blob, freeing the quota."""
    putURL, headers, _ = slotOf(requestSlot(up, up.alice, size=3))
    up.clock.advance(301)
    assert httpPut(up, putURL, b"abc", headers).status == 410
    assert result(up.storage.blobs.blobUsage(up.alice.account.id))[0] == 1
    up.site.startFactory()
    try:
        up.clock.advance(300)
    finally:
        up.site.stopFactory()
    assert result(up.storage.blobs.blobUsage(up.alice.account.id)) == (0, 0)
    assert httpPut(up, putURL, b"abc", headers).status == 404


def test_unknownAndPrivateGet404(up):
    """GET of an unknown id, or of a private REST blob's uid, is 404."""
    assert up.get("/upload/" + "0" * 32 + "/x").status == 404
    assert up.get("/upload/nothex/x").status == 404
    blob = result(up.storage.blobs.createBlob(up.alice.account.id, "p.txt", "text/plain"))
    path = os.path.join(up.config.server.data_dir, "blobs", blob.uid[:2], blob.uid)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"secret")
    result(up.storage.blobs.completeBlob(blob.id, 6))
    assert up.get(f"/upload/{blob.uid}/p.txt").status == 404


def test_htmlIsNotRenderedInline(up):
    """An uploaded text/html file is served as an attachment, nosniff, sandboxed."""
    putURL, headers, getURL = slotOf(requestSlot(up, up.alice, "x.html", 6, "text/html"))
    assert httpPut(up, putURL, b"<b>x</b>"[:6], headers, "text/html").status == 201
    r = up.get(getURL)
    assert r.header("content-disposition").startswith("attachment")
    assert r.header("content-security-policy") == "sandbox"


def test_otherStanzasRefused(up):
    """IQ sets, unknown payloads and messages to the component: service-unavailable."""
    reply = ask(up, up.alice, "<query xmlns='jabber:iq:version'/>")
    assert condition(reply)[1][0] == "service-unavailable"
    reply = ask(up, up.alice, f"<request xmlns='{NS}' filename='a' size='1'/>", kind="set")
    assert condition(reply)[1][0] == "service-unavailable"


def test_slotURLUsesPublicURL(tmp_path):
    """[upload] public_url (a reverse proxy's https base) is the base of the slot URLs."""
    api = ApiHarness(server={"data_dir": str(tmp_path)},
                     upload={"public_url": "https://files.example.com/x/"})
    host = Host(api.config, api.storage, api.clock)
    host.loadModules(["upload"])
    _, userId = api.user("carol")
    carol = Client(result(api.storage.accounts.getAccount(userId)))
    api.module = host.modules["upload"]
    putURL, _, _ = slotOf(requestSlot(api, carol))
    assert urlsplit(putURL)[:2] == ("https", "files.example.com")
    assert urlsplit(putURL).path.startswith("/x/upload/")


def test_devConfigOffersUpload():
    """The dev config (README's first command) loads the upload module with REST on 127.0.0.1:8089."""
    from xmppchat.config import loadConfig
    from xmppchat.service import listenerURL
    from xmppchat.storage.sqlite import SQLiteStorage

    config = loadConfig("conf/xmppchat.dev.toml")
    assert "upload" in config.modules.enabled and config.rest.enabled
    storage = SQLiteStorage(":memory:", synchronous=True)
    host = Host(config, storage, Clock())
    host.loadModules(["upload"])
    assert host.components["upload.localhost"] is host.modules["upload"]
    host.restURL = listenerURL(config.rest.interface, config.rest.port, config.server.domain)
    assert host.modules["upload"].baseURL() == "http://127.0.0.1:8089"


def test_listenerURL():
    """The derived URL base: the interface, bracketed IPv6, the domain for a wildcard address."""
    from xmppchat.service import listenerURL

    assert listenerURL("127.0.0.1", 8089, "example.com") == "http://127.0.0.1:8089"
    assert listenerURL("::1", 80, "example.com") == "http://[::1]:80"
    assert listenerURL("0.0.0.0", 8089, "example.com") == "http://example.com:8089"


def test_restOffMeansNoService(tmp_path):
    """Without the REST listener the module offers no component (nothing could take the PUT)."""
    from xmppchat.storage.sqlite import SQLiteStorage
    from tests.helpers import makeConfig

    host = Host(makeConfig(), SQLiteStorage(":memory:", synchronous=True), Clock())
    host.loadModules(["upload"])
    assert "upload.localhost" not in host.components


@pytest.mark.parametrize("values, key", [
    ({"domain": "a@b"}, "upload.domain"), ({"domain": "localhost"}, "upload.domain"),
    ({"public_url": "ftp://x"}, "upload.public_url"), ({"slot_seconds": 0}, "upload.slot_seconds"),
    ({"max_file_bytes": 0}, "upload.max_file_bytes"), ({"slots_per_user": 0}, "upload.slots_per_user")])
def test_configValidated(values, key):
    """Unusable [upload] values are configuration errors naming the key."""
    from xmppchat.config import ConfigError, buildConfig

    with pytest.raises(ConfigError) as caught:
        buildConfig({"upload": values})
    assert key in str(caught.value)
