"""
Export and import of a whole deployment (issue 18 item 8;
C{python -m xmppchat.admin export FILE} / C{import FILE}): the way to move
from SQLite to MongoDB (or back), or to another machine.

The archive (L{xmppchat.backup.ArchiveWriter}: tar.gz, checksummed
manifest first) holds three kinds of member:

  - C{server-data.xml}: the XMPP user data as XEP-0227 (Portable
    Import/Export Format for XMPP-IM Servers, v1.1,
    https://xmpp.org/extensions/xep-0227.html): per user, the SCRAM-SHA-1
    and SCRAM-SHA-256 keys (C{urn:xmpp:pie:0#scram}, §4.2: never a
    password, the server has none), the roster (§4.3) with incoming
    requests as C{<presence type='subscribe'/>} (§4.8), offline messages
    with their XEP-0203 delay (§4.4), private XML (§4.5), the vCard
    (§4.6), privacy lists (§4.7) and PEP nodes and items (§4.9).  What
    XEP-0227 has no element for (the account id that dialogs and blobs
    refer to, login, e-mail, external id, JWT mark, times, the REST
    profile, last activity) is one C{<account xmlns='urn:xmppchat:export:0'/>}
    per user: XEP-0227 extends by namespace (§2), so other servers'
    importers skip it.
  - C{chat.jsonl}: the ConnectyCube side, one JSON object per line:
    each dialog, then its messages in order, then its users' state
    (watermarks named by message id, subscriptions, hidden messages), then
    blob metadata, custom-data records and the admin panel's settings
    (L{xmppchat.runsettings}, rotated application keys included).  A companion file rather than
    more XML because these records are JSON already (custom fields,
    attachments, extensions, record fields of any shape: JSON inside XML
    would only escape it), and lines stream in both directions.
  - C{blobs/<uid>}: the blob files.

Export reads every store in pages (L{xmppchat.storage.portable.PAGE}) and
writes as it goes; import parses the XML one C{<user/>} at a time and the
JSON one line at a time: memory does not grow with the deployment.  Import
only goes into an empty store (no account, dialog, blob or record) and
refuses anything else: merging two deployments would renumber the account
ids that dialogs and blobs refer to.  Session tokens, upload slots,
unlock requests and daily message counts are not exported: users log in
again.  A XEP-0227 file from another server (a bare C{server-data.xml}
inside an archive without C{chat.jsonl}) imports too: accounts get new ids.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from xml.etree import ElementTree

from twisted.words.xish import domish

from xmppchat.backup import (BLOB_UID, ArchiveError, ArchiveReader, ArchiveWriter, blobMember, blobTarget,
                             copyBlobsIn, reported, requireNewBlobs)
from xmppchat.modules.pep import NS_PUBSUB_OWNER
from xmppchat.modules.privacy import NS_PRIVACY
from xmppchat.modules.private import NS_PRIVATE
from xmppchat.modules.roster import NS_ROSTER
from xmppchat.modules.vcard import NS_VCARD
from xmppchat.runsettings import PREFIX as PANEL_PREFIX
from xmppchat.storage.common import result
from xmppchat.storage.interfaces import Query
from xmppchat.storage.portable.interface import PAGE
from xmppchat.xmlstream import NS_CLIENT

EXPORT_FORMAT = "xmppchat-export"
SERVER_DATA = "server-data.xml"
CHAT_DATA = "chat.jsonl"

NS_PIE = "urn:xmpp:pie:0"
NS_SCRAM = "urn:xmpp:pie:0#scram"
NS_XMPPCHAT = "urn:xmppchat:export:0"
# XEP-0227 §4.2 mechanism name -> the hash of our credentials dict
MECHANISMS = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}


def _pages(page, key, *args, start=None):
    """
    Every item of a paged listing C{page(*args, after, PAGE)}, C{after}
    being C{start}, then C{key} of the last item of the previous page.
    """
    after = start
    while True:
        items = result(page(*args, after, PAGE))
        yield from items
        if len(items) < PAGE:
            return
        after = key(items[-1])


# -- export -------------------------------------------------------------------


class _Run:
    """
    One export or import on a started (synchronous) storage, with what it
    counted.
    """

    def __init__(self, storage, config):
        self.storage = storage
        self.config = config
        self.domain = config.server.domain
        self.counts = dict.fromkeys(("users", "dialogs", "messages", "blobs", "records",
                                     "settings", "blob_files"), 0)
        self.warnings: list[str] = []


class Exporter(_Run):
    """
    Writes one archive.
    """

    def run(self, path: str) -> dict:
        writer = ArchiveWriter(path, EXPORT_FORMAT)
        try:
            with open(writer.file(SERVER_DATA), "w", encoding="utf-8") as out:
                self.writeServerData(out)
            with open(writer.file(CHAT_DATA), "w", encoding="utf-8") as out:
                self.writeChatData(out)
            for blob in _pages(self.storage.portable.blobPage, lambda b: b.id, start=0):
                source = blobTarget(self.config.server.data_dir, blob.uid)
                if os.path.isfile(source) and writer.add(blobMember(blob.uid), source):
                    self.counts["blob_files"] += 1
            return writer.close(domain=self.domain, backend=self.config.storage.backend,
                                counts=self.counts)
        except BaseException:
            writer.discard()
            raise

    def writeServerData(self, out) -> None:
        out.write(f"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='{NS_PIE}'>\n")
        host = domish.Element((NS_PIE, "host"))
        host["jid"] = self.domain
        out.write(host.toXml(closeElement=0, defaultUri=NS_PIE) + "\n")
        # by key, not offset: an account deleted during an online export
        # shifts no page, so no other account is skipped
        accounts = _pages(lambda after, limit: self.storage.accounts.findAccounts(
            Query(sort="id", limit=limit).where("id", "gt", after)), lambda a: a.id, start=0)
        for account in accounts:
            out.write(self.userElement(account).toXml(defaultUri=NS_PIE) + "\n")
            self.counts["users"] += 1
        out.write("</host>\n</server-data>\n")

    def userElement(self, account) -> domish.Element:
        """
        One account's C{<user/>} (XEP-0227 §4.2-4.9).
        """
        from xmppchat.storage.userxml.interface import VCARD

        localpart = account.localpart
        user = domish.Element((NS_PIE, "user"))
        user["name"] = localpart
        for mechanism, hashName in MECHANISMS.items():
            keys = (account.credentials or {}).get(hashName)
            if keys:
                scram = user.addElement((NS_SCRAM, "scram-credentials"))
                scram["mechanism"] = mechanism
                scram.addElement("iter-count", content=str(keys["iterations"]))
                scram.addElement("salt", content=keys["salt"])
                scram.addElement("server-key", content=keys["serverKey"])
                scram.addElement("stored-key", content=keys["storedKey"])
        user.addChild(self.accountElement(account))
        self.addRoster(user, localpart)
        private = None
        for kind, key, xml in result(self.storage.userXML.listXML(localpart)):
            if kind == VCARD:
                user.addChild(_parse(xml, NS_VCARD))
                continue
            if private is None:
                private = user.addElement((NS_PRIVATE, "query"))
            private.addChild(_parse(xml, key.partition(":")[2]))
        self.addOffline(user, localpart)
        self.addPrivacy(user, localpart)
        self.addPEP(user, localpart)
        return user

    def accountElement(self, account) -> domish.Element:
        element = domish.Element((NS_XMPPCHAT, "account"))
        element["id"] = str(account.id)
        for name, value in (("login", account.login), ("email", account.email),
                            ("external-id", account.externalId)):
            if value is not None:
                element[name] = value
        for flag in ("jwt", "blocked"):
            if getattr(account, flag):
                element[flag] = "true"
        element["created"] = repr(float(account.createdAt))
        element["updated"] = repr(float(account.updatedAt))
        element.addElement("profile", content=json.dumps(account.profile or {}))
        last = result(self.storage.lastActivity.getLastActivity(account.localpart))
        if last is not None:
            activity = element.addElement("last-activity")
            activity["stamp"] = repr(float(last[0]))
            if last[1] is not None:
                activity.addContent(last[1])
        return element

    def addRoster(self, user, localpart) -> None:
        items = result(self.storage.roster.getRoster(localpart))
        roster = user.addElement((NS_ROSTER, "query")) if any(not i.hidden for i in items) else None
        for item in items:
            if item.pendingIn:
                request = domish.Element((NS_CLIENT, "presence"))
                request["from"] = item.jid
                request["to"] = f"{localpart}@{self.domain}"
                request["type"] = "subscribe"
                user.addChild(request)
            if item.hidden:
                continue
            element = roster.addElement("item")
            element["jid"] = item.jid
            element["subscription"] = item.subscription
            if item.name is not None:
                element["name"] = item.name
            if item.ask:
                element["ask"] = item.ask
            for group in item.groups:
                element.addElement("group", content=group)

    def addOffline(self, user, localpart) -> None:
        from xmppchat.stanzas import delayElement

        messages = result(self.storage.offline.fetchOffline(localpart))
        if not messages:
            return
        container = user.addElement((NS_PIE, "offline-messages"))
        for message in messages:
            stanza = _parse(message.stanza, NS_CLIENT)
            stanza.addChild(delayElement(message.stamp, self.domain, "Offline storage"))
            container.addChild(stanza)

    def addPrivacy(self, user, localpart) -> None:
        from xmppchat.modules.privacy import listElement

        record = result(self.storage.privacy.getPrivacy(localpart))
        if not record.lists:
            return
        query = user.addElement((NS_PRIVACY, "query"))
        if record.default is not None:
            query.addElement("default")["name"] = record.default
        for name, items in record.lists.items():
            query.addChild(listElement(name, items))

    def addPEP(self, user, localpart) -> None:
        from xmppchat.pep.nodeconfig import NS_PUBSUB, configForm

        nodes = result(self.storage.pep.listNodes(localpart))
        if not nodes:
            return
        maxItems = self.config.pep.max_items_per_node
        owner = user.addElement((NS_PUBSUB_OWNER, "pubsub"))
        published = user.addElement((NS_PUBSUB, "pubsub"))
        for node, nodeConfig in nodes:
            configure = owner.addElement("configure")
            configure["node"] = node
            form = configForm(nodeConfig, maxItems)
            form["type"] = "submit"
            configure.addChild(form)
            items = published.addElement("items")
            items["node"] = node
            # oldest first: importing publishes in document order
            for itemId, payload, publisher in reversed(result(self.storage.pep.getItems(localpart, node))):
                item = items.addElement("item")
                item["id"] = itemId
                if publisher is not None:
                    item["publisher"] = publisher
                item.addChild(_parse(payload, NS_PUBSUB))

    def writeChatData(self, out) -> None:
        """
        Write the dialog, message, state, blob and record lines.
        """
        port = self.storage.portable

        def line(kind, record):
            out.write(json.dumps({"kind": kind, **record}, ensure_ascii=False,
                                 separators=(",", ":"), default=sorted) + "\n")

        for dialog in _pages(port.dialogPage, lambda d: d.id):
            line("dialog", asdict(dialog))
            self.counts["dialogs"] += 1
            for message in _pages(port.messagePage, lambda m: m.order, dialog.id, start=0):
                record = asdict(message)
                for derived in ("order", "readIds", "deliveredIds"):
                    del record[derived]
                line("message", record)
                self.counts["messages"] += 1
            for state in result(port.dialogStates(dialog.id)):
                line("state", {"dialogId": dialog.id, **asdict(state)})
        for blob in _pages(port.blobPage, lambda b: b.id, start=0):
            line("blob", asdict(blob))
            self.counts["blobs"] += 1
        for className in result(port.recordClasses()):
            for record in _pages(port.recordPage, lambda r: r.id, className):
                line("record", asdict(record))
                self.counts["records"] += 1
        # the admin panel's settings (issue 19): a rotated key must not
        # fall back to the config file's after a move
        for name, value in result(self.storage.settings.getSettings(PANEL_PREFIX)).items():
            line("setting", {"name": name, "value": value})
            self.counts["settings"] += 1


def _parse(xml: str, defaultNamespace: str) -> domish.Element:
    from xmppchat.xmlstream import parseElement

    return parseElement(xml, defaultNamespace)


# -- import -------------------------------------------------------------------


def _split(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        uri, _, name = tag[1:].partition("}")
        return uri, name
    return None, tag


def toDomish(element) -> domish.Element:
    """
    An ElementTree element (from the streaming parser) as a domish one,
    which the server's own parsers and serialisers take.
    """
    uri, name = _split(element.tag)
    out = domish.Element((uri, name))
    for key, value in element.attrib.items():
        keyUri, keyName = _split(key)
        out[(keyUri, keyName) if keyUri else keyName] = value
    if element.text:
        out.addContent(element.text)
    for child in element:
        out.addChild(toDomish(child))
        if child.tail:
            out.addContent(child.tail)
    return out


def _children(element, uri, name):
    return [c for c in element.elements() if c.uri == uri and c.name == name]


def _child(element, uri, name):
    found = _children(element, uri, name)
    return found[0] if found else None


def _number(text, what, convert=float):
    try:
        return convert(text)
    except (TypeError, ValueError):
        raise ArchiveError(f"bad {what}: {text!r}") from None


def _checkIds(kind: str, record: dict) -> None:
    """
    Refuse a C{chat.jsonl} record whose ids are not the shapes the server
    makes (security review of issue 18, finding 1): above all a blob C{uid}
    names a file under C{<data_dir>/blobs/}, so it must be the REST API's
    32 hex digits and nothing like C{../../etc/passwd}.
    """
    from xmppchat.storage.interfaces import isObjectId

    def account(value):
        return type(value) is int and value > 0

    checks = {
        "blob": lambda r: account(r.get("id")) and account(r.get("ownerId"))
        and isinstance(r.get("uid"), str) and BLOB_UID.fullmatch(r["uid"]),
        "dialog": lambda r: isObjectId(r.get("id")) and account(r.get("ownerId"))
        and all(map(account, r.get("occupantIds", ()))),
        "message": lambda r: isObjectId(r.get("id")) and isObjectId(r.get("dialogId"))
        and account(r.get("senderId")),
        "record": lambda r: isinstance(r.get("id"), str) and isinstance(r.get("className"), str)
        and account(r.get("userId")),
        "state": lambda r: isObjectId(r.get("dialogId")) and account(r.get("userId")),
        "setting": lambda r: isinstance(r.get("name"), str) and r["name"].startswith(PANEL_PREFIX),
    }
    if not checks[kind](record):
        raise ValueError(f"bad ids in a {kind} record")


class Importer(_Run):
    """
    Loads one archive into an empty storage.
    """

    def run(self, path: str) -> dict:
        if not result(self.storage.portable.isEmpty()):
            raise ArchiveError("the storage is not empty: import goes into a fresh database"
                               " (a new SQLite path or MongoDB database)")
        near = self.config.server.data_dir
        reader = ArchiveReader(path, EXPORT_FORMAT, near)
        try:
            domain = reader.manifest.get("domain")
            if domain != self.domain:
                raise ArchiveError(f"the export is of {domain!r}, this server is {self.domain!r}")
            requireNewBlobs(reader, near)
            self.readServerData(reader.path(SERVER_DATA))
            if CHAT_DATA in reader.manifest["files"]:
                self.readChatData(reader.path(CHAT_DATA))
            self.counts["blob_files"] = copyBlobsIn(reader, near)
            return self.counts
        finally:
            reader.discard()

    def readServerData(self, path: str) -> None:
        host = None
        depth = 0
        try:
            for event, element in ElementTree.iterparse(path, events=("start", "end")):
                if event == "start":
                    depth += 1
                    if depth == 2:
                        host = element
                        if element.tag != f"{{{NS_PIE}}}host":
                            raise ArchiveError(f"{SERVER_DATA}: unexpected <{element.tag}>")
                        if element.get("jid") != self.domain:
                            raise ArchiveError(f"{SERVER_DATA}: host {element.get('jid')!r} is not"
                                               f" this server's domain {self.domain!r}")
                    continue
                depth -= 1
                if depth == 2 and element.tag == f"{{{NS_PIE}}}user":
                    self.importUser(toDomish(element))
                    host.remove(element)
        except ElementTree.ParseError as e:
            raise ArchiveError(f"{SERVER_DATA}: {e}") from None

    def importUser(self, user) -> None:
        from xmppchat.storage.interfaces import Account

        localpart = self.localpartOf(user.getAttribute("name"))
        credentials = self.credentials(user)
        info = _child(user, NS_XMPPCHAT, "account")
        if info is None:
            result(self.storage.accounts.createAccount(localpart, credentials))
        else:
            profile = _child(info, NS_XMPPCHAT, "profile")
            result(self.storage.portable.loadAccount(Account(
                id=_number(info.getAttribute("id"), "account id", int), localpart=localpart,
                **self.accountFields(localpart, info), credentials=credentials,
                createdAt=_number(info.getAttribute("created"), "time"),
                updatedAt=_number(info.getAttribute("updated"), "time"),
                profile=json.loads(str(profile)) if profile is not None else {},
                jwt=info.getAttribute("jwt") == "true",
                blocked=info.getAttribute("blocked") == "true")))
            activity = _child(info, NS_XMPPCHAT, "last-activity")
            if activity is not None:
                result(self.storage.lastActivity.setLastActivity(
                    localpart, _number(activity.getAttribute("stamp"), "time"),
                    str(activity) if activity.children else None))
        self.counts["users"] += 1
        self.importRoster(user, localpart)
        self.importXML(user, localpart)
        self.importOffline(user, localpart)
        self.importPrivacy(user, localpart)
        self.importPEP(user, localpart)

    def localpartOf(self, name) -> str:
        """
        The prepared localpart of a C{<user name/>} (XEP-0227 §4.2: the
        node part of the JID), refused as C{admin adduser} refuses it: an
        C{<id>-<otherApp>} name too (security review of issue 18, finding 6).
        """
        from xmppchat.usernames import AdminError, newLocalpartOf, serverAppId

        try:
            return newLocalpartOf(name, self.domain, serverAppId(self.config))
        except AdminError as e:
            raise ArchiveError(f"{SERVER_DATA}: {name!r} is not a user name here: {e}") from None

    def accountFields(self, name, info) -> dict:
        """
        The login, e-mail and external id of C{<account/>}, checked with the
        REST API's own rules (security review of issue 18, finding 6).
        """
        from xmppchat.api.json import EXTERNAL_ID, ApiError
        from xmppchat.api.users import _email, _login, _matching

        data = {"login": info.getAttribute("login"), "email": info.getAttribute("email"),
                "external_user_id": info.getAttribute("external-id")}
        try:
            return {"login": _login(data), "email": _email(data),
                    "externalId": _matching(data, "external_user_id", EXTERNAL_ID, "is not an external id")}
        except ApiError as e:
            problems = "; ".join(f"{field} {text}" for field, texts in e.errors.items() for text in texts)
            raise ArchiveError(f"{SERVER_DATA}: {name!r}: {problems}") from None

    def credentials(self, user) -> dict | None:
        """
        XEP-0227 §4.2: the SCRAM keys, or keys derived from a plaintext
        C{password} attribute; C{None} (a warning) for an account that has
        neither both hashes nor a password.
        """
        from xmppchat.auth.credentials import FORMAT_VERSION, Credentials, deriveCredentials

        keys = {}
        for scram in _children(user, NS_SCRAM, "scram-credentials"):
            hashName = MECHANISMS.get(scram.getAttribute("mechanism"))
            if hashName is not None:
                text = {c.name: str(c).strip() for c in scram.elements()}
                keys[hashName] = {"iterations": _number(text.get("iter-count"), "iter-count", int),
                                  "salt": text.get("salt"), "storedKey": text.get("stored-key"),
                                  "serverKey": text.get("server-key")}
        name = user.getAttribute("name")
        if len(keys) == len(MECHANISMS):
            credentials = {"version": FORMAT_VERSION, **keys}
            try:
                Credentials.fromDict(credentials)
            except ValueError as e:
                raise ArchiveError(f"{name}: unusable SCRAM credentials: {e}") from None
            return credentials
        password = user.getAttribute("password")
        if password:
            try:
                return deriveCredentials(password).toDict()
            except ValueError as e:
                raise ArchiveError(f"{name}: unusable password: {e}") from None
        if keys:
            self.warnings.append(f"{name}: only {', '.join(sorted(keys))} SCRAM keys; this server"
                                 " needs SHA-1 and SHA-256: set a password with 'admin passwd'")
        return None

    def importRoster(self, user, localpart) -> None:
        from xmppchat.storage.interfaces import RosterItem

        items = {}
        roster = _child(user, NS_ROSTER, "query")
        for element in _children(roster, NS_ROSTER, "item") if roster is not None else ():
            jid = element.getAttribute("jid")
            items[jid] = RosterItem(
                jid=jid, name=element.getAttribute("name"),
                groups=[str(g) for g in _children(element, NS_ROSTER, "group")],
                subscription=element.getAttribute("subscription", "none"),
                ask=element.getAttribute("ask"))
        for request in _children(user, NS_CLIENT, "presence"):
            jid = request.getAttribute("from", "").partition("/")[0]
            if request.getAttribute("type") == "subscribe" and jid:
                item = items.setdefault(jid, RosterItem(jid=jid, hidden=True))
                item.pendingIn = True
        for item in items.values():
            result(self.storage.roster.setRosterItem(localpart, item))

    def importXML(self, user, localpart) -> None:
        from xmppchat.storage.userxml.interface import PRIVATE, VCARD

        vcard = _child(user, NS_VCARD, "vCard")
        if vcard is not None:
            result(self.storage.userXML.setXML(localpart, VCARD, "", vcard.toXml()))
        private = _child(user, NS_PRIVATE, "query")
        for element in private.elements() if private is not None else ():
            result(self.storage.userXML.setXML(localpart, PRIVATE, f"{element.name}:{element.uri}",
                                              element.toXml()))

    def importOffline(self, user, localpart) -> None:
        from xmppchat.modules.smacks import withoutOwnDelay
        from xmppchat.storage.interfaces import OfflineShares

        container = _child(user, NS_PIE, "offline-messages")
        for stanza in container.elements() if container is not None else ():
            stanza, stamp = withoutOwnDelay(stanza, self.domain)
            sender = stanza.getAttribute("from", "").partition("/")[0] or None
            result(self.storage.offline.storeOffline(localpart, stanza.toXml(), stamp or 0.0, None,
                                                    OfflineShares(sender)))

    def importPrivacy(self, user, localpart) -> None:
        from xmppchat.modules.privacy import MAX_ORDER, parseItems
        from xmppchat.stanzas import StanzaError

        query = _child(user, NS_PRIVACY, "query")
        if query is None:
            return
        for element in _children(query, NS_PRIVACY, "list"):
            try:
                items = parseItems(element, MAX_ORDER, MAX_ORDER)
            except StanzaError as e:
                raise ArchiveError(f"{localpart}: privacy list {element.getAttribute('name')!r}:"
                                   f" {e.text or e.condition}") from None
            result(self.storage.privacy.setPrivacyList(localpart, element.getAttribute("name"), items))
        default = _child(query, NS_PRIVACY, "default")
        if default is not None and default.getAttribute("name"):
            result(self.storage.privacy.setDefaultPrivacyList(localpart, default["name"]))

    def importPEP(self, user, localpart) -> None:
        from xmppchat.pep.nodeconfig import (NS_NODE_CONFIG, NS_PUBSUB, defaultConfig, formValues,
                                             parseOptions)

        maxItems = self.config.pep.max_items_per_node
        configs = {}
        owner = _child(user, NS_PUBSUB_OWNER, "pubsub")
        for configure in _children(owner, NS_PUBSUB_OWNER, "configure") if owner is not None else ():
            form = _child(configure, "jabber:x:data", "x")
            configs[configure.getAttribute("node")] = {
                **defaultConfig(), **parseOptions(formValues(form, NS_NODE_CONFIG), maxItems, False)}
        published = _child(user, NS_PUBSUB, "pubsub")
        for items in _children(published, NS_PUBSUB, "items") if published is not None else ():
            configs.setdefault(items.getAttribute("node"), defaultConfig())
        for node, nodeConfig in configs.items():
            result(self.storage.pep.createNode(localpart, node, nodeConfig, 0))
        for items in _children(published, NS_PUBSUB, "items") if published is not None else ():
            node = items.getAttribute("node")
            for item in _children(items, NS_PUBSUB, "item"):
                payload = next(item.elements(), None)
                if payload is not None:
                    result(self.storage.pep.publishItem(
                        localpart, node, item.getAttribute("id"), payload.toXml(),
                        item.getAttribute("publisher"), configs[node]["max_items"]))

    def readChatData(self, path: str) -> None:
        """
        Load the lines of C{chat.jsonl}; a dialog's messages go in batches
        of up to L{PAGE}, one write each.
        """
        from xmppchat.storage.interfaces import Blob, Dialog, Message, Record
        from xmppchat.storage.portable.interface import DialogUserState

        port = self.storage.portable
        loaders = {
            "dialog": (Dialog, port.loadDialog, "dialogs"),
            "blob": (Blob, port.loadBlob, "blobs"),
            "record": (Record, port.loadRecord, "records"),
        }
        batch: list = []

        def flush():
            if batch:
                result(port.loadMessages(batch))
                self.counts["messages"] += len(batch)
                batch.clear()

        with open(path, encoding="utf-8") as lines:
            for number, text in enumerate(lines, 1):
                try:
                    record = json.loads(text)
                    kind = record.pop("kind")
                    _checkIds(kind, record)
                    if kind == "message":
                        # the order is the loading store's own
                        record.update(order=0, reactions={e: set(ids) for e, ids
                                                          in record["reactions"].items()})
                        batch.append(Message(**record))
                        if len(batch) >= PAGE:
                            flush()
                        continue
                    flush()
                    if kind == "state":
                        dialogId = record.pop("dialogId")
                        result(port.loadDialogState(dialogId, DialogUserState(**record)))
                        continue
                    if kind == "setting":  # checked as the config's when the server starts
                        result(self.storage.settings.putSetting(record["name"], record["value"]))
                        self.counts["settings"] += 1
                        continue
                    dataclass, load, counter = loaders[kind]
                    result(load(dataclass(**record)))
                    self.counts[counter] += 1
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise ArchiveError(f"{CHAT_DATA}:{number}: {type(e).__name__}: {e}") from None
            flush()


@reported
def export(storage, config, path: str) -> dict:
    """
    Write the deployment on C{storage} to the archive C{path}; returns the
    manifest.
    """
    return Exporter(storage, config).run(path)


@reported
def importArchive(storage, config, path: str) -> Importer:
    """
    Load the archive C{path} into the empty C{storage}; returns the
    L{Importer} with its C{counts} and C{warnings}.
    """
    importer = Importer(storage, config)
    importer.run(path)
    return importer
