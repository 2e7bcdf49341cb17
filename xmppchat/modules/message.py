"""
RFC 6121 §8.5 message delivery, adjusted for the ConnectyCube SDK.
https://www.rfc-editor.org/rfc/rfc6121#section-8.5

- System messages and call signalling (C{type="headline"}, SDK reference
  §5.10) sent to a bare JID go to every bound resource of the user, also
  those that have not sent initial presence yet (the SDK counts itself
  online from resource binding: L{xmppchat.router.recipients}).  They are
  never stored offline (the router drops headlines nobody can take) nor
  in history; their size is
  bounded only by the stanza limit (C{limits.max_stanza_bytes}), so SDP
  payloads of tens of KB pass.
- Chat messages with a body and headline messages that carry an
  C{<extraParams/>} payload get C{<date_sent>} (POSIX seconds, server
  clock) stamped into it (§5.3: apps read C{extension.date_sent}).  A
  value the client put there is replaced: the server's clock is the one
  both sides agree on.  Messages without C{extraParams} (standard clients)
  are left as they are.
- The C{account-updated} event (L{xmppchat.privacysettings.AccountUpdated},
  fired by whoever changes an account, e.g. the REST layer, relayed to the
  other cluster nodes by L{xmppchat.cluster.node}, and fired for changes
  made by another process by L{xmppchat.auth.revocation.StreamCheck})
  refreshes C{session.account} on every live session of that account on
  this node, so privacy settings read from it (typing indicators, read
  receipts) apply at once, without reconnecting (issue 17 item 3).
"""

from __future__ import annotations

from xmppchat.messageinfo import messageInfo
from xmppchat.modules.base import Module, hook


def stampDateSent(extraParams, seconds: int) -> None:
    """
    Set C{<date_sent>seconds</date_sent>} in an C{<extraParams/>} element.
    """
    for child in list(extraParams.elements()):
        if child.name == "date_sent":
            extraParams.children.remove(child)
    extraParams.addElement("date_sent", content=str(seconds))


class MessageModule(Module):
    """
    C{date_sent} stamping and live account updates.
    """

    name = "message"

    @hook("pre-message/bare", priority=-1000)
    @hook("pre-message/full", priority=-1000)
    def onStamp(self, event):
        """
        Runs after the checks that may stop a message (privacy, limits).
        """
        if event.origin is None or event.stanzaType not in ("chat", "headline"):
            return None
        info = messageInfo(event.stanza)
        if info.extraParams is not None and (info.body is not None or event.stanzaType == "headline"):
            stampDateSent(info.extraParams, int(self.host.clock.seconds()))
        return None

    @hook("account-updated")
    def onAccountUpdated(self, event):
        account = event.account
        for session in self.host.sessions.localSessionsOf(f"{account.localpart}@{self.host.domain}"):
            session.account = account
        return None
