"""
XEP-0313: Message Archive Management (urn:xmpp:mam:2),
https://xmpp.org/extensions/xep-0313.html, with XEP-0059 Result Set
Management paging, https://xmpp.org/extensions/xep-0059.html, over the
dialog history.

- C{<iq type="set"><query xmlns="urn:xmpp:mam:2"/></iq>} to one's own
  account with a C{with} field: a user's JID gives the private dialog
  with that user, a room JID C{<appId>_<dialogId>@muc.<domain>} that
  dialog; the same query sent to a room JID (the C{muc-iq-set/room} event)
  searches that room.  Without C{with} on the account (§4): every dialog
  the user may read (private and group dialogs they occupy), at most the
  C{dialogs.mam_max_dialogs} most recently active ones, in one indexed
  storage query; the account advertises C{urn:xmpp:mam:2} and
  C{urn:xmpp:sid:0}.
- Fields C{start}/C{end} (XEP-0082 date-times) filter on C{date_sent};
  RSM C{<max/>} (default C{dialogs.mam_default_page}, capped at
  C{dialogs.mam_max_page}), C{<after/>} and C{<before/>} (empty: the last
  page) page through it by message id; an unknown id is C{item-not-found}.
- Each result is C{<message><result queryid id><forwarded><delay/><message
  .../></forwarded></result></message>} (the stored message as the SDK
  receives it; a stock client's message as it was received, kept verbatim
  with its encrypted payload, OOB url, reply... (§4.1, issue 16), unless
  it was edited since), then the IQ result C{<fin complete><set><first/><last/>
  <count/></set></fin>}.
- Only dialogs the user may read (occupants; anyone for public dialogs);
  messages the user deleted or cleared are left out.
- C{<iq type="get">} returns the search form (§6.1).
"""

from __future__ import annotations

import calendar
import time

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.dialogs.addressing import appIdOf, parseRoom, roomJID
from xmppchat.dialogs.rules import canRead
from xmppchat.dialogs.wire import messageStanza
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.messageinfo import NS_FORWARD, NS_SID
from xmppchat.modules.base import Module, hook
from xmppchat.modules.dialogs import dialogsOf
from xmppchat.muc.service import RoomEvent
from xmppchat.stanzas import NS_CLIENT, StanzaError, delayElement
from xmppchat.xmlstream import parseElement
from xmppchat.storage.interfaces import DIALOG_PRIVATE, Query, isObjectId

NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
SLACK = 20  # extra rows fetched so messages created in the same instant page correctly


def parseTime(value: str, name: str) -> int:
    """
    XEP-0082 C{CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm)} to POSIX seconds.
    """
    text = value.strip()
    offset = 0
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "+" else -1
        offset = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
        text = text[:-6]
    text = text.split(".")[0]
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) - offset
    except (ValueError, OverflowError):
        raise StanzaError("bad-request", text=f"{name} is not a XEP-0082 date-time") from None


def formFields(query) -> dict:
    out = {}
    for x in query.elements(NS_DATA, "x"):
        for field in x.elements(NS_DATA, "field"):
            var = field.getAttribute("var")
            for value in field.elements(NS_DATA, "value"):
                out[var] = str(value)
    return out


def searchForm() -> domish.Element:
    query = domish.Element((NS_MAM, "query"))
    form = query.addElement((NS_DATA, "x"))
    form["type"] = "form"
    for var, kind, value in (("FORM_TYPE", "hidden", NS_MAM), ("with", "jid-single", None),
                             ("start", "text-single", None), ("end", "text-single", None)):
        field = form.addElement("field")
        field["var"], field["type"] = var, kind
        if value:
            field.addElement("value", content=value)
    return query


class MAMModule(Module):
    """
    XEP-0313 §4-§6 queries on dialog history.
    """

    name = "mam"
    features = (NS_MAM,)
    roomFeatures = features
    accountFeatures = (NS_MAM, NS_SID)

    @hook(f"iq-get/self/{NS_MAM}:query")
    @hook(f"muc-iq-get/room/{NS_MAM}:query")
    def onForm(self, event):
        return self.reply(event, searchForm())

    @hook(f"iq-set/self/{NS_MAM}:query")
    @hook(f"muc-iq-set/room/{NS_MAM}:query")
    def onQuery(self, event):
        if event.origin is None or event.origin.account is None:
            raise StanzaError("forbidden")
        return self.query(event)

    @defer.inlineCallbacks
    def resolve(self, event, fields):
        """
        C{(dialogs, archive JID, appId)} of a query: the room's dialog, the
        dialog with C{with} (none when the user has none with that
        peer), or without C{with} on the account (XEP-0313 §4) the
        user's C{dialogs.mam_max_dialogs} most recently active dialogs.
        """
        dialogs = dialogsOf(self.host)
        session = event.origin
        if isinstance(event, RoomEvent):
            dialog = yield dialogs.roomDialog(event)
            return [dialog], event.room, event.appId
        peer = fields.get("with")
        if not peer:
            found = yield self.storage.dialogs.listDialogs(session.account.id, Query(
                sort="updated_at", descending=True, limit=self.host.config.dialogs.mam_max_dialogs))
            readable = [d for d in found if canRead(d, session.account.id)]
            return readable, session.bare, appIdOf(session.localpart)
        try:
            peerJID = parseJID(peer)
        except InvalidJID:
            raise StanzaError("jid-malformed", text="Invalid 'with' JID") from None
        if peerJID.host == dialogs.mucDomain:
            parsed = parseRoom(peerJID.user)
            if parsed is None:
                raise StanzaError("item-not-found", text="Not a dialog room JID")
            dialogs.checkAppId(parsed[0])
            dialog = yield dialogs.getDialog(parsed[1])
            return [dialog], roomJID(parsed[0], dialog.id, dialogs.mucDomain), parsed[0]
        peerId = yield dialogs.directory.idOf(peerJID.userhost())
        if peerId is None:
            raise StanzaError("item-not-found", text="No such user")
        dialog = yield self.storage.dialogs.findPrivateDialog(session.account.id, peerId)
        return [dialog] if dialog is not None else [], session.bare, appIdOf(session.localpart)

    @defer.inlineCallbacks
    def query(self, event):
        session, iq = event.origin, event.stanza
        userId = session.account.id
        element = iq.query
        fields = formFields(element)
        found, archive, appId = yield self.resolve(event, fields)
        for dialog in found:
            if not canRead(dialog, userId):
                raise StanzaError("forbidden", text="You are not an occupant of this dialog")
        config = self.host.config.dialogs
        limit, after, before = config.mam_default_page, None, None
        for rsm in element.elements(NS_RSM, "set"):
            for child in rsm.elements():
                if child.name == "max":
                    try:
                        limit = max(0, min(int(str(child)), config.mam_max_page))
                    except ValueError:
                        raise StanzaError("bad-request", text="<max/> must be a number") from None
                elif child.name == "after":
                    after = str(child).strip()
                elif child.name == "before":
                    before = str(child).strip()
        filters = Query()
        if fields.get("start"):
            filters.where("date_sent", "gte", parseTime(fields["start"], "start"))
        if fields.get("end"):
            filters.where("date_sent", "lte", parseTime(fields["end"], "end"))
        queryId = element.getAttribute("queryid")
        if not found:
            return self.finish(event, [], True, 0)
        byId = {dialog.id: dialog for dialog in found}
        ids = list(byId) if len(byId) > 1 else found[0].id
        messages = self.storage.messages
        count = yield messages.countMessages(ids, userId, filters)
        ref = None
        for refId in (after, before):
            if refId:
                ref = yield messages.getMessage(refId.lower(), userId) if isObjectId(refId) else None
                if ref is None or ref.dialogId not in byId:
                    raise StanzaError("item-not-found", text=f"No message {refId} in this archive")
        page = Query(list(filters.filters), sort="created_at", limit=limit + 1 + SLACK)
        backwards = before is not None
        if backwards:
            page.descending = True
            if ref is not None:
                page.where("created_at", "lte", ref.createdAt)
        elif ref is not None:
            page.where("created_at", "gte", ref.createdAt)
        found = yield messages.listMessages(ids, userId, page)
        found.sort(key=lambda m: m.order)
        if ref is not None:
            found = [m for m in found if (m.order < ref.order if backwards else m.order > ref.order)]
        if backwards:
            items, complete = found[-limit:] if limit else [], len(found) <= limit
        else:
            items, complete = found[:limit], len(found) <= limit
        yield self.sendResults(session, byId, archive, appId, items, queryId)
        return self.finish(event, items, complete, count)

    @defer.inlineCallbacks
    def sendResults(self, session, byId, archive, appId, items, queryId):
        dialogs = dialogsOf(self.host)
        jids = yield dialogs.directory.jidsOf({m.senderId for m in items} | {
            m.recipientId for m in items if m.recipientId is not None})
        appId = appId or dialogs.defaultAppId()
        for message in items:
            dialog = byId[message.dialogId]
            stanza = self.verbatim(message)
            if stanza is None and dialog.type == DIALOG_PRIVATE:
                stanza = messageStanza(message, jids.get(message.senderId), jids.get(message.recipientId),
                                       "chat", dialog.id)
            elif stanza is None:
                room = roomJID(appId, dialog.id, dialogs.mucDomain)
                stanza = messageStanza(message, f"{room}/{message.senderId}", None, "groupchat", dialog.id)
            wrapper = domish.Element((NS_CLIENT, "message"))
            wrapper["to"] = session.full
            wrapper["from"] = archive
            result = wrapper.addElement((NS_MAM, "result"))
            if queryId:
                result["queryid"] = queryId
            result["id"] = message.id
            forwarded = result.addElement((NS_FORWARD, "forwarded"))
            forwarded.addChild(delayElement(message.createdAt or message.dateSent, archive))
            forwarded.addChild(stanza)
            session.send(wrapper)

    def verbatim(self, message) -> domish.Element | None:
        """
        The stock client's message kept verbatim (L{Message.stanza}), or
        C{None} when there is none, it was edited since (over REST: the
        rebuilt message shows the edit) or it cannot be read back.
        """
        if message.stanza is None or message.edited:
            return None
        try:
            return parseElement(message.stanza)
        except Exception:
            self.log.error("Unreadable archived stanza of message {id}", id=message.id)
            return None

    def finish(self, event, items, complete: bool, count: int) -> bool:
        fin = domish.Element((NS_MAM, "fin"))
        fin["complete"] = "true" if complete else "false"
        rsm = fin.addElement((NS_RSM, "set"))
        if items:
            rsm.addElement("first", content=items[0].id)
            rsm.addElement("last", content=items[-1].id)
        rsm.addElement("count", content=str(count))
        return self.reply(event, fin)
