"""
The ConnectyCube dialog domain (issue 17), used by both the REST API
(L{xmppchat.api}) and the XMPP modules (L{xmppchat.modules.dialogs},
L{xmppchat.muc}):

  - L{rules}: who may read, post, mark, edit, delete and manage;
  - L{addressing}: account ids <-> JIDs, application ids, room JIDs;
  - L{wire}: C{extraParams} and message stanzas;
  - L{events}: the host-hook events both sides fire and listen to.

Nothing here imports from C{api/}, C{modules/} or C{muc/}.
"""
