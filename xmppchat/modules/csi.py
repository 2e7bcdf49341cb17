"""
XEP-0352: Client State Indication, https://xmpp.org/extensions/xep-0352.html,
and the Tigase "mobile optimisations v2" IQ the ConnectyCube SDK sends
instead (SDK reference §5.13).

- C{<inactive xmlns="urn:xmpp:csi:0"/>} / C{<active/>} nonzas after
  binding (stream feature C{<csi/>}, §4), or
  C{<iq type="set"><mobile xmlns="http://tigase.org/protocol/mobile#v2"
  enable="true|false"/></iq>} (C{enable="true"} = inactive), answered with
  an empty result.
- While a session is inactive (C{session.inactive}, which the push module
  reads) it still receives messages and IQs at once, but:
  presence broadcasts (available/unavailable) are held back, only the
  latest one per sender full JID, and flushed in order when the session
  becomes active again; when C{limits.csi_held_presences} different
  senders are held, everything held is flushed at once (memory stays
  bounded); subscription requests and errors are not held;
  standalone chat states (XEP-0085) are dropped.
"""

from __future__ import annotations

from xmppchat.c2s.negotiation import AUTHENTICATED
from xmppchat.messageinfo import messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import StanzaError

NS_CSI = "urn:xmpp:csi:0"
NS_MOBILE = "http://tigase.org/protocol/mobile#v2"


class HeldPresences:
    """
    What an inactive session has not been sent yet.
    """

    __slots__ = ("held", "flushing")

    def __init__(self):
        self.held: dict = {}
        self.flushing = False


class CSIModule(Module):
    """
    XEP-0352 §4-§5 and the Tigase mobile v2 IQ.
    """

    name = "csi"
    features = (NS_CSI, NS_MOBILE)

    @hook("stream-features")
    def onFeatures(self, event):
        if event.stream.phase == AUTHENTICATED:
            event.features.addElement((NS_CSI, "csi"))

    @hook(f"stream-element/{NS_CSI}:active")
    def onActive(self, event):
        if event.stream.session is not None:
            self.setActive(event.stream.session)
        return True

    @hook(f"stream-element/{NS_CSI}:inactive")
    def onInactive(self, event):
        if event.stream.session is not None:
            self.setInactive(event.stream.session)
        return True

    @hook(f"iq-set/self/{NS_MOBILE}:mobile")
    @hook(f"iq-set/host/{NS_MOBILE}:mobile")
    def onMobile(self, event):
        session = self.requireSession(event)
        enable = event.stanza.mobile.getAttribute("enable")
        if enable in ("true", "1"):
            self.setInactive(session)
        elif enable in ("false", "0"):
            self.setActive(session)
        else:
            raise StanzaError("bad-request", text="enable must be 'true' or 'false'")
        return self.reply(event)

    # -- state -----------------------------------------------------------

    def setInactive(self, session) -> None:
        if session.inactive:
            return
        session.inactive = True
        session.state[self.name] = HeldPresences()
        session.filters.insert(0, self.filter)

    def setActive(self, session) -> None:
        if not session.inactive:
            return
        session.inactive = False
        if self.filter in session.filters:
            session.filters.remove(self.filter)
        state = session.state.pop(self.name, None)
        if state is not None:
            for stanza in list(state.held.values()):
                session.send(stanza)

    def filter(self, session, element):
        """
        The outbound filter of an inactive session.
        """
        state = session.state.get(self.name)
        if state is None or state.flushing:
            return element
        name = element.name
        if name == "presence":
            if element.getAttribute("type") not in (None, "unavailable"):
                return element
            held = state.held
            key = element.getAttribute("from")
            if key not in held and len(held) >= self.host.config.limits.csi_held_presences:
                state.flushing = True
                try:
                    for stanza in list(held.values()):
                        session.send(stanza)
                finally:
                    state.flushing = False
                held.clear()
            held.pop(key, None)
            held[key] = element
            return None
        if name == "message" and messageInfo(element).standaloneChatState:
            return None
        return element

    @hook("session-ended")
    def onSessionEnded(self, event):
        event.session.state.pop(self.name, None)
