"""
Differential tests of XEP-0045 as stock clients use it (issue 16 item 5):
the same slixmpp scenarios against xmppchat's rooms made by joining a new
name and Prosody 0.12's C{muc} component (see conftest.py), compared on
what XEP-0045 defines: occupants' nicks, affiliations, roles and status
codes (§7.2, §10.1.2), affiliation lists (§9.5, §10.5, §10.8) and the
configuration form's values after a submit (§10.2).
"""

from __future__ import annotations

import pytest

from tests.differential.observe import play
from tests.e2e.test_slixmpp import TIMEOUT

NS_USER = "{http://jabber.org/protocol/muc#user}"
USERS = {"mucinst": ("alice", "bob"), "mucaff": ("alice", "bob", "carol"), "muccfg": ("alice",)}


@pytest.fixture(scope="module")
def users(server):
    server.addusers([f"{scene}-{name}" for scene, names in USERS.items() for name in names])
    return server


def check(server, got, expected, section):
    assert got == expected, f"{section} on {server.name}: got {got!r}, expected {expected!r}"


def mucClient(client):
    client.register_plugin("xep_0045")
    client.register_plugin("xep_0004")
    return client


def occupantPresences(scene, since, room):
    """
    Each client's presences from C{room}: C{"<type> <nick> <affiliation>/<role> [codes]"}.
    """
    out = {label: [] for label in scene.labels.values()}
    for client, xml in scene.received[since:]:
        frm = xml.get("from") or ""
        if not xml.tag.endswith("presence") or frm.partition("/")[0] != room:
            continue
        x = xml.find(NS_USER + "x")
        item = x.find(NS_USER + "item") if x is not None else None
        codes = sorted(s.get("code") for s in x.findall(NS_USER + "status")) if x is not None else []
        role = f"{item.get('affiliation')}/{item.get('role')}" if item is not None else "-"
        out[scene.labels[client]].append(f"{xml.get('type') or 'available'} {frm.partition('/')[2]} {role} {codes}")
    return {label: sorted(texts) for label, texts in out.items()}


async def instantRoom(scene, client, room, nick):
    muc = client.plugin["xep_0045"]
    await muc.join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
    await muc.set_room_config(room, client.plugin["xep_0004"].make_form(ftype="submit"), timeout=TIMEOUT)
    await scene.settle()


def test_instantRoomSecondUserNick(users):
    """§10.1.2 and §7.2: an instant room is open; a second user enters with the nick he asked for."""
    room = "instant-lobby@muc.localhost"

    async def script(scene):
        alice = mucClient(await scene.login("alice", presence=True))
        bob = mucClient(await scene.login("bob", presence=True))
        since = scene.mark()
        await alice.plugin["xep_0045"].join_muc_wait(room, "Alice", maxstanzas=0, timeout=TIMEOUT)
        await scene.settle()
        created = occupantPresences(scene, since, room)
        await alice.plugin["xep_0045"].set_room_config(
            room, alice.plugin["xep_0004"].make_form(ftype="submit"), timeout=TIMEOUT)
        await scene.settle()
        since = scene.mark()
        await bob.plugin["xep_0045"].join_muc_wait(room, "Bobby", maxstanzas=0, timeout=TIMEOUT)
        await scene.settle()
        return {"created": created, "joined": occupantPresences(scene, since, room)}

    check(users, play(users, "mucinst", script), {
        "created": {"alice/1": ["available Alice owner/moderator ['110', '201']"], "bob/1": []},
        "joined": {"alice/1": ["available Bobby none/participant []"],
                   "bob/1": ["available Alice owner/moderator []",
                             "available Bobby none/participant ['110']"]},
    }, "XEP-0045 §10.1.2, §7.2.3")


def test_affiliationListsRoundTrip(users):
    """§9.3, §9.5, §10.3, §10.5, §10.6, §10.8: member and admin lists set by the owner read back."""
    room = "aff-club@muc.localhost"

    async def script(scene):
        alice = mucClient(await scene.login("alice", presence=True))
        await instantRoom(scene, alice, room, "Alice")
        muc = alice.plugin["xep_0045"]
        await muc.set_affiliation(room, "member", jid=scene.jid("bob"), timeout=TIMEOUT)
        await muc.set_affiliation(room, "admin", jid=scene.jid("carol"), timeout=TIMEOUT)
        lists = {}
        for affiliation in ("owner", "admin", "member", "outcast"):
            jids = await muc.get_affiliation_list(room, affiliation, timeout=TIMEOUT)
            lists[affiliation] = sorted(scene.name(j) for j in jids)
        await muc.set_affiliation(room, "none", jid=scene.jid("bob"), timeout=TIMEOUT)
        lists["member after none"] = sorted(
            scene.name(j) for j in await muc.get_affiliation_list(room, "member", timeout=TIMEOUT))
        return lists

    check(users, play(users, "mucaff", script), {
        "owner": ["alice"], "admin": ["carol"], "member": ["bob"], "outcast": [], "member after none": [],
    }, "XEP-0045 §9.5, §10.5, §10.8")


def test_configRoundTrip(users):
    """§10.2: the values an owner submits are what the next configuration form shows."""
    room = "cfg-room@muc.localhost"
    values = {"muc#roomconfig_roomname": "Config Room", "muc#roomconfig_roomdesc": "About config",
              "muc#roomconfig_persistentroom": True, "muc#roomconfig_membersonly": True,
              "muc#roomconfig_moderatedroom": True, "muc#roomconfig_publicroom": False,
              "muc#roomconfig_whois": "anyone",
              "muc#roomconfig_roomsecret": "s3cret"}

    async def script(scene):
        alice = mucClient(await scene.login("alice", presence=True))
        await instantRoom(scene, alice, room, "Alice")
        muc = alice.plugin["xep_0045"]
        before = (await muc.get_room_config(room, timeout=TIMEOUT)).get_values()
        form = alice.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
        for var, value in values.items():
            form.add_field(var=var, value=value)
        await muc.set_room_config(room, form, timeout=TIMEOUT)
        after = (await muc.get_room_config(room, timeout=TIMEOUT)).get_values()
        return {"offered": sorted(v for v in values if v in before),
                "after": {var: after.get(var) for var in values}}

    check(users, play(users, "muccfg", script), {
        "offered": sorted(values), "after": values,
    }, "XEP-0045 §10.2")
