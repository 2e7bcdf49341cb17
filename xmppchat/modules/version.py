"""
XEP-0092: Software Version. https://xmpp.org/extensions/xep-0092.html
"""

from __future__ import annotations

from twisted.words.xish import domish

import xmppchat
from xmppchat.modules.base import Module, hook

NS_VERSION = "jabber:iq:version"


class VersionModule(Module):
    """
    XEP-0092 §2: name and version of the server (the OS is not disclosed).
    """

    name = "version"
    features = (NS_VERSION,)

    @hook(f"iq-get/host/{NS_VERSION}:query")
    def onVersion(self, event):
        query = domish.Element((NS_VERSION, "query"))
        query.addElement("name", content="xmppchat")
        query.addElement("version", content=xmppchat.__version__)
        return self.reply(event, query)
