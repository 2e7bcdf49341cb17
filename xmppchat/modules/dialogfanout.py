"""
Delivery of dialog messages to XMPP sessions (issue 17: the part of the
dialogs module that fans stanzas out, split from L{xmppchat.modules.dialogs}):
the occupants' sessions, the offline lane and push for group dialogs
(XEP-0045 joined sessions included, no session twice), broadcast dialogs
to every connected user of the application in cooperative batches, and
the broadcast catch-up at a user's first initial presence (like offline
messages, XEP-0160).  Privacy (XEP-0016/0191): a recipient whose default
list blocks the sender gets nothing of theirs.
"""

from __future__ import annotations

from twisted.internet import defer

from xmppchat.dialogs.addressing import appIdOf, roomJID
from xmppchat.dialogs.wire import addStanzaId, copyFor, messageStanza
from xmppchat.modules.base import hook
from xmppchat.router import recipients
from xmppchat.stanzas import StanzaError, delayElement
from xmppchat.storage.interfaces import DIALOG_BROADCAST, Query, QuotaExceeded


class DialogFanOut:
    """
    Mixed into L{xmppchat.modules.dialogs.DialogsModule}: needs its
    C{host}, C{config}, C{directory}, C{service}, C{cooperator} and
    C{mucDomain}.
    """

    def runBatches(self, items: list, step) -> defer.Deferred:
        """
        Call C{step(item)} for every item: the first C{fanout_batch} now,
        the rest in batches of that size on the cooperator, which yields
        to the reactor between batches when its time slice is used up.
        """
        batch = self.config.fanout_batch
        for item in items[:batch]:
            step(item)
        if len(items) <= batch:
            return defer.succeed(None)

        def work():
            for start in range(batch, len(items), batch):
                for item in items[start:start + batch]:
                    step(item)
                yield None

        return self.cooperator.cooperate(work()).whenDone()

    @defer.inlineCallbacks
    def fanOut(self, dialog, stanza, senderId: int, frm: str, exclude=None, skipSender: bool = False,
               offline: bool = True, push: bool = True):
        """
        Send C{stanza} C{from} C{frm} to every bound session of the dialog's
        recipients (not C{exclude}; not the sender's with C{skipSender});
        recipients with no session get it offline (C{offline}) and may get
        a push (C{push}).
        """
        ids = yield self.recipientIds(dialog)
        jids = yield self.directory.jidsOf(ids)
        targets = [(uid, jids[uid]) for uid in ids if uid in jids and not (skipSender and uid == senderId)]
        senderBare = jids.get(senderId) or (yield self.directory.jidOf(senderId))
        blocks = yield self.privacyCheck([bare for _, bare in targets])
        sessions = self.host.sessions
        pushModule = self.host.modules.get("push") if push else None
        if pushModule is not None:
            from xmppchat.modules.push import pushable

            if not pushable(stanza, stanza.getAttribute("type", "normal")):
                pushModule = None
        offlineModule = self.host.modules.get("offline") if offline else None
        stanzaType = stanza.getAttribute("type", "normal")
        serialised = []
        stores = []
        served = set()

        def step(target):
            uid, bare = target
            if blocks is not None and uid != senderId and senderBare and blocks(bare, senderBare, "message"):
                return  # XEP-0016: silently nothing from a blocked sender
            reached = [s for s in recipients(sessions, bare, stanzaType) if s is not exclude]
            for session in reached:
                served.add(session)
                session.send(copyFor(stanza, session.full, frm))
            if not reached and offlineModule is not None and uid != senderId:
                if not serialised:
                    serialised.append(copyFor(stanza, None, frm).toXml())
                stores.append(offlineModule.storeFor(
                    bare.partition("@")[0], copyFor(stanza, bare, frm), xml=serialised[0],
                    sender=senderBare, dialogId=dialog.id).addErrback(self._offlineFailed, bare))
            if pushModule is not None and uid != senderId:
                pushModule.consider(bare, copyFor(stanza, bare, frm), "groupchat", frm,
                                    dialogId=dialog.id).addErrback(
                    lambda f: self.log.failure("Push decision failed", f))

        yield self.runBatches(targets, step)
        if stores:
            # the sender's XEP-0198 <a/> waits for the offline copies
            yield defer.gatherResults(stores)
        # XEP-0045 occupants who are not dialog recipients (one copy per session)
        muc = self.host.modules.get("muc")
        joined = muc.joinedSessions(frm.partition("/")[0]) if muc is not None else ()
        for session in joined:
            if session in served or session is exclude or session.closed or (
                    skipSender and session.account is not None and session.account.id == senderId):
                continue
            if blocks is not None and senderBare and blocks(session.bare, senderBare, "message"):
                continue
            session.send(copyFor(stanza, session.full, frm))

    @defer.inlineCallbacks
    def privacyCheck(self, bares):
        """
        C{privacy.blocks} with the lists of these users loaded (online
        users' lists are always cached, offline ones are loaded once and
        kept in the privacy module's LRU), or C{None} without privacy.
        """
        privacy = self.host.modules.get("privacy")
        if privacy is None:
            return None
        missing = [b.partition("@")[0] for b in bares if privacy.cached(b.partition("@")[0]) is None]
        if missing:
            yield privacy.ensureLoaded(missing)
        return privacy.blocks

    def _offlineFailed(self, failure, bare):
        if failure.check(QuotaExceeded, StanzaError):
            # a full queue, or this dialog's or sender's share of it (issue 15
            # finding 8): the recipient has the message in the dialog history
            self.log.debug("A dialog message was not stored offline for {jid}: {why}", jid=bare,
                           why=failure.getErrorMessage())
        else:
            self.log.failure("Storing a dialog message offline for {jid} failed", failure, jid=bare)

    def broadcast(self, stanza, frm: str, appId: int) -> defer.Deferred:
        """
        Send a broadcast dialog's message to every bound session of the
        application's users (and of accounts not tied to an application).
        """
        def sameApp(session):
            app = appIdOf(session.localpart)
            return app is None or app == appId

        targets = [s for s in self.host.sessions.all() if not s.closed and sameApp(s)]
        privacy = self.host.modules.get("privacy")
        sender = frm.partition("/")[2]
        senderBare = self.directory.cachedJID(int(sender)) if sender.isdigit() else None

        def step(session):
            if privacy is not None and senderBare and session.bare != senderBare and privacy.blocks(
                    session.bare, senderBare, "message"):
                return
            session.send(copyFor(stanza, session.full, frm))

        return self.runBatches(targets, step)

    @hook("session-bound")
    def onBound(self, event):
        if event.session.account is not None:
            self.directory.remember(event.session.account)
        return None

    @hook("rest-user-deleted")
    def onAccountDeleted(self, account):
        self.directory.forget(account)
        return None

    @hook("presence-initial")
    def onInitialPresence(self, event):
        """
        The first of an account's sessions to become available gets the
        broadcasts it missed (like offline messages, XEP-0160).
        """
        session = event.session
        if session.account is None:
            return None
        others = self.host.sessions.sessionsOf(session.bare)
        if any(s.state.get(self.name) for s in others if s is not session):
            session.state[self.name] = True
            return None
        session.state[self.name] = True
        self.catchUp(session).addErrback(
            lambda f: self.log.failure("Broadcast catch-up for {jid} failed", f, jid=session.full))
        return None

    @defer.inlineCallbacks
    def catchUp(self, session):
        """
        Send a user who comes online the broadcast messages stored since
        their last logout (or since the account was created), with a
        XEP-0203 delay: no per-user rows are written for broadcasts.
        """
        last = yield self.storage.lastActivity.getLastActivity(session.localpart)
        since = last[0] if last else session.account.createdAt
        query = Query(limit=self.config.broadcast_catchup_dialogs, sort="last_message_date_sent",
                      descending=True)
        query.where("type", "eq", DIALOG_BROADCAST).where("last_message_date_sent", "gte", int(since))
        dialogs = yield self.storage.dialogs.listDialogs(None, query)
        if not dialogs:
            return 0
        owners = yield self.directory.jidsOf({d.ownerId for d in dialogs})
        userApp = appIdOf(session.localpart)
        sent = 0
        for dialog in reversed(dialogs):
            ownerApp = appIdOf(owners.get(dialog.ownerId, "").partition("@")[0])
            if ownerApp is not None and userApp is not None and ownerApp != userApp:
                continue
            room = roomJID(ownerApp or userApp or self.defaultAppId(), dialog.id, self.mucDomain)
            messages = yield self.storage.messages.listMessages(dialog.id, None, Query(
                limit=self.config.broadcast_catchup_messages, sort="created_at",
                descending=True).where("created_at", "gt", since))
            for message in sorted(messages, key=lambda m: m.order):
                if session.closed:
                    return sent
                stanza = messageStanza(message, f"{room}/{message.senderId}", session.full,
                                       "groupchat", dialog.id)
                addStanzaId(stanza, room, message.id)
                stanza.addChild(delayElement(message.createdAt, room, "Broadcast"))
                session.send(stanza)
                sent += 1
        return sent


__all__ = ["DialogFanOut"]
