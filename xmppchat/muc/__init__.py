"""
The MUC component on C{muc.<domain>} (XEP-0045), where ConnectyCube
dialogs have their room JIDs C{<appId>_<dialogId>@muc.<domain>}.

L{xmppchat.muc.service} is the component: addressing and named events.
What happens to a room's messages (dialog fan-out, history) is the dialog
layer's (L{xmppchat.modules.dialogs}); XEP-0045 presence (join, leave,
occupant lists) is added on the same events.
"""

from xmppchat.muc.service import MUCService, RoomEvent, parseRoom, roomJID

__all__ = ["MUCService", "RoomEvent", "parseRoom", "roomJID"]
