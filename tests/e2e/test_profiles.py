"""
Real-client tests of profiles (issue 16 items 2, 3, 7): slixmpp clients
over loopback set and read vCards (XEP-0054), see the XEP-0153 hash in
presence, use private XML storage (XEP-0049); a blocked user gets no
vCard and no hash; too-large documents are refused; the conversions to
and from PEP: a vCard photo read by a contact as XEP-0084 items and a
XEP-0084 publish read as the vCard photo (XEP-0398), XEP-0049 bookmarks
read as XEP-0402 items and the other way round (XEP-0411).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError

from tests.differential.observe import befriend, play
from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT

NS_VCARD = "vcard-temp"
NS_UPDATE = "vcard-temp:x:update"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
IMAGE_B64 = base64.b64encode(IMAGE).decode()
SHA1 = hashlib.sha1(IMAGE).hexdigest()
PHOTO_VCARD = (f"<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><GIVEN>Alice</GIVEN></N>"
               f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{IMAGE_B64}</BINVAL></PHOTO></vCard>")
SCENES = {"own": ("alice", "bob"), "hash": ("alice", "bob"), "big": ("alice",), "private": ("alice", "mallory"),
          "block": ("alice", "mallory"), "topep": ("alice", "bob"), "frompep": ("alice", "bob"),
          "marks": ("alice",), "marks2": ("alice",), "disco": ("alice",),
          "marks3": ("alice",)}
PUBSUB = "http://jabber.org/protocol/pubsub"
AVATAR_DATA = "urn:xmpp:avatar:data"
AVATAR_META = "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    server = startServer(tmp_path_factory.mktemp("profiles"), extra="""
[quotas]
vcard_max_bytes = 8192
private_max_bytes = 4096
""")
    server.addusers([f"{scene}-{name}" for scene, names in SCENES.items() for name in names],
                    password=lambda name: f"{name}-pw")
    yield server
    stopServer(server)


async def request(client, kind: str, payload: str, to: str | None = None) -> ET.Element:
    """
    Send an IQ C{kind} with C{payload} (XML text); the reply's XML, or
    C{IqError} for an error.
    """
    iq = client.Iq()
    iq["type"] = kind
    if to:
        iq["to"] = to
    iq.xml.append(ET.fromstring(payload))
    reply = await iq.send(timeout=TIMEOUT)
    return reply.xml


async def refused(client, kind: str, payload: str, to: str | None = None) -> str:
    """The error condition C{payload} gets (failing if it succeeds)."""
    with pytest.raises(IqError) as caught:
        await request(client, kind, payload, to)
    return caught.value.condition


def vcardOf(reply: ET.Element) -> dict:
    vcard = reply.find(f"{{{NS_VCARD}}}vCard")
    photo = vcard.find(f"{{{NS_VCARD}}}PHOTO")
    return {"FN": vcard.findtext(f"{{{NS_VCARD}}}FN"),
            "GIVEN": vcard.findtext(f"{{{NS_VCARD}}}N/{{{NS_VCARD}}}GIVEN"),
            "TYPE": photo.findtext(f"{{{NS_VCARD}}}TYPE") if photo is not None else None,
            "PHOTO": (base64.b64decode("".join(photo.findtext(f"{{{NS_VCARD}}}BINVAL").split()))
                      if photo is not None else None)}


def photoHashes(scene, client, sender: str) -> list:
    """The XEP-0153 hashes in the presences C{client} got from C{sender}'s resources."""
    found = []
    for c, xml in scene.received:
        if c is client and xml.tag.endswith("presence") and xml.get("from", "").startswith(sender + "/"):
            found.append(xml.findtext(f"{{{NS_UPDATE}}}x/{{{NS_UPDATE}}}photo"))
    return found


EXPECTED_VCARD = {"FN": "Alice Liddell", "GIVEN": "Alice", "TYPE": "image/png", "PHOTO": IMAGE}


async def vcardRoundTrip(scene):
    """
    Alice sets her vCard and reads it back; Bob reads it at her bare JID;
    Alice reads Bob's, who has none: C{(own, other, children of Bob's)}.
    """
    alice, bob = await scene.online("alice", "bob")
    await request(alice, "set", PHOTO_VCARD)
    own = vcardOf(await request(alice, "get", "<vCard xmlns='vcard-temp'/>"))
    other = vcardOf(await request(bob, "get", "<vCard xmlns='vcard-temp'/>", scene.jid("alice")))
    empty = await request(alice, "get", "<vCard xmlns='vcard-temp'/>", scene.jid("bob"))
    return own, other, list(empty.find(f"{{{NS_VCARD}}}vCard"))


def avatarHash(server, prefix: str):
    """
    The script where contacts Alice and Bob come online and Alice sets a
    vCard photo and sends presence: the last XEP-0153 hash Bob saw.
    """

    async def script(scene):
        await befriend(server, prefix, "alice", "bob")
        alice, bob = await scene.online("alice", "bob")
        await request(alice, "set", PHOTO_VCARD)
        alice.send_presence(pstatus="new avatar")
        await scene.settle()
        return photoHashes(scene, bob, scene.jid("alice"))[-1]

    return script


def test_vcardRoundTrip(users):
    """A vCard set by its owner reads back for him and for another user at the owner's bare JID."""
    assert play(users, "own", vcardRoundTrip) == (EXPECTED_VCARD, EXPECTED_VCARD, [])


def test_photoHashInPresence(users):
    """After a vCard with a photo, a contact sees the XEP-0153 hash in the owner's next presence."""
    assert play(users, "hash", avatarHash(users, "hash")) == SHA1


def test_attackerTooLargeVCardRefused(users):
    """A vCard over quotas.vcard_max_bytes is refused with not-acceptable and the stored one is kept."""

    async def script(scene):
        alice = await scene.login("alice")
        await request(alice, "set", "<vCard xmlns='vcard-temp'><FN>kept</FN></vCard>")
        condition = await refused(alice, "set", f"<vCard xmlns='vcard-temp'><DESC>{'x' * 9000}</DESC></vCard>")
        kept = vcardOf(await request(alice, "get", "<vCard xmlns='vcard-temp'/>"))["FN"]
        return condition, kept

    assert play(users, "big", script) == ("not-acceptable", "kept")


def test_privateStorageRoundTrip(users):
    """Private XML reads back per namespace; another user's is forbidden; a too-large element is refused."""

    async def script(scene):
        alice, mallory = await scene.online("alice", "mallory")
        await request(alice, "set", "<query xmlns='jabber:iq:private'><prefs xmlns='x:e2e'><v>1</v></prefs></query>")
        got = await request(alice, "get", "<query xmlns='jabber:iq:private'><prefs xmlns='x:e2e'/></query>")
        value = got.findtext("{jabber:iq:private}query/{x:e2e}prefs/{x:e2e}v")
        stolen = await refused(mallory, "get", "<query xmlns='jabber:iq:private'><prefs xmlns='x:e2e'/></query>",
                               scene.jid("alice"))
        big = await refused(alice, "set",
                            f"<query xmlns='jabber:iq:private'><prefs xmlns='x:e2e'>{'x' * 5000}</prefs></query>")
        return value, stolen, big

    assert play(users, "private", script) == ("1", "forbidden", "not-acceptable")


def test_blockedUserGetsNoVCardNorHash(users):
    """A user the owner blocked (XEP-0191) gets an error for the vCard and no presence with the hash."""

    async def script(scene):
        await befriend(users, "block", "alice", "mallory")
        alice, mallory = await scene.online("alice", "mallory")
        await request(alice, "set", PHOTO_VCARD)
        await request(alice, "set", f"<block xmlns='urn:xmpp:blocking'><item jid='{scene.jid('mallory')}'/></block>")
        await scene.settle()
        mark = len(scene.received)
        alice.send_presence(pstatus="hidden from mallory")
        await scene.settle()
        condition = await refused(mallory, "get", "<vCard xmlns='vcard-temp'/>", scene.jid("alice"))
        scene.received = scene.received[mark:]
        return condition, photoHashes(scene, mallory, scene.jid("alice"))

    condition, hashes = play(users, "block", script)
    assert condition == "service-unavailable" and SHA1 not in hashes



def test_restAvatarSeenAsVCardPhotoURL(users):
    """A user who set a REST avatar URL (the SDK's users.update) shows it to XMPP clients as PHOTO EXTVAL."""
    from tests.e2e.conftest import REST_AUTH_KEY
    from tests.e2e.test_rest import call
    from tests.e2e.test_slixmpp import Client, run

    status, body = call(users, "POST", "/session.json", {"application_id": 1, "auth_key": REST_AUTH_KEY})
    app = body["session"]["token"]
    status, body = call(users, "POST", "/users.json",
                        {"user": {"login": "avatarist", "password": "avatarist-pw"}}, token=app)
    assert status == 201, body
    status, body = call(users, "POST", "/login.json", {"login": "avatarist", "password": "avatarist-pw"}, token=app)
    token, userId = app, body["user"]["id"]
    status, body = call(users, "PUT", f"/users/{userId}.json",
                        {"user": {"avatar": "https://cdn.example.com/avatarist.png"}}, token=token)
    assert status == 200, body

    async def scenario():
        client = Client(users, f"{userId}-1@localhost", token)
        assert await client.login()
        reply = await request(client, "get", "<vCard xmlns='vcard-temp'/>", f"{userId}-1@localhost")
        await client.logout()
        return reply.findtext(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}PHOTO/{{{NS_VCARD}}}EXTVAL")

    assert run(scenario()) == "https://cdn.example.com/avatarist.png"


# -- XEP-0398 and XEP-0411 (with the pep module) -------------------------------------


def items(reply: ET.Element) -> list:
    """C{[(id, payload)]} of a pubsub items result."""
    found = reply.findall(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}items/{{{PUBSUB}}}item")
    return [(item.get("id"), item[0] if len(item) else None) for item in found]


def itemsRequest(node: str) -> str:
    return f"<pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub>"


def publishRequest(node: str, itemId: str, payload: str, options: dict | None = None) -> str:
    form = ""
    if options:
        fields = "".join(f"<field var='{var}'><value>{value}</value></field>" for var, value in options.items())
        form = ("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
                f"<value>{PUBSUB}#publish-options</value></field>{fields}</x></publish-options>")
    return (f"<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{itemId}'>{payload}</item></publish>"
            f"{form}</pubsub>")


def test_vcardPhotoSeenAsPEPAvatar(users):
    """A vCard photo is read by a contact as XEP-0084 metadata and data at the owner's bare JID."""

    async def script(scene):
        await befriend(users, "topep", "alice", "bob")
        alice, bob = await scene.online("alice", "bob")
        await request(alice, "set", PHOTO_VCARD)
        meta = items(await request(bob, "get", itemsRequest(AVATAR_META), scene.jid("alice")))
        data = items(await request(bob, "get", itemsRequest(AVATAR_DATA), scene.jid("alice")))
        info = meta[0][1].find(f"{{{AVATAR_META}}}info")
        return (meta[0][0], dict(info.attrib), data[0][0], base64.b64decode(data[0][1].text))

    metaId, info, dataId, image = play(users, "topep", script)
    assert metaId == dataId == SHA1 and image == IMAGE
    assert info == {"id": SHA1, "bytes": str(len(IMAGE)), "type": "image/png"}


def test_pepAvatarSeenAsVCardPhoto(users):
    """A client's XEP-0084 publish (data, then metadata) is read by a contact as the vCard PHOTO and hash."""

    async def script(scene):
        await befriend(users, "frompep", "alice", "bob")
        alice, bob = await scene.online("alice", "bob")
        await request(alice, "set", publishRequest(AVATAR_DATA, SHA1, f"<data xmlns='{AVATAR_DATA}'>{IMAGE_B64}</data>"))
        await request(alice, "set", publishRequest(
            AVATAR_META, SHA1, f"<metadata xmlns='{AVATAR_META}'><info id='{SHA1}' bytes='{len(IMAGE)}' "
                               "type='image/png'/></metadata>"))
        for _ in range(50):  # the conversion follows the publish
            vcard = vcardOf(await request(bob, "get", "<vCard xmlns='vcard-temp'/>", scene.jid("alice")))
            if vcard["PHOTO"] is not None:
                break
            await asyncio.sleep(0.1)
        alice.send_presence(pstatus="pep avatar")
        await scene.settle()
        return vcard["PHOTO"], photoHashes(scene, bob, scene.jid("alice"))[-1]

    assert play(users, "frompep", script) == (IMAGE, SHA1)


LEGACY_BOOKMARKS = ("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                    "<conference jid='tea@muc.localhost' name='Tea party' autojoin='true'><nick>alice</nick>"
                    "</conference></storage></query>")


async def privateBookmarksAsPEP(scene):
    """
    Alice stores a XEP-0048 bookmark through XEP-0049 and reads her
    XEP-0402 node: C{([(id, name, autojoin, nick)], [access model])}.
    """
    (alice,) = await scene.online("alice")
    await request(alice, "set", LEGACY_BOOKMARKS)
    found = items(await request(alice, "get", itemsRequest(BOOKMARKS)))
    config = await request(alice, "get", f"<pubsub xmlns='{PUBSUB}#owner'><configure node='{BOOKMARKS}'/></pubsub>")
    access = [f.findtext("{jabber:x:data}value") for f in config.iter("{jabber:x:data}field")
              if f.get("var") == "pubsub#access_model"]
    return [(i, p.get("name"), p.get("autojoin"), p.findtext(f"{{{BOOKMARKS}}}nick")) for i, p in found], access


async def pepBookmarksAsPrivate(scene):
    """
    Alice publishes a XEP-0402 bookmark and reads XEP-0049
    C{storage:bookmarks}: C{[(jid, name, autojoin, nick)]}.
    """
    (alice,) = await scene.online("alice")
    options = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist", "pubsub#max_items": "max",
               "pubsub#send_last_published_item": "never"}
    await request(alice, "set", publishRequest(
        BOOKMARKS, "coffee@muc.localhost",
        f"<conference xmlns='{BOOKMARKS}' name='Coffee' autojoin='true'><nick>al</nick></conference>", options))
    reply = await request(alice, "get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
    return [(c.get("jid"), c.get("name"), c.get("autojoin"), c.findtext("{storage:bookmarks}nick"))
            for c in reply.iter("{storage:bookmarks}conference")]


EXPECTED_PEP_BOOKMARKS = ([("tea@muc.localhost", "Tea party", "true", "alice")], ["whitelist"])
EXPECTED_PRIVATE_BOOKMARKS = [("coffee@muc.localhost", "Coffee", "true", "al")]


def test_privateBookmarksReadAsPEP(users):
    """Bookmarks stored through XEP-0049 are XEP-0402 items of urn:xmpp:bookmarks:1 (whitelist)."""
    assert play(users, "marks", privateBookmarksAsPEP) == EXPECTED_PEP_BOOKMARKS


def test_pepBookmarksReadThroughPrivate(users):
    """A XEP-0402 bookmark a modern client published is read by a XEP-0049 client as storage:bookmarks."""
    assert play(users, "marks2", pepBookmarksAsPrivate) == EXPECTED_PRIVATE_BOOKMARKS


def test_conversionsAdvertised(users):
    """The account's disco#info has urn:xmpp:pep-vcard-conversion:0 and urn:xmpp:bookmarks-conversion:0."""

    async def script(scene):
        (alice,) = await scene.online("alice")
        reply = await request(alice, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", scene.jid("alice"))
        return {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}

    features = play(users, "disco", script)
    assert {"urn:xmpp:pep-vcard-conversion:0", "urn:xmpp:bookmarks-conversion:0",
            "urn:xmpp:bookmarks:1#compat-pep"} <= features


def test_legacyPEPBookmarksConverted(users):
    """
    Review finding 2 (XEP-0411 compat-pep): a XEP-0048-over-PEP client publishes
    storage:bookmarks; it is read back as one item 'current' and as XEP-0402 items.
    """
    storage = ("<storage xmlns='storage:bookmarks'><conference jid='tea@muc.localhost' name='Tea' autojoin='true'>"
               "<nick>al</nick></conference></storage>")

    async def script(scene):
        (alice,) = await scene.online("alice")
        await request(alice, "set", publishRequest("storage:bookmarks", "current", storage))
        legacy = items(await request(alice, "get", itemsRequest("storage:bookmarks")))
        modern = items(await request(alice, "get", itemsRequest(BOOKMARKS)))
        return ([(i, [c.get("jid") for c in p]) for i, p in legacy],
                [(i, p.get("name"), p.findtext(f"{{{BOOKMARKS}}}nick")) for i, p in modern])

    assert play(users, "marks3", script) == ([("current", ["tea@muc.localhost"])], [("tea@muc.localhost", "Tea", "al")])
