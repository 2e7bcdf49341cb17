"""
Resource binding (RFC 6120 §7) and the legacy session IQ (RFC 3921 §3,
kept optional per RFC 6121 Appendix E).
"""

from __future__ import annotations

import secrets

from twisted.words.protocols.jabber import jid as jjid
from twisted.words.xish import domish

from xmppchat.c2s.negotiation import AUTHENTICATED
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import errorReply, iqResult

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"


def randomResource() -> str:
    """
    A long random resource (RFC 6120 §7.6.2.1); the ConnectyCube SDK needs
    one that is not a substring of anything else it sees.
    """
    return "xc" + secrets.token_hex(12)


class BindModule(Module):
    """
    RFC 6120 §7: resource binding. https://www.rfc-editor.org/rfc/rfc6120#section-7

    A requested resource that is already bound replaces the older session,
    which receives a C{conflict} stream error (RFC 6120 §7.7.2.2, policy 2).
    """

    name = "bind"

    @hook("stream-features")
    def onFeatures(self, event):
        if event.stream.phase == AUTHENTICATED:
            event.features.addElement((NS_BIND, "bind"))

    @hook(f"negotiate-iq/{NS_BIND}:bind")
    def onBind(self, event):
        stream, iq = event.stream, event.stanza
        if iq.getAttribute("type") != "set":
            stream.send(errorReply(iq, "bad-request", "Bind with an IQ of type set"))
            return True
        resource = None
        for child in iq.bind.elements():
            if child.name == "resource":
                resource = str(child).strip() or None
        if resource is not None:
            try:
                resource = parseJID(f"{stream.localpart}@{self.host.domain}/{resource}").resource
            except InvalidJID:
                stream.send(errorReply(iq, "bad-request", "Invalid resource"))
                return True
        else:
            resource = randomResource()
        bare = f"{stream.localpart}@{self.host.domain}"
        limit = self.host.config.limits.sessions_per_account
        sessions = self.host.sessions
        if (limit and sessions.get(bare, resource) is None
                and sessions.resourceCount(bare) >= limit):
            stream.send(errorReply(iq, "resource-constraint", f"At most {limit} sessions per account"))
            return True
        jid = jjid.JID(tuple=(stream.localpart, self.host.domain, resource))
        session = self.host.bindSession(stream, jid, stream.account)
        stream.bound(session)
        payload = domish.Element((NS_BIND, "bind"))
        payload.addElement("jid", content=jid.full())
        result = iqResult(iq, payload)
        result.attributes.pop("to", None)
        stream.send(result)
        return True


class SessionModule(Module):
    """
    RFC 3921 §3 session establishment, advertised as optional (RFC 6121
    Appendix E) and answered with an empty result.
    """

    name = "session"

    @hook("stream-features")
    def onFeatures(self, event):
        if event.stream.phase == AUTHENTICATED:
            session = event.features.addElement((NS_SESSION, "session"))
            session.addElement("optional")

    @hook(f"iq-set/self/{NS_SESSION}:session")
    @hook(f"iq-set/host/{NS_SESSION}:session")
    def onSession(self, event):
        return self.reply(event)
