"""
REST changes reaching XMPP sessions (issue 17 item 2: every change made
over REST produces the chat events an XMPP change produces), split from
L{xmppchat.modules.dialogs}: messages created with C{send_to_chat=1}
(SDK reference §4.5), edits as XEP-0308 C{<replace/>} (§5.7), deletes for
everyone as the SDK's C{<remove/>} (§5.8), read/delivered marks as
XEP-0333 markers to the sender (§5.5), system messages (§5.10) and
dialog changes as system messages.  The events are those of
L{xmppchat.dialogs.events}.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.dialogs.addressing import roomJID
from xmppchat.dialogs.wire import addParams, addStanzaId, changeStanza, copyFor, messageStanza
from xmppchat.modules.base import hook
from xmppchat.privacysettings import hidesReads
from xmppchat.stanzas import NS_CLIENT
from xmppchat.storage.interfaces import DIALOG_BROADCAST, DIALOG_PRIVATE, newObjectId


class RestBridge:
    """
    Mixed into L{xmppchat.modules.dialogs.DialogsModule}: needs its
    C{host}, C{router}, C{storage}, C{directory}, C{mucDomain},
    C{defaultAppId}, C{fanOut} and C{broadcast}.
    """

    @hook("rest-message-created")
    def onRestMessage(self, event):
        if event.sendToChat:
            self.deliverStored(event.message, event.dialog, event.appId).addErrback(
                lambda f: self.log.failure("Delivering a REST message over XMPP failed", f))
        return None

    @defer.inlineCallbacks
    def deliverStored(self, message, dialog, appId: int | None):
        """
        Deliver a message stored by the REST API like one sent over XMPP.
        """
        if dialog.type == DIALOG_PRIVATE:
            recipientId = message.recipientId
            if recipientId is None:
                others = [o for o in dialog.occupantIds if o != message.senderId]
                recipientId = others[0] if others else None
            jids = yield self.directory.jidsOf([message.senderId, recipientId])
            sender, recipient = jids.get(message.senderId), jids.get(recipientId)
            if sender is None or recipient is None:
                return None
            stanza = messageStanza(message, sender, recipient, "chat", dialog.id)
            addStanzaId(stanza, recipient, message.id)
            yield self.router.deliver(stanza)
            return None
        room = roomJID(appId or self.defaultAppId(), dialog.id, self.mucDomain)
        stanza = messageStanza(message, None, None, "groupchat", dialog.id)
        addStanzaId(stanza, room, message.id)
        frm = f"{room}/{message.senderId}"
        if dialog.type == DIALOG_BROADCAST:
            yield self.broadcast(stanza, frm, appId or self.defaultAppId())
        else:
            yield self.fanOut(dialog, stanza, message.senderId, frm)
        return None

    @hook("rest-message-edited")
    def onRestEdit(self, event):
        """
        A REST edit reaches chat as an XMPP edit does (issue 17 item 2).
        """
        stanza = changeStanza("edit", event.message.id, self.newId(), event.dialog.id,
                              event.message.body, event.last)
        self.deliverChange(event.dialog, event.userId, stanza).addErrback(
            lambda f: self.log.failure("Delivering a REST edit over XMPP failed", f))
        return None

    @hook("rest-messages-removed")
    def onRestRemove(self, event):
        """
        A REST delete for everyone reaches chat as an XMPP one does.
        """
        for messageId in event.messageIds:
            stanza = changeStanza("remove", messageId, self.newId(), event.dialog.id)
            self.deliverChange(event.dialog, event.userId, stanza).addErrback(
                lambda f: self.log.failure("Delivering a REST delete over XMPP failed", f))
        return None

    def newId(self) -> str:
        return newObjectId(self.host.clock.seconds())

    @defer.inlineCallbacks
    def deliverChange(self, dialog, senderId: int, stanza):
        """
        Send a change made over REST to the dialog's users as the sender's
        own XMPP change would go: in a private dialog a C{chat} from the
        sender's bare JID to both occupants (the sender's other devices
        learn it too), elsewhere a C{groupchat} from C{<room>/<senderId>}
        to every recipient, the sender included; never pushed.
        """
        if dialog.type == DIALOG_PRIVATE:
            stanza["type"] = "chat"
            jids = yield self.directory.jidsOf(sorted(set(dialog.occupantIds) | {senderId}))
            if senderId not in jids:
                return None
            for bare in sorted(jids.values()):
                yield self.router.deliver(copyFor(stanza, bare, jids[senderId]))
            return None
        stanza["type"] = "groupchat"
        frm = f"{roomJID(self.defaultAppId(), dialog.id, self.mucDomain)}/{senderId}"
        if dialog.type == DIALOG_BROADCAST:
            yield self.broadcast(stanza, frm, self.defaultAppId())
        else:
            yield self.fanOut(dialog, stanza, senderId, frm, push=False)
        return None

    @hook("rest-messages-marked")
    def onRestMarked(self, event):
        """
        REST read/delivered marks reach the sender of the marked message
        as the reader's XEP-0333 marker would (SDK reference §5.5).
        """
        self.deliverMark(event).addErrback(
            lambda f: self.log.failure("Delivering a REST mark over XMPP failed", f))
        return None

    @defer.inlineCallbacks
    def deliverMark(self, event):
        """
        A C{chat} marker from the reader's bare JID to the sender of the
        marked message (C{None}: the dialog's last message): C{displayed}
        for a read unless the reader hides read receipts
        (C{privacy_settings.read_receipts}), else C{received}.
        """
        dialog = yield self.storage.dialogs.getDialog(event.dialogId)
        messageId = event.messageId or (dialog.lastMessageId if dialog is not None else None)
        if not messageId:
            return None
        message = yield self.storage.messages.getMessage(messageId)
        if message is None or message.senderId == event.userId:
            return None
        kind = "received" if event.delivered else None
        if event.read:  # the reader's settings matter only for a read
            reader = yield self.storage.accounts.getAccount(event.userId)
            if not hidesReads(reader):
                kind = "displayed"
        if kind is None:
            return None
        jids = yield self.directory.jidsOf([event.userId, message.senderId])
        if event.userId not in jids or message.senderId not in jids:
            return None
        stanza = changeStanza(kind, message.id, self.newId(), message.dialogId)
        stanza["type"] = "chat"
        yield self.router.deliver(copyFor(stanza, jids[message.senderId], jids[event.userId]))
        return None

    @hook("rest-system-message")
    def onRestSystemMessage(self, event):
        messageId, senderId, recipientId, params = event
        self.deliverSystem(messageId, senderId, recipientId, dict(params)).addErrback(
            lambda f: self.log.failure("Delivering a REST system message failed", f))
        return None

    @defer.inlineCallbacks
    def deliverSystem(self, messageId, senderId, recipientId, params: dict):
        """
        A REST system message (SDK reference §4.5 C{createSystem}) as the
        headline of §5.10: C{extraParams} with C{moduleIdentifier}
        C{SystemNotifications}, to every bound resource of the recipient;
        never stored.
        """
        jids = yield self.directory.jidsOf([senderId, recipientId])
        if recipientId not in jids:
            return None
        stanza = domish.Element((NS_CLIENT, "message"))
        stanza["type"] = "headline"
        stanza["id"] = messageId
        stanza["to"] = jids[recipientId]
        stanza["from"] = jids.get(senderId, self.host.domain)
        body = params.pop("body", None)
        if body is not None:
            stanza.addElement("body", content=str(body))
        element = stanza.addElement("extraParams")
        params.setdefault("moduleIdentifier", "SystemNotifications")
        params["date_sent"] = int(self.host.clock.seconds())
        addParams(element, params)
        self.router.deliver(stanza)
        return None

    @hook("rest-dialog-updated")
    def onRestDialogUpdated(self, event):
        """
        A dialog created, changed (name, photo, occupants, admins...) or
        deleted over REST: its users get a system message (issue 17 item
        2), as ConnectyCube apps send one another after such a change.
        """
        self.notifyDialogChange(event).addErrback(
            lambda f: self.log.failure("Notifying a dialog change failed", f))
        return None

    def notifyDialogChange(self, event) -> defer.Deferred:
        """
        To every occupant, the owner and the removed occupants but the one
        who made the change: a §5.10 system message whose C{extraParams}
        carry C{notification_type} (C{dialog_created}, C{dialog_updated},
        C{dialog_deleted}), C{dialog_id}, C{dialog_type}, C{name},
        C{photo}, C{occupants_ids}, C{admins_ids} and the ids added and
        removed (comma-separated).  Public dialogs' subscribers are not
        told (they may be many; they see the change in C{dialog.list}).
        """
        dialog = event.dialog
        kind = "dialog_deleted" if event.deleted else "dialog_created" if event.created else "dialog_updated"
        params = {
            "notification_type": kind, "dialog_id": dialog.id, "dialog_type": dialog.type,
            "name": dialog.name, "photo": dialog.photo,
            "occupants_ids": ",".join(map(str, dialog.occupantIds)),
            "admins_ids": ",".join(map(str, dialog.adminIds)),
            "added_occupant_ids": ",".join(map(str, event.added)),
            "removed_occupant_ids": ",".join(map(str, event.removed)),
        }
        params = {k: v for k, v in params.items() if v not in (None, "")}
        targets = (set(dialog.occupantIds) | {dialog.ownerId} | set(event.removed)) - {event.userId}
        return defer.gatherResults([self.deliverSystem(self.newId(), event.userId, uid, dict(params))
                                    for uid in sorted(targets)])


__all__ = ["RestBridge"]
