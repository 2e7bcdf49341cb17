"""
XEP-0308: Last Message Correction, https://xmpp.org/extensions/xep-0308.html,
in dialogs (the ConnectyCube SDK's edit, SDK reference §5.7).

A C{chat} (to a user) or C{groupchat} (to a room) message carrying
C{<replace xmlns="urn:xmpp:message-correct:0" id=... [last="true"]/>} is
accepted only from the original sender of the stored message
(C{forbidden} otherwise); the stored body (and attachments, when the edit
carries some) is replaced and the message marked edited, which also
updates the dialog's C{last_message} when it is the last one (the store
decides, whatever C{last} says).  The edit is routed to the dialog's
occupants like a message and never changes unread counts.  An edit of a
message that is not in the history (sent without C{save_to_history}) is
routed after the usual dialog checks.
"""

from __future__ import annotations

from xmppchat.messageinfo import messageInfo
from xmppchat.dialogs.wire import NS_CORRECT, paramsToDict
from xmppchat.modules.dialogs import ChangeModule, dialogsOf


class CorrectionModule(ChangeModule):
    """
    XEP-0308 §4-§5 against the dialog history.
    """

    name = "correction"
    features = (NS_CORRECT,)
    roomFeatures = features
    kinds = frozenset(((NS_CORRECT, "replace"),))

    def change(self, event, replace):
        info = messageInfo(event.stanza)
        body = str(info.body) if info.body is not None else None
        _, attachments = paramsToDict(info.extraParams)
        dialogs = dialogsOf(self.host)
        userId = event.origin.account.id

        def apply(message, dialog):
            return dialogs.service.edit(userId, message, dialog, body, attachments or None)

        return dialogs.amend(event, replace.getAttribute("id"), apply)
