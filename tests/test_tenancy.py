"""
Issue 15 finding 2: one application per server.  The config refusal and the
JWT checks are in tests/api (test_config.py, test_identity.py); here, JIDs
that name another application resolve to nothing of this one.
"""

from __future__ import annotations

from tests.helpers import HostHarness
from tests.muc.test_room import join, presences
from tests.test_admin import CLI
from xmppchat.storage.interfaces import DIALOG_GROUP


def test_roomJIDOfAnotherApplication():
    """A dialog room reached as <otherApp>_<dialogId> is item-not-found, even for its occupant."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["alice"])
    aid = h.accountId("alice")
    join(h, alice, f"2_{dialog.id}@muc.localhost/{aid}")
    [refused] = presences(ta)
    assert refused["type"] == "error" and refused.error.firstChildElement().name == "item-not-found"
    join(h, alice, f"1_{dialog.id}@muc.localhost/{aid}")
    assert presences(ta)[0].getAttribute("type") is None


def test_adminRefusesOtherApplicationNames(tmp_path, monkeypatch, capsys):
    """adduser and import-users refuse <id>-<otherApp> localparts (this server serves app 1)."""
    cli = CLI(tmp_path, monkeypatch, capsys)
    code, _, err = cli("adduser", "5-2", stdin="secret-pw\n")
    assert code != 0 and "names another application" in err
    code, _, err = cli("import-users", "-", stdin="7-3 secret-pw\nalice secret-pw\n101-1 pw-101\n")
    assert "names another application" in err and cli.account("7-3") is None
    assert cli.account("alice") is not None and cli.account("101-1") is not None


def test_saslNameOfAnotherApplication():
    """SASL as <id>-<otherApp> with <id>-<appId>'s password is not-authorized (no parsing of ids)."""
    import base64

    from tests.helpers import StubTransport, xml
    from xmppchat.c2s.negotiation import SECURED, C2SStream

    h = HostHarness()
    h.addUser("5-1", "five-pw")
    transport = StubTransport(secure=True)
    stream = C2SStream(h.host, transport)
    stream.phase = SECURED
    payload = base64.b64encode(b"\x005-2\x00five-pw").decode()
    stream.elementReceived(xml(
        f'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{payload}</auth>'))
    h.clock.advance(10)
    [failure] = [e for e in transport.sent if e.name == "failure"]
    assert failure.firstChildElement().name == "not-authorized" and stream.account is None
