"""
XEP-0424: Message Retraction, https://xmpp.org/extensions/xep-0424.html,
and the ConnectyCube SDK's delete (C{<remove xmlns="urn:xmpp:message-delete:0"
id=.../>}, SDK reference §5.8), in dialogs.

A C{chat} (to a user) or C{groupchat} (to a room) message carrying
C{<retract xmlns="urn:xmpp:message-retract:1" id=.../>}, the older
C{<apply-to xmlns="urn:xmpp:fasten:0" id=...><retract
xmlns="urn:xmpp:message-retract:0"/></apply-to>}, or the SDK's C{<remove
id=.../>} deletes the stored message for everyone -- only when it comes
from the original sender (C{forbidden} otherwise) -- and recomputes the
dialog's last message.  The retraction is routed to the occupants like a
message; unread counts drop only by the deleted message itself.
"""

from __future__ import annotations

from xmppchat.dialogs.wire import NS_DELETE, NS_FASTEN, NS_RETRACT, NS_RETRACT0
from xmppchat.modules.dialogs import ChangeModule, dialogsOf


def retractedId(element) -> str | None:
    """
    The id a retraction names; C{None} for a XEP-0422 C{<apply-to/>} that
    is not a retraction.
    """
    if element.name == "apply-to":
        if not any(c.name == "retract" and c.uri == NS_RETRACT0 for c in element.elements()):
            return None
    return element.getAttribute("id")


class RetractionModule(ChangeModule):
    """
    XEP-0424 §4-§5 and the SDK's delete against the dialog history.
    """

    name = "retraction"
    features = (NS_RETRACT, NS_DELETE)
    roomFeatures = features
    kinds = frozenset(((NS_DELETE, "remove"), (NS_RETRACT, "retract"), (NS_FASTEN, "apply-to")))

    def change(self, event, element):
        messageId = retractedId(element)
        if messageId is None:
            return None
        dialogs = dialogsOf(self.host)
        userId = event.origin.account.id
        return dialogs.amend(event, messageId, lambda m, d: dialogs.service.removeForAll(userId, m, d))
