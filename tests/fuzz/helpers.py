"""
Helpers for the fuzz and hardening tests: a client of the real TCP
protocol (L{C2STCPProtocol}) over a StringTransport, whose output is read
back with our own L{StreamParser}, and a collector of logged failures.
"""

from __future__ import annotations

import base64

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

from xmppchat.c2s.tcp import C2SFactory
from xmppchat.xmlstream import StreamParser

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")


def plainAuth(user: str, password: str) -> str:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


BIND = f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'/></iq>"


class LoggedFailures:
    """
    Collects every event logged at level error or above, or carrying a
    failure, while installed (a context manager).
    """

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, event):
        level = event.get("log_level")
        if "log_failure" in event or level in (LogLevel.error, LogLevel.critical):
            self.events.append(event)

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self)
        return False

    def describe(self) -> list[str]:
        out = []
        for event in self.events:
            failure = event.get("log_failure")
            out.append(failure.getTraceback() if failure is not None else repr(event.get("log_format")))
        return out


def tcpFactory(h, directTLS=True) -> C2SFactory:
    """
    A TCP listener factory on the harness host; C{directTLS} makes its
    streams count as secure (as behind the direct-TLS port) without a
    real handshake, so SASL is offered at once.
    """
    return C2SFactory(h.host, tlsContext=None, directTLS=directTLS)


class TCPClient:
    """
    One connection to C{factory}'s protocol; what the server writes is
    parsed as a stream (restarted when the server restarts).

    @ivar elements: every top-level element received so far.
    @ivar ended: the server closed its stream.
    """

    def __init__(self, factory, peer="127.0.0.1"):
        address = IPv4Address("TCP", peer, 40000)
        self.proto = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.proto.makeConnection(self.transport)
        self.elements: list = []
        self.headers: list = []
        self.ended = False
        self.parser = StreamParser(self.headers.append, self._element, self._ended,
                                   maxStanzaBytes=1 << 30)
        self._seen = 0

    def _element(self, element):
        self.elements.append(element)
        if element.uri == NS_SASL and element.name == "success":
            # The server's next header starts a new document.
            self.parser.reset()

    def _ended(self):
        self.ended = True

    def send(self, data: bytes | str) -> list:
        """
        Feed C{data} to the server; return the elements it answered with.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data:
            self.proto.dataReceived(data)
        return self.read()

    def read(self) -> list:
        output = self.transport.value()
        self.transport.clear()
        if output:
            self.parser.feed(output)
        new = self.elements[self._seen:]
        self._seen = len(self.elements)
        return new

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting or self.ended

    def streamError(self):
        """
        The condition of the stream error the server sent, or C{None}.
        """
        for element in self.elements:
            if element.uri == NS_STREAMS and element.name == "error":
                for child in element.elements():
                    if child.uri == NS_XMPP_STREAMS and child.name != "text":
                        return child.name
        return None

    def login(self, user: str, password: str) -> str:
        """
        Header, PLAIN, restart, bind, initial presence; returns the full JID.
        """
        self.send(HEADER)
        [success] = self.send(plainAuth(user, password))
        assert success.name == "success", success.toXml()
        self.send(HEADER)
        [bound] = self.send(BIND)
        assert bound.getAttribute("type") == "result", bound.toXml()
        self.send("<presence/>")
        self.read()
        return str(bound.bind.jid)

    def disconnect(self):
        from twisted.internet import error
        from twisted.python import failure

        self.proto.connectionLost(failure.Failure(error.ConnectionDone()))
