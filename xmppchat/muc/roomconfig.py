"""
XEP-0045 §10.2 (and §15.5.3, the C{muc#roomconfig} FORM_TYPE): what a
room's configuration form offers, how a stored dialog answers it, and
what a submitted form changes (issue 16 item 5).

A room's settings live in its dialog (both storage backends): the name
and description in the dialog's fields, the rest in the server's own
extension keys (L{xmppchat.storage.interfaces.DIALOG_SERVER_EXTENSIONS}).
Rooms made the XMPP way (a join of a new name) take every setting; a
ConnectyCube dialog room (C{<appId>_<dialogId>}) takes its name and
description, the rest follows its dialog type, so a submitted value that
differs is refused with C{not-acceptable} (never a silent success).

Pure functions of a dialog (or a room's defaults) and a form: no I/O.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.words.xish import domish

from xmppchat.dialogs.rules import isOpen
from xmppchat.stanzas import StanzaError, parseCount
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_SERVER_EXTENSIONS

NS_XDATA = "jabber:x:data"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"

(EXT_ROOM, EXT_PERSISTENT, EXT_MEMBERSONLY, EXT_MODERATED, EXT_PASSWORD, EXT_PUBLIC,
 EXT_MAXUSERS, EXT_WHOIS, EXT_SUBJECT, EXT_OUTCASTS) = DIALOG_SERVER_EXTENSIONS

NAME, DESC = "muc#roomconfig_roomname", "muc#roomconfig_roomdesc"
PERSISTENT, MEMBERSONLY = "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly"
MODERATED, PUBLIC = "muc#roomconfig_moderatedroom", "muc#roomconfig_publicroom"
PROTECTED, SECRET = "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret"
MAXUSERS, WHOIS = "muc#roomconfig_maxusers", "muc#roomconfig_whois"
CHANGESUBJECT = "muc#roomconfig_changesubject"

# var -> (type, label, the extension key keeping it or None)
FIELDS = OrderedDict([
    (NAME, ("text-single", "Room name", None)),
    (DESC, ("text-single", "Description (the room subject)", None)),
    (PERSISTENT, ("boolean", "Keep the room when everybody left", EXT_PERSISTENT)),
    (MEMBERSONLY, ("boolean", "Members only", EXT_MEMBERSONLY)),
    (MODERATED, ("boolean", "Moderated (only participants with voice may speak)", EXT_MODERATED)),
    (PUBLIC, ("boolean", "Listed in the room directory", EXT_PUBLIC)),
    (PROTECTED, ("boolean", "Password protected", None)),
    (SECRET, ("text-private", "Password", EXT_PASSWORD)),
    (MAXUSERS, ("text-single", "Most occupants", EXT_MAXUSERS)),
    (WHOIS, ("list-single", "Who may see the occupants' real JIDs", EXT_WHOIS)),
    (CHANGESUBJECT, ("boolean", "Occupants may change the subject", EXT_SUBJECT)),
])
WHOIS_OPTIONS = ("moderators", "anyone")
BOOLEANS = {"1": "1", "true": "1", "0": "0", "false": "0"}


def defaults(mucConfig) -> dict:
    """
    The extension values of a new room made the XMPP way (C{[muc]
    room_default_*}, as Prosody's C{muc_room_default_*}).
    """
    return {EXT_PERSISTENT: "1" if mucConfig.room_default_persistent else "0",
            EXT_MEMBERSONLY: "1" if mucConfig.room_default_members_only else "0",
            EXT_MODERATED: "1" if mucConfig.room_default_moderated else "0",
            EXT_PUBLIC: "1" if mucConfig.room_default_public else "0",
            EXT_WHOIS: "moderators"}


def settings(dialog, named: bool, mucConfig) -> dict:
    """
    The form's values (var -> str) for a room's dialog (C{None}: a new,
    locked room made the XMPP way, which has the defaults).
    """
    ext = dict(defaults(mucConfig)) if named else {}
    if dialog is not None:
        ext.update(dialog.extensions or {})
    values = {NAME: (dialog.name if dialog else None) or "", DESC: (dialog.description if dialog else None) or ""}
    if named:
        membersOnly = ext.get(EXT_MEMBERSONLY, "1") if dialog is None else ("0" if isOpen(dialog) else "1")
        values.update({MEMBERSONLY: membersOnly, MODERATED: ext.get(EXT_MODERATED, "0"),
                       PUBLIC: ext.get(EXT_PUBLIC, "1"), WHOIS: ext.get(EXT_WHOIS, "moderators")})
    else:  # what the dialog type makes it (xmppchat.dialogs.rules)
        open_ = dialog is not None and isOpen(dialog)
        values.update({MEMBERSONLY: "0" if open_ else "1", MODERATED: "1" if dialog and dialog.type == DIALOG_BROADCAST else "0",
                       PUBLIC: "1" if open_ else "0", WHOIS: "moderators" if open_ else "anyone"})
    values[PERSISTENT] = "0" if ext.get(EXT_PERSISTENT) == "0" else "1"
    values[SECRET] = ext.get(EXT_PASSWORD, "")
    values[PROTECTED] = "1" if values[SECRET] else "0"
    values[MAXUSERS] = ext.get(EXT_MAXUSERS, "")
    values[CHANGESUBJECT] = ext.get(EXT_SUBJECT, "0")
    return values


def formElement(values: dict) -> domish.Element:
    """
    The C{jabber:x:data} form of §10.2 with C{values}.
    """
    form = domish.Element((NS_XDATA, "x"))
    form["type"] = "form"
    form.addElement("title", content="Room configuration")
    hidden = form.addElement("field")
    hidden["var"], hidden["type"] = "FORM_TYPE", "hidden"
    hidden.addElement("value", content=NS_ROOMCONFIG)
    for var, (fieldType, label, _) in FIELDS.items():
        field = form.addElement("field")
        field["var"], field["type"], field["label"] = var, fieldType, label
        if var == WHOIS:
            for option in WHOIS_OPTIONS:
                field.addElement("option").addElement("value", content=option)
        field.addElement("value", content=values[var])
    return form


def submitted(form) -> dict:
    """
    The known fields of a submitted form (var -> stripped str), booleans
    as C{"1"}/C{"0"}; L{StanzaError} C{not-acceptable} for a bad value.
    """
    values = {}
    for field in form.elements():
        var = field.getAttribute("var") if field.name == "field" else None
        if var not in FIELDS:
            continue
        value = field.value
        value = str(value).strip() if value is not None else ""
        if FIELDS[var][0] == "boolean":
            if value.lower() not in BOOLEANS:
                raise StanzaError("not-acceptable", text=f"{var} must be a boolean")
            value = BOOLEANS[value.lower()]
        values[var] = value
    if WHOIS in values and values[WHOIS] not in WHOIS_OPTIONS:
        raise StanzaError("not-acceptable", text=f"{WHOIS} must be moderators or anyone")
    return values


def changes(current: dict, asked: dict, named: bool, mucConfig) -> tuple[dict, dict]:
    """
    What a submitted form changes: C{(dialog fields, extension values)}.
    A dialog room refuses (C{not-acceptable}) any setting but its name and
    description that differs from what its dialog type makes it.
    """
    limit = mucConfig.max_room_name
    name, description = asked.get(NAME), asked.get(DESC)
    if (name and len(name) > limit) or (description and len(description) > 4 * limit):
        raise StanzaError("not-acceptable", text=f"Room names are at most {limit} characters")
    if asked.get(PROTECTED) == "0":
        asked = dict(asked, **{SECRET: ""})
    elif asked.get(PROTECTED) == "1" and not asked.get(SECRET, current[SECRET]):
        raise StanzaError("not-acceptable", text="A password protected room needs a password")
    if MAXUSERS in asked and asked[MAXUSERS] not in ("", "none"):
        users = parseCount(asked[MAXUSERS], mucConfig.max_occupants + 1)
        if users is None or not 1 <= users <= mucConfig.max_occupants:
            raise StanzaError("not-acceptable",
                              text=f"{MAXUSERS} must be a number from 1 to {mucConfig.max_occupants}")
        asked = dict(asked, **{MAXUSERS: str(users)})
    elif MAXUSERS in asked:
        asked = dict(asked, **{MAXUSERS: ""})
    fields, extensions = {}, {}
    if name:
        fields["name"] = name
    if description is not None and description != current[DESC]:
        fields["description"] = description or None
    for var, (_, _, key) in FIELDS.items():
        if key is None or var not in asked or asked[var] == current[var]:
            continue
        if not named:
            raise StanzaError("not-acceptable", text=(
                f"{var} of a dialog room follows its dialog: change the dialog over REST"))
        extensions[key] = asked[var]
    return fields, extensions


def flag(dialog, key: str, default: str = "0") -> bool:
    """
    Whether a room's boolean extension C{key} is on.
    """
    return ((dialog.extensions or {}).get(key, default) if dialog is not None else default) == "1"


__all__ = ["FIELDS", "NS_ROOMCONFIG", "NS_XDATA", "changes", "defaults", "flag", "formElement",
           "settings", "submitted"]
