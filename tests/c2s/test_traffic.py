"""
Tests for traffic logging without secrets (xmppchat.c2s.traffic; issue 15
item 17: C{log_traffic = true} wrote the SASL PLAIN password to the log).
"""

import base64

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from tests.helpers import HostHarness
from xmppchat.c2s.tcp import C2SFactory
from xmppchat.c2s.traffic import redact

PLAIN = base64.b64encode(b"\0alice\0s3cret-token").decode()


def test_saslPayloadsRedacted():
    """RFC 6120 §6.4: auth, response, challenge and success payloads are replaced; other traffic is kept."""
    data = (f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{PLAIN}</auth>"
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1iaXdz</response>"
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1meWtv</challenge>"
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1ybUY5</success>"
            "<message><body>hello</body></message>")
    out = redact(data.encode())
    for secret in (PLAIN, "Yz1iaXdz", "cj1meWtv", "dj1ybUY5"):
        assert secret.encode() not in out
    assert out.count(b"[redacted]") == 4 and b"<body>hello</body>" in out
    assert redact(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>") == \
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def test_chunkEndingInsidePayload():
    """A chunk that ends inside a SASL payload is redacted to its end."""
    assert redact(f"<auth mechanism='PLAIN'>{PLAIN[:10]}".encode()) == b"<auth mechanism='PLAIN'>[redacted]"


def test_tcpTrafficLogHasNoPassword():
    """With log_traffic on, the c2s TCP listener logs the stream but never the PLAIN password."""
    h = HostHarness(limits={"ping_interval": 0})
    factory = C2SFactory(h.host, tlsContext=None, logTraffic=True)
    addr = IPv4Address("TCP", "192.0.2.1", 40000)
    proto = factory.buildProtocol(addr)
    proto.makeConnection(StringTransport(peerAddress=addr))
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        proto.dataReceived(b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                           b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        proto.dataReceived(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{PLAIN}</auth>"
                           .encode())
    finally:
        globalLogPublisher.removeObserver(events.append)
    logged = repr([e.get("data") for e in events if "data" in e])
    assert "stream:stream" in logged and "[redacted]" in logged
    assert PLAIN not in logged
