"""
Tests for XEP-0049 private XML storage and the XEP-0411 conversion of
C{storage:bookmarks} to and from XEP-0402 PEP bookmarks
(L{xmppchat.modules.private}), with a fake of the internal PEP API.
"""

from __future__ import annotations

from twisted.words.xish import domish

from tests.helpers import HostHarness, result
from tests.modules.fakepep import install
from tests.modules.test_vcard import condition, iq
from xmppchat.modules.private import NS_BOOKMARKS, NS_BOOKMARKS_CONVERSION

BOTH_BACKENDS = True


def private(h, session, transport, kind, payload, to=""):
    toAttr = f" to='{to}'" if to else ""
    return iq(h, session, transport,
              f"<iq type='{kind}' id='p1'{toAttr}><query xmlns='jabber:iq:private'>{payload}</query></iq>")


def noPEP(h):
    h.host.modules.pop("pep", None)


def test_roundTripPerNamespace():
    """Elements stored under different names/namespaces read back separately; unset ones come back empty."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert private(h, alice, ta, "set", "<prefs xmlns='x:a'><v>1</v></prefs>")["type"] == "result"
    assert private(h, alice, ta, "set", "<prefs xmlns='x:b'><v>2</v></prefs>", "alice@localhost")["type"] == "result"
    reply = private(h, alice, ta, "get", "<prefs xmlns='x:a'/>")
    assert reply["type"] == "result" and str(reply.query.prefs.v) == "1" and reply.query.prefs.uri == "x:a"
    assert str(private(h, alice, ta, "get", "<prefs xmlns='x:b'/>").query.prefs.v) == "2"
    empty = private(h, alice, ta, "get", "<other xmlns='x:a'/>").query.other
    assert empty is not None and not empty.children


def test_emptySetDeletes():
    """Setting an empty element deletes what was stored."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    private(h, alice, ta, "set", "<prefs xmlns='x:a'><v>1</v></prefs>")
    private(h, alice, ta, "set", "<prefs xmlns='x:a'/>")
    assert not private(h, alice, ta, "get", "<prefs xmlns='x:a'/>").query.prefs.children


def test_attackerCannotReadOthersStorage():
    """Getting or setting another user's private storage is forbidden."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    mallory, tm = h.connect("mallory")
    private(h, alice, ta, "set", "<secret xmlns='x:a'>42</secret>")
    assert condition(private(h, mallory, tm, "get", "<secret xmlns='x:a'/>", "alice@localhost")) == "forbidden"
    assert condition(private(h, mallory, tm, "set", "<secret xmlns='x:a'>0</secret>", "alice@localhost")) == "forbidden"
    assert str(private(h, alice, ta, "get", "<secret xmlns='x:a'/>").query.secret) == "42"


def test_badQueriesRefused():
    """No child, two children or a jabber:* namespace are not-acceptable."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    assert condition(private(h, alice, ta, "set", "")) == "not-acceptable"
    assert condition(private(h, alice, ta, "set", "<a xmlns='x:a'/><b xmlns='x:a'/>")) == "not-acceptable"
    assert condition(private(h, alice, ta, "get", "<query xmlns='jabber:iq:roster'/>")) == "not-acceptable"


def test_attackerTooLargeRefused():
    """An element over quotas.private_max_bytes is refused with not-acceptable; the stored one is kept."""
    h = HostHarness(quotas={"private_max_bytes": 512})
    alice, ta = h.connect("alice")
    private(h, alice, ta, "set", "<prefs xmlns='x:a'>ok</prefs>")
    reply = private(h, alice, ta, "set", f"<prefs xmlns='x:a'>{'x' * 600}</prefs>")
    assert condition(reply) == "not-acceptable"
    assert str(private(h, alice, ta, "get", "<prefs xmlns='x:a'/>").query.prefs) == "ok"


def test_attackerTooManyNamespacesRefused():
    """A namespace beyond quotas.private_namespaces_per_user is resource-constraint; replacing one works."""
    h = HostHarness(quotas={"private_namespaces_per_user": 2})
    alice, ta = h.connect("alice")
    private(h, alice, ta, "set", "<a xmlns='x:1'>1</a>")
    private(h, alice, ta, "set", "<a xmlns='x:2'>2</a>")
    assert condition(private(h, alice, ta, "set", "<a xmlns='x:3'>3</a>")) == "resource-constraint"
    assert private(h, alice, ta, "set", "<a xmlns='x:1'>one</a>")["type"] == "result"


def test_bookmarksWithoutPEPAreStored():
    """Without PEP, storage:bookmarks is plain private XML."""
    h = HostHarness()
    noPEP(h)
    alice, ta = h.connect("alice")
    private(h, alice, ta, "set", "<storage xmlns='storage:bookmarks'><url name='u' url='https://x'/></storage>")
    reply = private(h, alice, ta, "get", "<storage xmlns='storage:bookmarks'/>")
    assert reply.query.storage.url["url"] == "https://x"


LEGACY = ("<storage xmlns='storage:bookmarks'>"
          "<conference jid='room@muc.localhost' name='The Room' autojoin='true'><nick>al</nick></conference>"
          "<conference jid='other@muc.localhost' autojoin='0'><password>pw</password></conference>"
          "</storage>")


def test_privateBookmarksBecomePEPItems():
    """storage:bookmarks set through private storage becomes XEP-0402 items (one per room, whitelist)."""
    h = HostHarness()
    pep = install(h)
    alice, ta = h.connect("alice")
    assert private(h, alice, ta, "set", LEGACY)["type"] == "result"
    items = dict(result(pep.getItems("alice", NS_BOOKMARKS)))
    assert set(items) == {"room@muc.localhost", "other@muc.localhost"}
    room = items["room@muc.localhost"]
    assert room.uri == NS_BOOKMARKS and room["name"] == "The Room" and room["autojoin"] == "true"
    assert str(room.nick) == "al"
    assert items["other@muc.localhost"]["autojoin"] == "false" and str(items["other@muc.localhost"].password) == "pw"
    options = pep.options[("alice", NS_BOOKMARKS)]
    assert options["pubsub#access_model"] == "whitelist" and options["pubsub#persist_items"] == "true"
    # the same list again publishes nothing; a shorter one retracts
    count = len(pep.published)
    private(h, alice, ta, "set", LEGACY)
    assert len(pep.published) == count
    private(h, alice, ta, "set", "<storage xmlns='storage:bookmarks'>"
            "<conference jid='room@muc.localhost' name='The Room' autojoin='true'><nick>al</nick></conference>"
            "</storage>")
    assert [i for i, _ in result(pep.getItems("alice", NS_BOOKMARKS))] == ["room@muc.localhost"]


def test_pepBookmarksReadThroughPrivate():
    """XEP-0402 items a client published are read as storage:bookmarks, oldest first."""
    h = HostHarness()
    pep = install(h)
    alice, ta = h.connect("alice")
    for room, name in (("a@muc.localhost", "A"), ("b@muc.localhost", "B")):
        conference = domish.Element((NS_BOOKMARKS, "conference"))
        conference["name"], conference["autojoin"] = name, "true"
        conference.addElement("nick", content="al")
        result(pep.publish("alice", NS_BOOKMARKS, conference, room, publisher=alice.full))
    storage = private(h, alice, ta, "get", "<storage xmlns='storage:bookmarks'/>").query.storage
    conferences = [c for c in storage.elements() if c.name == "conference"]
    assert [(c["jid"], c["name"], c["autojoin"], str(c.nick)) for c in conferences] == [
        ("a@muc.localhost", "A", "true", "al"), ("b@muc.localhost", "B", "true", "al")]


def test_badBookmarkJIDRefused():
    """A conference with a malformed JID is jid-malformed and publishes nothing."""
    h = HostHarness()
    pep = install(h)
    alice, ta = h.connect("alice")
    reply = private(h, alice, ta, "set", "<storage xmlns='storage:bookmarks'><conference jid='@@'/></storage>")
    assert condition(reply) == "jid-malformed" and not pep.published


def test_conversionAdvertised():
    """The account advertises XEP-0411 conversion with PEP only."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    noPEP(h)

    def features():
        query = iq(h, alice, ta, "<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").query
        return [f["var"] for f in query.elements() if f.name == "feature"]

    assert NS_BOOKMARKS_CONVERSION not in features()
    install(h)
    assert NS_BOOKMARKS_CONVERSION in features() and NS_BOOKMARKS + "#compat" in features()
    assert NS_BOOKMARKS + "#compat-pep" in features()


PUBSUB = "http://jabber.org/protocol/pubsub"


def legacyPEP(h, session, transport, kind, payload):
    return iq(h, session, transport, f"<iq type='{kind}' id='b1'><pubsub xmlns='{PUBSUB}'>{payload}</pubsub></iq>")


def test_legacyPEPBookmarksConverted():
    """
    Review finding 2 (XEP-0411 §3-4, compat-pep): a XEP-0048 client publishes
    its bookmarks to the PEP node storage:bookmarks: they become XEP-0402 items
    (with the real PEP service), read back as one item 'current', and
    through private storage.
    """
    h = HostHarness()
    alice, ta = h.connect("alice")
    reply = legacyPEP(h, alice, ta, "set", f"<publish node='storage:bookmarks'><item id='current'>{LEGACY}</item></publish>")
    assert reply["type"] == "result"
    pep = h.host.modules["pep"]
    items = dict(result(pep.getItems("alice", NS_BOOKMARKS)))
    assert set(items) == {"room@muc.localhost", "other@muc.localhost"} and items["room@muc.localhost"]["name"] == "The Room"
    got = legacyPEP(h, alice, ta, "get", "<items node='storage:bookmarks'/>").pubsub.items
    assert got["node"] == "storage:bookmarks"
    [item] = list(got.elements())
    assert item["id"] == "current" and item.storage.uri == "storage:bookmarks"
    assert sorted(c["jid"] for c in item.storage.elements()) == ["other@muc.localhost", "room@muc.localhost"]
    storage = private(h, alice, ta, "get", "<storage xmlns='storage:bookmarks'/>").query.storage
    assert len(list(storage.elements())) == 2
    assert condition(legacyPEP(h, alice, ta, "set", "<publish node='storage:bookmarks'><item><x xmlns='y'/></item>"
                                                    "</publish>")) == "bad-request"


def test_legacyPEPBookmarksGetWhenEmpty():
    """Nothing stored: the items of storage:bookmarks are one empty <storage/>."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    [item] = list(legacyPEP(h, alice, ta, "get", "<items node='storage:bookmarks'/>").pubsub.items.elements())
    assert item["id"] == "current" and item.storage is not None and not item.storage.children


def test_legacyBookmarksBroadcast():
    """
    Review finding 2 (XEP-0411 compat-pep): a XEP-0048 resource with
    storage:bookmarks+notify hears of a XEP-0402 publish (and retract) from
    its other resource as one item 'current' holding <storage/>; no contact does.
    """
    from tests.modules.test_pep import befriend, events, withCaps

    h = HostHarness()
    befriend(h, "alice", "bob")
    legacy, tl = h.connect("alice", "legacy", available=False)
    withCaps(h, legacy, ["storage:bookmarks+notify"])
    bob, tb = h.connect("bob", available=False)
    withCaps(h, bob, ["storage:bookmarks+notify", NS_BOOKMARKS + "+notify"])
    modern, tm = h.connect("alice", "modern")
    conference = f"<conference xmlns='{NS_BOOKMARKS}' name='R' autojoin='true'/>"
    reply = legacyPEP(h, modern, tm, "set", f"<publish node='{NS_BOOKMARKS}'><item id='r@muc.localhost'>"
                                            f"{conference}</item></publish>")
    assert reply["type"] == "result"
    [notice] = events(tl)
    assert notice["from"] == "alice@localhost" and notice.event.items["node"] == "storage:bookmarks"
    item = notice.event.items.item
    assert item["id"] == "current" and [c["jid"] for c in item.storage.elements()] == ["r@muc.localhost"]
    legacyPEP(h, modern, tm, "set", f"<retract node='{NS_BOOKMARKS}'><item id='r@muc.localhost'/></retract>")
    [notice] = events(tl)
    assert not notice.event.items.item.storage.children
    assert [e for e in events(tb) if e.event.items["node"] == "storage:bookmarks"] == []
