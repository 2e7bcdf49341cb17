"""
Differential tests of profiles (issue 16 items 2, 3): the same slixmpp
scenarios against xmppchat and against Prosody 0.12 with mod_pep,
mod_vcard_legacy, mod_private and mod_bookmarks; the results are
compared with what XEP-0054, XEP-0153, XEP-0049 and XEP-0411 call for,
which Prosody shows.
"""

from __future__ import annotations

import pytest

from tests.differential.observe import play
from tests.differential.prosody import ProsodyServer, requireProsody
from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_profiles import (
    EXPECTED_PEP_BOOKMARKS,
    EXPECTED_PRIVATE_BOOKMARKS,
    EXPECTED_VCARD,
    SHA1,
    avatarHash,
    pepBookmarksAsPrivate,
    privateBookmarksAsPEP,
    refused,
    request,
    vcardRoundTrip,
)

USERS = {"vcard": ("alice", "bob"), "avatar": ("alice", "bob"), "private": ("alice", "mallory"),
         "marks": ("alice",), "marks2": ("alice",)}
PROSODY_MODULES = ("vcard_legacy", "bookmarks")


@pytest.fixture(scope="module", params=["xmppchat", "prosody"])
def users(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "prosody":
        requireProsody()
        running = ProsodyServer(directory, PROSODY_MODULES).start()
    else:
        running = startServer(directory)
    running.addusers([f"{scene}-{name}" for scene, names in USERS.items() for name in names])
    yield running
    if request.param == "prosody":
        running.stop()
    else:
        stopServer(running)


def test_vcardRoundTrip(users):
    """XEP-0054 §3: the owner's vCard reads back for him and for another user; none is an empty vCard."""
    assert play(users, "vcard", vcardRoundTrip) == (EXPECTED_VCARD, EXPECTED_VCARD, []), users.name


def test_avatarHashInPresence(users):
    """XEP-0153 §4.2: after a vCard photo, the server puts its SHA-1 into the owner's presence to a contact."""
    assert play(users, "avatar", avatarHash(users, "avatar")) == SHA1, users.name


def test_privateStorageRoundTrip(users):
    """XEP-0049 §2: an element reads back; one never stored is answered empty; another user's storage is refused."""

    async def script(scene):
        alice, mallory = await scene.online("alice", "mallory")
        await request(alice, "set", "<query xmlns='jabber:iq:private'><prefs xmlns='x:diff'><v>1</v></prefs></query>")
        got = await request(alice, "get", "<query xmlns='jabber:iq:private'><prefs xmlns='x:diff'/></query>")
        unset = await request(alice, "get", "<query xmlns='jabber:iq:private'><other xmlns='x:diff'/></query>")
        unsetElement = unset.find("{jabber:iq:private}query/{x:diff}other")
        stolen = await refused(mallory, "get", "<query xmlns='jabber:iq:private'><prefs xmlns='x:diff'/></query>",
                               scene.jid("alice"))
        return (got.findtext("{jabber:iq:private}query/{x:diff}prefs/{x:diff}v"),
                unsetElement is not None and len(unsetElement) == 0, stolen)

    value, unsetEmpty, stolen = play(users, "private", script)
    assert (value, unsetEmpty) == ("1", True), users.name
    # XEP-0049 §2.3: "Forbidden" or "Service Unavailable" (Prosody's), the former preferable
    assert stolen == ("forbidden" if users.name == "xmppchat" else "service-unavailable")


def test_privateBookmarksReadAsPEP(users):
    """XEP-0411 §4: bookmarks stored through XEP-0049 are XEP-0402 items (whitelist node)."""
    assert play(users, "marks", privateBookmarksAsPEP) == EXPECTED_PEP_BOOKMARKS, users.name


def test_pepBookmarksReadThroughPrivate(users):
    """XEP-0411 §4: a XEP-0402 bookmark is read through XEP-0049 as storage:bookmarks."""
    assert play(users, "marks2", pepBookmarksAsPrivate) == EXPECTED_PRIVATE_BOOKMARKS, users.name
