"""
What a message carries, worked out once per stanza and shared by the chat
modules (chat states, markers, carbons, push, offline): one pass over the
top-level children, cached on the element.

Also the ConnectyCube conventions those modules share: the C{extraParams}
payload (SDK reference §5.3) and the account privacy settings the REST
layer writes into C{account.profile["privacy_settings"]}.
"""

from __future__ import annotations

from xmppchat.stanzas import NS_CLIENT

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_HINTS = "urn:xmpp:hints"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"

CHAT_STATES = frozenset(("active", "composing", "paused", "inactive", "gone"))
MARKERS = frozenset(("received", "displayed", "acknowledged"))

# children that say nothing by themselves: a message made only of these and
# a chat state / marker is a notification, not content
_NEUTRAL = frozenset(("thread", "extraParams", "origin-id", "stanza-id"))


class MessageInfo:
    """
    The parts of one C{<message/>} the chat modules look at.

    @ivar body: the C{<body/>} element, or C{None}.
    @ivar chatState: the XEP-0085 element, or C{None}.
    @ivar marker: a XEP-0333 C{received}/C{displayed}/C{acknowledged}
        element, or a XEP-0184 C{<received/>} receipt, or C{None}.
    @ivar extraParams: the ConnectyCube C{<extraParams/>} element, or C{None}.
    @ivar hints: the local names of XEP-0334 hints (C{no-store}, ...).
    @ivar private: a XEP-0280 C{<private/>} opt-out is present.
    @ivar carbon: the message is itself a XEP-0280 C{sent}/C{received} wrapper.
    @ivar content: some child other than the above (a correction, a
        reaction, an attachment, an unknown extension).
    @ivar stanzaIds: a XEP-0359 C{<stanza-id/>} is present.
    """

    __slots__ = ("body", "chatState", "marker", "extraParams", "hints", "private", "carbon", "content",
                 "stanzaIds")

    def __init__(self, stanza):
        self.body = self.chatState = self.marker = self.extraParams = None
        self.hints = ()
        self.private = self.carbon = self.content = self.stanzaIds = False
        for child in stanza.children:
            if type(child) is str:
                continue
            name, uri = child.name, child.uri
            if uri == NS_CHATSTATES and name in CHAT_STATES:
                self.chatState = child
            elif (uri == NS_MARKERS and name in MARKERS) or (uri == NS_RECEIPTS and name == "received"):
                self.marker = child
            elif uri == NS_HINTS:
                self.hints += (name,)
            elif uri == NS_CARBONS:
                if name == "private":
                    self.private = True
                else:
                    self.carbon = True
            elif name == "body" and uri == NS_CLIENT:
                self.body = child
            elif name == "extraParams":
                self.extraParams = child
            elif name == "stanza-id" and uri == NS_SID:
                self.stanzaIds = True
            elif name not in _NEUTRAL and not (uri == NS_MARKERS and name == "markable") \
                    and not (uri == NS_RECEIPTS and name == "request"):
                self.content = True

    @property
    def notificationOnly(self) -> bool:
        """
        No body and no other content: only chat states, markers, hints,
        thread or extraParams.
        """
        return self.body is None and not self.content and not self.carbon

    @property
    def standaloneChatState(self) -> bool:
        """
        A XEP-0085 §5.5 standalone notification.
        """
        return self.chatState is not None and self.marker is None and self.notificationOnly

    @property
    def standaloneMarker(self) -> bool:
        return self.marker is not None and self.notificationOnly

    def extraParam(self, key: str) -> str | None:
        """
        The text of C{<extraParams><key/>}, or C{None}.
        """
        if self.extraParams is None:
            return None
        for child in self.extraParams.elements():
            if child.name == key:
                return str(child)
        return None


def messageInfo(stanza) -> MessageInfo:
    """
    The L{MessageInfo} of C{stanza}, computed on first use and cached on the
    element (modules that change the children call L{forget}).
    """
    # not getattr(): domish looks unknown attributes up as child elements
    info = stanza.__dict__.get("_messageInfo")
    if info is None:
        info = MessageInfo(stanza)
        stanza._messageInfo = info
    return info


def forget(stanza) -> None:
    """
    Drop the cached L{MessageInfo} after changing C{stanza}'s children.
    """
    stanza.__dict__.pop("_messageInfo", None)
