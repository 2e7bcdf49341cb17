"""
XEP-0016: Privacy Lists. https://xmpp.org/extensions/xep-0016.html

Protocol (§2.3-§2.8): list names with the session's active list and the
account's default list, one list exactly as stored (items in C{order}
order), create/replace a list, set or decline the active list (per
session) and the default list (per account), with privacy-list pushes to
every connected resource.  Business rules (§2.2): an active list replaces
the default list for its session; items are tried in ascending C{order}
and the first match decides; no match allows.  C{conflict} when deleting a
list another resource uses as its active list, and when changing or
declining the default list while it applies to another connected resource
(one with no active list).  Malformed items get C{bad-request}; too many
items C{not-acceptable}; too many lists C{resource-constraint}.

Matching (§2.1): a C{jid} item matches by the parts it has (C{user@domain/
resource}, C{user@domain}, C{domain/resource}, C{domain}: a missing part
matches anything), C{group} by the roster groups of the sender's roster
item, C{subscription} by its subscription state (C{none} when not in the
roster).  An item with children blocks only those kinds (C{message}, C{iq},
C{presence-in} = presence notifications, C{presence-out}); an item with no
children blocks everything, in both directions (§2.13).

ConnectyCube compatibility (SDK reference §5.18, §7): the SDK writes two
items per blocked user; a *mutual* block is a deny item with no children
(neither side can write to the other), a one-way block has the four
children (the blocked user's traffic to the blocker is stopped, the
blocker can still write).  The SDK initialises its block list with an
empty C{<list name/>} (which is also XEP-0016's delete) followed by
setting it as default, so:

  - an empty C{<list name/>} for a list that does not exist succeeds and
    leaves an empty list of that name (which can then be made default);
  - an empty C{<list name/>} for the default list empties it and keeps it
    the default (the SDK unblocking its last user); to delete the default
    list, decline it first (C{<default/>});
  - otherwise an empty C{<list name/>} deletes the list.

Enforcement runs before routing (the router's C{pre-*} events, the first
delivery rule, §2.2 rule 4), on C{message/offline} (no offline storage of
messages from a blocked sender) and on every delivery to a session
(L{Host.deliveryFilters}: presence broadcasts, probe answers, component
traffic), from an in-memory cache: the settings of users with a session are
pinned, others are kept in a bounded LRU; a user's settings are loaded once
(on bind, or the first stanza that needs them, which waits for the load).
Blocked inbound stanzas (§2.14): messages get C{service-unavailable} (with
the legacy C{code="503"} and a text, which the SDK's
C{onMessageErrorListener} reads), IQ get/set C{service-unavailable},
everything else is dropped.  Blocked outbound stanzas get C{not-acceptable}
with XEP-0191's C{<blocked/>} (presence is dropped).

The XEP-0191 blocking command (L{xmppchat.modules.blocking}) is a view of
the default list, built here: L{PrivacyModule.blocklist},
L{PrivacyModule.block}, L{PrivacyModule.unblock}.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from types import SimpleNamespace

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppchat.jid import InvalidJID, parseJID
from xmppchat.modules.base import KeyedLocks, Module, hook
from xmppchat.modules.presence import SUBSCRIBED_FROM, SUBSCRIBED_TO, presenceStanza, retarget
from xmppchat.stanzas import NS_CLIENT, StanzaError, errorReply
from xmppchat.storage.interfaces import SUBSCRIPTIONS

NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

STANZA_KINDS = ("message", "iq", "presence-in", "presence-out")
OTHER = "other"  # what only a deny-everything item blocks: subscriptions, outbound message/iq
ACTIONS = ("allow", "deny")
ITEM_TYPES = ("jid", "group", "subscription")
MAX_ORDER = 2**32 - 1
STATE_ACTIVE = "privacy-active"
BLOCKED_TEXT = "Service not available."
NOTIFICATION_TYPES = (None, "unavailable")


def splitJID(address: str):
    """
    C{(user, host, resource)} of an address the server stamped itself
    (already prepared), without parsing it again.
    """
    bare, slash, resource = address.partition("/")
    user, at, host = bare.partition("@")
    if not at:
        return None, bare, resource if slash else None
    return user, host, resource if slash else None


def inboundKind(name: str, stanzaType: str | None) -> str:
    if name == "presence":
        return "presence-in" if stanzaType in NOTIFICATION_TYPES else OTHER
    return name


def outboundKind(name: str, stanzaType: str | None) -> str:
    if name == "presence" and stanzaType in NOTIFICATION_TYPES:
        return "presence-out"
    return OTHER


@dataclass(frozen=True)
class Rule:
    """
    One compiled item: C{kinds} is C{None} for an item with no children
    (it blocks everything), C{jid} the C{(user, host, resource)} of a
    C{jid} item.
    """

    allow: bool
    kinds: frozenset | None
    type: str | None
    value: str | None
    jid: tuple | None


class CompiledList:
    """
    A list ready for evaluation: its rules in ascending C{order}, with each
    run of consecutive C{jid} rules indexed by C{(user, host, resource)} so
    that long block lists (the SDK writes two items per blocked user) cost
    a few dictionary lookups per stanza instead of a scan.
    """

    __slots__ = ("rules", "segments", "needsRoster")

    def __init__(self, rules: tuple):
        self.rules = rules
        segments = []
        run = None
        for position, rule in enumerate(rules):
            if rule.type == "jid":
                if run is None:
                    run = {}
                    segments.append(run)
                run.setdefault(rule.jid, []).append((position, rule))
            else:
                run = None
                segments.append(rule)
        self.segments = tuple(segments)
        self.needsRoster = any(rule.type in ("group", "subscription") for rule in rules)

    def __len__(self) -> int:
        return len(self.rules)


EMPTY = CompiledList(())


def compileItems(items: list[dict]) -> CompiledList:
    """
    The compiled form of a stored list.
    """
    rules = []
    for item in sorted(items, key=lambda i: i["order"]):
        kind = item.get("type")
        jid = None
        if kind == "jid":
            try:
                parsed = parseJID(item["value"])
            except InvalidJID:
                continue
            jid = (parsed.user, parsed.host, parsed.resource)
        stanzas = item.get("stanzas") or ()
        rules.append(Rule(item["action"] == "allow", frozenset(stanzas) if stanzas else None,
                          kind, item.get("value"), jid))
    return CompiledList(tuple(rules))


def evaluate(compiled: CompiledList, kind: str, peer: tuple, roster: dict | None) -> bool:
    """
    Whether a list denies a stanza of C{kind} exchanged with C{peer}
    (C{(user, host, resource)}); C{roster} maps bare JIDs to the owner's
    roster items (group and subscription rules).  The first rule in
    C{order} that applies to C{kind} and matches decides (§2.2); a C{jid}
    rule matches by the parts it has (§2.1).
    """
    user, host, resource = peer
    for segment in compiled.segments:
        if type(segment) is dict:
            best = None
            for key in ((user, host, resource), (user, host, None), (None, host, resource), (None, host, None)):
                entries = segment.get(key)
                if entries is None:
                    continue
                for position, rule in entries:
                    if rule.kinds is None or kind in rule.kinds:
                        if best is None or position < best[0]:
                            best = (position, rule)
                        break
            if best is not None:
                return not best[1].allow
            continue
        rule = segment
        if rule.kinds is not None and kind not in rule.kinds:
            continue
        if rule.type is not None:
            item = roster.get(f"{user}@{host}" if user else host) if roster else None
            if item is not None and getattr(item, "hidden", False):
                item = None
            if rule.type == "group":
                if item is None or rule.value not in item.groups:
                    continue
            elif (item.subscription if item is not None else "none") != rule.value:
                continue
        return not rule.allow
    return False


def isBlockItem(item: dict) -> bool:
    """
    An item XEP-0191 shows as blocked: a C{jid} deny item blocking every
    kind of stanza (no children, or all four).
    """
    stanzas = item.get("stanzas") or ()
    return (item.get("type") == "jid" and item["action"] == "deny"
            and (not stanzas or set(stanzas) >= set(STANZA_KINDS)))


def normalJID(value: str) -> str:
    try:
        return parseJID(value).full()
    except InvalidJID:
        return value


def parseItems(listElement, maxItems: int, maxName: int) -> list[dict]:
    """
    The items of a C{<list/>} as stored dicts, or C{StanzaError}
    (C{bad-request} for a malformed item, C{not-acceptable} when too many).
    """
    items = []
    orders = set()
    for element in listElement.elements():
        if element.name != "item" or element.uri != NS_PRIVACY:
            raise StanzaError("bad-request", text=f"Unexpected <{element.name}/> in a list")
        action = element.getAttribute("action")
        if action not in ACTIONS:
            raise StanzaError("bad-request", text="An item needs action 'allow' or 'deny'")
        order = element.getAttribute("order", "")
        if not (order.isdigit() and order.isascii()) or int(order) > MAX_ORDER:
            raise StanzaError("bad-request", text="An item needs a non-negative integer order")
        order = int(order)
        if order in orders:
            raise StanzaError("bad-request", text=f"Duplicate order {order}")
        orders.add(order)
        itemType = element.getAttribute("type")
        value = element.getAttribute("value")
        if itemType is None:
            if value is not None:
                raise StanzaError("bad-request", text="An item with a value needs a type")
        elif itemType not in ITEM_TYPES:
            raise StanzaError("bad-request", text=f"Unknown item type {itemType!r}")
        elif value is None:
            raise StanzaError("bad-request", text=f"A {itemType} item needs a value")
        elif itemType == "jid":
            try:
                parseJID(value)
            except InvalidJID:
                raise StanzaError("bad-request", text=f"Invalid JID {value!r}") from None
        elif itemType == "subscription" and value not in SUBSCRIPTIONS:
            raise StanzaError("bad-request", text=f"Unknown subscription {value!r}")
        elif itemType == "group" and not 0 < len(value) <= maxName:
            raise StanzaError("bad-request", text="Group names are 1 to %d characters" % maxName)
        stanzas = []
        for child in element.elements():
            if child.uri != NS_PRIVACY or child.name not in STANZA_KINDS or child.name in stanzas:
                raise StanzaError("bad-request", text=f"Unexpected <{child.name}/> in an item")
            stanzas.append(child.name)
        items.append({"type": itemType, "value": value, "action": action, "order": order,
                      "stanzas": stanzas})
        if len(items) > maxItems:
            raise StanzaError("not-acceptable", text=f"A list holds at most {maxItems} items")
    return items


def clientSession(event):
    """
    The client session an IQ came from; C{forbidden} for server-generated ones.
    """
    if event.origin is None:
        raise StanzaError("forbidden")
    return event.origin


def pushIQ(session, payload) -> None:
    """
    Send a server push (an IQ set carrying C{payload}) to C{session}.
    """
    iq = domish.Element((NS_CLIENT, "iq"))
    iq["type"] = "set"
    iq["id"] = "push-" + secrets.token_hex(6)
    iq["to"] = session.full
    iq.addChild(payload)
    session.send(iq)


def listElement(name: str, items: list[dict] | None = None) -> domish.Element:
    """
    C{<list name/>} with the stored items, in C{order} order.
    """
    element = domish.Element((NS_PRIVACY, "list"))
    element["name"] = name
    for item in sorted(items or (), key=lambda i: i["order"]):
        child = element.addElement("item")
        if item.get("type") is not None:
            child["type"] = item["type"]
            child["value"] = item["value"]
        child["action"] = item["action"]
        child["order"] = str(item["order"])
        for stanza in item.get("stanzas") or ():
            child.addElement(stanza)
    return element


class UserPrivacy:
    """
    The cached privacy settings of one user.

    @ivar lists: name -> stored items; C{rules}: name -> compiled rules.
    @ivar roster: a roster snapshot for group/subscription rules of users
        without a session (with a session the roster module's live cache
        is used).
    """

    __slots__ = ("default", "lists", "rules", "roster")

    def __init__(self, record):
        self.default = record.default
        self.lists = {}
        self.rules = {}
        self.roster = None
        for name, items in record.lists.items():
            self.setList(name, items)

    def setList(self, name: str, items: list[dict]) -> None:
        self.lists[name] = items
        self.rules[name] = compileItems(items)

    def removeList(self, name: str) -> None:
        self.lists.pop(name, None)
        self.rules.pop(name, None)
        if self.default == name:
            self.default = None

    def defaultRules(self) -> CompiledList:
        return self.rules.get(self.default, EMPTY) if self.default is not None else EMPTY

    def needsRoster(self) -> bool:
        return any(compiled.needsRoster for compiled in self.rules.values())

    def blocklist(self) -> list[str]:
        """
        The XEP-0191 view: blocked JIDs of the default list, in order.
        """
        seen = []
        for item in sorted(self.lists.get(self.default, ()) if self.default else (), key=lambda i: i["order"]):
            if isBlockItem(item) and item["value"] not in seen:
                seen.append(item["value"])
        return seen


class BlocklistEvent:
    """
    The event of C{blocklist-changed}: a user's XEP-0191 view changed.
    """

    __slots__ = ("host", "localpart", "before", "after", "origin", "stanza")

    def __init__(self, host, localpart, before, after):
        self.host = host
        self.localpart = localpart
        self.before = before
        self.after = after
        self.origin = None
        self.stanza = None


class PrivacyModule(Module):
    """
    XEP-0016 privacy lists: protocol, storage, cache and enforcement.
    """

    name = "privacy"
    features = (NS_PRIVACY,)

    def setUp(self):
        self.config = self.host.config.privacy
        self.pinned: dict[str, UserPrivacy] = {}
        self.recent: OrderedDict[str, UserPrivacy] = OrderedDict()
        self.loading: dict[str, list] = {}
        self.locks = KeyedLocks()
        self.restrictive: set[str] = set()
        self._exempt = None
        self.host.deliveryFilters.append(self.acceptDelivery)

    def tearDown(self):
        if self.acceptDelivery in self.host.deliveryFilters:
            self.host.deliveryFilters.remove(self.acceptDelivery)

    # -- the cache ------------------------------------------------------------

    def _bare(self, localpart: str) -> str:
        return f"{localpart}@{self.host.domain}"

    def cached(self, localpart: str) -> UserPrivacy | None:
        entry = self.pinned.get(localpart)
        if entry is None:
            entry = self.recent.get(localpart)
            if entry is not None:
                self.recent.move_to_end(localpart)
        return entry

    def settingsOf(self, localpart: str) -> defer.Deferred:
        """
        Fires with the user's L{UserPrivacy}, from the cache or loaded once
        from storage (concurrent callers share one load).
        """
        entry = self.cached(localpart)
        if entry is not None:
            return defer.succeed(entry)
        d = defer.Deferred()
        waiters = self.loading.get(localpart)
        if waiters is not None:
            waiters.append(d)
            return d
        self.loading[localpart] = [d]
        self._fetch(localpart).addBoth(self._loaded, localpart)
        return d

    @defer.inlineCallbacks
    def _fetch(self, localpart):
        record = yield self.storage.privacy.getPrivacy(localpart)
        entry = UserPrivacy(record)
        if entry.needsRoster():
            items = yield self.storage.roster.getRoster(localpart)
            entry.roster = {item.jid: item for item in items}
        return entry

    def _loaded(self, result, localpart):
        waiters = self.loading.pop(localpart, [])
        if not isinstance(result, Failure):
            result = self.cached(localpart) or self._remember(localpart, result)
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _remember(self, localpart: str, entry: UserPrivacy) -> UserPrivacy:
        if self.host.sessions.isConnected(self._bare(localpart)):
            self.pinned[localpart] = entry
        else:
            self.recent[localpart] = entry
            while len(self.recent) > self.config.cache_size:
                evicted, _ = self.recent.popitem(last=False)
                self.restrictive.discard(evicted)
        self._refresh(localpart)
        return entry

    def _refresh(self, localpart: str) -> None:
        """
        Keep L{restrictive} (users with a list in force) up to date.
        """
        entry = self.cached(localpart)
        if entry is not None and (entry.default is not None or any(
                s.state.get(STATE_ACTIVE) for s in self.host.sessions.sessionsOf(self._bare(localpart)))):
            self.restrictive.add(localpart)
        else:
            self.restrictive.discard(localpart)

    def forget(self, localpart: str) -> None:
        """
        The user's settings changed elsewhere (another cluster node), or the
        user left the cluster: drop the cached copy.  A user with sessions
        here is reloaded at once, and the old copy stays in force until the
        new one is in, so that nothing is delivered unfiltered meanwhile.
        """
        if not self.host.sessions.localSessionsOf(self._bare(localpart)):
            self.pinned.pop(localpart, None)
            self.recent.pop(localpart, None)
            self.restrictive.discard(localpart)
            return

        def loaded(entry):
            if localpart in self.pinned:
                self.pinned[localpart] = entry
            elif localpart in self.recent:
                self.recent[localpart] = entry
            self._refresh(localpart)

        self._fetch(localpart).addCallbacks(loaded, lambda f: self.log.failure(
            "Reloading the privacy lists of {user} failed", f, user=localpart))

    def ensureLoaded(self, localparts) -> defer.Deferred:
        """
        Load the settings of these users into the cache (for L{blocks}).
        """
        missing = [lp for lp in set(localparts) if self.cached(lp) is None]
        return defer.gatherResults([self.settingsOf(lp) for lp in missing], consumeErrors=True)

    @hook("session-bound")
    def onSessionBound(self, event):
        localpart = event.session.localpart
        entry = self.recent.pop(localpart, None)
        if entry is not None:
            self.pinned[localpart] = entry
            return None
        self.settingsOf(localpart).addErrback(
            lambda f: self.log.failure("Loading privacy lists of {user} failed", f, user=localpart))
        return None

    @hook("session-ended", priority=-200)
    def onSessionEnded(self, event):
        session = event.session
        if not self.host.sessions.isConnected(session.bare):
            entry = self.pinned.pop(session.localpart, None)
            if entry is not None:
                self._remember(session.localpart, entry)
        self._refresh(session.localpart)

    def _roster(self, localpart: str, entry: UserPrivacy):
        roster = self.host.modules.get("roster")
        live = roster.cache.get(localpart) if roster is not None else None
        return live if live is not None else entry.roster

    def sessionRules(self, session, entry: UserPrivacy | None = None) -> CompiledList:
        """
        The rules in force for a session: its active list, else the default list.
        """
        if entry is None:
            entry = self.cached(session.localpart)
            if entry is None:
                return EMPTY
        name = session.state.get(STATE_ACTIVE)
        if name is None:
            return entry.defaultRules()
        return entry.rules.get(name, EMPTY)

    def blocks(self, receiverBare: str, senderBare: str, kind: str = "message") -> bool:
        """
        Whether a stanza of C{kind} (C{message}, C{iq}, C{presence-in})
        from C{senderBare} to C{receiverBare} is refused: by the receiver's
        default list, or by the sender's default list blocking everything
        with the receiver (mutual block).  For group fan-out; synchronous,
        from the cache only (users not cached count as having no lists:
        call L{ensureLoaded} first for users without a session).
        """
        if not self.restrictive:
            return False
        receiver = splitJID(receiverBare)
        sender = splitJID(senderBare)
        domain = self.host.domain
        if receiver[0] in self.restrictive and receiver[1] == domain:
            entry = self.cached(receiver[0])
            if entry is not None and evaluate(entry.defaultRules(), kind, sender,
                                              self._roster(receiver[0], entry)):
                return True
        if sender[0] in self.restrictive and sender[1] == domain:
            entry = self.cached(sender[0])
            if entry is not None and evaluate(entry.defaultRules(), OTHER, receiver,
                                              self._roster(sender[0], entry)):
                return True
        return False

    def presenceHidden(self, localpart: str, peerBare: str) -> bool:
        """
        Whether C{localpart}'s lists keep its presence from C{peerBare}: a
        C{presence-out} deny (§2.13; a block, XEP-0191, or XEP-0126
        invisibility) in its default list or in the list in force for any
        of its sessions.  Last activity and the online list honour it
        (XEP-0012 §7; issue 15 finding 9).  Synchronous, from the cache:
        L{settingsOf} first for a user without a session.
        """
        if localpart not in self.restrictive:
            return False
        entry = self.cached(localpart)
        if entry is None:
            return False
        peer = splitJID(peerBare)
        roster = self._roster(localpart, entry)
        rules = [entry.defaultRules()]
        rules.extend(self.sessionRules(s, entry) for s in self.host.sessions.sessionsOf(self._bare(localpart)))
        return any(evaluate(r, "presence-out", peer, roster) for r in rules)

    @hook("presence-hidden")
    def onPresenceHidden(self, query):
        """
        The question hook C{presence-hidden} (C{/users/online.json}): which
        of C{query.peers} (bare JIDs with a session here, so cached) hide
        their presence from C{query.viewer}; answers a set of them.
        """
        query.answer({peer for peer in query.peers
                      if self.presenceHidden(peer.partition("@")[0], query.viewer)})
        return None

    # -- enforcement: before routing ----------------------------------------------

    @hook("pre-message/bare", priority=1000)
    @hook("pre-message/full", priority=1000)
    @hook("pre-iq/bare", priority=1000)
    @hook("pre-iq/full", priority=1000)
    @hook("pre-presence/bare", priority=1000)
    @hook("pre-presence/full", priority=1000)
    @hook("pre-presence/self", priority=1000)
    @hook("pre-iq/self", priority=1000)
    def onStanza(self, event):
        origin = event.origin
        to = event.to
        receiver = to.user if to is not None and event.kind != "self" else None
        missing = []
        if origin is not None and origin.localpart not in self.pinned and self.cached(origin.localpart) is None:
            missing.append(origin.localpart)
        if receiver is not None and receiver not in self.pinned and self.cached(receiver) is None:
            missing.append(receiver)
        if missing:
            return self._waitFor(missing, event)
        if receiver is None:
            return None
        if (origin is None or origin.localpart not in self.restrictive) and receiver not in self.restrictive:
            return None
        return self.check(event)

    def _waitFor(self, missing, event):
        """
        Pause the stanza (L{xmppchat.router}: its sender's next stanzas wait
        behind it) until the settings it needs are cached, then check it.
        """
        origin = event.origin
        stanza = event.stanza

        def failed(failure):
            self.log.failure("Loading privacy lists failed", failure)
            self.router.sendError(origin, stanza, "internal-server-error")
            return True

        return self.ensureLoaded(missing).addCallbacks(lambda _: self.onStanza(event), failed)

    def check(self, event):
        """
        Apply the sender's list (outbound) and the receiver's (inbound).
        """
        origin = event.origin
        stanza = event.stanza
        name = stanza.name
        stanzaType = event.stanzaType if name != "message" else stanza.getAttribute("type")
        to = event.to
        domain = self.host.domain
        if origin is not None:
            peer = (origin.localpart, domain, origin.resource)
            if origin.localpart in self.restrictive and to.userhost() != origin.bare and stanzaType != "error":
                if evaluate(self.sessionRules(origin), outboundKind(name, stanzaType),
                            (to.user, to.host, to.resource),
                            self._roster(origin.localpart, self.cached(origin.localpart))):
                    self._refuse(origin, stanza, "not-acceptable", "You have blocked this contact",
                                 blocked=True)
                    return True
        else:
            frm = stanza.getAttribute("from")
            if frm is None:
                return None
            peer = splitJID(frm)
        receiver = to.user
        if receiver not in self.restrictive or (peer[0] == receiver and peer[1] == domain):
            return None
        entry = self.cached(receiver)
        if event.kind == "full":
            session = self.host.sessions.get(to.userhost(), to.resource)
            rules = self.sessionRules(session, entry) if session is not None else entry.defaultRules()
        else:
            sessions = self.host.sessions.sessionsOf(to.userhost())
            if name != "iq" and any(s.state.get(STATE_ACTIVE) for s in sessions):
                # per-session active lists (§2.2 rule 1): each session filters on
                # delivery; the sender hears of it only when every target refuses
                targets = [s for s in sessions if s.available and s.priority >= 0]
                kind = inboundKind(name, stanzaType)
                if name != "message" or (targets and not all(
                        evaluate(self.sessionRules(s, entry), kind, peer, self._roster(receiver, entry))
                        for s in targets)):
                    return None
                if targets:
                    self._refuse(origin, stanza, "service-unavailable", BLOCKED_TEXT)
                    return True
            rules = entry.defaultRules()
        if not evaluate(rules, inboundKind(name, stanzaType), peer, self._roster(receiver, entry)):
            return None
        self._refuse(origin, stanza, "service-unavailable", BLOCKED_TEXT)
        return True

    @hook("message/offline", priority=100)
    def onOffline(self, event):
        """
        No offline storage for a message the default list refuses.
        """
        receiver = event.to.user
        entry = self.cached(receiver)
        if receiver not in self.restrictive or entry is None:
            return None
        frm = event.stanza.getAttribute("from")
        if frm is None or not evaluate(entry.defaultRules(), "message", splitJID(frm),
                                       self._roster(receiver, entry)):
            return None
        self._refuse(event.origin, event.stanza, "service-unavailable", BLOCKED_TEXT)
        return True

    def _refuse(self, origin, stanza, condition: str, text: str, blocked: bool = False) -> None:
        """
        Answer a refused stanza: message C{chat}/C{normal} and IQ get/set
        get an error, anything else is dropped (XEP-0016 §2.14).
        """
        stanzaType = stanza.getAttribute("type")
        if stanza.name == "message":
            if stanzaType not in (None, "chat", "normal"):
                return
        elif stanza.name != "iq" or stanzaType not in ("get", "set"):
            return
        reply = errorReply(stanza, condition, text)
        if blocked:
            reply.error.addElement((NS_BLOCKING_ERRORS, "blocked"))
        if origin is not None:
            self.sendExempt(origin, reply)
        else:
            self.router.deliver(reply)

    def sendExempt(self, session, stanza) -> None:
        """
        Send a stanza the privacy rules must not filter (our own errors and
        presence corrections).
        """
        self._exempt = stanza
        try:
            session.send(stanza)
        finally:
            self._exempt = None

    # -- enforcement: on delivery -------------------------------------------------

    def acceptDelivery(self, session, stanza) -> bool:
        """
        L{Host.deliveryFilters}: refuse what the receiving session's rules
        deny inbound, or the (local) sender's rules deny outbound.
        """
        if not self.restrictive or stanza is self._exempt:
            return True
        frm = stanza.getAttribute("from")
        if frm is None:
            return True
        peer = splitJID(frm)
        user, host, resource = peer
        domain = self.host.domain
        if host == domain and (user is None or user == session.localpart):
            return True
        name = stanza.name
        stanzaType = stanza.getAttribute("type")
        receiver = session.localpart
        if receiver in self.restrictive:
            entry = self.cached(receiver)
            if entry is not None and evaluate(self.sessionRules(session, entry), inboundKind(name, stanzaType),
                                              peer, self._roster(receiver, entry)):
                return False
        if user in self.restrictive and host == domain and stanzaType != "error":
            entry = self.cached(user)
            if entry is not None:
                sender = self.host.sessions.get(f"{user}@{host}", resource) if resource else None
                rules = self.sessionRules(sender, entry) if sender is not None else entry.defaultRules()
                if evaluate(rules, outboundKind(name, stanzaType), (receiver, domain, session.resource),
                            self._roster(user, entry)):
                    return False
        return True

    # -- the protocol -------------------------------------------------------------

    def _locked(self, localpart: str, f, *args) -> defer.Deferred:
        """
        Run C{f} with the user's settings loaded, one change at a time per user.
        """
        def run():
            return self.settingsOf(localpart).addCallback(lambda entry: f(entry, *args))

        return self.locks.run(localpart, run)

    @hook(f"iq-get/self/{NS_PRIVACY}:query")
    def onGet(self, event):
        session = clientSession(event)
        children = list(event.stanza.query.elements())
        if not children:
            return self.settingsOf(session.localpart).addCallback(self._sendNames, event, session)
        if len(children) != 1 or children[0].name != "list" or not children[0].getAttribute("name"):
            raise StanzaError("bad-request", text="Ask for the list names or for exactly one list")
        name = children[0]["name"]

        def send(entry):
            if name not in entry.lists:
                raise StanzaError("item-not-found", text=f"No privacy list {name!r}")
            query = domish.Element((NS_PRIVACY, "query"))
            query.addChild(listElement(name, entry.lists[name]))
            return self.reply(event, query)

        return self.settingsOf(session.localpart).addCallback(send)

    def _sendNames(self, entry, event, session):
        query = domish.Element((NS_PRIVACY, "query"))
        active = session.state.get(STATE_ACTIVE)
        if active is not None:
            query.addElement("active")["name"] = active
        if entry.default is not None:
            query.addElement("default")["name"] = entry.default
        for name in entry.lists:
            query.addElement("list")["name"] = name
        return self.reply(event, query)

    @hook(f"iq-set/self/{NS_PRIVACY}:query")
    def onSet(self, event):
        session = clientSession(event)
        children = list(event.stanza.query.elements())
        if len(children) != 1 or children[0].uri != NS_PRIVACY:
            raise StanzaError("bad-request", text="A privacy set carries exactly one active, default or list")
        child = children[0]
        name = child.getAttribute("name")
        if name is not None and not 0 < len(name) <= self.config.max_name_length:
            raise StanzaError("not-acceptable", text="List names are 1 to %d characters"
                              % self.config.max_name_length)
        if child.name == "active":
            d = self._locked(session.localpart, self._setActive, session, name)
        elif child.name == "default":
            d = self._locked(session.localpart, self._setDefault, session, name)
        elif child.name == "list" and name is not None:
            items = parseItems(child, self.config.max_items, self.config.max_name_length)
            d = self._locked(session.localpart, self._setList, session, name, items)
        else:
            raise StanzaError("bad-request", text=f"Unexpected <{child.name}/>")
        return d.addCallback(lambda _: self.reply(event))

    def _setActive(self, entry, session, name):
        if name is not None and name not in entry.lists:
            raise StanzaError("item-not-found", text=f"No privacy list {name!r}")
        with self._changing(session.localpart, entry):
            if name is None:
                session.state.pop(STATE_ACTIVE, None)
            else:
                session.state[STATE_ACTIVE] = name

    def _defaultInUseElsewhere(self, session) -> bool:
        return any(other is not session and other.state.get(STATE_ACTIVE) is None
                   for other in self.host.sessions.sessionsOf(session.bare))

    @defer.inlineCallbacks
    def _setDefault(self, entry, session, name):
        if name is not None and name not in entry.lists:
            raise StanzaError("item-not-found", text=f"No privacy list {name!r}")
        if name == entry.default:
            return
        if entry.default is not None and self._defaultInUseElsewhere(session):
            raise StanzaError("conflict", text="The default list is in use by another resource")
        yield self.storage.privacy.setDefaultPrivacyList(session.localpart, name)
        with self._changing(session.localpart, entry):
            entry.default = name

    @defer.inlineCallbacks
    def _setList(self, entry, session, name, items):
        localpart = session.localpart
        exists = name in entry.lists
        if not exists and len(entry.lists) >= self.config.max_lists:
            raise StanzaError("resource-constraint", text=f"At most {self.config.max_lists} lists")
        if items or not exists or name == entry.default:
            yield self.storage.privacy.setPrivacyList(localpart, name, items)
            with self._changing(localpart, entry):
                entry.setList(name, items)
        else:
            for other in self.host.sessions.sessionsOf(session.bare):
                if other is not session and other.state.get(STATE_ACTIVE) == name:
                    raise StanzaError("conflict", text="The list is active for another resource")
            yield self.storage.privacy.deletePrivacyList(localpart, name)
            with self._changing(localpart, entry):
                entry.removeList(name)
                if session.state.get(STATE_ACTIVE) == name:
                    session.state.pop(STATE_ACTIVE)
        self.pushList(localpart, name)

    def pushList(self, localpart: str, name: str) -> None:
        """
        Privacy list push to every connected resource (§2.2 rule 10).
        """
        for session in self.host.sessions.sessionsOf(self._bare(localpart)):
            query = domish.Element((NS_PRIVACY, "query"))
            query.addChild(listElement(name))
            pushIQ(session, query)

    # -- after a change: presence, blocklist view, cache ----------------------------

    def _changing(self, localpart: str, entry: UserPrivacy):
        return _Change(self, localpart, entry)

    def _afterChange(self, localpart, entry, rulesBefore, blocklistBefore) -> None:
        self._refresh(localpart)
        self.host.hooks.fire("privacy-changed", SimpleNamespace(host=self.host, localpart=localpart))
        if entry.roster is None and entry.needsRoster() and self._roster(localpart, entry) is None:
            # group/subscription rules of a user whose roster is not cached
            self.storage.roster.getRoster(localpart).addCallback(
                lambda items: setattr(entry, "roster", {i.jid: i for i in items}))
        self._presenceEffects(localpart, entry, rulesBefore)
        after = entry.blocklist()
        if after != blocklistBefore:
            self.host.hooks.fire("blocklist-changed", BlocklistEvent(self.host, localpart, blocklistBefore, after))

    def _presenceEffects(self, localpart: str, entry: UserPrivacy, rulesBefore: dict) -> None:
        """
        Contacts that can no longer see a session's presence get unavailable
        presence, those that can again get its presence (XEP-0016 §2.11,
        XEP-0191 §3.3-§3.4); likewise for contacts' presence the session no
        longer (or again) accepts (§2.10).
        """
        roster = self._roster(localpart, entry) or {}
        sessions = self.host.sessions
        for session in sessions.sessionsOf(self._bare(localpart)):
            before = rulesBefore.get(session, EMPTY)
            after = self.sessionRules(session, entry)
            if before is after or not session.available:
                continue
            targets = {jid for jid, item in roster.items() if item.subscription in SUBSCRIBED_FROM}
            targets.update(full.partition("/")[0] for full in session.directed)
            for bare in targets:
                for other in sessions.sessionsOf(bare):
                    if other.available and other.bare != session.bare:
                        self._correctPresence(before, after, "presence-out", other, roster, session, other)
            for bare, item in roster.items():
                if item.subscription in SUBSCRIBED_TO:
                    for contact in sessions.sessionsOf(bare):
                        if contact.available:
                            self._correctPresence(before, after, "presence-in", contact, roster, contact, session)

    def _correctPresence(self, before, after, kind, peer, roster, sender, receiver) -> None:
        """
        Tell C{receiver} C{sender} went away when the rules now deny C{kind}
        with C{peer}, or send C{sender}'s presence when they no longer do.
        """
        address = (peer.localpart, peer.jid.host, peer.resource)
        wasDenied = evaluate(before, kind, address, roster)
        isDenied = evaluate(after, kind, address, roster)
        if isDenied and not wasDenied:
            self.sendExempt(receiver, presenceStanza(sender.full, receiver.full, "unavailable"))
        elif wasDenied and not isDenied and sender.presence is not None:
            self.sendExempt(receiver, retarget(sender.presence, receiver.full, sender.full))

    # -- XEP-0191 view ------------------------------------------------------------

    def blocklist(self, localpart: str) -> defer.Deferred:
        """
        Fires with the user's blocked JIDs (the default list's jid deny
        items that block everything).
        """
        return self.settingsOf(localpart).addCallback(lambda entry: entry.blocklist())

    def block(self, session, jids: list[str]) -> defer.Deferred:
        """
        Block C{jids}: deny-everything items put first in the default list
        (created as C{privacy.blocklist_name} and made default when the
        user has none).
        """
        return self._locked(session.localpart, self._block, session, jids)

    @defer.inlineCallbacks
    def _block(self, entry, session, jids):
        localpart = session.localpart
        name = entry.default
        makeDefault = name is None
        if makeDefault:
            name = self.config.blocklist_name
            if name not in entry.lists and len(entry.lists) >= self.config.max_lists:
                raise StanzaError("resource-constraint", text=f"At most {self.config.max_lists} lists")
        items = list(entry.lists.get(name, ()))
        blocked = {normalJID(i["value"]) for i in items if isBlockItem(i)}
        new = []
        for jid in jids:
            if normalJID(jid) not in blocked:
                blocked.add(normalJID(jid))
                new.append({"type": "jid", "value": jid, "action": "deny", "order": 0, "stanzas": []})
        if not new and not makeDefault:
            return
        items = new + sorted(items, key=lambda i: i["order"])
        if len(items) > self.config.max_items:
            raise StanzaError("not-acceptable", text=f"A list holds at most {self.config.max_items} items")
        items = [dict(item, order=position) for position, item in enumerate(items, 1)]
        yield self.storage.privacy.setPrivacyList(localpart, name, items)
        if makeDefault:
            yield self.storage.privacy.setDefaultPrivacyList(localpart, name)
        with self._changing(localpart, entry):
            entry.setList(name, items)
            entry.default = name
        self.pushList(localpart, name)

    def unblock(self, session, jids: list[str] | None) -> defer.Deferred:
        """
        Unblock C{jids} (every blocked JID when C{None}).
        """
        return self._locked(session.localpart, self._unblock, session, jids)

    @defer.inlineCallbacks
    def _unblock(self, entry, session, jids):
        name = entry.default
        if name is None:
            return
        wanted = None if jids is None else {normalJID(j) for j in jids}
        items = entry.lists[name]
        kept = [i for i in items if not (isBlockItem(i) and (wanted is None or normalJID(i["value"]) in wanted))]
        if len(kept) == len(items):
            return
        yield self.storage.privacy.setPrivacyList(session.localpart, name, kept)
        with self._changing(session.localpart, entry):
            entry.setList(name, kept)
        self.pushList(session.localpart, name)


class _Change:
    """
    C{with module._changing(localpart, entry):} around an in-memory change
    of a user's settings: records what applied before, then refreshes the
    cache flags, corrects presence and announces blocklist changes.
    """

    def __init__(self, module, localpart, entry):
        self.module = module
        self.localpart = localpart
        self.entry = entry

    def __enter__(self):
        module = self.module
        self.rules = {s: module.sessionRules(s, self.entry)
                      for s in module.host.sessions.sessionsOf(module._bare(self.localpart))}
        self.blocklist = self.entry.blocklist()
        return self

    def __exit__(self, excType, exc, tb):
        if excType is None:
            self.module._afterChange(self.localpart, self.entry, self.rules, self.blocklist)
        return False
