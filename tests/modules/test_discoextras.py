"""
Tests for XEP-0157 contact addresses (modules/contactinfo.py) and XEP-0215
external service discovery (modules/extdisco.py).
"""

import base64
import hashlib
import hmac

import pytest

from tests.helpers import HostHarness
from xmppchat.config import ConfigError, buildConfig

INFO = "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
SERVICES = "<iq type='get' id='x' to='localhost'><services xmlns='urn:xmpp:extdisco:2'{}/></iq>"
CREDENTIALS = ("<iq type='get' id='c' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'>"
               "<service type='{}' host='{}'/></credentials></iq>")
TURN = {"type": "turn", "host": "turn.example.com", "port": 3478, "transport": "udp", "secret": "s3cret"}
STUN = {"type": "stun", "host": "stun.example.com", "port": 3478}


def reply(h, session, text, sid):
    h.send(session, text)
    return [e for e in session.stream.transport.pop() if e.getAttribute("id") == sid][0]


def serverInfo(h, session):
    query = reply(h, session, INFO, "i").query
    features = {f["var"] for f in query.elements() if f.name == "feature"}
    forms = {}
    for form in (c for c in query.elements() if c.name == "x"):
        fields = {f["var"]: [str(v) for v in f.elements() if v.name == "value"]
                  for f in form.elements() if f.name == "field"}
        forms[fields.pop("FORM_TYPE")[0]] = fields
    return features, forms


def test_contactAddressesForm():
    """Configured addresses are a serverinfo form in the server's disco#info, one field per kind (XEP-0157 §2)."""
    h = HostHarness(contact={"abuse": ["mailto:abuse@example.com", "xmpp:abuse@example.com"],
                             "support": ["https://example.com/help"]})
    alice, _ = h.connect("alice")
    _, forms = serverInfo(h, alice)
    assert forms == {"http://jabber.org/network/serverinfo": {
        "abuse-addresses": ["mailto:abuse@example.com", "xmpp:abuse@example.com"],
        "support-addresses": ["https://example.com/help"]}}


def test_noContactAddressesNoForm():
    """Without addresses there is no form at all."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert serverInfo(h, alice)[1] == {}


@pytest.mark.parametrize("section", [
    {"contact": {"abuse": ["abuse@example.com"]}},  # not a URI
    {"contact": {"admin": [f"mailto:a{i}@example.com" for i in range(11)]}},
    {"extdisco": {"services": [{"type": "relay", "host": "x"}]}},
    {"extdisco": {"services": [{"type": "turn"}]}},
    {"extdisco": {"services": [{"type": "turn", "host": "x", "port": 70000}]}},
    {"extdisco": {"services": [{"type": "turn", "host": "x", "secret": "s", "username": "u", "password": "p"}]}},
    {"extdisco": {"services": [{"type": "turn", "host": "x", "username": "u"}]}},
    {"extdisco": {"services": [{"type": "turn", "host": "x", "colour": "red"}]}},
    {"extdisco": {"credentials_seconds": 5}},
])
def test_badConfigRefused(section):
    """Malformed contact addresses and service tables are configuration errors."""
    with pytest.raises(ConfigError):
        buildConfig(section)


def test_extdiscoNotAdvertisedWithoutServices():
    """With no services configured the server does not claim XEP-0215."""
    h = HostHarness()
    alice, _ = h.connect("alice")
    assert "urn:xmpp:extdisco:2" not in serverInfo(h, alice)[0]


def test_servicesListedWithTimeLimitedCredentials():
    """A logged-in user gets every service; a service with a secret carries TURN REST credentials (§3.2, §3.3)."""
    h = HostHarness(extdisco={"services": [STUN, TURN], "credentials_seconds": 3600})
    h.clock.advance(1_700_000_000)
    alice, _ = h.connect("alice")
    assert "urn:xmpp:extdisco:2" in serverInfo(h, alice)[0]
    services = list(reply(h, alice, SERVICES.format(""), "x").services.elements())
    assert [(s["type"], s["host"], s["port"]) for s in services] == [
        ("stun", "stun.example.com", "3478"), ("turn", "turn.example.com", "3478")]
    assert not services[0].hasAttribute("username")
    turn = services[1]
    assert turn["username"] == "1700003600:alice@localhost" and turn["restricted"] == "true"
    expected = base64.b64encode(hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["password"] == expected and turn["expires"] == "2023-11-14T23:13:20Z"
    only = list(reply(h, alice, SERVICES.format(" type='stun'"), "x").services.elements())
    assert [s["type"] for s in only] == ["stun"]


def test_credentialsRequest():
    """A credentials request names one service: its credentials, item-not-found for others (§3.4)."""
    static = {"type": "turn", "host": "turn.example.com", "username": "u", "password": "p"}
    h = HostHarness(extdisco={"services": [STUN, static]})
    alice, _ = h.connect("alice")
    got = reply(h, alice, CREDENTIALS.format("turn", "turn.example.com"), "c")
    service = got.credentials.service
    assert (service["username"], service["password"]) == ("u", "p")
    error = reply(h, alice, CREDENTIALS.format("stun", "stun.example.com"), "c")
    assert error["type"] == "error" and error.error.firstChildElement().name == "item-not-found"


def test_capsHashCoversContactForm():
    """The server's XEP-0115 ver hashes its disco#info with the XEP-0157 form (§5.4), so clients verify it."""
    from xmppchat.caps import verify

    h = HostHarness(contact={"abuse": ["mailto:abuse@example.com"]})
    alice, _ = h.connect("alice")
    query = reply(h, alice, INFO, "i").query
    ver = h.host.modules["disco"].serverVer()
    assert any(c.name == "x" for c in query.elements()) and verify(query, ver, "sha-1")
    bare = HostHarness()
    assert bare.host.modules["disco"].serverVer() != ver
