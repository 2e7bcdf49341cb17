"""
Differential check of the export's XEP-0227 document (issue 18 item 8):
Prosody's own reader (C{mod_storage_xep0227} driven by
C{prosody-migrator}, Prosody 0.12) loads it into Prosody's file storage
with the same SCRAM-SHA-1 keys, roster and vCard: the export is portable
XEP-0227, not a look-alike.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET

import pytest
from twisted.internet.task import Clock

from tests.test_portable import configIn, populateXMPP, sqliteStore
from xmppchat import portable
from xmppchat.admin import result

MIGRATOR = shutil.which("prosody-migrator")
NS_PIE = "urn:xmpp:pie:0"


@pytest.fixture
def world():
    """
    A scratch directory every user may use: run as root, the migrator
    switches to the prosody user.
    """
    directory = tempfile.mkdtemp(prefix="xmppchat-xep0227-", dir="/tmp")
    os.chmod(directory, 0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def perUserFiles(document: bytes, directory: str) -> None:
    """
    Prosody's XEP-0227 driver keeps one C{<server-data/>} per user, named
    C{user@host.xml}: split ours the same way.
    """
    ET.register_namespace("", NS_PIE)
    root = ET.fromstring(document)
    for host in root:
        for user in host:
            path = os.path.join(directory, f"{user.get('name')}@{host.get('jid')}.xml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(f"<server-data xmlns='{NS_PIE}'><host jid='{host.get('jid')}'>"
                        f"{ET.tostring(user, encoding='unicode')}</host></server-data>")


def test_prosodyReadsTheExport(tmp_path, world):
    """prosody-migrator moves the exported users into Prosody's storage with their SCRAM-SHA-1 keys, roster and vCard."""
    if MIGRATOR is None:
        pytest.skip("prosody-migrator is not installed (apt-get install -y prosody)")
    clock = Clock()
    clock.advance(1_700_000_000)
    config = configIn(tmp_path / "a")
    storage = sqliteStore(config, clock)
    try:
        populateXMPP(storage, config, clock)
        alice = result(storage.accounts.getAccountByLocalpart("alice"))
        archive = tmp_path / "x.tar.gz"
        portable.export(storage, config, str(archive))
    finally:
        result(storage.stop())
    with tarfile.open(archive) as tar:
        document = tar.extractfile("server-data.xml").read()
    data, out = os.path.join(world, "data"), os.path.join(world, "out")
    os.makedirs(data)
    os.makedirs(os.path.join(out, "localhost"))
    perUserFiles(document, data)
    # the migrator reads its data path from this constant of its script
    script = os.path.join(world, "migrator.lua")
    with open(MIGRATOR, encoding="utf-8") as f:
        source = f.read()
    with open(script, "w", encoding="utf-8") as f:
        f.write(re.sub(r"^CFG_DATADIR=.*$", f"CFG_DATADIR='{data}'", source, count=1, flags=re.M))
    with open(os.path.join(world, "migrator.cfg.lua"), "w", encoding="utf-8") as f:
        f.write('input { type = "xep0227"; hosts = { ["localhost"] = { "accounts", "roster",'
                ' "vcard", "private" } } }\n'
                f'output {{ type = "internal"; path = "{out}" }}\n')
    for root, dirs, files in os.walk(world):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO)
    done = subprocess.run(["lua5.4", script, "--config", os.path.join(world, "migrator.cfg.lua")],
                          capture_output=True, text=True, timeout=60, cwd=world)
    assert done.returncode == 0, done.stdout + done.stderr

    def stored(store, user):
        with open(os.path.join(out, "localhost", store, f"{user}.dat"), encoding="utf-8") as f:
            return f.read()

    account = stored("accounts", "alice")
    keys = alice.credentials["sha1"]
    assert f'["stored_key"] = "{base64.b64decode(keys["storedKey"]).hex()}"' in account
    assert f'["server_key"] = "{base64.b64decode(keys["serverKey"]).hex()}"' in account
    assert '["iteration_count"] = 64' in account
    roster = stored("roster", "alice")
    assert '["bob@localhost"]' in roster and '["Friends"] = true' in roster and '"Bob"' in roster
    assert "Alice & Co" in stored("vcard", "alice")
