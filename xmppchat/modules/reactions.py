"""
XEP-0444: Message Reactions, https://xmpp.org/extensions/xep-0444.html, in
dialogs, and the reaction pushes the ConnectyCube SDK expects (SDK
reference §5.9).

A C{chat} (to a user) or C{groupchat} (to a room) message carrying
C{<reactions id=... xmlns="urn:xmpp:reactions:0"><reaction>👍</reaction>...
</reactions>} replaces the sender's reactions to that stored message (the
difference is applied with C{IMessageStore.react}).  The sender must be
allowed to post in the message's dialog.  Every occupant's sessions
(except the sending one) then get::

    <message type="chat|groupchat" from=... id=...>
      <reactions xmlns="https://connectycube.com/protocol/reactions"
                 message_id=... user_id=...>
        <reaction type="🔥" add="true"/><reaction type="👍" remove="true"/>
      </reactions>
      <reactions xmlns="urn:xmpp:reactions:0" id=...>(the full set)</reactions>
      <extraParams xmlns="jabber:client"><dialog_id>...</dialog_id></extraParams>
    </message>

(the SDK element first: the SDK takes the first child named C{reactions}),
C{from} the reacting user (private dialogs) or C{<room>/<userId>} (group
dialogs).  Reactions made through REST (the C{rest-message-reacted} event)
are pushed the same way.  Reactions are never stored offline and never
change unread counts.  At most C{MAX_REACTIONS} distinct emoji of at most
C{MAX_EMOJI} characters per message and user (L{xmppchat.dialogs.service}: the
same limits over REST).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.modules.base import hook
from xmppchat.dialogs.addressing import appIdOf, roomJID
from xmppchat.dialogs.service import MAX_EMOJI
from xmppchat.dialogs.wire import NS_REACTIONS
from xmppchat.modules.dialogs import ChangeModule, dialogsOf
from xmppchat.muc.service import RoomEvent
from xmppchat.stanzas import NS_CLIENT, StanzaError
from xmppchat.storage.interfaces import DIALOG_PRIVATE, isObjectId, newObjectId

NS_CC_REACTIONS = "https://connectycube.com/protocol/reactions"


def reactionPush(messageId: str, userId: int, dialogId: str, added, removed, current,
                 stanzaType: str, frm: str, pushId: str) -> domish.Element:
    """
    The reaction event of SDK reference §5.9 plus the XEP-0444 element.
    """
    stanza = domish.Element((NS_CLIENT, "message"))
    stanza["type"] = stanzaType
    stanza["from"] = frm
    stanza["id"] = pushId
    sdk = stanza.addElement((NS_CC_REACTIONS, "reactions"))
    sdk["message_id"] = messageId
    sdk["user_id"] = str(userId)
    for emoji in sorted(added):
        sdk.addElement("reaction")["type"] = emoji
        sdk.children[-1]["add"] = "true"
    for emoji in sorted(removed):
        sdk.addElement("reaction")["type"] = emoji
        sdk.children[-1]["remove"] = "true"
    xep = stanza.addElement((NS_REACTIONS, "reactions"))
    xep["id"] = messageId
    for emoji in sorted(current):
        xep.addElement("reaction", content=emoji)
    stanza.addElement((NS_CLIENT, "extraParams")).addElement("dialog_id", content=dialogId)
    return stanza


class ReactionsModule(ChangeModule):
    """
    XEP-0444 §3-§4 against the dialog history, and SDK reaction pushes.
    """

    name = "reactions"
    features = (NS_REACTIONS,)
    roomFeatures = features
    kinds = frozenset(((NS_REACTIONS, "reactions"),))

    @defer.inlineCallbacks
    def change(self, event, element):
        dialogs = dialogsOf(self.host)
        session = event.origin
        userId = session.account.id
        messageId = element.getAttribute("id")
        message = None
        if isObjectId(messageId):
            message = yield self.storage.messages.getMessage(messageId.lower(), userId)
        if message is None:
            raise StanzaError("item-not-found", text="Reactions need a message from the dialog history")
        dialog = yield dialogs.getDialog(message.dialogId)
        room = isinstance(event, RoomEvent)
        if room and dialog.id != event.dialogId:
            raise StanzaError("not-acceptable", text="That message belongs to another dialog")
        if not room:
            peer = yield dialogs.directory.idOf(event.to.userhost())
            if dialog.type != DIALOG_PRIVATE or peer not in dialog.occupantIds:
                raise StanzaError("not-acceptable", text="That message is not from your dialog with this user")
        wanted = set()
        for child in element.elements():
            if child.name == "reaction":
                emoji = str(child).strip()
                if not emoji or len(emoji) > MAX_EMOJI:
                    raise StanzaError("bad-request", text=f"A reaction is 1 to {MAX_EMOJI} characters")
                wanted.add(emoji)
        current = {e for e, ids in (message.reactions or {}).items() if userId in ids}
        added, removed = wanted - current, current - wanted
        yield dialogs.service.react(userId, message, dialog, added, removed)
        frm = f"{event.room}/{userId}" if room else session.full
        yield self.push(dialog, message.id, userId, added, removed, wanted, frm, exclude=session)
        return True

    def push(self, dialog, messageId, userId, added, removed, current, frm, exclude=None):
        stanzaType = "chat" if dialog.type == DIALOG_PRIVATE else "groupchat"
        stanza = reactionPush(messageId, userId, dialog.id, added, removed, current, stanzaType, frm,
                              newObjectId(self.host.clock.seconds()))
        return dialogsOf(self.host).fanOut(dialog, stanza, userId, frm, exclude=exclude,
                                           offline=False, push=False)

    @hook("rest-message-reacted")
    def onRestReaction(self, event):
        self.pushRest(*event).addErrback(lambda f: self.log.failure("Pushing a REST reaction failed", f))
        return None

    @defer.inlineCallbacks
    def pushRest(self, message, dialog, userId, values, reactions):
        dialogs = dialogsOf(self.host)
        bare = yield dialogs.directory.jidOf(userId)
        if bare is None:
            return None
        if dialog.type == DIALOG_PRIVATE:
            frm = bare
        else:
            appId = appIdOf(bare.partition("@")[0]) or dialogs.defaultAppId()
            frm = f"{roomJID(appId, dialog.id, dialogs.mucDomain)}/{userId}"
        added = {values["add"]} if values.get("add") else set()
        removed = {values["remove"]} if values.get("remove") else set()
        current = {e for e, ids in (reactions or {}).items() if userId in ids}
        yield self.push(dialog, message.id, userId, added, removed, current, frm)
        return None
