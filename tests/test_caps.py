"""
Tests for XEP-0115 entity caps (L{xmppchat.caps}): the verification
string and hash, and the server's own caps in its stream features and
disco#info.
"""

from __future__ import annotations

import pytest

from tests.c2s.test_negotiation import features, newStream
from tests.helpers import HostHarness, xml
from xmppchat.caps import NS_CAPS, SERVER_NODE, CapsCache, InvalidCaps, capsHash, capsOf, verify

DISCO = "http://jabber.org/protocol/disco#info"
# XEP-0115 §5.2 and §5.3
SIMPLE = (f"<query xmlns='{DISCO}'><identity category='client' name='Exodus 0.9.1' type='pc'/>"
          "<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>"
          "<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>"
          "</query>")
COMPLEX = (f"<query xmlns='{DISCO}'><identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
           "<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>"
           "<feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>"
           "<feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>"
           "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>"
           "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
           "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
           "<field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field>"
           "<field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field>"
           "</x></query>")


def test_specExamples():
    """The XEP-0115 §5.2 and §5.3 examples hash to the spec's ver strings."""
    assert capsHash(xml(SIMPLE)) == "QgayPKawpkPSDYmwT/WM94uAlu0="
    assert capsHash(xml(COMPLEX)) == "q07IKJEyjvHSyhy//CH0CxmKi8w="
    assert verify(xml(SIMPLE), "QgayPKawpkPSDYmwT/WM94uAlu0=", "sha-1")
    assert not verify(xml(SIMPLE), "QgayPKawpkPSDYmwT/WM94uAlu0=", "md5")


def test_poisonedAnswersRefused():
    """§5.4: duplicate features or identities are refused, so a forged answer cannot claim a ver."""
    duplicate = SIMPLE.replace("</query>", "<feature var='http://jabber.org/protocol/muc'/></query>")
    with pytest.raises(InvalidCaps):
        capsHash(xml(duplicate))
    assert not verify(xml(duplicate), "QgayPKawpkPSDYmwT/WM94uAlu0=", "sha-1")
    extra = SIMPLE.replace("</query>", "<feature var='evil+notify'/></query>")
    assert not verify(xml(extra), "QgayPKawpkPSDYmwT/WM94uAlu0=", "sha-1")


def test_capsOfPresence():
    """Caps with a known hash are read from presence; legacy caps (no hash) are not."""
    assert capsOf(xml(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='v'/></presence>")) == ("n", "v", "sha-1")
    assert capsOf(xml(f"<presence><c xmlns='{NS_CAPS}' node='n' ver='v' ext='a'/></presence>")) is None
    assert capsOf(xml("<presence/>")) is None


def test_cacheBounded():
    """The cache keeps the most recently used vers only."""
    cache = CapsCache(2)
    cache.put("a", frozenset("1"))
    cache.put("b", frozenset("2"))
    cache.get("a")
    cache.put("c", frozenset("3"))
    assert cache.get("b") is None and cache.get("a") == frozenset("1") and len(cache) == 2


def test_serverCapsInFeaturesAndDisco():
    """§6.3: the stream features carry the server's <c/>; its ver is the hash of disco#info, also answered as node#ver."""
    h = HostHarness()
    _, t = newStream(h)
    c = features(t)[(NS_CAPS, "c")]
    assert c["hash"] == "sha-1" and c["node"] == SERVER_NODE
    alice, transport = h.connect("alice")
    h.send(alice, f"<iq type='get' id='d' to='localhost'><query xmlns='{DISCO}'/></iq>")
    info = transport.pop()[0].query
    assert capsHash(info) == c["ver"]
    h.send(alice, f"<iq type='get' id='d' to='localhost'><query xmlns='{DISCO}' node='{SERVER_NODE}#{c['ver']}'/></iq>")
    reply = transport.pop()[0]
    assert reply["type"] == "result" and reply.query["node"] == f"{SERVER_NODE}#{c['ver']}"
    assert capsHash(reply.query) == c["ver"]
    h.send(alice, f"<iq type='get' id='d' to='localhost'><query xmlns='{DISCO}' node='{SERVER_NODE}#other'/></iq>")
    assert transport.pop()[0]["type"] == "error"
