"""
The PROXY protocol, versions 1 and 2 (HAProxy,
https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt), on the c2s
TCP ports (issue 15 finding 6): behind a TCP load balancer every client
would otherwise have the balancer's address for the per-address limits,
the failed-login throttle and the logs.

With C{[c2s] proxy_protocol = true}, a connection from a C{[limits]
trusted_proxies} address must start with a PROXY header (v1 text or v2
binary, parsed by Twisted's own parsers); the connection is then handed,
with whatever followed the header, to the c2s listener's protocol for the
client address the header names -- so the per-address limits are applied
to that address, as when the client connects directly -- and, on the
direct-TLS port, through TLS (the header comes before the TLS handshake).
A v2 C{LOCAL} header (a health check) keeps the proxy's own address.  A
broken or oversized header, or none within C{negotiation_seconds}, closes
the connection.  Connections from other addresses are served as usual: a
header from them is not believed (it is not XML, so the stream ends with
C{not-well-formed}).
"""

from __future__ import annotations

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

MAX_HEADER_BYTES = 1024  # v1 is at most 107; v2 addresses and a few TLVs fit


class ProxiedTransport:
    """
    The proxy's connection as the client's: C{getPeer} is the address the
    header named; everything else is the real transport's.
    """

    def __init__(self, transport, peer):
        self._transport = transport
        self._peer = peer

    def getPeer(self):
        return self._peer

    def __getattr__(self, name):
        return getattr(self._transport, name)


class ProxyHeaderProtocol(protocol.Protocol):
    """
    Reads the PROXY header of a trusted proxy's connection, then passes
    the connection on.
    """

    log = Logger()

    def __init__(self, factory, proxyAddress):
        self.factory = factory
        self.proxyAddress = proxyAddress
        self.buffer = b""
        self.inner = None
        self._timeout = None

    def connectionMade(self):
        seconds = self.factory.host.config.limits.negotiation_seconds
        if seconds:
            self._timeout = self.factory.host.clock.callLater(seconds, self._refuse, "no PROXY header in time")

    def dataReceived(self, data: bytes):
        if self.inner is not None:
            return self.inner.dataReceived(data)
        self.buffer += data
        try:
            info, rest = self._parse()
        except InvalidProxyHeader:
            return self._refuse("invalid PROXY header")
        if info is None:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._refuse("PROXY header too long")
            return None
        self._cancel()
        self._handOver(info.source if info.source is not None else self.proxyAddress, rest or b"")

    def _parse(self):
        buffer = self.buffer
        if buffer[:len(V2Parser.PREFIX)] == V2Parser.PREFIX[:len(buffer)] and len(buffer) < 16:
            return None, None
        if buffer.startswith(V2Parser.PREFIX):
            parser = V2Parser()
        elif V1Parser.PROXYSTR.startswith(buffer[:5]):
            parser = V1Parser()
        else:
            raise InvalidProxyHeader()
        info, rest = parser.feed(buffer)
        return info, rest

    def _handOver(self, client, rest: bytes) -> None:
        """
        Build the listener's protocol for C{client} (its limits apply
        there) and start it on this connection.
        """
        factory = self.factory
        inner = factory.wrappedFactory.buildProtocol(client)
        if inner is None:
            return self._refuse(None)
        if factory.tls is not None:
            inner = TLSMemoryBIOProtocol(factory.tls, inner)
        self.inner = inner
        self.buffer = b""
        inner.makeConnection(ProxiedTransport(self.transport, client))
        if rest:
            inner.dataReceived(rest)

    def _refuse(self, reason: str | None) -> None:
        self._cancel()
        if reason is not None:
            self.log.info("Dropped a connection from proxy {proxy}: {reason}",
                          proxy=getattr(self.proxyAddress, "host", ""), reason=reason)
        self.transport.loseConnection()

    def _cancel(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def connectionLost(self, reason):
        self._cancel()
        if self.inner is not None:
            self.inner.connectionLost(reason)


class ProxyProtocolFactory(protocol.ServerFactory):
    """
    Wraps a c2s listener's factory: trusted proxies' connections go through
    L{ProxyHeaderProtocol}, everybody else's straight to the listener.

    @param tlsContext: the direct-TLS port's context factory (TLS starts
        after the header), else C{None}.
    """

    noisy = False

    def __init__(self, host, wrappedFactory, tlsContext=None):
        self.host = host
        self.wrappedFactory = wrappedFactory
        self.tls = None if tlsContext is None else TLSMemoryBIOFactory(tlsContext, False, wrappedFactory)

    def buildProtocol(self, addr):
        if self.host.trustedProxies.trusts(getattr(addr, "host", "")):
            return ProxyHeaderProtocol(self, addr)
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None or self.tls is None:
            return inner
        return TLSMemoryBIOProtocol(self.tls, inner)

    def doStart(self):
        self.wrappedFactory.doStart()

    def doStop(self):
        self.wrappedFactory.doStop()


__all__ = ["ProxyProtocolFactory", "ProxyHeaderProtocol"]
