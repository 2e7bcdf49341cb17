"""
Small helpers to build replies and errors for stanzas (RFC 6120 §8).

Namespaces used across modules live here too, so that a module imports its
constants from one place.
"""

from __future__ import annotations

from twisted.words.protocols.jabber import error as jerror
from twisted.words.xish import domish

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"

StanzaError = jerror.StanzaError

STANZA_NAMES = frozenset(("message", "presence", "iq"))

# Error types of the RFC 6120 §8.3.3 conditions that Twisted's table (from
# RFC 3920) lacks or gives no type (undefined-condition: "cancel" then);
# without one the <error/> would carry type=None and fail to serialise.
_EXTRA_ERROR_TYPES = {"policy-violation": "modify"}


def swapAddresses(stanza: domish.Element) -> None:
    to = stanza.getAttribute("to")
    frm = stanza.getAttribute("from")
    if frm is None:
        stanza.attributes.pop("to", None)
    else:
        stanza["to"] = frm
    if to is None:
        stanza.attributes.pop("from", None)
    else:
        stanza["from"] = to


def iqResult(iq: domish.Element, child: domish.Element | None = None) -> domish.Element:
    """
    The C{result} for an IQ request (RFC 6120 §8.2.3), addressed back to its
    sender, optionally carrying C{child}.
    """
    reply = domish.Element((NS_CLIENT, "iq"))
    reply["type"] = "result"
    if iq.getAttribute("id") is not None:
        reply["id"] = iq["id"]
    if iq.getAttribute("from") is not None:
        reply["to"] = iq["from"]
    if iq.getAttribute("to") is not None:
        reply["from"] = iq["to"]
    if child is not None:
        reply.addChild(child)
    return reply


def errorReply(stanza: domish.Element, condition: str, text: str | None = None,
               errorType: str | None = None) -> domish.Element:
    """
    The error stanza answering C{stanza} (RFC 6120 §8.3): same name and id,
    addresses swapped, the original payload kept for messages and presences,
    an C{<error/>} with the legacy numeric C{code} as well (the ConnectyCube
    SDK reads it, §5.11 of the SDK reference).
    """
    if errorType is None and jerror.STANZA_CONDITIONS.get(condition, {}).get("type") is None:
        errorType = _EXTRA_ERROR_TYPES.get(condition, "cancel")
    exc = StanzaError(condition, errorType, text)
    reply = domish.Element((stanza.uri or NS_CLIENT, stanza.name))
    for key in ("id", "to", "from"):
        if stanza.getAttribute(key) is not None:
            reply[key] = stanza[key]
    swapAddresses(reply)
    reply["type"] = "error"
    if stanza.name != "iq":
        for child in stanza.elements():
            if child.name != "error":
                reply.addChild(child)
    reply.addChild(exc.getElement())
    return reply


def delayElement(stamp: float, origin: str, reason: str | None = None) -> domish.Element:
    """
    XEP-0203 delayed delivery: C{<delay xmlns='urn:xmpp:delay' from stamp/>}.
    """
    import time

    delay = domish.Element((NS_DELAY, "delay"))
    delay["from"] = origin
    delay["stamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    if reason:
        delay.addContent(reason)
    return delay


def resultForm(formType: str, fields) -> domish.Element:
    """
    A XEP-0128 extended disco#info form (XEP-0004 type C{result}): the
    hidden C{FORM_TYPE} field, then one field per C{(var, values)} with
    each value as a C{<value/>}.
    """
    form = domish.Element((NS_DATA, "x"))
    form["type"] = "result"
    hidden = form.addElement("field")
    hidden["var"], hidden["type"] = "FORM_TYPE", "hidden"
    hidden.addElement("value", content=formType)
    for var, values in fields:
        field = form.addElement("field")
        field["var"] = var
        for value in values:
            field.addElement("value", content=value)
    return form


def parseCount(value: str | None, maximum: int) -> int | None:
    """
    A count as XML Schema's C{xs:nonNegativeInteger} writes it (what XEP
    attributes and data-form fields carry: ASCII digits), larger ones cut
    to C{maximum}; C{None} when C{value} is absent or not one.  Security
    review finding 4: C{str.isdigit} takes C{'²'}, which C{int} refuses,
    C{int} takes other scripts' digits, and an unbounded number overflowed
    the store's 64-bit integers.
    """
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    return min(int(value), maximum) if len(value) <= 18 else maximum


def firstChild(stanza: domish.Element) -> domish.Element | None:
    for child in stanza.children:
        if type(child) is not str:
            return child
    return None
