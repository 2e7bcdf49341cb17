"""
Export and import (L{xmppchat.portable}, issue 18 item 8): a deployment
moves SQLite -> MongoDB (mongomock) -> SQLite through the archive with
its users (who log in with their old passwords), rosters, vCards, private
XML, offline messages, privacy lists, PEP nodes, dialogs, messages,
per-user state, unread counts, blobs (with their files) and records; the
archive's XML is XEP-0227; an import refuses a non-empty store, another
domain and a damaged archive; a XEP-0227 file from another server
imports.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

import mongomock
import pytest
from twisted.internet.task import Clock
from twisted.words.xish import domish

from tests.storage.test_portable_store import populateChat
from xmppchat import portable
from xmppchat.admin import result
from xmppchat.auth.credentials import Credentials, deriveCredentials, verifyPlain
from xmppchat.backup import ArchiveError
from xmppchat.config import loadConfig
from xmppchat.storage.interfaces import OfflineShares, Query, RosterItem
from xmppchat.storage.mongo import MongoStorage
from xmppchat.storage.sqlite import SQLiteStorage
from xmppchat.storage.userxml.interface import PRIVATE, VCARD

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def configIn(directory, domain="localhost", backend="sqlite"):
    path = directory / "xmppchat.toml"
    os.makedirs(directory / "data", exist_ok=True)
    path.write_text(f'[server]\ndomain = "{domain}"\ndata_dir = "{directory / "data"}"\n'
                    f'[storage]\nbackend = "{backend}"\npath = "db.sqlite3"\n')
    return loadConfig(str(path))


def sqliteStore(config, clock=None):
    storage = SQLiteStorage(config.storage.path, reactor=clock, synchronous=True)
    result(storage.start())
    return storage


def mongoStore(clock=None):
    storage = MongoStorage(client=mongomock.MongoClient(), database="moved", reactor=clock,
                           synchronous=True)
    result(storage.start())
    return storage


def populateXMPP(storage, config, clock):
    """
    Accounts with passwords, a REST account with a profile, a JWT account,
    and every kind of XMPP user data; returns the first three accounts.
    """
    users = [result(storage.accounts.createAccount(
        name, deriveCredentials(password, iterations=64).toDict()))
        for name, password in PASSWORDS.items()]
    rest = result(storage.accounts.createAccount(
        "{id}-1", deriveCredentials("rest", iterations=64).toDict(), login="restuser",
        email="r@example.com", profile={"full_name": "Rest User", "custom_data": "{}",
                                        "user_tags": ["a", "b"]}))
    result(storage.accounts.updateAccount(rest.id, blocked=True))  # issue 19: kept by the archive
    result(storage.accounts.createAccount("{id}-1", None, externalId="ext-9", jwt=True))
    roster = storage.roster
    result(roster.setRosterItem("alice", RosterItem("bob@localhost", "Bob", ["Friends", "Work"], "both")))
    result(roster.setRosterItem("alice", RosterItem("carol@localhost", None, [], "none", ask="subscribe",
                                                    pendingIn=True)))
    result(roster.setRosterItem("alice", RosterItem("eve@example.org", pendingIn=True, hidden=True)))
    result(storage.userXML.setXML("alice", VCARD, "",
                                  "<vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN></vCard>"))
    result(storage.userXML.setXML("alice", PRIVATE, "prefs:urn:example",
                                  "<prefs xmlns='urn:example'><x a='1'/></prefs>"))
    stanza = domish.Element(("jabber:client", "message"))
    stanza.attributes.update({"from": "carol@localhost/phone", "to": "bob@localhost", "type": "chat",
                              "id": "m1"})
    stanza[("http://www.w3.org/XML/1998/namespace", "lang")] = "en"
    stanza.addElement("body", content="while you were out <3")
    result(storage.offline.storeOffline("bob", stanza.toXml(), 1_700_000_123.0, None,
                                        OfflineShares("carol@localhost")))
    result(storage.privacy.setPrivacyList("alice", "strict", [
        {"type": "jid", "value": "eve@example.org", "action": "deny", "order": 1,
         "stanzas": ["message", "presence-in"]},
        {"type": None, "value": None, "action": "allow", "order": 2, "stanzas": []}]))
    result(storage.privacy.setPrivacyList("alice", "open", [
        {"type": "subscription", "value": "both", "action": "allow", "order": 5, "stanzas": []}]))
    result(storage.privacy.setDefaultPrivacyList("alice", "strict"))
    from xmppchat.pep.nodeconfig import defaultConfig

    nodeConfig = {**defaultConfig(), "max_items": 3, "access_model": "open", "title": "Mood"}
    result(storage.pep.createNode("alice", "http://jabber.org/protocol/mood", nodeConfig, 0))
    for n in range(2):
        result(storage.pep.publishItem("alice", "http://jabber.org/protocol/mood", f"i{n}",
                                       f"<mood xmlns='http://jabber.org/protocol/mood'><happy/>"
                                       f"<text>{n}</text></mood>", "alice@localhost", 3))
    result(storage.lastActivity.setLastActivity("bob", 1_700_000_000.5, "gone fishing"))
    group, messages = populateChat(storage, clock, *users)
    blob = result(storage.blobs.listBlobs(users[0].id))[0]
    path = os.path.join(config.server.data_dir, "blobs", blob.uid[:2], blob.uid)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"abc")
    return group


def snapshot(storage, config) -> dict:
    """
    Everything observable through the storage interfaces (and the blob
    files), comparable between backends.
    """
    out = {"accounts": result(storage.accounts.listAccounts())}
    for account in out["accounts"]:
        lp = account.localpart
        out[lp] = {
            "roster": result(storage.roster.getRoster(lp)),
            "xml": result(storage.userXML.listXML(lp)),
            "offline": [(m.stanza, m.stamp) for m in result(storage.offline.fetchOffline(lp))],
            "privacy": result(storage.privacy.getPrivacy(lp)),
            "pep": [(node, config_, result(storage.pep.getItems(lp, node)))
                    for node, config_ in result(storage.pep.listNodes(lp))],
            "last": result(storage.lastActivity.getLastActivity(lp)),
            "dialogs": result(storage.dialogs.listDialogs(account.id)),
            "unread": result(storage.messages.unreadCounts(account.id)),
            "blobs": result(storage.blobs.listBlobs(account.id)),
        }
        for dialog in out[lp]["dialogs"]:
            out[lp][dialog.id] = [{**vars(m), "order": None} for m in
                                  result(storage.messages.listMessages(dialog.id, account.id))]
    out["dialogs"] = result(storage.dialogs.listDialogs(None, Query()))
    out["records"] = {name: result(storage.records.listRecords(name)) for name in ("Notes", "Other")}
    blobs = os.path.join(config.server.data_dir, "blobs")
    out["files"] = sorted((name, open(os.path.join(root, name), "rb").read())
                          for root, _, names in os.walk(blobs) for name in names)
    return out


def normalised(value: dict) -> dict:
    """
    The offline stanzas parsed (serialisation order of attributes may
    differ), everything else as is.
    """
    from xmppchat.xmlstream import parseElement

    def plain(o):
        if isinstance(o, bytes):
            return o.decode("latin-1")
        return sorted(o) if isinstance(o, set) else vars(o)

    value = json.loads(json.dumps(value, default=plain))
    for entry in value.values():
        if isinstance(entry, dict) and "offline" in entry:
            entry["offline"] = [(parseElement(xml).toXml(), stamp) for xml, stamp in entry["offline"]]
    return value


@pytest.fixture
def source(tmp_path):
    clock = Clock()
    clock.advance(1_700_000_000)
    config = configIn(tmp_path / "a")
    storage = sqliteStore(config, clock)
    populateXMPP(storage, config, clock)
    yield storage, config
    result(storage.stop())


def test_sqliteToMongoAndBack(source, tmp_path):
    """SQLite -> archive -> MongoDB -> archive -> SQLite keeps everything, and old passwords log in."""
    storage, config = source
    expected = normalised(snapshot(storage, config))
    first = tmp_path / "first.tar.gz"
    manifest = portable.export(storage, config, str(first))
    assert manifest["counts"] == {"users": 5, "dialogs": 3, "messages": 6, "blobs": 2,
                                  "records": 4, "settings": 0, "blob_files": 1}
    mongoConfig = configIn(tmp_path / "m", backend="mongodb")
    mongo = mongoStore()
    try:
        importer = portable.importArchive(mongo, mongoConfig, str(first))
        assert importer.warnings == []
        assert normalised(snapshot(mongo, mongoConfig)) == expected
        for name, password in PASSWORDS.items():
            account = result(mongo.accounts.getAccountByLocalpart(name))
            assert verifyPlain(Credentials.fromDict(account.credentials), password)
        second = tmp_path / "second.tar.gz"
        portable.export(mongo, mongoConfig, str(second))
    finally:
        result(mongo.stop())
    backConfig = configIn(tmp_path / "b")
    back = sqliteStore(backConfig)
    try:
        portable.importArchive(back, backConfig, str(second))
        assert normalised(snapshot(back, backConfig)) == expected
        assert not verifyPlain(Credentials.fromDict(
            result(back.accounts.getAccountByLocalpart("alice")).credentials), "wrong")
    finally:
        result(back.stop())


def test_exportIsXEP0227(source, tmp_path):
    """The XML member is XEP-0227: SCRAM keys and no password, roster, vCard, offline, privacy, PEP."""
    from xml.etree import ElementTree

    storage, config = source
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "manifest.json"
        root = ElementTree.parse(tar.extractfile("server-data.xml")).getroot()
    pie = "{urn:xmpp:pie:0}"
    assert root.tag == pie + "server-data"
    alice = root.find(f"{pie}host[@jid='localhost']/{pie}user[@name='alice']")
    assert alice.get("password") is None
    mechanisms = [e.get("mechanism") for e in alice.findall("{urn:xmpp:pie:0#scram}scram-credentials")]
    assert mechanisms == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    item = alice.find("{jabber:iq:roster}query/{jabber:iq:roster}item[@jid='bob@localhost']")
    assert (item.get("subscription"), [g.text for g in item]) == ("both", ["Friends", "Work"])
    requests = [p.get("from") for p in alice.findall("{jabber:client}presence[@type='subscribe']")]
    assert requests == ["carol@localhost", "eve@example.org"]
    assert alice.find("{vcard-temp}vCard/{vcard-temp}FN").text == "Alice & Co"
    assert alice.find("{jabber:iq:private}query/{urn:example}prefs") is not None
    assert alice.find("{jabber:iq:privacy}query/{jabber:iq:privacy}default").get("name") == "strict"
    items = alice.find("{http://jabber.org/protocol/pubsub}pubsub/{http://jabber.org/protocol/pubsub}items")
    assert [i.get("id") for i in items] == ["i0", "i1"]
    bob = root.find(f"{pie}host/{pie}user[@name='bob']")
    message = bob.find(f"{pie}offline-messages/{{jabber:client}}message")
    assert message.find("{urn:xmpp:delay}delay").get("stamp") == "2023-11-14T22:15:23Z"


def test_importRefusesNonEmptyStore(source, tmp_path):
    """An import into a store that holds anything is refused, and nothing is written."""
    storage, config = source
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    with pytest.raises(ArchiveError, match="not empty"):
        portable.importArchive(storage, config, str(archive))
    assert result(storage.accounts.countAccounts()) == 5


def test_importRefusesOtherDomain(source, tmp_path):
    """An export of another domain is refused before anything is stored."""
    storage, config = source
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    other = configIn(tmp_path / "o", domain="example.net")
    target = sqliteStore(other)
    try:
        with pytest.raises(ArchiveError, match="example.net"):
            portable.importArchive(target, other, str(archive))
        assert result(target.portable.isEmpty())
    finally:
        result(target.stop())


def test_importRefusesDamagedArchive(source, tmp_path):
    """A member that does not match the manifest's checksum fails the import before any write."""
    storage, config = source
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name == "chat.jsonl":
                data = data.replace(b"m3", b"M3")
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    target = configIn(tmp_path / "t")
    fresh = sqliteStore(target)
    try:
        with pytest.raises(ArchiveError, match="chat.jsonl does not match its checksum"):
            portable.importArchive(fresh, target, str(damaged))
        assert result(fresh.portable.isEmpty())
    finally:
        result(fresh.stop())


def test_pagedExport(source, tmp_path, monkeypatch):
    """With pages of two, export and import still move every account, dialog and message."""
    storage, config = source
    monkeypatch.setattr(portable, "PAGE", 2)
    expected = normalised(snapshot(storage, config))
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    target = configIn(tmp_path / "t")
    fresh = sqliteStore(target)
    try:
        portable.importArchive(fresh, target, str(archive))
        assert normalised(snapshot(fresh, target)) == expected
    finally:
        result(fresh.stop())


def foreignArchive(path, xml: str) -> None:
    """
    An archive holding only a XEP-0227 document, as from another server.
    """
    from xmppchat.backup import ArchiveWriter

    writer = ArchiveWriter(str(path), portable.EXPORT_FORMAT)
    with open(writer.file(portable.SERVER_DATA), "w", encoding="utf-8") as f:
        f.write(xml)
    writer.close(domain="localhost")


def test_importForeignXEP0227(tmp_path):
    """Users of another server's XEP-0227 file get new ids and prepared names; a plaintext password becomes SCRAM keys."""
    archive = tmp_path / "foreign.tar.gz"
    foreignArchive(archive, """<?xml version='1.0'?>
<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>
  <user name='Juliet' password='balcony'>
    <query xmlns='jabber:iq:roster'><item jid='romeo@localhost' subscription='both'><group>Love</group></item></query>
    <vCard xmlns='vcard-temp'><NICKNAME>J</NICKNAME></vCard>
  </user>
  <user name='romeo'>
    <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>
      <iter-count>4096</iter-count><salt>QSXCR+Q6sek8bf92</salt>
      <server-key>D+CSWLOshSulAsxiupA+qs2/fTE=</server-key><stored-key>6dlGYMOdZcOPutkcNY8U2g7vK9Y=</stored-key>
    </scram-credentials>
  </user>
</host></server-data>""")
    config = configIn(tmp_path / "t")
    storage = sqliteStore(config)
    try:
        importer = portable.importArchive(storage, config, str(archive))
        juliet = result(storage.accounts.getAccountByLocalpart("juliet"))
        assert verifyPlain(Credentials.fromDict(juliet.credentials), "balcony")
        roster = result(storage.roster.getRoster("juliet"))
        assert [(i.jid, i.subscription, i.groups) for i in roster] == [("romeo@localhost", "both", ["Love"])]
        assert "NICKNAME" in result(storage.userXML.getXML("juliet", VCARD, ""))
        assert result(storage.accounts.getAccountByLocalpart("romeo")).credentials is None
        assert importer.warnings == ["romeo: only sha1 SCRAM keys; this server needs SHA-1 and"
                                     " SHA-256: set a password with 'admin passwd'"]
    finally:
        result(storage.stop())


def assertImportRefused(tmp_path, archive, match, accounts=()) -> None:
    """
    Importing C{archive} into a fresh SQLite store fails with C{match},
    having created only the C{accounts} (localparts) before the problem.
    """
    config = configIn(tmp_path / "t")
    storage = sqliteStore(config)
    try:
        with pytest.raises(ArchiveError, match=match):
            portable.importArchive(storage, config, str(archive))
        assert [a.localpart for a in result(storage.accounts.listAccounts(0, 10))] == list(accounts)
    finally:
        result(storage.stop())


def test_importRefusesBadUserName(tmp_path):
    """A <user/> whose name is no JID localpart is refused with its name."""
    archive = tmp_path / "bad.tar.gz"
    foreignArchive(archive, "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
                            "<user name='a@b'/></host></server-data>")
    assertImportRefused(tmp_path, archive, "'a@b' is not a user name")


def chatArchive(path, *records) -> None:
    """
    An archive with one user and C{records} as the lines of C{chat.jsonl}.
    """
    from xmppchat.backup import ArchiveWriter

    writer = ArchiveWriter(str(path), portable.EXPORT_FORMAT)
    with open(writer.file(portable.SERVER_DATA), "w", encoding="utf-8") as f:
        f.write("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
                "<user name='mallory' password='pw12345678'/></host></server-data>")
    with open(writer.file(portable.CHAT_DATA), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
    writer.close(domain="localhost")


def blobRecord(uid, completed=True):
    return {"kind": "blob", "id": 1, "uid": uid, "ownerId": 1, "name": "x", "contentType": None,
            "size": None, "public": False, "completed": completed, "createdAt": 0.0, "updatedAt": 0.0}


@pytest.mark.parametrize("uid", ["{victim}", "../../secret.txt", "0123456789abcdef0123456789abcdef\n"])
def test_importRefusesBlobUidOutsideBlobs(tmp_path, uid):
    """
    Security review finding 1: a chat.jsonl blob whose uid is a path (which
    a later export would read and the upload sweep would delete) refuses
    the import, and the file it names is neither read nor removed.
    """
    victim = tmp_path / "secret.txt"
    victim.write_text("db_password=hunter2\n")
    archive = tmp_path / "crafted.tar.gz"
    chatArchive(archive, blobRecord(uid.format(victim=victim), completed=False))
    config = configIn(tmp_path / "t")
    storage = sqliteStore(config)
    try:
        with pytest.raises(ArchiveError, match="chat.jsonl:1: ValueError: bad ids in a blob record"):
            portable.importArchive(storage, config, str(archive))
        assert result(storage.blobs.getBlobByUid(uid.format(victim=victim))) is None
    finally:
        result(storage.stop())
    assert victim.read_text() == "db_password=hunter2\n"


@pytest.mark.parametrize("record", [
    {"kind": "dialog", "id": "a" * 24, "ownerId": -1, "type": 2, "occupantIds": [-1]},
    {"kind": "record", "className": "Note", "id": "r1", "userId": "1; DROP", "fields": {}},
    {"kind": "state", "dialogId": "x" * 24, "userId": 1},
])
def test_importRefusesBadIds(tmp_path, record):
    """Security review finding 1: dialog, record and state ids/owners of the wrong shape refuse the import."""
    archive = tmp_path / "crafted.tar.gz"
    chatArchive(archive, record)
    assertImportRefused(tmp_path, archive, f"bad ids in a {record['kind']} record", ["mallory"])


@pytest.mark.parametrize("uid", ["/etc/passwd", "../../etc/passwd", "ab", "0123456789ABCDEF0123456789ABCDEF"])
def test_blobPathRefusesNonUid(tmp_path, uid):
    """Security review finding 1, defence in depth: blobPath never names a file for a uid that is not 32 hex digits."""
    from xmppchat.api.storage import blobPath

    with pytest.raises(ValueError, match="not a blob uid"):
        blobPath(str(tmp_path), uid)
    assert blobPath(str(tmp_path), "0" * 32) == str(tmp_path / "blobs" / "00" / ("0" * 32))


def test_importRefusesOtherApplicationName(tmp_path):
    """
    Security review finding 6: a <user name='5-999'/> (the shape of another
    application's account, which adduser and the API refuse) refuses the
    import, like adduser does.
    """
    archive = tmp_path / "other-app.tar.gz"
    foreignArchive(archive, "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
                            "<user name='5-999' password='pw12345678'/></host></server-data>")
    assertImportRefused(tmp_path, archive, "'5-999' is not a user name here: .*another application")


@pytest.mark.parametrize("attribute, message", [
    ("login='x'", "login must be 3-50 characters"),
    ("email='not an address'", "email is not a valid e-mail address"),
    ("external-id='Has Spaces/..'", "external_user_id is not an external id"),
])
def test_importRefusesBadAccountFields(tmp_path, attribute, message):
    """Security review finding 6: login, e-mail and external id go through the REST API's validators."""
    archive = tmp_path / "fields.tar.gz"
    foreignArchive(archive, "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
                            "<user name='mallory' password='pw12345678'>"
                            f"<account xmlns='urn:xmppchat:export:0' id='1' created='0' updated='0' {attribute}/>"
                            "</user></host></server-data>")
    assertImportRefused(tmp_path, archive, f"'mallory': {message}")


def test_accountDeletedDuringExportSkipsNoOther(source, tmp_path, monkeypatch):
    """
    An online export pages accounts by id: an account deleted after its
    page was written shifts no later page, so every other account is
    still exported (offset paging skipped the first account of the next page).
    """
    storage, config = source
    monkeypatch.setattr(portable, "PAGE", 2)
    accounts = result(storage.accounts.listAccounts())
    names = [a.localpart for a in accounts]
    userElement = portable.Exporter.userElement
    deleted = []

    def deleteFirstAfterIt(self, account):
        element = userElement(self, account)
        if not deleted:
            deleted.append(account.localpart)
            result(storage.accounts.deleteAccount(account.id))
        return element

    monkeypatch.setattr(portable.Exporter, "userElement", deleteFirstAfterIt)
    archive = tmp_path / "x.tar.gz"
    portable.export(storage, config, str(archive))
    with tarfile.open(archive) as tar:
        xml = tar.extractfile("server-data.xml").read().decode()
    exported = [name for name in names if f"name='{name}'" in xml or f'name="{name}"' in xml]
    assert len(names) >= 4 and exported == names


def test_panelSettingsMove(source, tmp_path):
    """The admin panel's settings (issue 19) move with the export; the storage's own markers do not."""
    storage, config = source
    result(storage.settings.putSetting("panel:rest.apps.1.auth_key", "rotated-key"))
    result(storage.settings.putSetting("panel:dialogs.extension_fields", ["color"]))
    result(storage.dialogs.configureExtensions(["color"]))
    archive = tmp_path / "settings.tar.gz"
    assert portable.export(storage, config, str(archive))["counts"]["settings"] == 2
    mongo = mongoStore()
    try:
        importer = portable.importArchive(mongo, configIn(tmp_path / "m", backend="mongodb"), str(archive))
        assert importer.counts["settings"] == 2
        assert result(mongo.settings.getSettings("panel:")) == {
            "panel:dialogs.extension_fields": ["color"], "panel:rest.apps.1.auth_key": "rotated-key"}
        assert result(mongo.settings.getSettings("dialog")) == {}
    finally:
        result(mongo.stop())


def test_importRefusesOtherSettings(tmp_path):
    """A setting line outside the panel's names refuses the import (the storage's markers are its own)."""
    archive = tmp_path / "crafted.tar.gz"
    chatArchive(archive, {"kind": "setting", "name": "dialog_extensions", "value": []})
    assertImportRefused(tmp_path, archive, "bad ids in a setting record", ["mallory"])
