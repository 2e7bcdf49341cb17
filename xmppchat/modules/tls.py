"""
STARTTLS (RFC 6120 §5): offered on unencrypted streams, C{<required/>} when
the configuration demands it (the default).
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppchat.c2s.negotiation import CONNECTED
from xmppchat.modules.base import Module, hook

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"


class TLSModule(Module):
    """
    RFC 6120 §5: STARTTLS negotiation. https://www.rfc-editor.org/rfc/rfc6120#section-5
    """

    name = "tls"

    def offered(self, stream) -> bool:
        return (stream.phase == CONNECTED and stream.transport.canStartTLS
                and getattr(stream.transport.factory, "tlsContext", None) is not None)

    @hook("stream-features", priority=100)
    def onFeatures(self, event):
        if self.offered(event.stream):
            starttls = event.features.addElement((NS_TLS, "starttls"))
            if self.host.config.c2s.starttls_required:
                starttls.addElement("required")

    @hook(f"stream-element/{NS_TLS}:starttls")
    def onStartTLS(self, event):
        stream = event.stream
        if not self.offered(stream):
            stream.send(domish.Element((NS_TLS, "failure")))
            stream.close()
            return True
        stream.send(domish.Element((NS_TLS, "proceed")))
        stream.secured()
        return True
