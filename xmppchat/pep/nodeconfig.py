"""
XEP-0060 node configuration as PEP uses it (§16.4.3 C{pubsub#node_config},
XEP-0223 publish-options, XEP-0060 §7.1.5 preconditions).

A node's configuration is a dict of JSON values under the short names of
L{FIELDS}; a form is parsed with wokkel's C{data_form} and checked here.
"""

from __future__ import annotations

from twisted.words.xish import domish
from wokkel import data_form

from xmppchat.stanzas import StanzaError, parseCount

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
BOOLEANS = {"1": True, "true": True, "0": False, "false": False}

#: short name -> (form var, form field type)
FIELDS = {
    "access_model": ("pubsub#access_model", "list-single"),
    "max_items": ("pubsub#max_items", "text-single"),
    "persist_items": ("pubsub#persist_items", "boolean"),
    "send_last_published_item": ("pubsub#send_last_published_item", "list-single"),
    "notify_retract": ("pubsub#notify_retract", "boolean"),
    "notify_delete": ("pubsub#notify_delete", "boolean"),
    "deliver_payloads": ("pubsub#deliver_payloads", "boolean"),
    "roster_groups_allowed": ("pubsub#roster_groups_allowed", "list-multi"),
    "title": ("pubsub#title", "text-single"),
}
BY_VAR = {var: name for name, (var, _) in FIELDS.items()}


def pubsubError(condition: str, pubsubCondition: str | None = None, text: str | None = None,
                **attributes) -> StanzaError:
    """
    A stanza error with the XEP-0060 application condition (§7, §8
    error cases), e.g. C{conflict} + C{<precondition-not-met/>}.
    """
    app = None
    if pubsubCondition is not None:
        app = domish.Element((NS_PUBSUB_ERRORS, pubsubCondition))
        for key, value in attributes.items():
            app[key] = value
    error = StanzaError(condition, text=text)
    error.appCondition = app
    return error


def defaultConfig() -> dict:
    """
    XEP-0163 §4 / Prosody's PEP defaults: one item, presence access,
    the last item sent on subscription and presence.
    """
    return {"access_model": "presence", "max_items": 1, "persist_items": True,
            "send_last_published_item": "on_sub_and_presence", "notify_retract": True,
            "notify_delete": True, "deliver_payloads": True, "roster_groups_allowed": [], "title": ""}


def _parseValue(name: str, value, maxItems: int):
    """
    A form value of the short field C{name} as stored; C{ValueError}
    with the reason when it is not acceptable.
    """
    if isinstance(value, list) and name != "roster_groups_allowed":
        value = value[0] if value else ""
    if name == "roster_groups_allowed":
        return sorted(set(value if isinstance(value, list) else [value] if value else []))
    if name == "title":
        return str(value)
    if FIELDS[name][1] == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in BOOLEANS:
            raise ValueError(f"{FIELDS[name][0]} must be a boolean")
        return BOOLEANS[str(value).lower()]
    if name == "max_items":
        if value == "max":
            return maxItems
        number = parseCount(str(value), maxItems + 1)
        if number is None:
            raise ValueError("pubsub#max_items must be a number or 'max'")
        if not 1 <= number <= maxItems:
            raise ValueError(f"pubsub#max_items must be between 1 and {maxItems}")
        return number
    allowed = ACCESS_MODELS if name == "access_model" else SEND_LAST
    if value not in allowed:
        raise ValueError(f"{FIELDS[name][0]} must be one of {', '.join(allowed)}")
    return value


def parseOptions(values: dict, maxItems: int, strict: bool) -> dict:
    """
    The short-name settings of form C{values} (var -> value).  Fields
    this server does not know are ignored for publish-options (clients
    send what other servers support; §7.1.5 lets the service decide) and
    refused in a configuration form (C{strict}).  Bad values are
    C{not-acceptable}; an access model other than L{ACCESS_MODELS} is
    XEP-0060 §8.2.5's C{unsupported-access-model}.
    """
    options = {}
    for var, value in values.items():
        if var == "FORM_TYPE":
            continue
        name = BY_VAR.get(var)
        if name is None:
            if strict:
                raise pubsubError("not-acceptable", "invalid-options", f"Unsupported option {var}")
            continue
        try:
            options[name] = _parseValue(name, value, maxItems)
        except ValueError as e:
            if name == "access_model":
                raise pubsubError("not-acceptable", "unsupported-access-model", str(e)) from None
            raise pubsubError("not-acceptable", "invalid-options", str(e)) from None
    return options


def formValues(x: domish.Element | None, formType: str) -> dict:
    """
    Var -> value of a submitted XEP-0004 form of C{formType}, {} without
    one; C{bad-request} for another form type.
    """
    if x is None:
        return {}
    form = data_form.Form.fromElement(x)
    if form.formNamespace not in (None, formType):
        raise StanzaError("bad-request", text=f"Expected a {formType} form")
    return form.getValues()


def checkPreconditions(config: dict, options: dict) -> None:
    """
    XEP-0060 §7.1.5: publishing to an existing node whose configuration
    differs from the publish-options is C{conflict} +
    C{<precondition-not-met/>} (the node is not changed).
    """
    for name, value in options.items():
        if config.get(name) != value:
            raise pubsubError("conflict", "precondition-not-met",
                              f"{FIELDS[name][0]} is {config.get(name)!r}, not {value!r}")


def configForm(config: dict, maxItems: int) -> domish.Element:
    """
    §8.2.1: the C{pubsub#node_config} form with the node's values.
    """
    form = data_form.Form("form", formNamespace=NS_NODE_CONFIG)
    for name, (var, fieldType) in FIELDS.items():
        value = config.get(name, defaultConfig()[name])
        field = data_form.Field(fieldType, var=var)
        if fieldType == "list-multi":
            field.values = list(value)
        elif fieldType == "boolean":
            field.value = bool(value)
        else:
            field.value = str(value)
        if name == "access_model":
            field.options = [data_form.Option(v) for v in ACCESS_MODELS]
        elif name == "send_last_published_item":
            field.options = [data_form.Option(v) for v in SEND_LAST]
        form.addField(field)
    return form.toElement()
