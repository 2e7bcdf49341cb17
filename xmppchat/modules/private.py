"""
Private XML storage and bookmarks (issue 16 item 3):

- XEP-0049 Private XML Storage, https://xmpp.org/extensions/xep-0049.html:
  a user stores one element per name and namespace (§2.1, an IQ set with
  no C{to} or to his bare JID) and reads it back (§2.2; what was never
  stored is answered with the empty element asked for).  Setting an empty
  element deletes it, as Prosody does.  A query without exactly one
  child, or one in a C{jabber:*} namespace (§3), and an element larger
  than C{[quotas] private_max_bytes} get C{not-acceptable}; a new
  namespace beyond C{private_namespaces_per_user} C{resource-constraint};
  another user's storage C{forbidden} (§3).
- XEP-0411 Bookmarks Conversion, https://xmpp.org/extensions/xep-0411.html
  (with the C{pep} module; as Prosody 0.12's mod_bookmarks): the
  C{storage:bookmarks} element of private storage is a view of the
  user's XEP-0402 PEP node C{urn:xmpp:bookmarks:1}.  Setting it publishes
  one item per conference (item id: the room JID; node options
  whitelist, persisted, C{max} items) for each new or changed one and
  retracts the items of conferences no longer listed; reading it builds
  the element from the node's items, so bookmarks a XEP-0402 client
  published are seen by a XEP-0049 client.  XEP-0048 C{<url/>} bookmarks
  have no XEP-0402 form and are not kept.  XEP-0048 over PEP (node
  C{storage:bookmarks}, XEP-0411 §3 and §4) is the same view: an items
  get of that node on the own account answers one item C{current} with
  the C{<storage/>} built from the XEP-0402 items, a publish to it is
  converted as a private-storage set (issue 16 review finding 2); the
  owner's resources with C{storage:bookmarks+notify} hear of each change
  of the XEP-0402 node as that C{<storage/>} (the XEP-0048 broadcast).  The
  account advertises C{urn:xmpp:bookmarks-conversion:0},
  C{urn:xmpp:bookmarks:1#compat} and C{urn:xmpp:bookmarks:1#compat-pep}.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import hook
from xmppchat.modules.pepbridge import PEPBridge
from xmppchat.pep.nodeconfig import NS_PUBSUB
from xmppchat.pep.service import wants
from xmppchat.stanzas import StanzaError
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.userxml.interface import PRIVATE
from xmppchat.xmlstream import parseElement

NS_PRIVATE = "jabber:iq:private"
NS_LEGACY_BOOKMARKS = "storage:bookmarks"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_BOOKMARKS_CONVERSION = "urn:xmpp:bookmarks-conversion:0"
BOOKMARK_OPTIONS = {
    "pubsub#persist_items": "true",
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
    "pubsub#access_model": "whitelist",
}
TRUE = ("true", "1")


def childText(element, name: str) -> str | None:
    for c in element.elements():
        if c.name == name:
            return str(c)
    return None


def conferenceOf(conference) -> dict:
    """
    The fields of a XEP-0048 or XEP-0402 C{<conference/>}: C{name},
    C{autojoin} (C{"true"}/C{"false"}), C{nick}, C{password}.
    """
    return {"name": conference.getAttribute("name"),
            "autojoin": "true" if conference.getAttribute("autojoin") in TRUE else "false",
            "nick": childText(conference, "nick"), "password": childText(conference, "password")}


def conferenceElement(uri: str, fields: dict) -> domish.Element:
    """
    A C{<conference/>} in namespace C{uri} (XEP-0048 §3.2, XEP-0402 §3).
    """
    conference = domish.Element((uri, "conference"))
    if fields["name"] is not None:
        conference["name"] = fields["name"]
    conference["autojoin"] = fields["autojoin"]
    for name in ("nick", "password"):
        if fields[name] is not None:
            conference.addElement(name, content=fields[name])
    return conference


def conferences(storage) -> dict[str, dict]:
    """
    The conferences of a XEP-0048 C{<storage/>}: room JID -> fields (the
    last of two with the same JID wins); C{jid-malformed} for a bad JID.
    """
    found = {}
    for c in storage.elements():
        if c.name != "conference" or c.uri != NS_LEGACY_BOOKMARKS:
            continue
        try:
            room = parseJID(c.getAttribute("jid", "")).full()
        except InvalidJID:
            raise StanzaError("jid-malformed", text="A conference bookmark has a bad JID") from None
        found[room] = conferenceOf(c)
    return found


def legacyStorage(items) -> domish.Element:
    """
    XEP-0048's C{<storage/>} from XEP-0402 items C{[(room JID, payload)]}.
    """
    storage = domish.Element((NS_LEGACY_BOOKMARKS, "storage"))
    for room, payload in items:
        conference = conferenceElement(NS_LEGACY_BOOKMARKS, conferenceOf(payload))
        conference["jid"] = room
        storage.addChild(conference)
    return storage


class PrivateModule(PEPBridge):
    """
    XEP-0049 and XEP-0411 (see the module docstring).
    """

    name = "private"
    features = (NS_PRIVATE,)
    conversionFeatures = (NS_BOOKMARKS_CONVERSION, NS_BOOKMARKS + "#compat", NS_BOOKMARKS + "#compat-pep")

    def _element(self, event):
        """
        The one element of the query and its storage key (§3 checks).
        """
        query = event.stanza.query
        elements = list(query.elements())
        if len(elements) != 1:
            raise StanzaError("not-acceptable", text="The query must hold exactly one element")
        element = elements[0]
        if not element.uri or element.uri.startswith("jabber:"):
            raise StanzaError("not-acceptable", text="Reserved or missing namespace")
        return element, f"{element.name}:{element.uri}"

    def _result(self, event, element):
        query = domish.Element((NS_PRIVATE, "query"))
        query.addChild(element)
        return self.reply(event, query)

    @hook(f"iq-get/self/{NS_PRIVATE}:query")
    @defer.inlineCallbacks
    def onGet(self, event):
        session = self.requireSession(event)
        element, key = self._element(event)
        if self._bookmarks(element):
            storage = yield self._legacyBookmarks(session.localpart)
            return self._result(event, storage)
        text = yield self.storage.userXML.getXML(session.localpart, PRIVATE, key)
        if text is None:
            return self._result(event, domish.Element((element.uri, element.name)))
        return self._result(event, parseElement(text, element.uri))

    @hook(f"iq-set/self/{NS_PRIVATE}:query")
    def onSet(self, event):
        session = self.requireSession(event)
        element, key = self._element(event)
        text = self._checkSize(element)
        if self._bookmarks(element):
            return self._convertBookmarks(event, session, element)
        d = self.storage.userXML.setXML(session.localpart, PRIVATE, key, text,
                                        self.host.config.quotas.private_namespaces_per_user)
        d.addErrback(self._quota)
        return d.addCallback(lambda _: self.reply(event))

    def _checkSize(self, element) -> str | None:
        """
        The XML to store for C{element} (C{None}: empty, a delete);
        C{not-acceptable} past C{[quotas] private_max_bytes}.
        """
        if not (element.children or element.attributes):
            return None
        text = element.toXml()
        limit = self.host.config.quotas.private_max_bytes
        if limit and len(text.encode("utf-8")) > limit:
            raise StanzaError("not-acceptable", text=f"Element too large (at most {limit} bytes)")
        return text

    @staticmethod
    def _quota(failure):
        failure.trap(QuotaExceeded)
        raise StanzaError("resource-constraint", text=f"Too many private namespaces: {failure.value}")

    @hook(f"iq-get/bare/{NS_PRIVATE}:query")
    @hook(f"iq-set/bare/{NS_PRIVATE}:query")
    def onOther(self, event):
        raise StanzaError("forbidden", text="Private storage belongs to its owner only")

    # -- XEP-0411 ------------------------------------------------------------

    def _bookmarks(self, element) -> bool:
        return element.name == "storage" and element.uri == NS_LEGACY_BOOKMARKS and self.pep is not None

    def _legacyBookmarks(self, localpart: str) -> defer.Deferred:
        """
        XEP-0411 §3: the XEP-0048 C{<storage/>} built from the XEP-0402 items.
        """
        d = self.pep.getItems(localpart, NS_BOOKMARKS)
        return d.addCallback(lambda items: legacyStorage(reversed(items)))

    def _convertBookmarks(self, event, session, storage) -> defer.Deferred:
        """
        XEP-0411 §4: a XEP-0048 C{<storage/>} set (private storage or PEP)
        becomes the XEP-0402 items, under the user's lock.
        """
        wanted = conferences(storage)
        return self.locks.run(session.localpart, self._setBookmarks, event, session.localpart, wanted)

    @staticmethod
    def _legacyPEP(event, action: str):
        """
        The C{<items/>} or C{<publish/>} of a pubsub IQ on the own account's
        node C{storage:bookmarks}, else C{None} (for the C{pep} module).
        """
        pubsub = event.stanza.pubsub
        first = next(iter(pubsub.elements()), None) if pubsub is not None else None
        if first is None or first.name != action or first.getAttribute("node") != NS_LEGACY_BOOKMARKS:
            return None
        return first

    @hook(f"iq-get/self/{NS_PUBSUB}:pubsub", priority=10)
    def onLegacyPEPGet(self, event):
        """
        XEP-0411 §3 (as Prosody's mod_bookmarks): the items of
        C{storage:bookmarks} are one item C{current}, made from XEP-0402.
        """
        if self.pep is None or self._legacyPEP(event, "items") is None:
            return None
        session = self.requireSession(event)

        def answer(storage):
            pubsub = domish.Element((NS_PUBSUB, "pubsub"))
            items = pubsub.addElement("items")
            items["node"] = NS_LEGACY_BOOKMARKS
            item = items.addElement("item")
            item["id"] = "current"
            item.addChild(storage)
            return self.reply(event, pubsub)

        return self._legacyBookmarks(session.localpart).addCallback(answer)

    @hook(f"iq-set/self/{NS_PUBSUB}:pubsub", priority=10)
    def onLegacyPEPSet(self, event):
        """
        XEP-0411 §4: a publish of a XEP-0048 C{<storage/>} to
        C{storage:bookmarks} is converted to XEP-0402 (the item id and
        publish-options are ignored, as Prosody does).
        """
        publish = self._legacyPEP(event, "publish") if self.pep is not None else None
        if publish is None:
            return None
        session = self.requireSession(event)
        item = next((c for c in publish.elements() if c.name == "item"), None)
        storage = next((c for c in item.elements() if c.name == "storage" and c.uri == NS_LEGACY_BOOKMARKS),
                       None) if item is not None else None
        if storage is None:
            raise StanzaError("bad-request", text="Publish one item with a storage:bookmarks <storage/>")
        self._checkSize(storage)
        return self._convertBookmarks(event, session, storage)

    @hook("pep-published")
    @hook("pep-retracted")
    def onBookmarksChanged(self, event):
        """
        XEP-0411 compat-pep: a change of the XEP-0402 node goes to the
        owner's resources that want C{storage:bookmarks+notify} as one
        XEP-0048 item C{current} (only the owner's: the node is private).
        """
        if event.node != NS_BOOKMARKS or self.pep is None:
            return None
        owner = event.owner
        sessions = [s for s in self.host.sessions.sessionsOf(f"{owner}@{self.host.domain}")
                    if wants(s, NS_LEGACY_BOOKMARKS)]
        if not sessions:
            return None
        service = self.pep.service

        def send(storage):
            notice = service._itemsEvent(NS_LEGACY_BOOKMARKS, "current", storage, {})
            for session in sessions:
                if not session.closed:
                    session.send(service.message(owner, session.full, notice))

        self._legacyBookmarks(owner).addCallback(send).addErrback(
            lambda f: self.log.failure("The XEP-0048 bookmarks broadcast of {user} failed", f, user=owner))
        return None

    @defer.inlineCallbacks
    def _setBookmarks(self, event, localpart: str, wanted: dict):
        """
        Bring the XEP-0402 node in line with the XEP-0048 list C{wanted}.
        """
        pep = self.pep
        current = {room: conferenceOf(payload)
                   for room, payload in (yield pep.getItems(localpart, NS_BOOKMARKS))}
        for room, fields in wanted.items():
            if current.get(room) != fields:
                yield pep.publish(localpart, NS_BOOKMARKS, conferenceElement(NS_BOOKMARKS, fields), room, dict(BOOKMARK_OPTIONS))
        for room in current:
            if room not in wanted:
                yield pep.retract(localpart, NS_BOOKMARKS, room)
        return self.reply(event)
