"""
The ConnectyCube message wire format shared by the REST API and the XMPP
modules (issue 17): C{<extraParams/>} (SDK reference §5.3) to and from
dicts, the stanza of a stored message (§5.4), XEP-0359 stanza ids
(https://xmpp.org/extensions/xep-0359.html) and the namespaces of the
changes of a message (XEP-0308 correction, XEP-0424 retraction and the
SDK's C{remove}, XEP-0444 reactions).
"""

from __future__ import annotations

import re

from twisted.words.xish import domish

from xmppchat.messageinfo import NS_MARKERS, NS_SID, forget, messageInfo
from xmppchat.stanzas import NS_CLIENT

NS_CORRECT = "urn:xmpp:message-correct:0"
NS_DELETE = "urn:xmpp:message-delete:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_REACTIONS = "urn:xmpp:reactions:0"

# children that make a message a change of another one (correction,
# retraction, reaction modules), not a new dialog message
CHANGES = frozenset(((NS_CORRECT, "replace"), (NS_DELETE, "remove"), (NS_RETRACT, "retract"),
                     (NS_FASTEN, "apply-to"), (NS_REACTIONS, "reactions")))
# extraParams keys that are protocol, not custom fields saved with a message
RESERVED_PARAMS = frozenset(("save_to_history", "dialog_id", "date_sent", "moduleIdentifier"))



def paramsToDict(element) -> tuple[dict, list]:
    """
    C{(custom, attachments)} of an C{<extraParams/>} element: child text as
    strings, nested elements as dicts, empty elements dropped, each
    C{<attachment/>}'s attributes as a dict (C{size} as an int), reserved
    keys (L{RESERVED_PARAMS}) left out.
    """
    custom: dict = {}
    attachments: list = []
    if element is None:
        return custom, attachments
    for child in element.elements():
        name = child.name
        if name == "attachment":
            item = {k: v for k, v in child.attributes.items() if type(k) is str}
            if item.get("size", "").isdigit():
                item["size"] = int(item["size"])
            attachments.append(item)
        elif name not in RESERVED_PARAMS:
            value = _paramValue(child)
            if value not in (None, "", {}):
                custom[name] = value
    return custom, attachments


def _paramValue(element):
    nested = {}
    for child in element.elements():
        value = _paramValue(child)
        if value not in (None, "", {}):
            nested[child.name] = value
    return nested if nested else str(element)


def addParams(parent, values: dict) -> None:
    """
    Write C{values} as child elements of C{parent} (nested dicts nested,
    other values as text; keys that are not XML names are skipped).
    """
    for key, value in values.items():
        if not isinstance(key, str) or not _XML_NAME.match(key):
            continue
        child = parent.addElement(key)
        if isinstance(value, dict):
            addParams(child, value)
        elif value is not None:
            child.addContent(str(value) if not isinstance(value, bool) else str(value).lower())


_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def extraParams(stanza) -> domish.Element:
    """
    The stanza's C{<extraParams/>}, added when missing.
    """
    element = messageInfo(stanza).extraParams
    if element is None:
        element = stanza.addElement((NS_CLIENT, "extraParams"))
        forget(stanza)
    return element


def setParam(params, key: str, value: str, replace: bool = True) -> None:
    for child in list(params.elements()):
        if child.name == key:
            if not replace:
                return
            params.children.remove(child)
    params.addElement(key, content=value)


def hasContent(info) -> bool:
    """
    A body with text or an attachment: what makes a dialog message.
    """
    if info.body is not None and str(info.body).strip():
        return True
    return info.extraParams is not None and any(
        c.name == "attachment" for c in info.extraParams.elements())


def changeOf(stanza):
    """
    The child that makes C{stanza} a correction, retraction or reaction, or
    C{None}.
    """
    for child in stanza.elements():
        if (child.uri, child.name) in CHANGES:
            return child
    return None


def copyFor(stanza, to: str | None, frm: str | None = None) -> domish.Element:
    """
    A copy of C{stanza} with new addresses whose children are shared (not
    copied): nobody changes a stanza once it is being fanned out.
    """
    copy = domish.Element((NS_CLIENT, stanza.name))
    copy.attributes = dict(stanza.attributes)
    if to is None:
        copy.attributes.pop("to", None)
    else:
        copy["to"] = to
    if frm is not None:
        copy["from"] = frm
    copy.children = stanza.children
    return copy


def messageStanza(message, frm: str | None, to: str | None, stanzaType: str,
                  dialogId: str) -> domish.Element:
    """
    A stored L{Message} as the stanza the SDK receives: body,
    C{extraParams} with C{save_to_history}, C{dialog_id}, C{date_sent},
    attachments and custom fields.
    """
    stanza = domish.Element((NS_CLIENT, "message"))
    if frm:
        stanza["from"] = frm
    if to:
        stanza["to"] = to
    stanza["type"] = stanzaType
    stanza["id"] = message.id
    if message.body is not None:
        stanza.addElement("body", content=message.body)
    params = stanza.addElement("extraParams")
    addParams(params, {k: v for k, v in (message.custom or {}).items() if k not in RESERVED_PARAMS})
    for item in message.attachments or ():
        attachment = params.addElement("attachment")
        for key, value in (item.items() if isinstance(item, dict) else ()):
            if isinstance(key, str) and _XML_NAME.match(key) and value is not None:
                attachment[key] = str(value)
    params.addElement("save_to_history", content="1")
    params.addElement("dialog_id", content=dialogId)
    params.addElement("date_sent", content=str(message.dateSent))
    return stanza


def changeStanza(kind: str, messageId: str, newId: str, dialogId: str, body: str | None = None,
                 last: bool = False) -> domish.Element:
    """
    The stanza (no addresses, no type) that tells clients about a change
    of message C{messageId} made elsewhere (over REST), as the SDK reads it
    from XMPP clients: C{edit} is the XEP-0308 C{<replace/>} with the new
    body (SDK reference §5.7, C{onMessageUpdateListener}), C{remove} the
    SDK's C{<remove xmlns="urn:xmpp:message-delete:0"/>} (§5.8,
    C{onMessageDeleteListener}), C{received}/C{displayed} a XEP-0333
    marker (§5.5, C{onDeliveredStatusListener}/C{onReadStatusListener}).
    Each carries C{<extraParams><dialog_id/></extraParams>}.
    """
    stanza = domish.Element((NS_CLIENT, "message"))
    stanza["id"] = newId
    if kind == "edit":
        if body is not None:
            stanza.addElement("body", content=body)
        change = stanza.addElement((NS_CORRECT, "replace"))
        change["last"] = "true" if last else "false"
    elif kind == "remove":
        change = stanza.addElement((NS_DELETE, "remove"))
    else:
        change = stanza.addElement((NS_MARKERS, kind))
    change["id"] = messageId
    stanza.addElement("extraParams").addElement("dialog_id", content=dialogId)
    return stanza


def addStanzaId(stanza, by: str, messageId: str) -> None:
    """
    Add the XEP-0359 C{<stanza-id by=... id=.../>} of a stored message.
    """
    sid = stanza.addElement((NS_SID, "stanza-id"))
    sid["by"] = by
    sid["id"] = messageId


__all__ = ["CHANGES", "NS_CORRECT", "NS_DELETE", "NS_FASTEN", "NS_REACTIONS", "NS_RETRACT",
           "NS_RETRACT0", "RESERVED_PARAMS", "addParams", "addStanzaId", "changeOf", "changeStanza", "copyFor",
           "extraParams", "hasContent", "messageStanza", "paramsToDict", "setParam"]
