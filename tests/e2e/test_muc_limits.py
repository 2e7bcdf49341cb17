"""
Issue 15 finding 7 with a real client: a slixmpp user creating rooms
beyond C{[muc] rooms_opened_per_user} gets C{not-allowed} (XEP-0045
§10.1.1) with a readable text, while another user still creates a room
and a third joins it.
"""

from __future__ import annotations

import pytest
from slixmpp.exceptions import PresenceError

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_chat import within
from tests.e2e.test_muc import MUC, mucClient, restUsers
from tests.e2e.test_slixmpp import run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = startServer(tmp_path_factory.mktemp("muc-limits"), extra="""
[muc]
rooms_opened_per_user = 3
""")
    yield running
    stopServer(running)


def test_roomCreationBeyondTheShareRefused(server):
    """mallory's fourth room is refused with not-allowed; alice still creates a public room and bob joins it."""
    users = restUsers(server, ("mallory", "alice", "bob"), prefix="lim-")

    async def scenario():
        mallory, alice, bob = (mucClient(server, users, name) for name in ("mallory", "alice", "bob"))
        for c in (mallory, alice, bob):
            assert await c.login()
        muc = mallory.plugin["xep_0045"]
        for i in range(3):
            await within(muc.join_muc_wait(f"spam{i}@{MUC}", str(mallory.userId), maxstanzas=0))
        with pytest.raises(PresenceError) as refused:
            await within(muc.join_muc_wait(f"spam3@{MUC}", str(mallory.userId), maxstanzas=0))
        assert refused.value.condition == "not-allowed"
        assert "rooms" in refused.value.text
        room = f"open-house@{MUC}"
        await within(alice.plugin["xep_0045"].join_muc_wait(room, str(alice.userId), maxstanzas=0))
        form = alice.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="muc#roomconfig_membersonly", ftype="boolean", value=False)
        await within(alice.plugin["xep_0045"].set_room_config(room, form))
        joined = await within(bob.plugin["xep_0045"].join_muc_wait(room, str(bob.userId), maxstanzas=0))
        assert joined[0]["muc"]["role"] == "participant"
        for c in (mallory, alice, bob):
            c.disconnect()

    run(scenario())
