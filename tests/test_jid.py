"""
Tests for L{xmppchat.jid}: bounded JID parsing (RFC 7622).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.words.protocols.jabber import jid

from xmppchat import jid as xjid
from xmppchat.jid import InvalidJID, parseJID


@pytest.mark.parametrize(
    "text, parts",
    [
        ("example.com", (None, "example.com", None)),
        ("juliet@example.com", ("juliet", "example.com", None)),
        ("juliet@example.com/balcony", ("juliet", "example.com", "balcony")),
        ("example.com/resource", (None, "example.com", "resource")),
        ("Juliet@Example.COM/Balcony", ("juliet", "example.com", "Balcony")),
        ("juliet@example.com/foo@bar/baz", ("juliet", "example.com", "foo@bar/baz")),
        ("example.com/a@b", (None, "example.com", "a@b")),
        ("juliet@example.com.", ("juliet", "example.com", None)),
        ("\u00e9lise@\u00e9xample.com/\u2603", ("\u00e9lise", "\u00e9xample.com", "\u2603")),
        ("room@conference.example.com/nick name", ("room", "conference.example.com", "nick name")),
        ("127.0.0.1", (None, "127.0.0.1", None)),
        ("x@[2001:DB8::1]/r", ("x", "[2001:db8::1]", "r")),
    ],
)
def test_valid(text, parts):
    """Valid JIDs parse into prepared parts."""
    parsed = parseJID(text)
    assert isinstance(parsed, jid.JID)
    assert (parsed.user, parsed.host, parsed.resource) == parts


def test_equalToTwisted():
    """Parsed JIDs compare and hash like Twisted's own."""
    parsed = parseJID("Juliet@example.com/balcony")
    twisted = jid.JID("juliet@example.com/balcony")
    assert parsed == twisted
    assert hash(parsed) == hash(twisted)
    assert parsed.full() == "juliet@example.com/balcony"
    assert parsed.userhost() == "juliet@example.com"


def test_userhostJIDNotInterned():
    """The bare JID of a full JID does not land in Twisted's intern table."""
    parsed = parseJID("juliet@example.com/unique-resource-for-this-test")
    before = dict(vars(jid)["__internJIDs"])
    bare = parsed.userhostJID()
    assert (bare.user, bare.host, bare.resource) == ("juliet", "example.com", None)
    assert vars(jid)["__internJIDs"] == before
    assert parseJID("example.com").userhostJID().host == "example.com"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@example.com",
        "juliet@",
        "juliet@example.com/",
        "example.com/",
        "/resource",
        "juliet@/resource",
        "a@b@example.com",
        "jul iet@example.com",
        'jul"iet@example.com',
        "juliet@exa mple.com",
        "juliet@example..com",
        "juliet@-example.com",
        ".",
        "\u00ad@example.com",
        "juliet@example.com/\u00ad",
        "juliet@[::1",
        "juliet@[not-an-address]",
        "juliet\u0000@example.com",
        "\ud800@example.com",
    ],
)
def test_invalid(text):
    """Malformed JIDs raise InvalidJID."""
    with pytest.raises(InvalidJID):
        parseJID(text)


def test_notAString():
    """Anything but a string is invalid."""
    with pytest.raises(InvalidJID):
        parseJID(b"juliet@example.com")


def test_partLengths():
    """Each part may have 1023 bytes, not 1024."""
    assert parseJID("a" * 1023 + "@example.com").user == "a" * 1023
    assert parseJID("example.com/" + "r" * 1023).resource == "r" * 1023
    for text in ("a" * 1024 + "@example.com", "example.com/" + "r" * 1024, "d" * 1024):
        with pytest.raises(InvalidJID):
            parseJID(text)


def test_partLengthsInBytes():
    """Part lengths are counted in UTF-8 bytes, not characters."""
    assert parseJID("\u00e9" * 511 + "@example.com").user == "\u00e9" * 511
    with pytest.raises(InvalidJID):
        parseJID("\u00e9" * 512 + "@example.com")


def test_totalLength():
    """A JID may have 3071 bytes, not more."""
    longest = "a" * 1023 + "@" + "d" * 1023 + "/" + "r" * 1023
    assert len(longest) == 3071
    assert parseJID(longest).resource == "r" * 1023
    with pytest.raises(InvalidJID):
        parseJID(longest + "r")
    with pytest.raises(InvalidJID):
        parseJID("x" * 100000)


def test_invalidJIDIsValueError():
    """InvalidJID is a ValueError."""
    assert issubclass(InvalidJID, ValueError)


def test_cached():
    """Repeated parses return the shared, cached JID."""
    assert parseJID("romeo@example.net/orchard") is parseJID("romeo@example.net/orchard")


def test_cacheBounded():
    """The cache holds at most CACHE_SIZE entries."""
    info = xjid._cachedPrepare.cache_info()
    assert info.maxsize == xjid.CACHE_SIZE == 20000
    for i in range(xjid.CACHE_SIZE + 100):
        parseJID(f"user{i}@example.com")
    assert xjid._cachedPrepare.cache_info().currsize <= xjid.CACHE_SIZE


def test_longInputsNotCached():
    """Inputs longer than MAX_CACHED_LENGTH are not cached."""
    text = "a" * 1000 + "@example.com"
    before = xjid._cachedPrepare.cache_info()
    assert parseJID(text).user == "a" * 1000
    after = xjid._cachedPrepare.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_randomTextOnlyInvalidJID(text):
    """Random text parses or raises InvalidJID, nothing else."""
    try:
        parsed = parseJID(text)
    except InvalidJID:
        return
    assert parsed.host


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="a@/.[]:-\u00ad\u00df\u0130 ", max_size=30))
def test_randomSeparatorsOnlyInvalidJID(text):
    """Separator-heavy text parses or raises InvalidJID, nothing else."""
    try:
        parsed = parseJID(text)
    except InvalidJID:
        return
    assert parsed.host
    assert parsed.user is None or parsed.user
    assert parsed.resource is None or parsed.resource


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
)
def test_roundTrip(user, host, resource):
    """A valid JID's full() parses back to an equal JID."""
    parsed = parseJID(f"{user}@{host}/{resource}")
    assert parseJID(parsed.full()) == parsed
    assert parsed == jid.JID(parsed.full())
