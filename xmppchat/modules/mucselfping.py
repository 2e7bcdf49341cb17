"""
XEP-0410: MUC Self-Ping (Schrödinger's Chat),
https://xmpp.org/extensions/xep-0410.html (issue 16: XEP-0479 Advanced
Group Chat).

A client pings its own occupant JID (C{room@muc.<domain>/<its nick>}) to
learn whether it is still joined.  The MUC service answers for the
occupant (§4, advertised on rooms as C{muc#self-ping-optimization}): a
result while the sending session is joined under that nick,
C{not-acceptable} otherwise (§3: the client then rejoins).  Pings to other
occupants are not forwarded (they get C{service-unavailable}, as every IQ
to an occupant does).
"""

from __future__ import annotations

from xmppchat.modules.base import Module, hook
from xmppchat.modules.ping import NS_PING
from xmppchat.stanzas import StanzaError

NS_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"


class MUCSelfPingModule(Module):
    """
    XEP-0410 §3-§4, answered by the service on the occupant's behalf.
    """

    name = "mucselfping"
    roomFeatures = (NS_SELF_PING,)

    @hook(f"muc-iq-get/occupant/{NS_PING}:ping")
    def onPing(self, event):
        session = self.requireSession(event)
        muc = self.host.modules.get("muc")
        room = muc.rooms.get(event.room) if muc is not None else None
        occupant = room.occupants.get(event.to.resource) if room is not None else None
        if occupant is None or session not in occupant.sessions:
            raise StanzaError("not-acceptable", text="Not joined to this room under this nick")
        return self.reply(event)
