"""
XEP-0012: Last Activity, https://xmpp.org/extensions/xep-0012.html, and the
ConnectyCube status streaming extension (SDK reference §5.12).

Last activity (C{<query xmlns="jabber:iq:last"/>}):

- to the server (§5): seconds since the server started;
- to a user's bare JID (§4): C{0} while the user has a bound session, else
  the seconds since the last session ended (at least C{1}, like the
  status streaming push, so that an offline user is never answered with
  the online value), with the status text of the
  last unavailable (or available) presence as the query's text; the time
  is recorded in the last-activity store when the last resource of the
  account goes.  An account that never logged out answers with the
  seconds since it was created.  Unknown accounts get
  C{service-unavailable} (RFC 6121 §8.5.1).
- Who gets it is the target's last-seen setting (issue 17 item 4,
  L{xmppchat.privacysettings}: C{privacy_settings.last_seen.visibility},
  else C{[privacy] last_seen_default}): C{everyone}; C{contacts}, the
  users the target consented to (issue 15 finding 9): with a presence
  subscription to the target (RFC 6121 §3: their roster item has
  subscription C{to} or C{both}), or in a dialog in which the target has
  written (opening a dialog with someone, or putting him in a group,
  consents to nothing); C{nobody}.  The user himself always; nobody else
  when the target's privacy lists keep its presence from the asker (a
  block or XEP-0126 invisibility, XEP-0012 §7).  Others get C{forbidden}
  (XEP-0012 §4: "MUST NOT return last activity information").  The
  dialog check is the question hook C{dialog-consent}: a
  L{xmppchat.hooks.Query} with C{user} (the asker's bare JID) and C{peer}
  (the target's); a handler calls C{query.answer(True)} (or answers with
  a Deferred).

Status streaming (C{<iq type="set"><subscribe
xmlns="https://connectycube.com/protocol/status_streaming" user_jid=...
enable="true|false"/></iq>}): after the same authorisation a session
subscribes to a user; it is answered with an empty result, and when the
user comes online (first bound resource) or goes offline (last one gone)
every subscribed session that the target's privacy lists do not keep
its presence from (checked again at each push) gets C{<iq type="result" id=<unique>
from=<user bare> to=<subscriber full>><query xmlns="jabber:iq:last"
seconds=N/></iq>} -- C{seconds="0"} when the user comes online and
C{seconds="1"} when they go (a non-zero value, so clients can tell
offline from online).  Subscriptions belong to a session and end with it;
at most C{limits.status_subscriptions_per_session} per session
(C{resource-constraint} beyond).  When the target's account changes
(C{account-updated}, on every cluster node) its subscribers are
authorised again and those its new setting refuses are dropped silently;
meanwhile a target whose setting is C{nobody} pushes to nobody.
"""

from __future__ import annotations

import secrets

from twisted.internet import defer
from twisted.words.xish import domish

from xmppchat.hooks import Query, ask
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import Module, hook
from xmppchat.privacysettings import (
    CONTACT,
    HIDDEN,
    STRANGER,
    lastSeenAllowed,
    lastSeenOf,
    needsRelation,
)
from xmppchat.stanzas import NS_CLIENT, StanzaError

NS_LAST = "jabber:iq:last"
NS_STATUS_STREAMING = "https://connectycube.com/protocol/status_streaming"
SUBSCRIBED_TO = frozenset(("to", "both"))


def lastQuery(seconds: int, status: str | None = None) -> domish.Element:
    query = domish.Element((NS_LAST, "query"))
    query["seconds"] = str(max(0, int(seconds)))
    if status:
        query.addContent(status)
    return query


def presenceStatus(stanza) -> str | None:
    if stanza is None:
        return None
    for child in stanza.elements():
        if child.name == "status":
            return str(child)[:1024] or None
    return None


class LastActivityModule(Module):
    """
    XEP-0012 §4-§5 and ConnectyCube status streaming.
    """

    name = "last"
    features = (NS_LAST, NS_STATUS_STREAMING)

    def setUp(self):
        # target bare JID -> sessions subscribed to it
        self.watchers: dict[str, set] = {}

    # -- authorisation ---------------------------------------------------

    def visibility(self, account) -> str:
        """
        The last-seen visibility of C{account}.
        """
        return lastSeenOf(account, self.host.config.privacy.last_seen_default)

    def mayWatch(self, session, target: str, account) -> defer.Deferred:
        """
        Fires with whether C{session}'s user may see the activity of
        C{target} (whose account is C{account}): L{lastSeenAllowed} for his
        relation to the target, looked up only when the setting needs it.
        """
        if target == session.bare:
            return defer.succeed(True)
        visibility = self.visibility(account)
        if not lastSeenAllowed(visibility, CONTACT):
            return defer.succeed(False)  # nobody: no lookups

        @defer.inlineCallbacks
        def check():
            privacy = self.host.modules.get("privacy")
            if privacy is not None:
                localpart = target.partition("@")[0]
                yield privacy.settingsOf(localpart)
                if privacy.presenceHidden(localpart, session.bare):
                    return lastSeenAllowed(visibility, HIDDEN)
            relation = STRANGER
            if needsRelation(visibility):
                contact = yield self.isContact(session, target)
                relation = CONTACT if contact else STRANGER
            return lastSeenAllowed(visibility, relation)

        return check()

    @defer.inlineCallbacks
    def isContact(self, session, target: str):
        """
        Issue 15 finding 9's consent: a presence subscription to C{target},
        or a dialog in which C{target} has written.
        """
        item = yield self.storage.roster.getRosterItem(session.localpart, target)
        if item is not None and item.subscription in SUBSCRIBED_TO:
            return True
        answers = yield ask(self.host.hooks, "dialog-consent",
                            Query(self.host, user=session.bare, peer=target))
        return any(a is True for a in answers)

    @defer.inlineCallbacks
    def authorise(self, session, target: str, unknown: str):
        """
        Fires with C{target}'s account if C{session} may see its activity;
        fails with C{unknown} for a non-existent account, C{forbidden}
        otherwise.
        """
        account = yield self._account(target)
        if account is None:
            raise StanzaError(unknown, text="No such user")
        allowed = yield self.mayWatch(session, target, account)
        if not allowed:
            raise StanzaError("forbidden", text="You may not see this user's activity")
        return account

    def _unwatch(self, session, target: str) -> None:
        watchers = self.watchers.get(target)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self.watchers[target]

    def _account(self, bare: str):
        user, _, domain = bare.partition("@")
        if domain != self.host.domain or not user:
            return defer.succeed(None)
        return self.storage.accounts.getAccountByLocalpart(user)

    # -- XEP-0012 ----------------------------------------------------------

    @hook(f"iq-get/host/{NS_LAST}:query")
    def onServer(self, event):
        return self.reply(event, lastQuery(self.host.uptime()))

    @hook(f"iq-get/self/{NS_LAST}:query")
    def onSelf(self, event):
        return self.reply(event, lastQuery(0))

    @hook(f"iq-get/bare/{NS_LAST}:query")
    @defer.inlineCallbacks
    def onUser(self, event):
        session = self.requireSession(event)
        target = event.to.userhost()
        account = yield self.authorise(session, target, "service-unavailable")
        if self.host.sessions.isConnected(target):
            return self.reply(event, lastQuery(0))
        last = yield self.storage.lastActivity.getLastActivity(account.localpart)
        now = self.host.clock.seconds()
        if last is None:
            return self.reply(event, lastQuery(max(1, now - account.createdAt)))
        stamp, status = last
        return self.reply(event, lastQuery(max(1, now - stamp), status))

    # -- recording -----------------------------------------------------------

    @hook("presence/self", priority=100)
    def onPresence(self, event):
        """
        Remember the status text of the session's last presence.
        """
        if event.origin is not None and event.stanzaType in (None, "unavailable"):
            event.origin.state[self.name] = presenceStatus(event.stanza)
        return None

    @hook("session-bound")
    def onBound(self, event):
        session = event.session
        if self.host.sessions.resourceCount(session.bare) == 1:
            self.notify(session.bare, 0, session.account)

    @hook("session-ended")
    def onEnded(self, event):
        session = event.session
        for target in session.state.pop("last-watching", ()):
            self._unwatch(session, target)
        if self.host.sessions.isConnected(session.bare):
            return
        status = session.state.get(self.name)
        self.storage.lastActivity.setLastActivity(
            session.localpart, self.host.clock.seconds(), status).addErrback(
            lambda f: self.log.failure("Recording last activity of {jid} failed", f, jid=session.bare))
        self.notify(session.bare, 1, session.account)

    # -- status streaming -------------------------------------------------------

    def notify(self, target: str, seconds: int, account) -> None:
        """
        Push C{target}'s new state to every session subscribed to it that
        its privacy lists (loaded first if need be) do not hide it from,
        unless its account (C{account}) shows its last activity to nobody.
        """
        if not self.watchers.get(target) or not lastSeenAllowed(self.visibility(account), CONTACT):
            return
        privacy = self.host.modules.get("privacy")
        if privacy is None:
            self._push(target, seconds, None)
            return
        privacy.settingsOf(target.partition("@")[0]).addCallbacks(
            lambda _: self._push(target, seconds, privacy),
            lambda f: self.log.failure("No status push for {jid}: privacy lists unavailable", f, jid=target))

    def _push(self, target: str, seconds: int, privacy) -> None:
        localpart = target.partition("@")[0]
        for watcher in tuple(self.watchers.get(target, ())):
            if privacy is not None and privacy.presenceHidden(localpart, watcher.bare):
                continue
            iq = domish.Element((NS_CLIENT, "iq"))
            iq["type"] = "result"
            iq["id"] = "last-" + secrets.token_hex(8)
            iq["from"] = target
            iq["to"] = watcher.full
            iq.addChild(lastQuery(seconds))
            watcher.send(iq)

    @hook("account-updated")
    def onAccountUpdated(self, event):
        """
        The target's settings may have changed: authorise its subscribers
        again and drop those refused now.
        """
        account = event.account
        target = f"{account.localpart}@{self.host.domain}"
        for watcher in tuple(self.watchers.get(target, ())):
            d = self.mayWatch(watcher, target, account)
            d.addCallback(lambda allowed, w=watcher: allowed or self._drop(w, target))
            d.addErrback(lambda f: self.log.failure("Checking a status subscription failed", f))
        return None

    def _drop(self, watcher, target: str) -> None:
        watcher.state.get("last-watching", set()).discard(target)
        self._unwatch(watcher, target)

    @hook(f"iq-set/self/{NS_STATUS_STREAMING}:subscribe")
    @hook(f"iq-set/host/{NS_STATUS_STREAMING}:subscribe")
    @defer.inlineCallbacks
    def onSubscribe(self, event):
        session = self.requireSession(event)
        element = event.stanza.subscribe
        try:
            target = parseJID(element.getAttribute("user_jid", "")).userhost()
        except InvalidJID:
            raise StanzaError("jid-malformed", text="Invalid user_jid") from None
        enable = element.getAttribute("enable", "true")
        if enable not in ("true", "false", "1", "0"):
            raise StanzaError("bad-request", text="enable must be 'true' or 'false'")
        watching = session.state.setdefault("last-watching", set())
        if enable in ("false", "0"):
            watching.discard(target)
            self._unwatch(session, target)
            return self.reply(event)
        if target not in watching:
            limit = self.host.config.limits.status_subscriptions_per_session
            if len(watching) >= limit:
                raise StanzaError("resource-constraint", text=f"At most {limit} status subscriptions")
            yield self.authorise(session, target, "item-not-found")
            if session.closed:
                return True
            if len(watching) >= limit:
                raise StanzaError("resource-constraint", text=f"At most {limit} status subscriptions")
            watching.add(target)
            self.watchers.setdefault(target, set()).add(session)
        return self.reply(event)
