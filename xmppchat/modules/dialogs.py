"""
Dialog messaging over XMPP: ConnectyCube chat messages (SDK reference
§5.2-§5.4, §5.10, §5.20) checked, stamped, stored in the dialog history and
delivered to the dialog's occupants; XEP-0359 stanza ids
(https://xmpp.org/extensions/xep-0359.html).

Private messages: a C{chat} message to a user with an C{<extraParams/>}
carrying C{dialog_id} or C{save_to_history=1} is checked (the dialog must be
private and hold both users: C{forbidden} / C{not-acceptable} otherwise;
without C{dialog_id} the pair's private dialog is found or created),
stamped and, with C{save_to_history=1}, stored: this handler is the store
stage of the router's message pipeline (L{xmppchat.router}), which pauses
the message meanwhile and then lets it go on through the next
C{message/*} handlers (carbons, push) to delivery, like any message.
A stock client's C{chat} or C{normal} message with a body (or an end-to-end
encrypted payload) and no C{extraParams} is stored in the pair's private
dialog too, with its XML kept verbatim for MAM (issue 16, XEP-0313;
C{dialogs.archive_chat}), see L{DialogsModule.archiveChat}.

Group messages: a C{groupchat} message to a room JID
C{<appId>_<dialogId>@muc.<domain>} (the C{muc-message/room} event of
L{xmppchat.muc.service}) needs no join.  Who may post, type or mark is
L{xmppchat.dialogs.rules} (the same answer as over REST: anyone in a
public dialog, only the owner and admins in a broadcast).  Copies go
C{from} C{<room>/<senderId>}, type C{groupchat}, to every recipient, the
sender's sessions included (reflection), through
L{xmppchat.modules.dialogfanout} (offline lane, broadcasts, XEP-0045
joined sessions, privacy lists).  Standalone chat states in a room are
passed to the other occupants' sessions only (never stored); headline
(system) messages to a room go to the occupants' sessions from the
sender's JID, never stored.

Stamps: the message id is the client's 24-hex id (kept, stored
lower-case) or a generated one; C{<stanza-id by=...>} (the recipient's
bare JID, or the room) replaces any the client sent; C{<date_sent>} (server
clock) goes into C{extraParams}, with C{dialog_id} when missing.

Also here: persisting XEP-0333 markers (the C{marker-received} event of
L{xmppchat.modules.markers}: a marker for a message moves the reader's
delivered/read watermark up to it), the C{dialog-consent} and
C{notifications-enabled} question hooks.  REST changes reach XMPP
through L{xmppchat.modules.dialogrest}.  The domain (rules, find-or-create
of private dialogs, storing, limits) is L{xmppchat.dialogs}; this module
is its XMPP adapter, whose L{xmppchat.dialogs.errors} become stanza
errors (L{xmppchat.modules.base}).  Account ids map to JIDs through the
account store with a bounded cache (L{AccountDirectory}).
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat.dialogs.addressing import AccountDirectory, appIdOf
from xmppchat.dialogs import rules
from xmppchat.dialogs.service import MAX_BODY, DialogService
from xmppchat.dialogs.wire import (
    addStanzaId,
    changeOf,
    extraParams,
    hasContent,
    paramsToDict,
    setParam,
)
from xmppchat.messageinfo import NS_SID, forget, messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.modules.dialogfanout import DialogFanOut
from xmppchat.modules.dialogrest import RestBridge
from xmppchat.modules.chatstates import stripChatStates, typingHidden
from xmppchat.modules.markers import hidesRead
from xmppchat.modules.message import stampDateSent
from xmppchat.muc.service import RoomEvent
from xmppchat.quotas import resourceConstraint
from xmppchat.stanzas import StanzaError
from xmppchat.storage.interfaces import (
    DIALOG_BROADCAST,
    DIALOG_PRIVATE,
    QuotaExceeded,
    isObjectId,
    newObjectId,
)

log = Logger()

LOCK = "dialogs-order"
# End-to-end encrypted payloads (XEP-0384 OMEMO, XEP-0373/0027 OpenPGP): archived
# with the stanza kept verbatim; the body stored for REST history, the dialog
# list and push is the message's fallback body, or ENCRYPTED_BODY without one.
ENCRYPTED = frozenset((("eu.siacs.conversations.axolotl", "encrypted"), ("urn:xmpp:omemo:2", "encrypted"),
                       ("urn:xmpp:openpgp:0", "openpgp"), ("jabber:x:encrypted", "x")))
ENCRYPTED_BODY = "Encrypted message"


def encrypted(stanza) -> bool:
    """
    Whether a message carries an end-to-end encrypted payload (L{ENCRYPTED}).
    """
    return any((c.uri, c.name) in ENCRYPTED for c in stanza.elements())


def changeIn(event, kinds) -> domish.Element | None:
    """
    The child of C{kinds} (C{(uri, name)} pairs) when C{event} is a client's
    1-1 C{chat} (or C{normal}) to a user or C{groupchat} to a room that carries one, not
    handled by the dialog layer; else C{None}.
    """
    origin, stanza = event.origin, event.stanza
    if origin is None or origin.account is None:
        return None
    if isinstance(event, RoomEvent):
        if event.stanzaType != "groupchat":
            return None
    elif event.stanzaType not in ("chat", "normal") or event.to is None or event.to.user is None:
        return None
    for child in stanza.elements():
        if (child.uri, child.name) in kinds:
            return child
    return None


# -- the module -------------------------------------------------------------------------


class DialogsModule(DialogFanOut, RestBridge, Module):
    """
    Dialog messages: checks, stamps, history, fan-out, markers, REST
    delivery and the dialog question hooks.
    """

    name = "dialogs"
    features = (NS_SID,)
    roomFeatures = features

    def setUp(self):
        self.config = self.host.config.dialogs
        self.mucDomain = self.host.config.server.muc_domain
        self.directory = AccountDirectory(self.storage.accounts, self.host.domain,
                                          self.config.account_cache_size)
        self.service = DialogService(self.storage, self.host.config.quotas)
        clock = self.host.clock
        self.cooperator = task.Cooperator(scheduler=lambda f: clock.callLater(0, f))

    def tearDown(self):
        self.cooperator.stop()

    # -- dialogs and rules ---------------------------------------------------------

    def defaultAppId(self) -> int:
        apps = getattr(getattr(self.host.config, "rest", None), "apps", None) or []
        for app in apps:
            if isinstance(app, dict) and isinstance(app.get("application_id"), int):
                return app["application_id"]
        return 1

    def checkAppId(self, appId: int) -> None:
        """
        A room JID must name this server's application (one per server,
        issue 15 finding 2): C{item-not-found} otherwise.
        """
        if appId != self.defaultAppId():
            raise StanzaError("item-not-found", text=f"No application {appId} on this server")

    def getDialog(self, dialogId: str | None):
        return self.service.getDialog(dialogId)

    @defer.inlineCallbacks
    def roomDialog(self, event: RoomEvent):
        """
        The dialog of a room event: it exists, is not private, and the room
        JID names the sender's application (accounts C{<id>-<appId>}).
        """
        self.checkAppId(event.appId)
        origin = event.origin
        app = appIdOf(origin.localpart) if origin is not None else None
        if app is not None and app != event.appId:
            raise StanzaError("item-not-found", text=f"No such room in application {app}")
        dialog = yield self.getDialog(event.dialogId)
        if dialog.type == DIALOG_PRIVATE:
            raise StanzaError("not-acceptable",
                              text="A private dialog has no room: send chat messages to the user")
        return dialog

    @defer.inlineCallbacks
    def privateDialog(self, event, dialogId: str | None, create: bool = False):
        """
        C{(dialog, senderId, recipientId)} for a 1-1 message: the dialog
        named by C{dialog_id} (which must be private and hold both), or
        the pair's private dialog (created when C{create}), or C{None}.
        """
        senderId = event.origin.account.id
        recipientId = yield self.directory.idOf(event.to.userhost())
        if recipientId is None:
            raise StanzaError("service-unavailable", text="No such user")
        if dialogId:
            dialog = yield self.service.namedPrivateDialog(dialogId, senderId, recipientId)
            return dialog, senderId, recipientId
        try:
            dialog, _ = yield self.service.privateDialog(senderId, recipientId, create)
        except QuotaExceeded as e:
            raise resourceConstraint(e) from None
        return dialog, senderId, recipientId

    def recipientIds(self, dialog):
        return self.service.recipientIds(dialog)

    # -- stamping and storing ----------------------------------------------------------

    def stamp(self, stanza, by: str, dialogId: str) -> tuple[str, int]:
        """
        Keep or generate the 24-hex message id, set C{<stanza-id/>} and
        C{date_sent}/C{dialog_id} in C{extraParams}; fires C{(id, dateSent)}.
        """
        now = self.host.clock.seconds()
        messageId = stanza.getAttribute("id")
        if not isObjectId(messageId):
            messageId = newObjectId(now)
            stanza["id"] = messageId
        stanza.children = [c for c in stanza.children
                           if type(c) is str or not (c.name == "stanza-id" and c.uri == NS_SID)]
        addStanzaId(stanza, by, messageId.lower())
        forget(stanza)
        params = extraParams(stanza)
        dateSent = int(now)
        stampDateSent(params, dateSent)
        setParam(params, "dialog_id", dialogId, replace=False)
        forget(stanza)
        return messageId.lower(), dateSent

    @defer.inlineCallbacks
    def store(self, dialog, senderId: int, stanza, messageId: str, dateSent: int,
              recipientId: int | None = None, body: str | None = None, raw: str | None = None):
        """
        Save a dialog message (which also updates the dialog's last message
        and the unread counts).  A re-sent message (same id, sender and
        dialog) is not stored twice; an id taken by another message is a
        C{conflict}.  Beyond the sender's daily quota of stored messages
        (issue 15 finding 15) it is C{resource-constraint}.  C{body}
        replaces the stanza's, C{raw} is its XML kept verbatim.
        """
        info = messageInfo(stanza)
        custom, attachments = paramsToDict(info.extraParams)
        if body is None and info.body is not None:
            body = str(info.body)
        try:
            message = yield self.service.post(dialog, senderId, body, attachments, custom, messageId,
                                              dateSent, recipientId, raw)
        except QuotaExceeded as e:
            raise resourceConstraint(e) from None
        return message

    # -- private messages ----------------------------------------------------------------

    @hook("message/bare", priority=200)
    @hook("message/full", priority=200)
    def onPrivate(self, event):
        stanza = event.stanza
        origin = event.origin
        if (origin is None or origin.account is None or event.stanzaType not in ("chat", "normal")
                or event.to.user is None):
            return None
        info = messageInfo(stanza)
        if info.stanzaIds:
            self.stripStanzaIds(stanza)
            info = messageInfo(stanza)
        if info.extraParams is None:
            if (self.config.archive_chat and (info.body is not None and str(info.body).strip()
                                              or encrypted(stanza)) and info.marker is None and changeOf(stanza) is None
                    and not {"no-store", "no-permanent-store"} & set(info.hints)):
                return self.archiveChat(event)
            return None
        if event.stanzaType != "chat" or info.marker is not None or changeOf(stanza) is not None:
            return None
        dialogId = info.extraParam("dialog_id")
        save = info.extraParam("save_to_history") == "1"
        if not (dialogId or save) or not hasContent(info):
            return None
        if dialogId and not isObjectId(dialogId):
            if save:
                raise StanzaError("bad-request", text="dialog_id must be a 24-hex dialog id")
            return None  # names no dialog: a plain 1-1 message
        return self.privateMessage(event, dialogId, save)

    def stripStanzaIds(self, stanza) -> None:
        """
        XEP-0359 §5: drop the C{<stanza-id/>} a client sent that claims to be
        by this server or one of its users (only the server stamps those).
        """
        domain = self.host.domain
        stanza.children = [c for c in stanza.children if type(c) is str or not (
            c.name == "stanza-id" and c.uri == NS_SID
            and (c.getAttribute("by") or "").rpartition("@")[2].partition("/")[0] == domain)]
        forget(stanza)

    @defer.inlineCallbacks
    def archiveChat(self, event):
        """
        XEP-0313 for stock clients: the store stage of a 1-1 C{chat} or
        C{normal} message with a body or an end-to-end encrypted payload
        (L{ENCRYPTED}) and no C{extraParams} between two accounts.  It is
        stored in the pair's private dialog (found or created by the dialog
        service, as for the SDK), so it shows in MAM, REST history and
        unread counts; its XML as received (addresses stamped, forged
        stanza-ids dropped) is kept verbatim, so MAM forwards it with every
        payload (XEP-0313 §4.1: OMEMO, OOB url, reply...); the stored body
        of an encrypted message is its fallback body or L{ENCRYPTED_BODY}.
        Its client id is left alone and the archive id goes out as
        XEP-0359 C{<stanza-id/>} by the recipient (the sender's carbons get
        one by the sender: L{xmppchat.modules.carbons.sentCopy}).  A
        message to oneself or to an unknown user, with a body longer than
        a dialog message's (C{MAX_BODY}) or XML longer than
        C{limits.max_stanza_bytes} is delivered, not stored.
        """
        stanza = event.stanza
        body = messageInfo(stanza).body
        body = str(body) if body is not None and str(body).strip() else ENCRYPTED_BODY
        raw = stanza.toXml()
        if len(body) > MAX_BODY or len(raw.encode()) > self.host.config.limits.max_stanza_bytes:
            return None  # longer than a dialog message may be: delivered, not archived
        senderId = event.origin.account.id
        recipientId = yield self.directory.idOf(event.to.userhost())
        if recipientId is None or recipientId == senderId:
            return None
        try:
            dialog, _ = yield self.service.privateDialog(senderId, recipientId, True)
        except QuotaExceeded as e:
            raise resourceConstraint(e) from None
        if dialog is None:
            return None
        messageId = newObjectId(self.host.clock.seconds())
        yield self.store(dialog, senderId, stanza, messageId, int(self.host.clock.seconds()), recipientId,
                         body, raw)
        addStanzaId(stanza, event.to.userhost(), messageId)
        forget(stanza)
        return None

    def inOrder(self, session, work) -> defer.Deferred:
        """
        Run C{work} (which returns a Deferred) once the room stanzas the
        session sent before are done: a room message must neither overtake
        an earlier one nor be overtaken by its own correction.  (1-1
        messages are kept in order by the router; a room may be served by
        another cluster node, whose stanzas from this session arrive
        through the bus, so rooms keep their own order.)  Runs at once
        when nothing is pending.
        """
        lock = session.state.get(LOCK)
        if lock is None:
            lock = session.state[LOCK] = defer.DeferredLock()
        return lock.run(work)

    @defer.inlineCallbacks
    def privateMessage(self, event, dialogId, save):
        """
        The store stage of a 1-1 dialog message: checked, stamped and (with
        C{save_to_history}) stored; fires C{None}, so the message goes on
        through the next C{message/*} handlers (carbons, push, delivery).
        """
        dialog, senderId, recipientId = yield self.privateDialog(event, dialogId, create=save)
        if dialog is None:  # a message to oneself
            return None
        stanza = event.stanza
        messageId, dateSent = self.stamp(stanza, event.to.userhost(), dialog.id)
        if save:
            yield self.store(dialog, senderId, stanza, messageId, dateSent, recipientId)
        return None

    # -- group messages -------------------------------------------------------------------------

    @hook("muc-message/room")
    def onRoomMessage(self, event):
        origin = event.origin
        if origin is None or origin.account is None:
            return None
        if event.stanzaType == "groupchat":
            return self.inOrder(origin, lambda: self.groupMessage(event))
        if event.stanzaType == "headline":
            return self.inOrder(origin, lambda: self.systemMessage(event))
        return None

    @defer.inlineCallbacks
    def groupMessage(self, event):
        session, stanza = event.origin, event.stanza
        senderId = session.account.id
        dialog = yield self.roomDialog(event)
        occupantJID = self.occupantJID(event.room, senderId)
        info = messageInfo(stanza)
        if info.standaloneChatState or (info.marker is not None and info.notificationOnly):
            if info.marker is not None:
                rules.require(dialog, senderId, rules.MARK)
                yield self.persistMarker(senderId, info.marker.name, info.marker.getAttribute("id"))
                if not rules.may(dialog, senderId, rules.NOTIFY):
                    return True
            else:
                rules.require(dialog, senderId, rules.NOTIFY)
            info = self.hidePrivate(session, stanza, info)
            if info.marker is not None or info.chatState is not None:
                yield self.fanOut(dialog, stanza, senderId, occupantJID, skipSender=True,
                                  offline=False, push=False)
            return True
        rules.require(dialog, senderId, rules.POST)
        info = self.hidePrivate(session, stanza, info)
        save = info.extraParam("save_to_history") == "1" and hasContent(info)
        messageId, dateSent = self.stamp(stanza, event.room, dialog.id)
        if save:
            yield self.store(dialog, senderId, stanza, messageId, dateSent)
        if dialog.type == DIALOG_BROADCAST:
            yield self.broadcast(stanza, occupantJID, event.appId)
        else:
            yield self.fanOut(dialog, stanza, senderId, occupantJID)
        return True

    def occupantJID(self, room: str, userId: int) -> str:
        """
        C{room/nick} of a sender: the nick an occupant of a room made the
        XMPP way chose (XEP-0045 §7.2), else the account id.
        """
        muc = self.host.modules.get("muc")
        return muc.occupantJID(room, userId) if muc is not None else f"{room}/{userId}"

    @staticmethod
    def hidePrivate(session, stanza, info):
        """
        Strip from a group message with content the chat states and read
        markers its sender's privacy settings keep from the others, as
        the chatstates and markers modules do in 1-1 (issue 17 item 3);
        returns the stanza's L{messageInfo}.
        """
        if info.chatState is not None and typingHidden(session):
            stripChatStates(stanza)
        if info.marker is not None and hidesRead(session, info.marker.name):
            stanza.children.remove(info.marker)
            forget(stanza)
        return messageInfo(stanza)

    @defer.inlineCallbacks
    def systemMessage(self, event):
        """
        A headline to a room: to the occupants' sessions from the sender's
        JID (the SDK reads the sender id from it), never stored.
        """
        session, stanza = event.origin, event.stanza
        dialog = yield self.roomDialog(event)
        rules.require(dialog, session.account.id, rules.NOTIFY)
        info = messageInfo(stanza)
        if info.extraParams is not None:
            stampDateSent(info.extraParams, int(self.host.clock.seconds()))
            setParam(info.extraParams, "dialog_id", dialog.id, replace=False)
            forget(stanza)
        yield self.fanOut(dialog, stanza, session.account.id, session.full, exclude=session,
                          offline=False, push=False)
        return True

    # -- corrections, retractions: shared by those modules ----------------------------------------

    @defer.inlineCallbacks
    def amend(self, event, originalId: str | None, apply):
        """
        Check and route a change of message C{originalId} (a correction or a
        retraction): C{apply(message, dialog)} (a Deferred: the dialog
        service's edit or delete, which checks L{rules.EDIT} or
        L{rules.DELETE}: only its sender may change it) updates the history
        when the message is stored; then the change goes to the dialog's occupants like a
        message (never counted as unread).
        """
        session = event.origin
        senderId = session.account.id
        room = isinstance(event, RoomEvent)
        dialog = None
        if room:
            dialog = yield self.roomDialog(event)
        else:
            info = messageInfo(event.stanza)
            dialog, _, _ = yield self.privateDialog(event, info.extraParam("dialog_id"))
        original = None
        if isObjectId(originalId):
            original = yield self.storage.messages.getMessage(originalId.lower())
        if original is not None:
            if dialog is not None and original.dialogId != dialog.id:
                raise StanzaError("not-acceptable", text="That message belongs to another dialog")
            if dialog is None:
                dialog = yield self.getDialog(original.dialogId)
            yield apply(original, dialog)
        elif room:
            rules.require(dialog, senderId, rules.POST)
        if room:
            yield self.fanOut(dialog, event.stanza, senderId, self.occupantJID(event.room, senderId),
                              push=False)
            return True
        return None  # a 1-1 change goes on to delivery like a message

    # -- markers -----------------------------------------------------------------------------------

    @hook("marker-received")
    def onMarker(self, event):
        origin = event.origin
        if origin is None or origin.account is None or not event.messageId:
            return None
        self.persistMarker(origin.account.id, event.kind, event.messageId).addErrback(
            lambda f: self.log.failure("Persisting a chat marker failed", f))
        return None

    def persistMarker(self, userId: int, kind: str, messageId: str | None):
        """
        Move the user's delivered (C{received}) or read (C{displayed},
        C{acknowledged}) watermark up to the message; earlier messages
        follow (XEP-0333 §4).  Fires with whether it moved.
        """
        return self.service.markUpTo(userId, kind, messageId)

    # -- question hooks --------------------------------------------------------------------------------

    @hook("dialog-consent")
    def onDialogConsent(self, query):
        query.answer(self.dialogConsent(query.user, query.peer))
        return None

    @defer.inlineCallbacks
    def dialogConsent(self, user: str, peer: str):
        """
        Whether C{peer} took part in a dialog with C{user}
        (L{DialogService.conversed}).
        """
        a = yield self.directory.idOf(user)
        b = yield self.directory.idOf(peer)
        if a is None or b is None:
            return False
        consented = yield self.service.conversed(a, b)
        return consented

    @hook("notifications-enabled")
    def onNotificationsEnabled(self, query):
        dialogId = getattr(query, "dialogId", None)
        if isObjectId(dialogId):
            query.answer(self.notificationsEnabled(query.user, dialogId.lower()))
        return None

    @defer.inlineCallbacks
    def notificationsEnabled(self, user: str, dialogId: str):
        userId = yield self.directory.idOf(user)
        if userId is None:
            return None
        enabled = yield self.storage.dialogs.getNotifications(dialogId, userId)
        return bool(enabled)



class ChangeModule(Module):
    """
    Base of the modules that change a dialog message (correction,
    retraction, reactions): they see 1-1 and room messages carrying one of
    their C{kinds} (C{(uri, name)} pairs) before the dialog layer, and
    handle them in L{change}.
    """

    kinds: frozenset = frozenset()

    @hook("message/bare", priority=210)
    @hook("message/full", priority=210)
    @hook("muc-message/room", priority=10)
    def onChange(self, event):
        element = changeIn(event, self.kinds)
        if element is None:
            return None
        if isinstance(event, RoomEvent):
            return dialogsOf(self.host).inOrder(event.origin, lambda: self.change(event, element))
        return self.change(event, element)

    def change(self, event, element):
        raise NotImplementedError()


def dialogsOf(host) -> DialogsModule:
    """
    The loaded dialogs module (the correction, retraction, reactions and
    MAM modules build on it).
    """
    module = host.modules.get("dialogs")
    if module is None:
        raise StanzaError("service-unavailable", text="Dialogs are not enabled")
    return module


__all__ = ["DialogsModule", "changeIn", "dialogsOf", "ChangeModule"]
