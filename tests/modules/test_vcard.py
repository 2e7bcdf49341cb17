"""
Tests for XEP-0054 vCards, the XEP-0153 hash in presence and the XEP-0398
conversion to and from XEP-0084 PEP avatars (L{xmppchat.modules.vcard}),
with a fake of the internal PEP API.
"""

from __future__ import annotations

import base64
import hashlib

from tests.helpers import HostHarness, result, xml
from tests.modules.fakepep import install
from xmppchat.modules.vcard import NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_CONVERSION
from xmppchat.storage.interfaces import RosterItem

BOTH_BACKENDS = True

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
IMAGE_B64 = base64.b64encode(IMAGE).decode()
SHA1 = hashlib.sha1(IMAGE).hexdigest()
PHOTO_VCARD = (f"<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE>"
               f"<BINVAL>{IMAGE_B64[:40]}\n{IMAGE_B64[40:]}</BINVAL></PHOTO></vCard>")


def iq(h, session, transport, text):
    h.send(session, text)
    [reply] = [e for e in transport.pop() if e.name == "iq"]
    return reply


def condition(reply):
    return reply.error.firstChildElement().name


def setVCard(h, session, transport, vcard, to=""):
    toAttr = f" to='{to}'" if to else ""
    return iq(h, session, transport, f"<iq type='set' id='v1'{toAttr}>{vcard}</iq>")


def getVCard(h, session, transport, to=""):
    toAttr = f" to='{to}'" if to else ""
    return iq(h, session, transport, f"<iq type='get' id='g1'{toAttr}><vCard xmlns='vcard-temp'/></iq>")


def contacts(h, a, b):
    for user, contact in ((a, b), (b, a)):
        result(h.storage.roster.setRosterItem(user, RosterItem(jid=f"{contact}@localhost", subscription="both")))


def contactsOnline(h, owner, contact):
    """Two mutual contacts, both online: C{(owner session, its transport, contact's transport)}."""
    contacts(h, owner, contact)
    session, transport = h.connect(owner)
    _, other = h.connect(contact)
    return session, transport, other


def presencesAfter(h, session, text, transport):
    """The presences C{transport} gets when C{session} sends C{text}."""
    transport.pop()
    h.send(session, text)
    return [e for e in transport.pop() if e.name == "presence"]


def updateHash(presence):
    for x in presence.elements():
        if x.name == "x" and x.uri == "vcard-temp:x:update":
            photo = [p for p in x.elements() if p.name == "photo"]
            return str(photo[0]) if photo else None
    return None


def test_ownRoundTrip():
    """A vCard set with no 'to' reads back the same, with no 'to' and at the own bare JID."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert setVCard(h, alice, ta, PHOTO_VCARD)["type"] == "result"
    for to in ("", "alice@localhost"):
        reply = getVCard(h, alice, ta, to)
        assert reply["type"] == "result"
        assert str(reply.vCard.FN) == "Alice" and str(reply.vCard.PHOTO.TYPE) == "image/png"
        assert base64.b64decode("".join(str(reply.vCard.PHOTO.BINVAL).split())) == IMAGE


def test_setAtOwnBareJID():
    """A vCard set addressed to the own bare JID is stored too."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert setVCard(h, alice, ta, "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>", "alice@localhost")["type"] == "result"
    assert str(getVCard(h, alice, ta).vCard.FN) == "A"


def test_contactReadsVCard():
    """Another user reads the vCard at the owner's bare JID; an account without one answers an empty vCard."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    setVCard(h, alice, ta, PHOTO_VCARD)
    reply = getVCard(h, bob, tb, "alice@localhost")
    assert reply["type"] == "result" and reply["from"] == "alice@localhost" and str(reply.vCard.FN) == "Alice"
    empty = getVCard(h, alice, ta, "bob@localhost")
    assert empty["type"] == "result" and empty.vCard is not None and not list(empty.vCard.elements())


def test_unknownAccount():
    """The vCard of an account that does not exist is service-unavailable."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert condition(getVCard(h, alice, ta, "nobody@localhost")) == "service-unavailable"


def test_attackerCannotSetAnotherUsersVCard():
    """Setting another user's vCard is forbidden and changes nothing."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    mallory, tm = h.connect("mallory")
    setVCard(h, alice, ta, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
    reply = setVCard(h, mallory, tm, "<vCard xmlns='vcard-temp'><FN>pwned</FN></vCard>", "alice@localhost")
    assert condition(reply) == "forbidden"
    assert str(getVCard(h, alice, ta).vCard.FN) == "Alice"


def test_attackerTooLargeVCardRefused():
    """A vCard over quotas.vcard_max_bytes is refused with not-acceptable; the stored one is kept."""
    h = HostHarness(quotas={"vcard_max_bytes": 1024})
    alice, ta = h.connect("alice")
    setVCard(h, alice, ta, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
    reply = setVCard(h, alice, ta, f"<vCard xmlns='vcard-temp'><DESC>{'x' * 2000}</DESC></vCard>")
    assert condition(reply) == "not-acceptable" and "1024" in str(reply.error.text)
    assert str(getVCard(h, alice, ta).vCard.FN) == "Alice"


def test_badBinvalRefused():
    """A PHOTO whose BINVAL is not base64 is a bad-request."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    reply = setVCard(h, alice, ta, "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>*not base64*</BINVAL></PHOTO></vCard>")
    assert condition(reply) == "bad-request"


def test_blockedUserGetsNoVCard():
    """A user the owner blocked (XEP-0191) gets no vCard."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    mallory, tm = h.connect("mallory")
    setVCard(h, alice, ta, PHOTO_VCARD)
    h.send(alice, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>")
    ta.pop()
    reply = getVCard(h, mallory, tm, "alice@localhost")
    assert reply["type"] == "error" and condition(reply) == "service-unavailable"
    assert "BINVAL" not in reply.toXml()


def test_presenceCarriesHash():
    """After a vCard with a photo, the owner's available presence reaches contacts with the XEP-0153 hash."""
    h = HostHarness()
    alice, ta, tb = contactsOnline(h, "alice", "bob")
    setVCard(h, alice, ta, PHOTO_VCARD)
    [presence] = presencesAfter(h, alice, "<presence><show>away</show></presence>", tb)
    assert updateHash(presence) == SHA1


def test_clientPhotoLeftAlone():
    """A presence that already has a <photo/> is not changed; no avatar adds nothing."""
    h = HostHarness()
    alice, ta, tb = contactsOnline(h, "alice", "bob")
    [presence] = presencesAfter(h, alice, "<presence/>", tb)
    assert updateHash(presence) is None
    setVCard(h, alice, ta, PHOTO_VCARD)
    text = "<presence><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>"
    [presence] = presencesAfter(h, alice, text, tb)
    assert updateHash(presence) == "abc"


def test_hashCachedNoStorageReadPerPresence():
    """The hash is read from storage when the account binds, not per presence."""
    h = HostHarness()
    h.addUser("alice")
    result(h.storage.userXML.setXML("alice", "vcard", "", PHOTO_VCARD.replace("'", '"')))
    alice, ta = h.connect("alice", available=False)
    reads = []
    original = h.storage.userXML.getXML
    h.storage.userXML.getXML = lambda *a: reads.append(a) or original(*a)
    for _ in range(3):
        h.send(alice, "<presence/>")
    assert reads == []  # read once, when the account bound
    [presence] = [e for e in ta.pop() if e.name == "presence"][-1:]
    assert updateHash(presence) == SHA1


def test_blockedUserGetsNoHash():
    """A user the owner blocked gets no presence, so no avatar hash."""
    h = HostHarness()
    alice, ta, tm = contactsOnline(h, "alice", "mallory")
    setVCard(h, alice, ta, PHOTO_VCARD)
    h.send(alice, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>")
    assert not [e for e in presencesAfter(h, alice, "<presence/>", tm) if updateHash(e)]


def test_remoteChangeReadsTheHashAgain():
    """A vcard-changed event from another cluster node makes this node read the hash again at once."""
    from xmppchat.modules.vcard import VCardChanged

    h = HostHarness()
    alice, ta = h.connect("alice")
    h.addUser("bob")
    module = h.host.modules["vcard"]
    assert module.hashes["alice"] == ""
    result(h.storage.userXML.setXML("alice", "vcard", "", PHOTO_VCARD.replace("'", '"')))
    h.host.hooks.fire("vcard-changed", VCardChanged(h.host, "alice", remote=True))
    assert module.hashes["alice"] == SHA1
    [presence] = presencesAfter(h, alice, "<presence/>", ta)
    assert updateHash(presence) == SHA1
    h.host.hooks.fire("vcard-changed", VCardChanged(h.host, "bob", remote=True))
    assert "bob" not in module.hashes  # no session here: nothing cached


def test_cacheDroppedWithLastSession():
    """The cached hash goes with the account's last session."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert "alice" in h.host.modules["vcard"].hashes
    h.host.endSession(alice)
    assert "alice" not in h.host.modules["vcard"].hashes


# -- XEP-0398 ------------------------------------------------------------------


def test_vcardPhotoPublishedToPEP():
    """A vCard PHOTO is published as XEP-0084 data and metadata (item id the SHA-1, open access)."""
    h = HostHarness()
    pep = install(h)
    alice, ta = h.connect("alice")
    setVCard(h, alice, ta, PHOTO_VCARD)
    [(_, data)] = result(pep.getItems("alice", NS_AVATAR_DATA))
    assert base64.b64decode(str(data)) == IMAGE
    [(itemId, metadata)] = result(pep.getItems("alice", NS_AVATAR_METADATA))
    info = metadata.info
    assert itemId == SHA1 and info["id"] == SHA1 and info["bytes"] == str(len(IMAGE)) and info["type"] == "image/png"
    assert pep.options[("alice", NS_AVATAR_METADATA)]["pubsub#access_model"] == "open"


def test_sameVCardPublishesOnce():
    """Setting the same photo again does not publish again; removing it publishes empty metadata."""
    h = HostHarness()
    pep = install(h)
    alice, ta = h.connect("alice")
    setVCard(h, alice, ta, PHOTO_VCARD)
    setVCard(h, alice, ta, PHOTO_VCARD.replace("Alice", "Alice B."))
    assert len(pep.published) == 2
    setVCard(h, alice, ta, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
    [(_, metadata)] = result(pep.getItems("alice", NS_AVATAR_METADATA))[:1]
    assert not list(metadata.elements())


def test_pepAvatarSetsVCardPhoto():
    """A client's XEP-0084 data + metadata publish sets the vCard PHOTO and the presence hash."""
    from twisted.words.xish import domish

    h = HostHarness()
    pep = install(h)
    contacts(h, "alice", "bob")
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    data = domish.Element((NS_AVATAR_DATA, "data"))
    data.addContent(IMAGE_B64)
    result(pep.publish("alice", NS_AVATAR_DATA, data, SHA1, publisher=alice.full))
    metadata = domish.Element((NS_AVATAR_METADATA, "metadata"))
    info = metadata.addElement("info")
    info["id"], info["type"], info["bytes"] = SHA1, "image/webp", str(len(IMAGE))
    result(pep.publish("alice", NS_AVATAR_METADATA, metadata, SHA1, publisher=alice.full))
    vcard = getVCard(h, bob, tb, "alice@localhost").vCard
    assert str(vcard.PHOTO.TYPE) == "image/webp" and base64.b64decode(str(vcard.PHOTO.BINVAL)) == IMAGE
    tb.pop()
    h.send(alice, "<presence/>")
    [presence] = [e for e in tb.pop() if e.name == "presence"]
    assert updateHash(presence) == SHA1
    assert len(pep.published) == 2  # not published back
    result(pep.publish("alice", NS_AVATAR_METADATA, domish.Element((NS_AVATAR_METADATA, "metadata")),
                       publisher=alice.full))
    assert getVCard(h, alice, ta).vCard.PHOTO is None


def test_conversionAdvertised():
    """The account advertises urn:xmpp:pep-vcard-conversion:0 when PEP is there, not without it."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    features = lambda: [f["var"] for f in iq(h, alice, ta, "<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").query.elements() if f.name == "feature"]  # noqa: E731
    h.host.modules.pop("pep", None)
    assert NS_CONVERSION not in features()
    install(h)
    assert NS_CONVERSION in features()


def test_restAvatarAsExtval():
    """An account whose REST avatar is a URL and which has no vCard PHOTO shows it as PHOTO EXTVAL."""
    h = HostHarness()
    account = h.addUser("alice")
    result(h.storage.accounts.updateAccount(account.id, profile={"avatar": "https://cdn.example/a.png"}))
    bob, tb = h.connect("bob")
    vcard = getVCard(h, bob, tb, "alice@localhost").vCard
    assert str(vcard.PHOTO.EXTVAL) == "https://cdn.example/a.png"


# -- with the real PEP module ------------------------------------------------------


def publishIQ(node, itemId, payload, options=""):
    return (f"<iq type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<publish node='{node}'><item id='{itemId}'>{payload}</item></publish>{options}</pubsub></iq>")


def test_realPEPClientAvatarToVCard():
    """With the pep module: a client's XEP-0084 data + metadata publish IQs become the vCard PHOTO."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    for node, payload in ((NS_AVATAR_DATA, f"<data xmlns='{NS_AVATAR_DATA}'>{IMAGE_B64}</data>"),
                          (NS_AVATAR_METADATA, f"<metadata xmlns='{NS_AVATAR_METADATA}'><info id='{SHA1}' "
                                               f"bytes='{len(IMAGE)}' type='image/png'/></metadata>")):
        assert iq(h, alice, ta, publishIQ(node, SHA1, payload))["type"] == "result"
    vcard = getVCard(h, alice, ta).vCard
    assert base64.b64decode(str(vcard.PHOTO.BINVAL)) == IMAGE
    assert h.host.modules["vcard"].hashes["alice"] == SHA1


def test_realPEPNodeConfiguredByOwnerKept():
    """A vCard photo is still published to avatar nodes the user created with another access model."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    pep = h.host.modules["pep"]
    old = f"<metadata xmlns='{NS_AVATAR_METADATA}'/>"
    result(pep.publish("alice", NS_AVATAR_METADATA, xml(old), "old", {"pubsub#access_model": "presence"}))
    result(pep.publish("alice", NS_AVATAR_DATA, xml(f"<data xmlns='{NS_AVATAR_DATA}'>AA==</data>"), "old",
                       {"pubsub#access_model": "presence"}))
    assert setVCard(h, alice, ta, PHOTO_VCARD)["type"] == "result"
    [(itemId, _)] = result(pep.getItems("alice", NS_AVATAR_METADATA, maxItems=1))
    assert itemId == SHA1


def test_hashReadDuringChangeNotCached():
    """A hash read that a vCard change overtakes is not cached (no stale hash)."""
    from twisted.internet import defer

    h = HostHarness()
    module = h.host.modules["vcard"]
    pending = defer.Deferred()
    original = h.storage.userXML.getXML
    h.storage.userXML.getXML = lambda *a: pending
    alice, ta = h.connect("alice", available=False)  # the read at bind waits
    h.storage.userXML.getXML = original
    other, to = h.connect("alice", available=False)
    assert setVCard(h, other, to, PHOTO_VCARD)["type"] == "result"
    pending.callback(None)  # the old read: no vCard
    assert module.hashes["alice"] == SHA1
    h.send(alice, "<presence/>")
    [presence] = [e for e in ta.pop() if e.name == "presence"][-1:]
    assert updateHash(presence) == SHA1


def test_presenceNeverWaitsForTheHash():
    """An initial presence sent while the hash is still being read is broadcast at once (without it)."""
    from twisted.internet import defer

    h = HostHarness()
    contacts(h, "alice", "bob")
    _, tb = h.connect("bob")
    h.storage.userXML.getXML = lambda *a: defer.Deferred()  # a read that never ends
    alice, ta = h.connect("alice", available=False)
    tb.pop()
    h.send(alice, "<presence/>")
    [presence] = [e for e in tb.pop() if e.name == "presence"]
    assert presence["from"] == alice.full and updateHash(presence) is None
    assert alice.available
