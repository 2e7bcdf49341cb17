"""
Tests for L{xmppchat.xmlstream}: the hardened XML stream parser (RFC 6120 §4,
§11) and the framed parser for XMPP over WebSocket (RFC 7395 §3.3).
"""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xmppchat.xmlstream import (
    NS_FRAMING,
    NS_STREAMS,
    NS_XMPP_STREAMS,
    FrameParser,
    StreamError,
    StreamParser,
    parseElement,
)

NS_XML = "http://www.w3.org/XML/1998/namespace"

HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0' xml:lang='en'>"
)
STANZAS = (
    b"<message to='romeo@example.net' type='chat' id='m1'><body>Hi &amp; &lt;bye&gt;\n"
    b"second line &#x263A;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    b" \n"
    b"<iq type='get' id='i1'><query xmlns='jabber:iq:roster' ver=''/></iq>"
    b"<presence><show>away</show><status xml:lang='de'>Weg</status>"
    b"<c:caps xmlns:c='http://jabber.org/protocol/caps' c:hash='sha-1' node='n'/></presence>"
    b"<message><body><![CDATA[<not> & markup]]></body></message>"
)
FOOTER = b"</stream:stream>"
STREAM = HEADER + STANZAS + FOOTER


class Recorder:
    """
    Collects what a L{StreamParser} reports.
    """

    def __init__(self, **limits):
        self.roots = []
        self.elements = []
        self.ended = 0
        self.parser = StreamParser(self.roots.append, self.elements.append, self.onEnd, **limits)

    def onEnd(self):
        self.ended += 1

    def xml(self):
        return [element.toXml() for element in self.elements]


def parseAll(data: bytes, **limits) -> Recorder:
    recorder = Recorder(**limits)
    recorder.parser.feed(data)
    return recorder


def refusal(data: bytes, **limits) -> StreamError:
    recorder = Recorder(**limits)
    with pytest.raises(StreamError) as caught:
        recorder.parser.feed(data)
    return caught.value


def stanzaOfSize(size: int) -> bytes:
    """
    A message stanza of exactly C{size} bytes.
    """
    empty = b"<message><body></body></message>"
    return empty[:15] + b"x" * (size - len(empty)) + empty[15:]


# -- stream structure -------------------------------------------------------


def test_oneFeed():
    """A whole stream in one feed yields the root, each stanza and the end."""
    recorder = parseAll(STREAM)
    (root,) = recorder.roots
    assert (root.uri, root.name) == (NS_STREAMS, "stream")
    assert root.defaultUri == "jabber:client"
    assert root["to"] == "example.com"
    assert root.attributes[(NS_XML, "lang")] == "en"
    assert [e.name for e in recorder.elements] == ["message", "iq", "presence", "message"]
    assert recorder.ended == 1


def test_stanzaContent():
    """Stanzas carry their namespace, attributes, children and decoded text."""
    message, iq, presence, cdata = parseAll(STREAM).elements
    assert (message.uri, message["to"], message.parent) == ("jabber:client", "romeo@example.net", None)
    assert str(message.body) == "Hi & <bye>\nsecond line \u263a"
    assert message.body.parent is message
    assert iq.query.uri == "jabber:iq:roster"
    assert iq.query["ver"] == ""
    assert presence.status.attributes[(NS_XML, "lang")] == "de"
    assert str(cdata.body) == "<not> & markup"


def test_byteByByte():
    """Feeding one byte at a time gives the same elements as one feed."""
    whole = parseAll(STREAM)
    recorder = Recorder()
    for i in range(len(STREAM)):
        recorder.parser.feed(STREAM[i : i + 1])
    assert recorder.xml() == whole.xml()
    assert recorder.ended == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_randomFragmentation(cuts):
    """Any split of a valid stream into chunks gives the same elements."""
    expected = parseAll(STREAM).xml()
    bounds = [0, *sorted(cuts), len(STREAM)]
    recorder = Recorder()
    for start, end in pairwise(bounds):
        recorder.parser.feed(STREAM[start:end])
    assert recorder.xml() == expected
    assert recorder.ended == 1


def test_textRunsJoined():
    """Text split over many feeds ends up as one child string."""
    recorder = Recorder()
    recorder.parser.feed(HEADER + b"<message><body>")
    for _ in range(100):
        recorder.parser.feed(b"ab\ncd &amp; ")
    recorder.parser.feed(b"</body></message>")
    body = recorder.elements[0].body
    assert body.children == ["ab\ncd & " * 100]


def test_mixedContent():
    """Text and child elements keep their order."""
    (element,) = parseAll(HEADER + b"<message>a<b>c</b>d<e/>f</message>").elements
    assert [c if isinstance(c, str) else c.name for c in element.children] == ["a", "b", "d", "e", "f"]


def test_reset():
    """After reset() a new stream header starts a new document."""
    recorder = parseAll(HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    recorder.parser.reset()
    recorder.parser.feed(HEADER + b"<iq type='set' id='b'/>")
    assert len(recorder.roots) == 2
    assert [e.name for e in recorder.elements] == ["auth", "iq"]


def test_resetFromCallbackDropsRest():
    """A reset() from onElement drops the rest of that feed (RFC 6120 §5.3.3)."""
    seen = []

    def onElement(element):
        seen.append(element.name)
        if element.name == "starttls":
            parser.reset()

    parser = StreamParser(lambda root: seen.append("root"), onElement, lambda: None)
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><injected/>")
    parser.feed(HEADER + b"<message/>")
    assert seen == ["root", "starttls", "root", "message"]


def test_restartsLeaveNoCycles():
    """Replaced parsers (restarts, also from a callback) are freed by reference counting, without the GC."""
    import gc

    def onElement(element):
        parser.reset()

    gc.collect()
    gc.disable()
    try:
        parser = StreamParser(lambda root: None, onElement, lambda: None)
        for _ in range(3):
            parser.feed(HEADER + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            parser.feed(HEADER)
            parser.reset()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_streamEnd():
    """Closing the root reports the end; anything after is not well-formed."""
    recorder = parseAll(HEADER + FOOTER)
    assert recorder.ended == 1
    with pytest.raises(StreamError) as caught:
        recorder.parser.feed(b"<message/>")
    assert caught.value.condition == "not-well-formed"


def test_rootKeepsNoChildren():
    """After 10,000 stanzas the stream root still has no children."""
    recorder = Recorder()
    recorder.parser.feed(HEADER)
    stanza = b"<message to='a@b'><body>hello</body></message>"
    for _ in range(100):
        recorder.parser.feed(stanza * 100)
    assert len(recorder.elements) == 10000
    assert recorder.roots[0].children == []
    assert all(e.parent is None for e in recorder.elements)


def test_largeTextNotQuadratic():
    """A 1 MiB body of short lines parses, fed whole or in 4 KiB chunks."""
    body = b"ab\n" * ((1 << 20) // 3 + 1)
    stanza = b"<message><body>" + body + b"</body></message>"
    recorder = Recorder(maxStanzaBytes=2 << 20)
    recorder.parser.feed(HEADER + stanza)
    for i in range(0, len(stanza), 4096):
        recorder.parser.feed(stanza[i : i + 4096])
    assert [len(str(e.body)) for e in recorder.elements] == [len(body)] * 2
    assert [len(e.body.children) for e in recorder.elements] == [1, 1]


# -- namespaces ---------------------------------------------------------------


def test_namespacesRoundTrip():
    """Default and prefixed namespaces, and xml:lang, survive toXml()."""
    stanza = (
        "<message xmlns='jabber:client' to='a@b' xml:lang='en'>"
        "<body>x</body>"
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'/></event>"
        "<x:y xmlns:x='urn:x' plain='2' x:attr='1'><x:z/><w/></x:y>"
        "<unqualified xmlns=''/>"
        "</message>"
    )
    (element,) = parseAll(HEADER + stanza.encode()).elements
    assert element.toXml() == stanza
    y = element.children[2]
    assert (y.uri, y.name, y.attributes) == ("urn:x", "y", {"plain": "2", ("urn:x", "attr"): "1"})
    assert [(c.uri, c.name) for c in y.children] == [("urn:x", "z"), ("jabber:client", "w")]
    assert (element.children[3].uri, element.children[3].defaultUri) == ("", "")
    reparsed = parseAll(HEADER + element.toXml().encode()).elements[0]
    assert reparsed.toXml() == stanza


def test_noDefaultNamespace():
    """Without a default namespace, stanzas have an empty namespace URI."""
    header = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
    (element,) = parseAll(header + b"<message/>").elements
    assert (element.uri, element.defaultUri) == ("", "")


# -- restricted XML (RFC 6120 §11.1) ----------------------------------------

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(
        b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&lol9;"
)

RESTRICTED = {
    "billion laughs": BILLION_LAUGHS,
    "doctype": b"<!DOCTYPE stream>" + HEADER,
    "internal entity": b"<!DOCTYPE s [<!ENTITY e 'x'>]>" + HEADER + b"<message>&e;</message>",
    "external entity": (
        b"<!DOCTYPE s [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" + HEADER + b"<message>&x;</message>"
    ),
    "external dtd": b"<!DOCTYPE s SYSTEM 'http://example.com/s.dtd'>" + HEADER,
    "parameter entity": b"<!DOCTYPE s [<!ENTITY % p SYSTEM 'http://example.com/p'> %p;]>" + HEADER,
    "comment in prolog": b"<!-- hi -->" + HEADER,
    "comment in stanza": HEADER + b"<message><!-- hi --></message>",
    "processing instruction": HEADER + b"<message><?php echo 1; ?></message>",
}


@pytest.mark.parametrize("name", sorted(RESTRICTED))
def test_restrictedXML(name):
    """DTDs, entities, comments and processing instructions are refused."""
    started = time.monotonic()
    assert refusal(RESTRICTED[name]).condition == "restricted-xml"
    assert time.monotonic() - started < 5


def test_restrictedXMLByteByByte():
    """Refusal does not depend on how the bytes arrive."""
    recorder = Recorder()
    with pytest.raises(StreamError) as caught:
        for i in range(len(BILLION_LAUGHS)):
            recorder.parser.feed(BILLION_LAUGHS[i : i + 1])
    assert caught.value.condition == "restricted-xml"


def test_xmlDeclarationAllowed():
    """The XML declaration is not a processing instruction."""
    recorder = parseAll(b"<?xml version='1.0' encoding='UTF-8'?>" + HEADER[21:] + b"<message/>")
    assert len(recorder.elements) == 1


def test_undefinedEntity():
    """A reference to an undeclared entity is not well-formed."""
    assert refusal(HEADER + b"<message>&nbsp;</message>").condition == "not-well-formed"


def test_predefinedAndCharacterReferences():
    """The five predefined entities and character references are fine."""
    (element,) = parseAll(HEADER + b"<message a='&quot;&apos;'>&lt;&gt;&amp;&#65;&#x42;</message>").elements
    assert (element["a"], str(element)) == ("\"'", "<>&AB")


# -- limits (RFC 6120 §13.12) ------------------------------------------------


def test_stanzaJustUnderLimit():
    """A stanza of exactly the limit passes, also when fed a byte at a time."""
    stanza = stanzaOfSize(1000)
    recorder = parseAll(HEADER + stanza + stanza, maxStanzaBytes=1000)
    assert len(recorder.elements) == 2
    recorder = Recorder(maxStanzaBytes=1000)
    recorder.parser.feed(HEADER)
    for i in range(len(stanza)):
        recorder.parser.feed(stanza[i : i + 1])
    assert len(recorder.elements) == 1


def test_stanzaOverLimit():
    """One byte more is a policy violation."""
    error = refusal(HEADER + stanzaOfSize(1001), maxStanzaBytes=1000)
    assert (error.condition, error.text) == ("policy-violation", "stanza too large")


def test_stanzaOverLimitByteByByte():
    """One byte more is refused also when the closing tag trickles in."""
    recorder = Recorder(maxStanzaBytes=1000)
    recorder.parser.feed(HEADER)
    stanza = stanzaOfSize(1001)
    with pytest.raises(StreamError) as caught:
        for i in range(len(stanza)):
            recorder.parser.feed(stanza[i : i + 1])
    assert caught.value.condition == "policy-violation"
    assert i == len(stanza) - 1


@pytest.mark.parametrize("size, ok", [(1000, True), (1001, False)])
def test_emptyElementStanzaLimit(size, ok):
    """An empty-element stanza right after another is measured exactly."""
    stanza = b"<presence id='" + b"x" * (size - 17) + b"'/>"
    assert len(stanza) == size
    data = HEADER + b"<a/>" + stanza + stanza
    if ok:
        assert len(parseAll(data, maxStanzaBytes=1000).elements) == 3
    else:
        assert refusal(data, maxStanzaBytes=1000).condition == "policy-violation"


def test_hugeChunkRefusedEarly():
    """A 10 MiB feed is refused as soon as the default limit is passed."""
    recorder = Recorder()
    recorder.parser.feed(HEADER)
    with pytest.raises(StreamError) as caught:
        recorder.parser.feed(b"<message><body>" + b"x" * (10 << 20) + b"</body></message>")
    assert caught.value.condition == "policy-violation"
    assert recorder.parser._fed <= len(HEADER) + 262144 + 1


def test_manySmallOversizedStanzasInOneChunk():
    """Oversized stanzas that end within one big feed are still refused."""
    data = HEADER + stanzaOfSize(300) * 2 + stanzaOfSize(2000) + stanzaOfSize(300) * 5000
    error = refusal(data, maxStanzaBytes=1000)
    assert error.condition == "policy-violation"


def test_manyStanzasInOneChunk():
    """A big feed of small stanzas is fine: the limit is per stanza."""
    recorder = parseAll(HEADER + stanzaOfSize(300) * 5000, maxStanzaBytes=1000)
    assert len(recorder.elements) == 5000


def test_hugeAttributeRefused():
    """An endless start tag counts against the limit."""
    assert refusal(HEADER + b"<message a='" + b"x" * 3000, maxStanzaBytes=1000).condition == (
        "policy-violation"
    )


def test_whitespaceBetweenStanzasCounts():
    """Endless whitespace between stanzas is refused too."""
    assert refusal(HEADER + b" " * 3000, maxStanzaBytes=1000).condition == "policy-violation"


def test_depthLimit():
    """Nesting deeper than maxDepth (the stanza being depth 1) is refused."""
    assert len(parseAll(HEADER + b"<a>" * 4 + b"</a>" * 4, maxDepth=4).elements) == 1
    error = refusal(HEADER + b"<a>" * 5, maxDepth=4)
    assert error.condition == "policy-violation"


def test_defaultDepthLimit():
    """The default depth limit is 64."""
    assert len(parseAll(HEADER + b"<a>" * 64 + b"</a>" * 64).elements) == 1
    assert refusal(HEADER + b"<a>" * 65).condition == "policy-violation"


def test_attributeLimit():
    """More than maxAttributes attributes on one element are refused."""
    attributes = b"".join(b" a%d='x'" % i for i in range(64))
    assert len(parseAll(HEADER + b"<message" + attributes + b"/>").elements) == 1
    error = refusal(HEADER + b"<message" + attributes + b" b='x'/>")
    assert error.condition == "policy-violation"


def test_namespaceDeclarationsCountAsAttributes():
    """Namespace declarations count against the attribute limit."""
    declarations = b"".join(b" xmlns:p%d='urn:%d'" % (i, i) for i in range(5))
    assert refusal(HEADER + b"<message" + declarations + b"/>", maxAttributes=4).condition == (
        "policy-violation"
    )


def test_elementLimit():
    """More than maxElements elements in one stanza are refused."""
    assert len(parseAll(HEADER + b"<m>" + b"<a/>" * 9 + b"</m>", maxElements=10).elements) == 1
    error = refusal(HEADER + b"<m>" + b"<a/>" * 10 + b"</m>", maxElements=10)
    assert error.condition == "policy-violation"


def test_elementLimitPerStanza():
    """The element count starts over with every stanza."""
    stanza = b"<m>" + b"<a/>" * 9 + b"</m>"
    assert len(parseAll(HEADER + stanza * 50, maxElements=10).elements) == 50


def test_limitsKeptOnReset():
    """reset() keeps the configured limits."""
    recorder = Recorder(maxDepth=2)
    recorder.parser.reset()
    with pytest.raises(StreamError):
        recorder.parser.feed(HEADER + b"<a><b><c/></b></a>")


# -- well-formedness ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        HEADER + b"<message>\xff\xfe</message>",
        HEADER + b"<message>\xc3</message>",
        HEADER + b"<message>\xed\xa0\x80</message>",
        HEADER + b"<message></presence>",
        HEADER + b"<message a='1' a='2'/>",
        HEADER + b"<p:message/>",
        HEADER + b"<message>\x00</message>",
        b"garbage<",
        b"\x00\x01\x02",
    ],
)
def test_notWellFormed(data):
    """Invalid UTF-8, bad nesting and garbage are not well-formed."""
    error = refusal(data)
    assert error.condition == "not-well-formed"
    assert error.text


def test_deadAfterError():
    """After an error every feed raises the same error."""
    recorder = Recorder()
    with pytest.raises(StreamError) as first:
        recorder.parser.feed(HEADER + b"<<")
    with pytest.raises(StreamError) as second:
        recorder.parser.feed(b"<message/>")
    assert second.value is first.value


def test_callbackExceptionPropagates():
    """An exception from a callback reaches the caller and ends the parser."""

    def onElement(element):
        raise RuntimeError("boom")

    parser = StreamParser(lambda root: None, onElement, lambda: None)
    with pytest.raises(RuntimeError):
        parser.feed(HEADER + b"<message/>")
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message/>")
    assert caught.value.condition == "internal-server-error"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_randomBytesOnlyStreamErrors(chunks):
    """Random bytes after a valid header raise nothing but StreamError."""
    recorder = Recorder(maxStanzaBytes=256, maxDepth=4, maxAttributes=8, maxElements=8)
    recorder.parser.feed(HEADER)
    try:
        for chunk in chunks:
            recorder.parser.feed(chunk)
    except StreamError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="<>/='\"&;:ab x#!-?[]", max_size=80))
def test_randomMarkupOnlyStreamErrors(text):
    """Random markup-like text after a valid header raises only StreamError."""
    recorder = Recorder(maxStanzaBytes=256, maxDepth=4, maxAttributes=8, maxElements=8)
    recorder.parser.feed(HEADER)
    try:
        recorder.parser.feed(text.encode())
    except StreamError:
        pass


# -- stream errors (RFC 6120 §4.9) -------------------------------------------


def test_streamErrorElement():
    """toElement() builds <stream:error/> with the condition and text."""
    error = StreamError("policy-violation", "stanza too large")
    assert str(error) == "policy-violation: stanza too large"
    xml = error.toElement().toXml(prefixes={NS_STREAMS: "stream"}, prefixesInScope=["stream"])
    assert xml == (
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza too large</text></stream:error>"
    )


def test_streamErrorWithoutText():
    """Without text there is only the condition element."""
    element = StreamError("restricted-xml").toElement()
    assert (element.uri, element.name) == (NS_STREAMS, "error")
    assert [(c.uri, c.name) for c in element.elements()] == [(NS_XMPP_STREAMS, "restricted-xml")]


# -- framed mode (RFC 7395) ---------------------------------------------------


def test_frameOpenClose():
    """Open and close frames parse in the framing namespace."""
    parser = FrameParser()
    opened = parser.parse(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>")
    assert (opened.uri, opened.name, opened["to"]) == (NS_FRAMING, "open", "example.com")
    closed = parser.parse(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    assert (closed.uri, closed.name) == (NS_FRAMING, "close")


def test_frameStanza():
    """A stanza frame without xmlns is in jabber:client."""
    element = FrameParser().parse(b"<message to='a@b'><body>hi</body><x xmlns='urn:x'/></message>")
    assert (element.uri, element.defaultUri, element.parent) == ("jabber:client", "jabber:client", None)
    assert element.body.uri == "jabber:client"
    assert element.x.uri == "urn:x"
    assert element.toXml() == "<message xmlns='jabber:client' to='a@b'><body>hi</body><x xmlns='urn:x'/></message>"


def test_frameRestricted():
    """Frames refuse DTDs, comments and processing instructions."""
    parser = FrameParser()
    for data in (b"<!DOCTYPE m><message/>", b"<message><!-- c --></message>", b"<?pi?><message/>"):
        with pytest.raises(StreamError) as caught:
            parser.parse(data)
        assert caught.value.condition == "restricted-xml"


def test_frameLimits():
    """Frames obey the size, depth, attribute and element limits."""
    parser = FrameParser(maxStanzaBytes=1000, maxDepth=3, maxAttributes=2, maxElements=3)
    assert parser.parse(stanzaOfSize(1000)).name == "message"
    for data in (
        stanzaOfSize(1001),
        b"<a><b><c><d/></c></b></a>",
        b"<a x='1' y='2' z='3'/>",
        b"<a><b/><b/><b/></a>",
    ):
        with pytest.raises(StreamError) as caught:
            parser.parse(data)
        assert caught.value.condition == "policy-violation"


@pytest.mark.parametrize("data", [b"", b"<message>", b"<a/><b/>", b"<a>\xff</a>", b"text"])
def test_frameNotWellFormed(data):
    """An incomplete, doubled or broken frame is not well-formed."""
    with pytest.raises(StreamError) as caught:
        FrameParser().parse(data)
    assert caught.value.condition == "not-well-formed"


def test_frameParserReusable():
    """One FrameParser parses frame after frame, also after an error."""
    parser = FrameParser()
    with pytest.raises(StreamError):
        parser.parse(b"<a>")
    assert parser.parse(b"<iq type='get' id='1'/>")["id"] == "1"


def test_parseElementRoundTrip():
    """parseElement() reads back a stanza serialised with toXml()."""
    (element,) = parseAll(HEADER + STANZAS[: STANZAS.index(b"</message>") + 10]).elements
    again = parseElement(element.toXml())
    assert again.toXml() == element.toXml()


@pytest.mark.parametrize("data", [
    b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:],
    b"\xff\xfe" + HEADER.decode().encode("utf-16-le"),
    b"\xfe\xff" + HEADER.decode().encode("utf-16-be"),
])
def test_unsupportedEncoding(data):
    """Another declared encoding or a UTF-16 byte order mark is unsupported-encoding (RFC 6120 §11.6)."""
    assert refusal(data).condition == "unsupported-encoding"


def test_unsupportedEncodingByteByByte():
    """A UTF-16 byte order mark is caught when its bytes come one at a time."""
    parser = StreamParser(lambda root: None, lambda e: None, lambda: None)
    parser.feed(b"\xff")
    with pytest.raises(StreamError) as caught:
        parser.feed(b"\xfe")
    assert caught.value.condition == "unsupported-encoding"


def test_utf8DeclarationAccepted():
    """An explicit UTF-8 declaration, in any case, is fine."""
    assert parseAll(b"<?xml version='1.0' encoding='UTF-8'?>" + HEADER[21:] + STANZAS).elements


def test_frameUnsupportedEncoding():
    """A frame in UTF-16 is refused, not silently decoded."""
    with pytest.raises(StreamError) as caught:
        FrameParser().parse("\ufeff<message/>".encode("utf-16-le"))
    assert caught.value.condition == "unsupported-encoding"
