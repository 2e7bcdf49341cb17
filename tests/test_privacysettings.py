"""
Tests for L{xmppchat.privacysettings}: the last-seen table (setting x
relation -> allowed), the switches, the settings a user sees, and the
C{[privacy] last_seen_default} key (issue 17 items 3 and 4).
"""

from types import SimpleNamespace

import pytest

from xmppchat.config import ConfigError, buildConfig
from xmppchat.privacysettings import (
    CONTACT,
    HIDDEN,
    SELF,
    STRANGER,
    effectiveSettings,
    hidesReads,
    hidesTyping,
    lastSeenAllowed,
    lastSeenOf,
    needsRelation,
    visibleReaders,
)

#: visibility -> relation -> allowed: the whole rule, written out
LAST_SEEN_TABLE = {
    "everyone": {SELF: True, CONTACT: True, STRANGER: True, HIDDEN: False},
    "contacts": {SELF: True, CONTACT: True, STRANGER: False, HIDDEN: False},
    "nobody": {SELF: True, CONTACT: False, STRANGER: False, HIDDEN: False},
}


def account(**settings):
    return SimpleNamespace(profile={"privacy_settings": settings})


@pytest.mark.parametrize("visibility,relation,allowed", [
    (v, r, a) for v, row in LAST_SEEN_TABLE.items() for r, a in row.items()])
def test_lastSeenTable(visibility, relation, allowed):
    """Each last-seen setting shows last activity to exactly the relations of the table."""
    assert lastSeenAllowed(visibility, relation) is allowed


def test_relationLookedUpOnlyForContacts():
    """Only 'contacts' needs the roster and dialog lookups."""
    assert [v for v in LAST_SEEN_TABLE if needsRelation(v)] == ["contacts"]


def test_lastSeenOfFallsBackToTheDefault():
    """A user's own choice wins; none, or a value not in the table, is the server default."""
    assert lastSeenOf(account(last_seen={"visibility": "nobody"}), "everyone") == "nobody"
    assert lastSeenOf(account(), "everyone") == "everyone"
    assert lastSeenOf(account(last_seen={"visibility": "friends"}), "contacts") == "contacts"
    assert lastSeenOf(SimpleNamespace(profile=None), "contacts") == "contacts"
    assert lastSeenOf(None, "nobody") == "nobody"


def test_switchesOffOnlyWhenExplicitlyFalse():
    """Typing and read receipts are on unless enabled is exactly False."""
    assert not hidesTyping(account()) and not hidesReads(account())
    assert hidesTyping(account(typing_indicators={"enabled": False}))
    assert not hidesTyping(account(typing_indicators={"enabled": 0}))
    assert hidesReads(account(read_receipts={"enabled": False}))
    assert not hidesReads(SimpleNamespace(profile={"privacy_settings": "off"}))


def test_effectiveSettings():
    """The owner sees every setting with the defaults filled in."""
    assert effectiveSettings({}, "contacts") == {
        "typing_indicators": {"enabled": True}, "read_receipts": {"enabled": True},
        "last_seen": {"visibility": "contacts"}}
    profile = {"privacy_settings": {"read_receipts": {"enabled": False},
                                    "last_seen": {"visibility": "everyone"}}}
    assert effectiveSettings(profile, "nobody")["last_seen"] == {"visibility": "everyone"}
    assert effectiveSettings(profile, "nobody")["read_receipts"] == {"enabled": False}


def test_visibleReaders():
    """Readers hiding their reads are left out, except the viewer himself."""
    assert visibleReaders([1, 2, 3], 2, {2, 3}) == [1, 2]
    assert visibleReaders([1, 2, 3], 9, frozenset()) == [1, 2, 3]


def test_lastSeenDefaultConfig():
    """[privacy] last_seen_default is 'contacts' by default and must be one of the three settings."""
    assert buildConfig({}).privacy.last_seen_default == "contacts"
    assert buildConfig({"privacy": {"last_seen_default": "everyone"}}).privacy.last_seen_default == "everyone"
    with pytest.raises(ConfigError) as e:
        buildConfig({"privacy": {"last_seen_default": "friends"}})
    assert any("privacy.last_seen_default" in p and "'nobody'" in p for p in e.value.problems)
