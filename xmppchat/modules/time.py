"""
XEP-0202: Entity Time. https://xmpp.org/extensions/xep-0202.html
"""

from __future__ import annotations

import time

from twisted.words.xish import domish

from xmppchat.modules.base import Module, hook

NS_TIME = "urn:xmpp:time"


class TimeModule(Module):
    """
    XEP-0202 §3: the server's UTC time (XEP-0082 format) and zone offset.
    """

    name = "time"
    features = (NS_TIME,)

    @hook(f"iq-get/host/{NS_TIME}:time")
    def onTime(self, event):
        now = self.host.clock.seconds()
        element = domish.Element((NS_TIME, "time"))
        element.addElement("tzo", content="+00:00")
        element.addElement("utc", content=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        return self.reply(event, element)
