"""
XEP-0478: Stream Limits Advertisement. https://xmpp.org/extensions/xep-0478.html

Advertises the per-stanza byte limit the parser enforces and the idle time
after which the server checks the connection.
"""

from __future__ import annotations

from xmppchat.modules.base import Module, hook

NS_LIMITS = "urn:xmpp:stream-limits:0"


class LimitsModule(Module):
    """
    XEP-0478 §2: C{<limits/>} in the stream features, before and after auth.
    """

    name = "limits"

    @hook("stream-features", priority=-100)
    def onFeatures(self, event):
        limits = self.host.config.limits
        element = event.features.addElement((NS_LIMITS, "limits"))
        element.addElement("max-bytes", content=str(limits.max_stanza_bytes))
        if limits.ping_interval:
            element.addElement("idle-seconds", content=str(limits.ping_interval + limits.ping_timeout))
