"""
Structured fuzzing of the modules behind the router (RFC 6120 §8, RFC
6121, and the XEPs the modules implement): random but well-formed stanzas
built from the names, namespaces and attributes the modules look at, sent
by a bound client over the real TCP protocol.  Whatever they contain, the
host answers or ignores them without a logged failure, and keeps routing.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.words.xish import domish

from tests.fuzz.helpers import LoggedFailures
from tests.fuzz.test_tcp_stream import Pair

NAMESPACES = [
    None, "jabber:client", "jabber:iq:roster", "jabber:iq:version", "jabber:iq:last", "jabber:x:data",
    "urn:xmpp:ping", "urn:xmpp:time", "urn:xmpp:csi:0", "urn:xmpp:push:0", "urn:xmpp:carbons:2",
    "urn:xmpp:chat-markers:0", "urn:xmpp:receipts", "urn:xmpp:hints", "urn:xmpp:delay",
    "urn:ietf:params:xml:ns:xmpp-bind", "urn:ietf:params:xml:ns:xmpp-session",
    "urn:ietf:params:xml:ns:xmpp-stanzas", "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/chatstates", "http://tigase.org/protocol/mobile#v2",
    "https://connectycube.com/protocol/status_streaming", "urn:example:unknown",
]
NAMES = [
    "query", "item", "group", "enable", "disable", "subscribe", "unsubscribe", "mobile", "ping", "time",
    "bind", "resource", "session", "x", "field", "value", "body", "subject", "thread", "received",
    "displayed", "acknowledged", "markable", "request", "active", "inactive", "composing", "private",
    "no-copy", "publish-options", "show", "status", "priority", "delay", "error", "extraParams",
    "save_to_history", "dialog_id", "sent", "forwarded", "message",
]
ATTRIBUTES = ["jid", "node", "var", "type", "id", "name", "subscription", "ask", "seconds", "stamp",
              "to", "from", "xmlns:x", "ver", "action", "lang", "code", "value", "presence", "timeout"]
VALUES = st.one_of(
    st.sampled_from(["", "bob@localhost", "bob@localhost/r", "alice@localhost", "localhost", "muc.localhost",
                     "remote.example", "@", "/", "a@b@c", "set", "get", "result", "error", "remove", "both",
                     "none", "subscribe", "true", "false", "1", "0", "-1", "99999999999999999999", "1e308",
                     "NaN", "submit", "form", "FORM_TYPE", "urn:xmpp:push:0", "\u00e9\u2603\U0001F600",
                     "2026-12-01T00:00:00Z", "not a date", "x" * 2000]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=20),
)


def element(draw, depth):
    name = draw(st.sampled_from(NAMES))
    uri = draw(st.sampled_from(NAMESPACES))
    e = domish.Element((uri, name))
    for key in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=4, unique=True)):
        if key != "xmlns:x":
            e[key] = draw(VALUES)
    if depth < 3:
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            if draw(st.booleans()):
                e.addChild(element(draw, depth + 1))
            else:
                e.addContent(draw(VALUES))
    return e


@st.composite
def stanzas(draw):
    kind = draw(st.sampled_from(["iq", "iq", "message", "presence", "csi"]))
    if kind == "csi":
        return domish.Element(("urn:xmpp:csi:0", draw(st.sampled_from(["active", "inactive"]))))
    stanza = domish.Element((None, kind))
    types = {"iq": ["get", "set", "result", "error", None],
             "message": ["chat", "normal", "groupchat", "headline", "error", None, "bogus"],
             "presence": [None, "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed",
                          "probe", "error"]}[kind]
    stanzaType = draw(st.sampled_from(types))
    if stanzaType is not None:
        stanza["type"] = stanzaType
    to = draw(st.sampled_from([None, "localhost", "alice@localhost", "bob@localhost", "bob@localhost/x",
                               "nobody@localhost", "muc.localhost", "room@muc.localhost/nick",
                               "remote.example", "localhost/r"]))
    if to is not None:
        stanza["to"] = to
    if draw(st.booleans()):
        stanza["id"] = draw(VALUES)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        stanza.addChild(element(draw, 1))
    return stanza


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stanzas(), min_size=1, max_size=4))
def test_randomModulePayloads(sequence):
    """Random module payloads from a bound client never log a failure, and the host keeps routing."""
    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        client.login("mallory", "mallory-pw")
        for stanza in sequence:
            client.send(stanza.toXml())
        pair.h.clock.advance(1)
        assert client.streamError() in (None, "policy-violation", "unsupported-stanza-type")
        client.disconnect()
        pair.h.clock.advance(1)
        pair.stillRoutes()
    assert not failures.events, failures.describe()


def test_loggedFailuresSeeModuleErrors():
    """The failure collector the fuzz tests rely on does catch a module that raises on a stanza."""
    pair = Pair()
    ping = pair.h.host.modules["ping"]

    def broken(event):
        raise RuntimeError("boom")

    pair.h.host.hooks.add("iq-get/host/urn:xmpp:ping:ping", ping._wrap(broken), priority=1000)
    with LoggedFailures() as failures:
        [reply] = pair.alice.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert failures.events and reply["type"] == "error"


B64 = st.one_of(st.binary(max_size=200).map(lambda b: __import__("base64").b64encode(b).decode()),
                st.sampled_from(["=", "", "====", "not base64!", "AGFsaWNlAA==", "biwsbj1hbGljZSxyPWFiYw==",
                              "AG1hbGxvcnkAbWFsbG9yeS1wdw==", "AG1hbGxvcnkAbWFsbG9yeS1wdw=="]))
NEGOTIATION = st.lists(st.one_of(
    st.tuples(st.just("auth"), st.sampled_from(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "X-OAUTH2", "", "plain"]),
              B64),
    st.tuples(st.just("response"), st.just(""), B64),
    st.tuples(st.just("abort"), st.just(""), st.just("")),
    st.tuples(st.just("starttls"), st.just(""), st.just("")),
    st.tuples(st.just("bind"), st.just(""), VALUES),
    st.tuples(st.just("restart"), st.just(""), st.just("")),
), min_size=1, max_size=8)


def negotiationXML(step) -> str:
    kind, mechanism, payload = step
    sasl = "urn:ietf:params:xml:ns:xmpp-sasl"
    if kind == "auth":
        return f"<auth xmlns='{sasl}' mechanism='{mechanism}'>{payload}</auth>"
    if kind == "response":
        return f"<response xmlns='{sasl}'>{payload}</response>"
    if kind == "abort":
        return f"<abort xmlns='{sasl}'/>"
    if kind == "starttls":
        return "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    if kind == "bind":
        resource = domish.Element((None, "resource"))
        resource.addContent(payload)
        return f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{resource.toXml()}</bind></iq>"
    from tests.fuzz.helpers import HEADER

    return HEADER


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NEGOTIATION)
def test_randomNegotiation(steps):
    """Random SASL, STARTTLS, bind and restart sequences end in a session, a failure or a stream error; never a traceback."""
    from tests.fuzz.helpers import HEADER

    pair = Pair()
    with LoggedFailures() as failures:
        client = pair.connect()
        client.send(HEADER)
        for step in steps:
            if client.closed:
                break
            client.send(negotiationXML(step))
            pair.h.clock.advance(10)  # failed-login delays
            client.read()
        client.disconnect()
        pair.stillRoutes()
    assert not failures.events, failures.describe()
