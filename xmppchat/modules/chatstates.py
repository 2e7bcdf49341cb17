"""
XEP-0085: Chat State Notifications. https://xmpp.org/extensions/xep-0085.html

- Standalone notifications (§5.5: a chat state with no body or other
  content) reach online resources only: they are never stored offline
  (§5.6, XEP-0160 §3), also when they carry C{<thread/>}, hints or a
  ConnectyCube C{<extraParams/>}.
- A user whose privacy settings hide typing
  (C{account.profile["privacy_settings"]["typing_indicators"]["enabled"]}
  is C{False}, written by the REST layer, L{xmppchat.privacysettings})
  sends none: the server drops their standalone notifications and strips
  chat states from their other messages.  The setting is read from the
  session's account, which the C{account-updated} event refreshes at once
  on every cluster node (L{xmppchat.modules.message}), so a change applies
  to live sessions (issue 17 item 3).
- Sessions that are inactive (XEP-0352) do not get standalone
  notifications either (see L{xmppchat.modules.csi}).

Group chat states go to the MUC/dialog component, which applies the same
setting with L{typingHidden}.
"""

from __future__ import annotations

from xmppchat.messageinfo import NS_CHATSTATES, forget, messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.privacysettings import hidesTyping


def typingHidden(session) -> bool:
    """
    The user of C{session} hides typing indicators.
    """
    return hidesTyping(session.account)


def stripChatStates(stanza) -> None:
    """
    Remove the chat states from a message that has other content.
    """
    stanza.children = [c for c in stanza.children if type(c) is str or c.uri != NS_CHATSTATES]
    forget(stanza)


def hideTyping(session, stanza) -> bool:
    """
    The typing-indicator setting on a message C{session} sends (one to a
    contact, or a MUC private message, security review finding 5): its
    chat states are removed when the user hides typing; C{True} when it was
    a standalone notification, which is then not sent at all.
    """
    info = messageInfo(stanza)
    if info.chatState is None or not typingHidden(session):
        return False
    if info.standaloneChatState:
        return True
    stripChatStates(stanza)
    return False


class ChatStatesModule(Module):
    """
    XEP-0085 §5.5-§5.6 routing rules and the typing-indicator privacy setting.
    """

    name = "chatstates"
    features = (NS_CHATSTATES,)

    @hook("pre-message/bare", priority=50)
    @hook("pre-message/full", priority=50)
    def onMessage(self, event):
        session = event.origin
        if session is None:
            return None
        return True if hideTyping(session, event.stanza) else None

    @hook("message/offline", priority=50)
    def onOffline(self, event):
        """
        Standalone chat states are not stored offline (§5.6).
        """
        return messageInfo(event.stanza).standaloneChatState
