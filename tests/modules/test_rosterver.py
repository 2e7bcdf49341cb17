"""
Tests for roster versioning (RFC 6121 §2.6, XEP-0237; issue 16 item 6).
"""

from twisted.words.xish import domish

from tests.helpers import HeldRead, HostHarness, result
from xmppchat.c2s.negotiation import AUTHENTICATED, CONNECTED, StreamEvent

BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"


def get(h, session, ver=None):
    """Send a roster get (with C{ver} when given) and return the result IQ."""
    attr = "" if ver is None else f" ver='{ver}'"
    h.send(session, f"<iq type='get' id='g'><query xmlns='{NS_ROSTER}'{attr}/></iq>")
    return [e for e in session.stream.transport.pop() if e.name == "iq" and e.getAttribute("id") == "g"][0]


def items(reply):
    return sorted(i["jid"] for i in reply.query.elements())


def pushes(transport):
    return [e for e in transport.pop() if e.name == "iq" and e.getAttribute("type") == "set"]


def addContact(h, session, jid, name="X"):
    h.send(session, f"<iq type='set' id='s'><query xmlns='{NS_ROSTER}'><item jid='{jid}' name='{name}'/></query></iq>")


def features(h, session, phase):
    stream = session.stream
    stream.phase = phase
    element = domish.Element(("http://etherx.jabber.org/streams", "features"))
    h.host.hooks.fire("stream-features", StreamEvent(stream, features=element))
    return [(c.uri, c.name) for c in element.elements()]


def test_streamFeatureAfterAuthentication():
    """<ver xmlns='urn:xmpp:features:rosterver'/> is offered once authenticated, not before (§2.6.1)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert (NS_ROSTERVER, "ver") in features(h, alice, AUTHENTICATED)
    assert (NS_ROSTERVER, "ver") not in features(h, alice, CONNECTED)


def test_fullRosterCarriesVersion():
    """A get with an empty ver gets the full roster with the current version."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    addContact(h, alice, "bob@localhost")
    reply = get(h, alice, ver="")
    assert items(reply) == ["bob@localhost"]
    assert reply.query["ver"] == result(h.storage.roster.getRosterVersion("alice")) != "0"


def test_currentVersionGetsEmptyResult():
    """A get with the current version is answered with an empty result, no query (§2.6.3)."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    addContact(h, alice, "bob@localhost")
    ver = get(h, alice, ver="").query["ver"]
    reply = get(h, alice, ver=ver)
    assert reply["type"] == "result" and reply.firstChildElement() is None


def test_neverChangedRosterVersionZero():
    """An empty roster that never changed is version 0 and a get with it is answered empty."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert get(h, alice, ver="").query["ver"] == "0"
    assert get(h, alice, ver="0").firstChildElement() is None


def test_staleOrUnknownVersionGetsFullRoster():
    """An older or unknown version gets the full roster with the new version."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    addContact(h, alice, "bob@localhost")
    old = get(h, alice, ver="").query["ver"]
    addContact(h, alice, "carol@localhost")
    for ver in (old, "bogus", "99999999999999999999"):
        reply = get(h, alice, ver=ver)
        assert items(reply) == ["bob@localhost", "carol@localhost"]
        assert reply.query["ver"] != old


def test_pushesCarryTheVersionTheyProduce():
    """Every push carries the version of its change, and a get with the last one is answered empty."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    get(h, alice, ver="")
    addContact(h, alice, "bob@localhost")
    first = pushes(ta)[0].query["ver"]
    h.send(alice, f"<iq type='set' id='r'><query xmlns='{NS_ROSTER}'><item jid='bob@localhost' subscription='remove'/></query></iq>")
    second = pushes(ta)[0].query["ver"]
    assert int(second) > int(first)
    assert get(h, alice, ver=second).firstChildElement() is None
    assert items(get(h, alice, ver=first)) == []


def test_subscriptionChangesAdvanceTheVersion():
    """Changes made by subscription handling, on both sides, push a new version (§2.6.1)."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    va = get(h, alice, ver="").query["ver"]
    vb = get(h, bob, ver="").query["ver"]
    h.send(alice, "<presence to='bob@localhost' type='subscribe'/>")
    h.send(bob, "<presence to='alice@localhost' type='subscribed'/>")
    pa = [p.query["ver"] for p in pushes(ta)]
    pb = [p.query["ver"] for p in pushes(tb)]
    assert pa and pb and all(int(v) > int(va) for v in pa) and all(int(v) > int(vb) for v in pb)
    assert get(h, alice, ver=pa[-1]).firstChildElement() is None
    assert get(h, bob, ver=pb[-1]).firstChildElement() is None
    assert get(h, bob, ver=vb).query.item["subscription"] == "from"


def test_emptyResultStillGetsPushes():
    """A resource answered with an empty result is interested: it gets the pushes that follow."""
    h = HostHarness()
    alice, ta = h.connect("alice", "a")
    ver = get(h, alice, ver="").query["ver"]
    other, _ = h.connect("alice", "b")
    assert get(h, other, ver=ver).firstChildElement() is None
    addContact(h, alice, "bob@localhost")
    push = pushes(other.stream.transport)
    assert len(push) == 1 and push[0].query.item["jid"] == "bob@localhost"


def test_getWithoutVerUnchanged():
    """A client that knows nothing of versioning still gets the whole roster."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    addContact(h, alice, "bob@localhost")
    assert items(get(h, alice)) == ["bob@localhost"]


def test_changeDuringVersionReadIsPushed():
    """
    Review finding 4a: alice's client asks for the roster with its current
    version; while the server reads the version, her other resource adds carol:
    the client gets the (empty) result and then carol's push with its version.
    """
    h = HostHarness()
    alice, ta = h.connect("alice", "one")
    other, _ = h.connect("alice", "two")
    addContact(h, other, "bob@localhost")
    ver = result(h.storage.roster.getRosterVersion("alice"))
    read = HeldRead(h.storage.roster, "getRosterVersion")
    h.send(alice, f"<iq type='get' id='g'><query xmlns='{NS_ROSTER}' ver='{ver}'/></iq>")
    addContact(h, other, "carol@localhost")
    assert [e for e in ta.pop() if e.name == "iq"] == []  # nothing before the result
    read.release()
    got = [e for e in ta.pop() if e.name == "iq"]
    assert [(e["type"], e.getAttribute("id")) for e in got][0] == ("result", "g")
    [push] = [e for e in got if e["type"] == "set"]
    assert push.query.item["jid"] == "carol@localhost"
    assert push.query["ver"] == result(h.storage.roster.getRosterVersion("alice")) != ver
