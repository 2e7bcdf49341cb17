"""
XEP-0114: Jabber Component Protocol, the accepting side (XEP-0479 Core
Server, "server extensibility").

An external component (a gateway, a bot, a separate service) connects to
the C{[components]} listener and opens a C{jabber:component:accept} stream
to one of the C{[[components.external]]} domains; the server answers with a
stream id, the component sends C{<handshake/>} holding the hex SHA-1 of
that id and the shared secret (§3), compared in constant time.  Refusals
are stream errors: an unknown domain C{host-unknown}, a wrong handshake
C{not-authorized}, a domain that is already connected C{conflict} (the new
connection is refused, as Prosody's default C{component_conflict_resolve =
"kick_new"}).  The stream runs on the c2s TCP plumbing
(L{xmppchat.c2s.tcp}): the hardened parser, the stanza size limit, the
negotiation timeout (C{limits.negotiation_seconds}) until the handshake
and the per-address connection limits.

Routing: each configured domain is in C{host.components}, so the router
hands it every stanza to the domain or a JID at it
(L{ExternalComponent.receive}); while the component is not connected IQ
get/set and messages are answered with C{service-unavailable} (Prosody
0.12 answers C{remote-server-timeout}).  Stanzas from the component must
carry a C{from} at its own domain (C{invalid-from} stream error otherwise,
as Prosody's C{validate_from_addresses}); a missing C{from} is taken as the
domain and a missing C{to} gets C{bad-request}, as in Prosody.  They are
routed like any server-generated stanza (L{StanzaRouter.deliver}): to
local sessions, offline storage and through the receiver's privacy lists.

A component connects to one process: C{[components]} and cluster mode
(C{[cluster] redis_uri}, C{--workers}) are refused together by the
configuration check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat.c2s.negotiation import BOUND, CONNECTED
from xmppchat.c2s.tcp import C2SFactory, C2STCPProtocol
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.stanzas import NS_CLIENT, STANZA_NAMES, errorReply
from xmppchat.xmlstream import StreamError

NS_COMPONENT = "jabber:component:accept"


def handshakeDigest(streamId: str, secret: str) -> str:
    """XEP-0114 §3: the lower-case hex SHA-1 of the stream id and the secret."""
    return hashlib.sha1((streamId + secret).encode("utf-8")).hexdigest()


def toClientNamespace(element: domish.Element) -> domish.Element:
    """
    Move a stanza of the component stream into C{jabber:client}, as stanzas
    of every other origin are (stored offline, sent to clients): the
    elements that inherited C{jabber:component:accept}, not the payloads.
    """
    stack = [element]
    while stack:
        node = stack.pop()
        node.uri = NS_CLIENT
        node.defaultUri = NS_CLIENT
        stack.extend(child for child in node.elements() if child.uri == NS_COMPONENT)
    return element


class ExternalComponent:
    """
    One configured component domain in C{host.components}: routes stanzas
    to its stream while connected.
    """

    log = Logger()

    def __init__(self, host, domain: str, secret: str):
        self.host = host
        self.domain = domain
        self.secret = secret
        self.stream: ComponentStream | None = None

    def __repr__(self):
        return f"<ExternalComponent {self.domain} {'connected' if self.stream else 'not connected'}>"

    def receive(self, origin, stanza, toJID):
        """
        The router's component interface: a stanza to the domain or a JID
        at it.
        """
        if self.stream is not None:
            self.stream.send(stanza)
            return None
        stanzaType = stanza.getAttribute("type")
        if stanza.name == "presence" or stanzaType in ("error", "result"):
            return None
        return self.host.router.sendError(origin, stanza, "service-unavailable",
                                          f"The component {self.domain} is not connected")


class ComponentStream:
    """
    One component stream (XEP-0114 §3) above the TCP transport; its
    C{phase} is L{CONNECTED} until the handshake, then L{BOUND} (which ends
    the transport's negotiation timeout).
    """

    log = Logger()

    def __init__(self, host, transport):
        self.host = host
        self.transport = transport
        self.phase = CONNECTED
        self.streamId: str | None = None
        # the component the stream header named, and once the handshake
        # matched its secret, the component this stream serves
        self.requested: ExternalComponent | None = None
        self.component: ExternalComponent | None = None
        self.closed = False

    def streamStarted(self, attributes: dict) -> None:
        to = attributes.get("to")
        if to is None:
            return self.close("improper-addressing", "A 'to' attribute is required on the stream header")
        if to not in self.transport.factory.components:
            return self.close("host-unknown", f"{to} is not a configured component")
        self.requested = self.transport.factory.components[to]
        self.streamId = secrets.token_hex(16)
        self.transport.sendHeader(self.streamId, to, None)

    def elementReceived(self, element: domish.Element) -> None:
        if self.closed:
            return
        if self.component is None:
            if element.name == "handshake" and element.uri == NS_COMPONENT:
                return self._handshake(element)
            return self.close("not-authorized", "Send the handshake first (XEP-0114 §3)")
        if element.name not in STANZA_NAMES or element.uri not in (NS_COMPONENT, NS_CLIENT):
            return self.close("unsupported-stanza-type", f"Unexpected element {element.name!r}")
        domain = self.component.domain
        frm = element.getAttribute("from")
        if frm is None:
            element["from"] = domain
        else:
            try:
                host = parseJID(frm).host
            except InvalidJID:
                host = None
            if host != domain:
                return self.close("invalid-from", f"Stanzas from this stream must be from {domain}")
        if element.getAttribute("to") is None:
            if element.getAttribute("type") != "error":
                self.send(errorReply(element, "bad-request", "Components must address their stanzas"))
            return None
        try:
            self.host.router.deliver(toClientNamespace(element))
        except Exception:
            self.log.failure("Routing failed for a stanza from {domain}", domain=domain)

    def _handshake(self, element) -> None:
        component = self.requested
        expected = handshakeDigest(self.streamId, component.secret)
        given = str(element).strip().lower()
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace")):
            self.log.info("Component handshake for {domain} refused from {peer}",
                          domain=component.domain, peer=self.transport.peer)
            return self.close("not-authorized", "The handshake does not match the secret")
        if component.stream is not None:
            return self.close("conflict", "Component already connected")
        component.stream = self
        self.component = component
        self.phase = BOUND
        self.transport.bound()
        self.transport.send(domish.Element((NS_COMPONENT, "handshake")))
        self.log.info("Component {domain} connected from {peer}", domain=component.domain,
                      peer=self.transport.peer)

    def streamEnded(self) -> None:
        self.close()

    def connectionLost(self) -> None:
        self.closed = True
        component = self.component
        if component is not None and component.stream is self:
            component.stream = None
            self.log.info("Component {domain} disconnected", domain=component.domain)

    def send(self, element: domish.Element) -> None:
        if not self.closed:
            self.transport.send(element)

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.transport.close(StreamError(condition, text).toElement() if condition else None)


class ComponentProtocol(C2STCPProtocol):
    """
    The TCP side of a component stream: the c2s transport with the
    C{jabber:component:accept} namespace and no STARTTLS (the listener
    is for loopback or a trusted network, as Prosody's).
    """

    canStartTLS = False
    namespace = NS_COMPONENT
    streamClass = ComponentStream

    def send(self, element):
        # the stream's default namespace is jabber:component:accept:
        # stanzas in jabber:client are written without their xmlns
        self._write(element.toXml(defaultUri=NS_CLIENT if element.uri == NS_CLIENT else "").encode("utf-8"))


class ComponentFactory(C2SFactory):
    """
    The C{[components]} listener: registers every configured component
    domain in C{host.components} (so stanzas for it are routed, or
    refused while it is not connected).
    """

    protocol = ComponentProtocol

    def __init__(self, host):
        C2SFactory.__init__(self, host, None)
        self.components = {}
        for table in host.config.components.external:
            component = ExternalComponent(host, table["domain"], table["secret"])
            self.components[component.domain] = component
            host.components[component.domain] = component

    def unregister(self) -> None:
        for domain, component in self.components.items():
            if self.host.components.get(domain) is component:
                del self.host.components[domain]
