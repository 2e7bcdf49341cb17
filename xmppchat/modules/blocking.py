"""
XEP-0191: Blocking Command. https://xmpp.org/extensions/xep-0191.html

The blocklist is a view of the user's **default privacy list** (XEP-0191
§5, the same storage as XEP-0016): its C{jid} deny items that block every
kind of stanza (no children, or all four children as the ConnectyCube SDK
writes them) are the blocked JIDs.  Blocking puts deny-everything items
first in the default list; a user with no default list gets the list
C{privacy.blocklist_name} (C{@ConnectyCube/blockList}, the name the SDK's
block-list hook uses), made default.  Unblocking removes those items;
an empty C{<unblock/>} removes them all.  The resources that requested the
blocklist get block/unblock pushes (§3.3-§3.5), whichever protocol made
the change.  Enforcement is the privacy module's.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import Module, hook
from xmppchat.modules.privacy import clientSession, pushIQ
from xmppchat.stanzas import StanzaError

NS_BLOCKING = "urn:xmpp:blocking"
STATE_REQUESTED = "blocklist-requested"


class BlockingModule(Module):
    """
    XEP-0191 §3: blocklist retrieval, block, unblock, unblock all, pushes.
    """

    name = "blocking"
    features = (NS_BLOCKING,)

    @property
    def privacy(self):
        privacy = self.host.modules.get("privacy")
        if privacy is None:
            raise StanzaError("service-unavailable", text="Blocking needs the privacy module")
        return privacy

    @hook(f"iq-get/self/{NS_BLOCKING}:blocklist")
    def onBlocklist(self, event):
        session = clientSession(event)

        def send(jids):
            session.state[STATE_REQUESTED] = True
            return self.reply(event, self._element("blocklist", jids))

        return self.privacy.blocklist(session.localpart).addCallback(send)

    def _jids(self, element, required: bool) -> list[str] | None:
        jids = []
        for item in element.elements():
            if item.name != "item" or item.uri != NS_BLOCKING or not item.getAttribute("jid"):
                raise StanzaError("bad-request", text="Expected <item jid='...'/>")
            try:
                jids.append(parseJID(item["jid"]).full())
            except InvalidJID:
                raise StanzaError("jid-malformed", text=f"Invalid JID {item['jid']!r}") from None
        if not jids:
            if required:
                raise StanzaError("bad-request", text="Block at least one JID")
            return None
        limit = self.host.config.privacy.max_items
        if len(jids) > limit:
            raise StanzaError("not-acceptable", text=f"At most {limit} items")
        return jids

    @hook(f"iq-set/self/{NS_BLOCKING}:block")
    def onBlock(self, event):
        session = clientSession(event)
        jids = self._jids(event.stanza.block, required=True)
        return self.privacy.block(session, jids).addCallback(lambda _: self.reply(event))

    @hook(f"iq-set/self/{NS_BLOCKING}:unblock")
    def onUnblock(self, event):
        session = clientSession(event)
        jids = self._jids(event.stanza.unblock, required=False)
        return self.privacy.unblock(session, jids).addCallback(lambda _: self.reply(event))

    @hook("blocklist-changed")
    def onChanged(self, event):
        """
        Push what changed to the resources that requested the blocklist.
        """
        before, after = set(event.before), set(event.after)
        blocked = [jid for jid in event.after if jid not in before]
        unblocked = [jid for jid in event.before if jid not in after]
        pushes = []
        if not after and unblocked:
            pushes.append(("unblock", ()))
        elif unblocked:
            pushes.append(("unblock", unblocked))
        if blocked:
            pushes.append(("block", blocked))
        for session in self.host.sessions.sessionsOf(f"{event.localpart}@{self.host.domain}"):
            if not session.state.get(STATE_REQUESTED):
                continue
            for name, jids in pushes:
                pushIQ(session, self._element(name, jids))
        return None

    @staticmethod
    def _element(name: str, jids) -> domish.Element:
        element = domish.Element((NS_BLOCKING, name))
        for jid in jids:
            element.addElement("item")["jid"] = jid
        return element
