"""
Fuzzing the live TCP stream (RFC 6120 §4, §11, §13.12): the real
L{C2STCPProtocol} fed by hand-made and hypothesis-generated input.

Valid streams must parse the same however the bytes are split; hostile
input must end in a stream error (RFC 6120 §4.9.3) and a closed
connection, never a traceback in the log, and other sessions of the host
keep working.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.helpers import (
    BIND, HEADER, LoggedFailures, TCPClient, plainAuth, tcpFactory,
)
from tests.helpers import HostHarness

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What hostile input may be answered with (RFC 6120 §4.9.3).
HOSTILE_CONDITIONS = {
    "not-well-formed", "restricted-xml", "policy-violation", "invalid-namespace",
    "bad-format", "invalid-xml", "unsupported-stanza-type", "not-authorized",
    "unsupported-version", "host-unknown", "bad-namespace-prefix", "unsupported-encoding",
}


class Pair:
    """
    A host with alice and bob bound over TCP, to check that the host still
    routes after an attack on another connection.
    """

    def __init__(self, **sections):
        self.h = HostHarness(**sections)
        for name in ("alice", "bob", "mallory"):
            self.h.addUser(name, f"{name}-pw")
        self.factory = tcpFactory(self.h)
        self.alice = TCPClient(self.factory)
        self.aliceJID = self.alice.login("alice", "alice-pw")
        self.bob = TCPClient(self.factory)
        self.bobJID = self.bob.login("bob", "bob-pw")

    def connect(self) -> TCPClient:
        return TCPClient(self.factory, peer="10.0.0.9")

    def stillRoutes(self) -> None:
        """alice's message reaches bob."""
        self.bob.read()
        self.alice.send("<message to='bob@localhost' type='chat' id='m1'><body>still here</body></message>")
        received = [e for e in self.bob.read() if e.name == "message"]
        assert [str(m.body) for m in received] == ["still here"]


def expectStreamError(client: TCPClient, conditions) -> str:
    """The client got a stream error among C{conditions}, then the close."""
    client.read()
    condition = client.streamError()
    assert condition in conditions, [e.toXml() for e in client.elements]
    assert client.ended and client.transport.disconnecting
    return condition


# -- fragmentation ------------------------------------------------------------

SCRIPT_AUTH = HEADER + plainAuth("mallory", "mallory-pw")
SCRIPT_BOUND = (
    HEADER + BIND + "<presence><show>away</show><status>caf\u00e9 \u2603 &amp; &lt;ok&gt;</status></presence>"
    "<message to='alice@localhost' type='chat' id='c1'><body>h\u00e9llo &#x1F600; &#65; w\u00f6rld</body>"
    "<x xmlns='urn:example:unknown' a:b='1' xmlns:a='urn:example:a'><y/>tail</x></message>"
    "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
    "<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>"
    "  \n  "
    "<iq type='get' id='u1'><unknown xmlns='urn:example:nothing'/></iq>"
    "</stream:stream>"
)


def fingerprint(elements) -> list:
    """What matters of the server's answers: names, types, ids, children (not random ids)."""
    out = []
    for e in elements:
        children = [(c.uri, c.name) for c in e.elements()]
        out.append((e.uri, e.name, e.getAttribute("type"), e.getAttribute("id"), children))
    return out


def runScript(pair: Pair, cutsAuth=(), cutsBound=()) -> tuple[list, list]:
    """Play the two-phase script split at the given offsets; return mallory's and alice's answers."""
    mallory = pair.connect()
    for script, cuts in ((SCRIPT_AUTH, cutsAuth), (SCRIPT_BOUND, cutsBound)):
        data = script.encode("utf-8")
        offsets = sorted({0, len(data), *[c % (len(data) + 1) for c in cuts]})
        for start, end in pairwise(offsets):
            mallory.send(data[start:end])
    pair.alice.read()
    received = [e for e in pair.alice.elements if e.name == "message"]
    return fingerprint(mallory.elements), [str(m.body) for m in received]


def test_scriptUnsplit():
    """The reference script logs in, binds, chats, pings and closes cleanly."""
    pair = Pair()
    with LoggedFailures() as failures:
        answers, messages = runScript(pair)
    names = [a[1] for a in answers]
    assert names[:2] == ["features", "success"] and "iq" in names and names.count("iq") == 4
    assert messages == ["h\u00e9llo \U0001F600 A w\u00f6rld"]
    assert not failures.events


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
       st.lists(st.integers(min_value=0, max_value=10_000), max_size=60))
def test_fragmentationInvariant(cutsAuth, cutsBound):
    """A valid stream split anywhere (even inside multi-byte characters) gets the same answers."""
    reference = runScript(Pair())
    with LoggedFailures() as failures:
        assert runScript(Pair(), cutsAuth, cutsBound) == reference
    assert not failures.events, failures.describe()


def test_byteByByte():
    """One byte per read, the worst split, still gives the same answers."""
    reference = runScript(Pair())
    every = list(range(max(len(SCRIPT_AUTH.encode()), len(SCRIPT_BOUND.encode())) + 1))
    assert runScript(Pair(), every, every) == reference


# -- hostile input ------------------------------------------------------------

MAX_DEPTH = 64
DEEP = "<a>" * (MAX_DEPTH + 5)
LAUGHS = ("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
          "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>")

HOSTILE = {
    # name: (bytes after connecting, expected condition)
    "deep-nesting": (HEADER + "<message>" + DEEP, "policy-violation"),
    "many-attributes": (HEADER + "<message " + " ".join(f"a{i}='x'" for i in range(200)) + "/>",
                        "policy-violation"),
    "many-prefixes": (HEADER + "<message " + " ".join(f"xmlns:p{i}='urn:p{i}'" for i in range(200)) + "/>",
                      "policy-violation"),
    "many-default-namespaces": (HEADER + "".join(f"<a xmlns='urn:n{i}'>" for i in range(100)),
                                "policy-violation"),
    "invalid-utf8": (HEADER.encode() + b"<message><body>\xff\xfe\xc3(</body></message>", "not-well-formed"),
    "overlong-utf8": (HEADER.encode() + b"<message><body>\xc0\xaf</body></message>", "not-well-formed"),
    "utf8-surrogate": (HEADER.encode() + b"<message><body>\xed\xa0\x80</body></message>", "not-well-formed"),
    "nul-byte": (HEADER.encode() + b"<message><body>\x00</body></message>", "not-well-formed"),
    "control-char-ref": (HEADER + "<message><body>&#1;</body></message>", "not-well-formed"),
    "utf16-bom": ("\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"), "unsupported-encoding"),
    "utf16-bom-split": ([b"\xfe", b"\xff", HEADER.encode("utf-16-be")], "unsupported-encoding"),
    "latin1-declaration": (b"<?xml version='1.0' encoding='ISO-8859-1'?>" + HEADER[21:].encode(),
                           "unsupported-encoding"),
    "unknown-root-namespace": ("<stream:stream xmlns='jabber:client' xmlns:stream='urn:example:evil' "
                               "to='localhost' version='1.0'>", "invalid-namespace"),
    "server-namespace": ("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
                         "to='localhost' version='1.0'>", "invalid-namespace"),
    "not-a-stream": ("<html><body>GET / HTTP/1.1</body></html>", "invalid-namespace"),
    "http-request": ("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed"),
    "unbound-prefix": (HEADER + "<foo:message/>", "not-well-formed"),
    "oversized-text": (HEADER + "<message><body>" + "x" * 300_000 + "</body></message>", "policy-violation"),
    "oversized-attribute": (HEADER + "<message id='" + "x" * 300_000 + "'/>", "policy-violation"),
    "billion-laughs": (LAUGHS + HEADER[21:], "restricted-xml"),
    "internal-dtd-after-root": (HEADER + "<!DOCTYPE x>", "not-well-formed"),
    "external-entity": ("<?xml version='1.0'?><!DOCTYPE s SYSTEM 'file:///etc/passwd'>" + HEADER[21:],
                        "restricted-xml"),
    "undefined-entity": (HEADER + "<message><body>&xxe;</body></message>", "not-well-formed"),
    "char-ref-out-of-range": (HEADER + "<message><body>&#x110000;</body></message>", "not-well-formed"),
    "char-ref-surrogate": (HEADER + "<message><body>&#xD800;</body></message>", "not-well-formed"),
    "lt-in-attribute": (HEADER + "<message id='<'/>", "not-well-formed"),
    "duplicate-attribute": (HEADER + "<message id='1' id='2'/>", "not-well-formed"),
    "rebound-xml-prefix": (HEADER + "<message xmlns:xml='urn:evil'/>", "not-well-formed"),
    "parameter-entity": ("<?xml version='1.0'?><!DOCTYPE s [<!ENTITY % p SYSTEM 'http://127.0.0.1/x'> %p;]>"
                         + HEADER[21:], "restricted-xml"),
    "comment": (HEADER + "<!-- hello -->", "restricted-xml"),
    "processing-instruction": (HEADER + "<?evil data?>", "restricted-xml"),
    "cdata-then-garbage": (HEADER + "<![CDATA[<x>]]><<", "not-well-formed"),
    "stanza-before-auth": (HEADER + "<message to='alice@localhost'><body>spam</body></message>",
                           "not-authorized"),
    "iq-before-auth": (HEADER + "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "not-authorized"),
    "unknown-element-before-auth": (HEADER + "<evil xmlns='urn:example:evil'/>", "unsupported-stanza-type"),
    "old-version": (HEADER.replace("version='1.0'", "version='0.9'"), "unsupported-version"),
    "wrong-host": (HEADER.replace("to='localhost'", "to='example.org'"), "host-unknown"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostileInput(name):
    """Each hostile input gets its stream error and a close, no logged failure, and others keep chatting."""
    data, condition = HOSTILE[name]
    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        for chunk in data if isinstance(data, list) else [data]:
            client.send(chunk)
        assert expectStreamError(client, {condition}) == condition
        client.send(b"<message/>" * 10)  # after the error nothing more is read
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events, failures.describe()


def test_closeThenMore():
    """The client's </stream:stream> is answered with ours; anything sent after it is ignored."""
    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        client.send(HEADER + "</stream:stream><stream:stream><<<" + "x" * 1000)
        client.read()
        assert client.ended and client.transport.disconnecting and client.streamError() is None
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events


def test_stanzaFloodBeforeAuth():
    """A flood of stanzas before auth is stopped at the first one; nothing is routed."""
    pair = Pair()
    client = pair.connect()
    flood = "<message to='alice@localhost' type='chat'><body>spam</body></message>" * 5000
    client.send(HEADER + flood)
    assert expectStreamError(client, {"not-authorized"}) == "not-authorized"
    pair.alice.read()
    assert not [e for e in pair.alice.elements if e.name == "message"]
    pair.stillRoutes()


def test_hostileInputAfterBind():
    """A bound session that sends garbage is closed with its error, and it goes offline."""
    pair = Pair()
    client = pair.connect()
    client.login("mallory", "mallory-pw")
    assert pair.h.host.sessions.isConnected("mallory@localhost")
    client.send("<message>" + DEEP)
    assert expectStreamError(client, {"policy-violation"}) == "policy-violation"
    client.disconnect()
    assert not pair.h.host.sessions.isConnected("mallory@localhost")
    pair.stillRoutes()


@pytest.mark.parametrize("element", [
    "<message xmlns='jabber:server' to='alice@localhost'><body>x</body></message>",
    "<iq xmlns='urn:example:evil' type='get' id='1'/>",
    "<stanza/>",
])
def test_foreignTopLevelAfterBind(element):
    """A top-level element outside jabber:client from a bound session is unsupported-stanza-type; nothing is routed."""
    pair = Pair()
    client = pair.connect()
    client.login("mallory", "mallory-pw")
    client.send(element)
    assert expectStreamError(client, {"unsupported-stanza-type"})
    pair.alice.read()
    assert not [e for e in pair.alice.elements if e.name == "message"]
    pair.stillRoutes()


def nested(depth: int) -> str:
    return "<message>" + "<a>" * depth + "</a>" * depth + "</message>"


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_DEPTH + 20))
def test_depthBoundary(depth):
    """Stanzas up to the depth limit pass, deeper ones are a policy-violation."""
    pair = Pair()
    client = pair.connect()
    client.login("mallory", "mallory-pw")
    client.send(nested(depth))
    if depth + 1 <= MAX_DEPTH:
        assert client.streamError() is None and not client.closed
    else:
        assert expectStreamError(client, {"policy-violation"})


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=100), st.integers(min_value=0, max_value=40))
def test_attributeBoundary(attributes, prefixes):
    """Attributes plus namespace declarations up to 64 pass, more are a policy-violation."""
    pair = Pair()
    client = pair.connect()
    client.login("mallory", "mallory-pw")
    attrs = " ".join([f"a{i}='v'" for i in range(attributes)] + [f"xmlns:p{i}='urn:p{i}'" for i in range(prefixes)])
    client.send(f"<presence to='alice@localhost/x' {attrs}/>")
    if attributes + 1 + prefixes <= 64:
        assert client.streamError() is None and not client.closed
    else:
        assert expectStreamError(client, {"policy-violation"})


@FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_randomBytes(data, afterHeader):
    """Random bytes, before or after a valid header, end in a stream error or are waited on; never a traceback."""
    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        client.send((HEADER.encode() if afterHeader else b"") + data)
        client.read()
        if client.closed:
            # a stream error, or (the bytes closed the stream) a clean close
            condition = client.streamError()
            assert condition in HOSTILE_CONDITIONS or (condition is None and client.ended), \
                [e.toXml() for e in client.elements]
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events, failures.describe()


MARKUP = st.text(alphabet="<>/='\"&;:ab x#!-?[]\u00e9\U0001F600\x00\ufffe", max_size=120)


@FUZZ
@given(MARKUP, st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_randomMarkupAfterBind(text, cuts):
    """Random markup from a bound session, split anywhere: handled or a stream error, never a traceback."""
    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        client.login("mallory", "mallory-pw")
        data = text.encode("utf-8", "surrogatepass")
        offsets = sorted({0, len(data), *[c % (len(data) + 1) for c in cuts]})
        for start, end in pairwise(offsets):
            client.send(data[start:end])
        if client.closed:
            assert client.streamError() in HOSTILE_CONDITIONS | {None}
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events, failures.describe()


ATTRIBUTE_VALUES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@FUZZ
@given(st.sampled_from(["message", "presence", "iq"]),
       st.dictionaries(st.sampled_from(["to", "type", "id", "from", "xml:lang"]), ATTRIBUTE_VALUES, max_size=5),
       st.lists(st.tuples(st.sampled_from(["body", "query", "ping", "x", "bind", "show", "priority"]),
                          st.sampled_from(["", "jabber:client", "urn:xmpp:ping", "jabber:iq:roster",
                                           "urn:ietf:params:xml:ns:xmpp-bind", "urn:example:zz"]),
                          ATTRIBUTE_VALUES), max_size=3))
def test_randomStanzasAfterBind(name, attributes, children):
    """Well-formed stanzas with random addresses, types and payloads never break the host."""
    from twisted.words.xish import domish

    pair = Pair()
    stanza = domish.Element((None, name))
    for key, value in attributes.items():
        stanza[("http://www.w3.org/XML/1998/namespace", "lang") if key == "xml:lang" else key] = value
    for child, uri, content in children:
        stanza.addElement((uri or None, child), content=content)
    with LoggedFailures() as failures:
        client = pair.connect()
        client.login("mallory", "mallory-pw")
        client.send(stanza.toXml())
        assert client.streamError() in {None, "not-well-formed", "policy-violation"}
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events, failures.describe()
