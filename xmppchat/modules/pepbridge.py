"""
What the modules that convert to and from PEP share (issue 16: XEP-0398
in L{xmppchat.modules.vcard}, XEP-0411 in L{xmppchat.modules.private}):
the internal PEP API (the C{pep} module, or C{None} when it is not
loaded: then there is nothing to convert), the conversion features
advertised on the account only while it is there, and one lock per user
around read-modify-write of what is converted.
"""

from __future__ import annotations

from xmppchat.modules.base import KeyedLocks, Module
from xmppchat.stanzas import StanzaError


class PEPBridge(Module):
    """
    A module with a PEP conversion; C{conversionFeatures} are its account
    disco#info features (XEP-0030 §3.1) while PEP is loaded.
    """

    conversionFeatures: tuple = ()

    def setUp(self):
        self.locks = KeyedLocks()

    @property
    def pep(self):
        return self.host.modules.get("pep")

    @property
    def accountFeatures(self):
        return self.conversionFeatures if self.pep is not None else ()

    def publishWithDefaults(self, owner: str, node: str, item, itemId: str | None, options: dict):
        """
        Publish with C{options} as the node's configuration when it is
        created; into a node its owner configured otherwise (XEP-0060
        §7.1.5 C{precondition-not-met}), as it is (as Prosody's converted
        avatars do: their options are defaults only).
        """

        def asConfigured(failure):
            failure.trap(StanzaError)
            app = getattr(failure.value, "appCondition", None)
            if app is None or app.name != "precondition-not-met":
                return failure
            return self.pep.publish(owner, node, item, itemId)

        return self.pep.publish(owner, node, item, itemId, dict(options)).addErrback(asConfigured)
