"""
XEP-0280: Message Carbons. https://xmpp.org/extensions/xep-0280.html

- C{<enable/>} / C{<disable/>} (§4, §5) per session; the ConnectyCube SDK
  enables carbons on every connect (SDK reference §5.1).
- C{sent} carbons (§6): a 1-1 C{type="chat"} message a user sends is
  copied, wrapped in C{<sent><forwarded/></sent>}, to the user's other
  carbon-enabled resources, unless it carries C{<private/>} (§7) or the
  XEP-0334 C{<no-copy/>} hint.
- C{received} carbons only for a message addressed to one I{full} JID of
  the user, copied to the user's other carbon-enabled resources.  Messages
  to the bare JID already reach every available resource (RFC 6121
  §8.5.2.1.1), and the SDK mistakes a C{<received>} carbon wrapper for a
  delivery marker (§5.15), so they are never duplicated as carbons.
- Only messages with content are copied: standalone chat states, chat
  markers and receipts are not.  XEP-0280 §6 would allow them, but the
  SDK unwraps every C{sent} carbon into a new chat message (§5.15,
  §5.20), so a copied C{displayed} marker would show up as an empty
  message on the user's other devices.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppchat.messageinfo import NS_CARBONS, NS_FORWARD, NS_SID, messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import NS_CLIENT


def sentCopy(stanza, recipient: str, sender: str):
    """
    The message a C{sent} carbon forwards: when the server stamped it with
    a XEP-0359 C{<stanza-id by=recipient/>} (an archived dialog message),
    a copy that also names it by the sender, whose archive holds the same
    message (XEP-0313 §5.1.2: a client learns the archive id of what it
    sent from its carbons); else the stanza itself.  Only the carbon gets
    it, as Prosody does: the recipient sees the id in its own archive.
    """
    for sid in stanza.elements(NS_SID, "stanza-id"):
        if sid.getAttribute("by") == recipient:
            copy = domish.Element((stanza.uri, stanza.name), attribs=dict(stanza.attributes))
            copy.children = list(stanza.children)
            mine = copy.addElement((NS_SID, "stanza-id"))
            mine["by"], mine["id"] = sender, sid.getAttribute("id")
            return copy
    return stanza


def carbonWrapper(kind: str, stanza, frm: str, to: str) -> domish.Element:
    """
    C{<message from=frm to=to type="chat"><kind><forwarded>stanza...}; the
    forwarded stanza is shared, not copied.
    """
    wrapper = domish.Element((NS_CLIENT, "message"))
    wrapper["from"] = frm
    wrapper["to"] = to
    wrapper["type"] = "chat"
    wrapper.addElement((NS_CARBONS, kind)).addElement((NS_FORWARD, "forwarded")).children.append(stanza)
    return wrapper


class CarbonsModule(Module):
    """
    XEP-0280 §4-§7.
    """

    name = "carbons"
    features = (NS_CARBONS,)

    @hook(f"iq-set/self/{NS_CARBONS}:enable")
    @hook(f"iq-set/host/{NS_CARBONS}:enable")
    def onEnable(self, event):
        return self._set(event, True)

    @hook(f"iq-set/self/{NS_CARBONS}:disable")
    @hook(f"iq-set/host/{NS_CARBONS}:disable")
    def onDisable(self, event):
        return self._set(event, False)

    def _set(self, event, enabled: bool):
        session = self.requireSession(event)
        if enabled:
            session.state[self.name] = True
        else:
            session.state.pop(self.name, None)
        return self.reply(event)

    @staticmethod
    def eligible(stanza, stanzaType) -> bool:
        if stanzaType != "chat":
            return False
        info = messageInfo(stanza)
        return not (info.private or info.carbon or info.notificationOnly or "no-copy" in info.hints)

    def copyTo(self, kind: str, bare: str, stanza, exclude) -> None:
        """
        Wrap C{stanza} for every carbon-enabled session of C{bare} except
        C{exclude}.
        """
        for session in self.host.sessions.sessionsOf(bare):
            if session is not exclude and session.state.get(self.name) and not session.closed:
                session.send(carbonWrapper(kind, stanza, bare, session.full))

    @hook("message/bare", priority=100)
    @hook("message/full", priority=100)
    def onMessage(self, event):
        origin = event.origin
        stanza = event.stanza
        to = event.to
        if to is None or to.user is None or not self.eligible(stanza, event.stanzaType):
            return None
        bare = to.userhost()
        if origin is not None and origin.bare != bare:
            self.copyTo("sent", origin.bare, sentCopy(stanza, bare, origin.bare), origin)
        if event.kind == "full" and (origin is None or origin.bare != bare):
            target = self.host.sessions.get(bare, to.resource)
            if target is not None:
                self.copyTo("received", bare, stanza, target)
        return None
