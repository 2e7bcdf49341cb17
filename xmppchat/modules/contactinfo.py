"""
XEP-0157: Contact Addresses for XMPP Services,
https://xmpp.org/extensions/xep-0157.html (a XEP-0479 "specification of
note" for public IM services; the Compliance Tester's abuse-contact test).

The addresses of C{[contact]} (C{abuse}, C{admin}, C{feedback}, C{sales},
C{security}, C{status}, C{support}: URIs such as C{mailto:} or C{xmpp:})
are a XEP-0128 form of type C{http://jabber.org/network/serverinfo} in the
server's disco#info (§2); kinds without addresses are left out, and with
none at all there is no form.
"""

from __future__ import annotations

from dataclasses import fields

from twisted.words.xish import domish

from xmppchat.modules.base import Module
from xmppchat.stanzas import resultForm

FORM_TYPE = "http://jabber.org/network/serverinfo"


def serverInfoForm(contact) -> domish.Element | None:
    """
    The XEP-0157 §2 form for a L{xmppchat.config.ContactConfig}, or C{None}.
    """
    kinds = [(f.name, getattr(contact, f.name)) for f in fields(contact)]
    kinds = [(name, addresses) for name, addresses in kinds if addresses]
    if not kinds:
        return None
    return resultForm(FORM_TYPE, [(f"{name}-addresses", addresses) for name, addresses in kinds])


class ContactInfoModule(Module):
    """
    XEP-0157 §2: the server's contact addresses as a disco#info extension.
    """

    name = "contactinfo"

    def serverInfoForms(self) -> list:
        form = serverInfoForm(self.host.config.contact)
        return [form] if form is not None else []
