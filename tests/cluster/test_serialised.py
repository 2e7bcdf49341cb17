"""
Stanzas that cross the bus as the sending node's XML
(L{xmppchat.cluster.serialised}): nothing is parsed on the way to a
recipient unless something needs more than the name and the addressing
attributes.
"""

from __future__ import annotations

import pytest

from tests.cluster.harness import ClusterHarness
from tests.helpers import xml
from xmppchat.cluster import serialised

STANZA = ("<message xmlns='jabber:client' to='bob@localhost/r' from='alice@localhost/r' type='chat' id='m1'"
          " xml:lang='en'><body>h\u00e9 &amp; &lt;you&gt; \U0001f600</body></message>")


def roundTrip(source=STANZA):
    return serialised.decode(serialised.encode(xml(source)))


def test_addressingWithoutParsing():
    """Name, to/from/type/id and the XML are answered from the frame; nothing is parsed."""
    stanza = roundTrip()
    assert stanza.name == "message"
    assert stanza.getAttribute("to") == "bob@localhost/r"
    assert stanza["from"] == "alice@localhost/r"
    assert stanza.getAttribute("type") == "chat" and stanza.hasAttribute("id")
    assert stanza.getAttribute("missing", "x") == "x" and not stanza.hasAttribute("missing")
    assert stanza.toXml() == xml(STANZA).toXml()
    assert not stanza.parsed


def test_anythingElseParsesOnce():
    """Children, other attributes and the namespace come from the element parsed on first use."""
    stanza = roundTrip()
    assert str(stanza.body) == "h\u00e9 & <you> \U0001f600"
    assert stanza.parsed
    element = stanza.element
    assert stanza.uri == "jabber:client"
    assert [c.name for c in stanza.elements()] == ["body"]
    assert stanza.element is element


def test_mutationsAreSerialised():
    """Once changed, the stanza serialises from the parsed element, not the frame's XML."""
    stanza = roundTrip()
    stanza["to"] = "carol@localhost"
    stanza.addElement(("urn:xmpp:delay", "delay"))["stamp"] = "2026-01-01T00:00:00Z"
    assert stanza.getAttribute("to") == "carol@localhost"
    out = xml(stanza.toXml())
    assert out["to"] == "carol@localhost" and out.delay["stamp"] == "2026-01-01T00:00:00Z"
    stanza.name = "presence"
    assert stanza.name == "presence" and stanza.toXml().startswith("<presence")


def test_reEncodingKeepsTheFrame():
    """A stanza passed on again (a session that moved) is re-encoded without a parse."""
    stanza = roundTrip()
    again = serialised.decode(serialised.encode(stanza))
    assert not stanza.parsed and again.toXml() == stanza.toXml()


@pytest.mark.parametrize("body", [b"", b"x\0message\0<a/>", b"1\0message\0<a/>", b"0\0\0<a/>",
                                  b"0\0message", b"0\0message\0\xff", b"-1\0message\0<a/>"])
def test_unreadableFrames(body):
    """Bodies that encode() did not write are refused with ValueError."""
    with pytest.raises(ValueError):
        serialised.decode(body)


def test_deliveredBytesAreTheSendersSerialisation():
    """Across nodes the recipient's transport gets the sending node's XML, unparsed."""
    c = ClusterHarness()
    a, b, alice, ta, bob, tb = c.pair("r")
    b.send(bob, "<message to='alice@localhost/r' type='chat' id='x1'><body>hi</body></message>")
    c.pump()
    [message] = [e for e in ta.pop() if e.name == "message"]
    assert isinstance(message, serialised.SerialisedStanza) and not message.parsed
    assert message["from"] == "bob@localhost/r"
    assert str(xml(message.toXml()).body) == "hi"


def test_anyAttributeText():
    """Attribute values with newlines, quotes and non-ASCII text come back unchanged."""
    stanza = roundTrip("<message xmlns='jabber:client' to='b\u00e9@localhost' id='a&#10;b&apos;\"' type=''/>")
    assert stanza.getAttribute("id") == "a\nb'\"" and stanza["to"] == "b\u00e9@localhost"
    assert stanza.getAttribute("type") == "" and not stanza.parsed
