"""
XEP-0115: Entity Capabilities. https://xmpp.org/extensions/xep-0115.html

The verification string and hash of a disco#info answer (§5.1, §5.4), for
the server's own C{<c/>} (advertised in the stream features, §6.3, and
answered as disco#info node C{<node>#<ver>}, §6.2) and for checking what a
client's presence claims before trusting the features its answer lists
(the PEP module's C{+notify} interest, XEP-0163 §4); a bounded cache of the
verified answers (ver -> features), shared by every client with the same
software.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict

from twisted.words.xish import domish

NS_CAPS = "http://jabber.org/protocol/caps"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
NS_XML = "http://www.w3.org/XML/1998/namespace"
#: the C{node} of the server's C{<c/>}: who made the software (§4)
SERVER_NODE = "https://github.com/xmppchat/xmppchat"
#: the hash functions of §5.1 (names from the IANA registry, §8.4)
HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
          "sha-512": "sha512"}


class InvalidCaps(ValueError):
    """
    A disco#info answer §5.4 says not to process (duplicate identities or
    features, two forms of one FORM_TYPE).
    """


def _text(element) -> str:
    return str(element)


def verificationString(query: domish.Element) -> str:
    """
    §5.1 (and §5.4 steps 3.1-3.6): S of a disco#info C{<query/>}:
    identities (C{category/type/lang/name<}), features, then the extended
    forms by FORM_TYPE with their fields by var.  L{InvalidCaps} for the
    duplicates §5.4 forbids.
    """
    identities, features, forms = [], [], {}
    for child in query.elements():
        if child.name == "identity":
            identities.append("/".join((child.getAttribute("category", ""), child.getAttribute("type", ""),
                                        child.getAttribute((NS_XML, "lang"), ""),
                                        child.getAttribute("name", ""))))
        elif child.name == "feature":
            features.append(child.getAttribute("var", ""))
        elif child.name == "x" and child.uri == NS_DATA:
            fields = {}
            formType = None
            for field in child.elements():
                if field.name != "field" or field.getAttribute("var") is None:
                    continue
                values = sorted(_text(v) for v in field.elements() if v.name == "value")
                if field["var"] == "FORM_TYPE":
                    formType = values[0] if values else ""
                else:
                    fields[field["var"]] = values
            if formType is None:
                continue  # §5.4 3.6: a form without FORM_TYPE is ignored
            if formType in forms:
                raise InvalidCaps(f"two forms of FORM_TYPE {formType!r}")
            forms[formType] = fields
    if len(set(identities)) != len(identities):
        raise InvalidCaps("duplicate identities")
    if len(set(features)) != len(features):
        raise InvalidCaps("duplicate features")
    parts = [i + "<" for i in sorted(identities)]
    parts.extend(f + "<" for f in sorted(features))
    for formType in sorted(forms):
        parts.append(formType + "<")
        for var in sorted(forms[formType]):
            parts.append(var + "<")
            parts.extend(v + "<" for v in forms[formType][var])
    return "".join(parts)


def capsHash(query: domish.Element, hashName: str = "sha-1") -> str:
    """
    §5.1 steps 8-9: the base64 of the C{hashName} digest of
    L{verificationString}; C{ValueError} for a hash not in L{HASHES}.
    """
    if hashName not in HASHES:
        raise ValueError(f"unsupported hash {hashName!r}")
    digest = hashlib.new(HASHES[hashName], verificationString(query).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(query: domish.Element, ver: str, hashName: str) -> bool:
    """
    §5.4: whether C{query} hashes to C{ver}.
    """
    try:
        return capsHash(query, hashName) == ver
    except ValueError:
        return False


def capsElement(ver: str, node: str = SERVER_NODE) -> domish.Element:
    """
    §4: C{<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node ver/>}.
    """
    c = domish.Element((NS_CAPS, "c"))
    c["hash"] = "sha-1"
    c["node"] = node
    c["ver"] = ver
    return c


def capsOf(presence: domish.Element) -> tuple[str, str, str] | None:
    """
    C{(node, ver, hash)} of the C{<c/>} in an available presence, or
    C{None} (no caps, or legacy caps without C{hash}, §8.2).
    """
    for child in presence.elements():
        if child.name == "c" and child.uri == NS_CAPS:
            node, ver, hashName = child.getAttribute("node"), child.getAttribute("ver"), child.getAttribute("hash")
            if node and ver and hashName in HASHES:
                return node, ver, hashName
            return None
    return None


def featuresOf(query: domish.Element) -> frozenset:
    return frozenset(child.getAttribute("var") for child in query.elements()
                     if child.name == "feature" and child.getAttribute("var"))


class CapsCache:
    """
    Verified C{ver} -> features, the C{size} most recently used (§5.4:
    once verified, a C{ver} need not be queried again).
    """

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()

    def get(self, ver: str) -> frozenset | None:
        features = self._entries.get(ver)
        if features is not None:
            self._entries.move_to_end(ver)
        return features

    def put(self, ver: str, features: frozenset) -> None:
        self._entries[ver] = features
        self._entries.move_to_end(ver)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
