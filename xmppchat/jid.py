"""
Bounded parsing of JIDs from untrusted input (RFC 7622).

Twisted's C{jid.internJID} caches every string it ever saw, and C{jid.JID}
redoes stringprep on every call. L{parseJID} applies the structure rules of
RFC 7622 §3.1 (the first C{/} starts the resourcepart, then the first C{@}
ends the localpart), the length limits of §3.2-§3.4 (1 to 1023 bytes per
part) and Twisted's stringprep profiles, and keeps recent results in a
bounded LRU cache.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.xmpp_stringprep import nameprep, nodeprep, resourceprep

MAX_JID_BYTES = 3071
MAX_PART_BYTES = 1023
CACHE_SIZE = 20000

# Only inputs of at most this many characters are cached (and, at 4 bytes a
# character at most, need no check against MAX_JID_BYTES); longer ones are
# rare and prepared every time, so that the cache stays small however full.
MAX_CACHED_LENGTH = 320


class InvalidJID(ValueError):
    """
    The string is not a valid JID (RFC 7622 §3).
    """


class _JID(jid.JID):
    """
    A Twisted L{jid.JID} whose bare form is built without Twisted's
    unbounded C{internJID} table.
    """

    def userhostJID(self):
        if self.resource:
            return _build(self.user, self.host, None)
        return self


def _build(user: str | None, host: str, resource: str | None) -> jid.JID:
    """
    A JID of already prepared parts, without preparing them again.
    """
    result = object.__new__(_JID)
    result.user = user
    result.host = host
    result.resource = resource
    return result


def _checkLength(part: str) -> None:
    if len(part.encode("utf-8")) > MAX_PART_BYTES:
        raise InvalidJID("JID part longer than 1023 bytes")


def _prepDomain(domain: str) -> str:
    """
    The domainpart (RFC 7622 §3.2): an IPv6 literal, or a name (or IPv4
    address) without its trailing dot through nameprep.
    """
    if domain.startswith("[") and domain.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(domain[1:-1]).compressed}]"
        except ValueError:
            raise InvalidJID("invalid IPv6 literal") from None
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise InvalidJID("empty domainpart")
    return nameprep.prepare(domain)


def _prepare(s: str) -> jid.JID:
    """
    Parse and prepare C{s}, a non-empty string of at most L{MAX_JID_BYTES}
    characters.
    """
    bare, slash, resource = s.partition("/")
    user, at, host = bare.partition("@")
    if not at:
        user, host = "", bare
    if at and not user:
        raise InvalidJID("empty localpart")
    if slash and not resource:
        raise InvalidJID("empty resourcepart")
    _checkLength(user)
    _checkLength(host)
    _checkLength(resource)
    try:
        host = _prepDomain(host)
        user = nodeprep.prepare(user) if user else None
        resource = resourceprep.prepare(resource) if resource else None
    except (UnicodeError, IndexError):
        # IndexError: Twisted's nameprep on an empty label ("a..b").
        raise InvalidJID("invalid character or empty label in JID") from None
    # Stringprep may map a part to nothing, or make it longer.
    if at and not user:
        raise InvalidJID("empty localpart")
    if slash and not resource:
        raise InvalidJID("empty resourcepart")
    if not host:
        raise InvalidJID("empty domainpart")
    for part in (user, host, resource):
        if part is not None:
            _checkLength(part)
    return _build(user, host, resource)


_cachedPrepare = lru_cache(maxsize=CACHE_SIZE)(_prepare)


def parseJID(s: str) -> jid.JID:
    """
    The Twisted L{jid.JID} for C{s}, which may come from the network.

    Results are cached and shared between callers: do not modify them.

    @raise InvalidJID: when C{s} is not a valid JID.
    """
    if not isinstance(s, str):
        raise InvalidJID("JID must be a string")
    if not s:
        raise InvalidJID("empty JID")
    try:
        if len(s) <= MAX_CACHED_LENGTH:
            return _cachedPrepare(s)
        if len(s) > MAX_JID_BYTES or len(s.encode("utf-8")) > MAX_JID_BYTES:
            raise InvalidJID("JID longer than 3071 bytes")
        return _prepare(s)
    except UnicodeError:
        # Lone surrogates, which have no UTF-8 form.
        raise InvalidJID("invalid character in JID") from None
