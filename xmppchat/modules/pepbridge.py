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
