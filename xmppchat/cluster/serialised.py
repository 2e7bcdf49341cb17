"""
A stanza that crossed the cluster bus, kept as the XML the sending node
serialised, so that delivering it to a local session costs no parse and no
second serialisation.

On one node a routed stanza is parsed once (from the sender's stream) and
serialised once (to the recipient's).  Across nodes the sending node already
did both; parsing the bus frame into a C{domish.Element} only to serialise
it again for the recipient's socket would triple the per-message cost.
L{SerialisedStanza} answers what the delivery path asks of every stanza (its
name and its attributes without a namespace, C{to}, C{from}, C{type},
C{id}..., which travel in the frame beside the XML) and returns the sender's
XML from C{toXml()}.  Anything else (a child element, a namespaced attribute
such as C{xml:lang}, a mutation) parses the
XML once and from then on works on, and serialises from, the parsed
element; so code written for C{domish.Element} keeps working unchanged.

The bus is the cluster's own trusted channel (the nodes and Redis); the XML
was produced by C{domish} on another node and is not re-validated before it
is written to the recipient.
"""

from __future__ import annotations

from xmppchat.xmlstream import parseElement

_OWN = frozenset(("name", "_attrs", "_xml", "_element"))


def encode(element) -> bytes:
    """
    The frame body for C{element}: C{<n>\\0<name>(\\0<key>\\0<value>)*n\\0<xml>},
    its name and its n attributes without a namespace, then its XML, in
    UTF-8.  NUL cannot occur in XML (XML 1.0 §2.2), so it separates fields
    that may hold anything else; a third of the cost of JSON here.
    """
    if type(element) is SerialisedStanza and element._element is None:
        attrs, xml = element._attrs, element._xml
    else:
        attrs = {key: value for key, value in element.attributes.items() if type(key) is str}
        xml = element.toXml()
    parts = [str(len(attrs)), element.name]
    for key, value in attrs.items():
        parts.append(key)
        parts.append(value)
    parts.append(xml)
    return "\0".join(parts).encode("utf-8")


def decode(data: bytes) -> SerialisedStanza:
    """
    The stanza of an L{encode}d frame body.

    @raise ValueError: for a body that L{encode} did not write (a
        C{UnicodeDecodeError} is one).
    """
    count, _, rest = data.decode("utf-8").partition("\0")
    count = int(count)
    fields = rest.split("\0", 2 * count + 1)
    if count < 0 or len(fields) != 2 * count + 2 or not fields[0]:
        raise ValueError("unreadable stanza frame")
    attrs = dict(zip(fields[1:-1:2], fields[2:-1:2], strict=True))
    return SerialisedStanza(fields[0], attrs, fields[-1])


class SerialisedStanza:
    """
    A stanza as XML text, parsed only if something needs more than its
    name and wire attributes (see the module docstring).
    """

    __slots__ = tuple(_OWN)

    def __init__(self, name: str, attrs: dict, xml: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_attrs", attrs)
        object.__setattr__(self, "_xml", xml)
        object.__setattr__(self, "_element", None)

    @property
    def element(self):
        """
        The parsed C{domish.Element} (parsed on first use).
        """
        element = self._element
        if element is None:
            element = parseElement(self._xml)
            object.__setattr__(self, "_element", element)
        return element

    @property
    def parsed(self) -> bool:
        return self._element is not None

    def getAttribute(self, key, default=None):
        if self._element is None and type(key) is str:
            return self._attrs.get(key, default)
        return self.element.getAttribute(key, default)

    def hasAttribute(self, key) -> bool:
        if self._element is None and type(key) is str:
            return key in self._attrs
        return self.element.hasAttribute(key)

    def toXml(self, *args, **kwargs) -> str:
        if self._element is None and not args and not kwargs:
            return self._xml
        return self.element.toXml(*args, **kwargs)

    def __getitem__(self, key):
        if self._element is None and type(key) is str:
            return self._attrs[key]
        return self.element[key]

    def __setitem__(self, key, value):
        self.element[key] = value

    def __delitem__(self, key):
        del self.element[key]

    def __getattr__(self, key):
        # Only for what the slots and methods above do not answer: children,
        # uri, attributes, elements(), addElement(), domish's child access...
        return getattr(self.element, key)

    def __setattr__(self, key, value):
        if key in _OWN and key != "name":
            raise AttributeError(f"{key} is read-only")
        setattr(self.element, key, value)
        if key == "name":
            object.__setattr__(self, "name", value)

    def __str__(self) -> str:
        return str(self.element)

    def __repr__(self) -> str:
        return f"<SerialisedStanza {self.name} {self._attrs!r}{' parsed' if self.parsed else ''}>"
