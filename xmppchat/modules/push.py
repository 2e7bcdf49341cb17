"""
Push notifications: who gets one, and how it is sent.  XEP-0357: Push
Notifications, https://xmpp.org/extensions/xep-0357.html, for standard
clients, and a pluggable notifier (log or HTTP webhook) for everything
else (a ConnectyCube-style push service behind a webhook).

Who: for every 1-1 message (group messages only through
L{PushModule.consider}, which the dialog layer calls once per occupant
when it fans a message out), a recipient gets a push when
they have no session that will receive it (offline: no available resource
with a non-negative priority) or when every session that receives it is
inactive (XEP-0352 / the SDK's mobile IQ, C{session.inactive}).  Never for
C{silent} messages (C{extraParams/silent} = 1), chat states, markers,
receipts, corrections, retractions, reactions, errors or system messages
(C{headline}): a push needs a body or an attachment.  The dialog layer
vetoes per dialog through the question hook C{notifications-enabled}: a
L{xmppchat.hooks.Query} with C{user} (recipient bare JID), C{peer}
(sender bare JID), C{dialogId}, C{stanza}; answering C{False} suppresses
the push.

How: the notifier of C{[push] notifier}:
- C{"log"} (default) logs one line per push;
- C{"webhook"} POSTs the push as JSON (C{to}, C{user_id}, C{from},
  C{message_id}, C{type}, C{dialog_id}, C{reason} offline|inactive,
  C{body} unless C{include_body = false}, C{stamp}, C{xep0357}) to
  C{url} with a C{timeout}, retrying network errors, 5xx, 408 and 429 up
  to C{retries} times with exponential back-off from C{retry_delay}
  seconds; C{concurrency} requests at once; a queue of at most
  C{queue_size} pushes that drops the oldest (counted in C{dropped} and
  logged) when full.

XEP-0357 (§5-§7): C{<enable jid node/>} / C{<disable jid [node]/>} on the
user's own account register app servers per account, in memory (clients
re-enable on every connect; at most C{MAX_REGISTRATIONS} per account, node
names up to C{MAX_NODE} characters, publish options up to
C{MAX_OPTIONS_BYTES}: C{resource-constraint} / C{not-acceptable} beyond).  A
push to such a user also publishes a C{urn:xmpp:push:summary}
notification to each app server (routed like any IQ, so it reaches local
components; remote servers need server-to-server, which is not enabled).
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from io import BytesIO

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.words.xish import domish

from xmppchat.hooks import Query, ask
from xmppchat.jid import InvalidJID, parseJID
from xmppchat.messageinfo import messageInfo
from xmppchat.modules.base import Module, hook
from xmppchat.router import recipients
from xmppchat.stanzas import NS_CLIENT, StanzaError

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_PUSH_SUMMARY = "urn:xmpp:push:summary"
MAX_REGISTRATIONS = 16
MAX_NODE = 1024
MAX_OPTIONS_BYTES = 4096
MAX_BODY = 256
NO_PUSH_CHILDREN = frozenset(("replace", "remove", "retract", "reactions", "apply-to"))
RETRY_CODES = frozenset((408, 429))


def pushable(stanza, stanzaType: str) -> bool:
    """
    A message that deserves a notification: a chat, normal or group message
    with a body or an attachment, not silent, not a correction, retraction
    or reaction.
    """
    if stanzaType not in ("chat", "normal", "groupchat"):
        return False
    info = messageInfo(stanza)
    if info.body is None or not str(info.body).strip():
        if info.extraParams is None or not any(
                c.name == "attachment" for c in info.extraParams.elements()):
            return False
    if info.extraParam("silent") == "1":
        return False
    if info.content:
        for child in stanza.elements():
            if child.name in NO_PUSH_CHILDREN:
                return False
    return True


# -- notifiers -------------------------------------------------------------------


def uncounted(result: str) -> None:
    """
    A notifier's C{count(result)} until the push module counts pushes in
    its host's metrics (C{sent}, C{failed}, C{dropped}).
    """


class LogNotifier:
    """
    Logs each push (the default: useful in development, harmless anywhere).
    """

    log = Logger()
    count = staticmethod(uncounted)

    def notify(self, payload: dict) -> None:
        self.count("sent")
        self.log.info("Push to {to} ({reason}) for message {id}", to=payload["to"],
                      reason=payload["reason"], id=payload.get("message_id"))

    def stop(self) -> None:
        pass


class WebhookNotifier:
    """
    POSTs pushes as JSON to one URL, with a bounded queue, a few requests
    at once, a timeout and retries with exponential back-off.

    @ivar sent: pushes accepted by the webhook (2xx).
    @ivar failed: pushes given up (permanent 4xx, or retries exhausted).
    @ivar dropped: pushes dropped from a full queue (oldest first).
    """

    log = Logger()
    count = staticmethod(uncounted)

    def __init__(self, url: str, reactor, agent=None, timeout: float = 10, retries: int = 3,
                 retryDelay: float = 1, queueSize: int = 1000, concurrency: int = 4):
        if agent is None:
            from twisted.web.client import Agent

            agent = Agent(reactor, connectTimeout=timeout)
        self.url = url.encode("utf-8")
        self.reactor = reactor
        self.agent = agent
        self.timeout = timeout
        self.retries = retries
        self.retryDelay = retryDelay
        self.queue: deque = deque()
        self.queueSize = queueSize
        self.concurrency = concurrency
        self.workers = 0
        self.sent = self.failed = self.dropped = 0
        self.stopped = False

    def notify(self, payload: dict) -> None:
        if self.stopped:
            return
        if len(self.queue) >= self.queueSize:
            self.queue.popleft()
            self.dropped += 1
            self.count("dropped")
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8...: logged, not flooded
                self.log.warn("Push queue full: {count} push(es) dropped so far", count=self.dropped)
        self.queue.append(json.dumps(payload).encode("utf-8"))
        if self.workers < self.concurrency:
            self.workers += 1
            self._work()

    @defer.inlineCallbacks
    def _work(self):
        try:
            while self.queue and not self.stopped:
                yield self._deliver(self.queue.popleft())
        finally:
            self.workers -= 1

    @defer.inlineCallbacks
    def _deliver(self, body: bytes):
        for attempt in range(self.retries + 1):
            try:
                code = yield self._post(body)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
            else:
                if 200 <= code < 300:
                    self.sent += 1
                    self.count("sent")
                    return
                if 400 <= code < 500 and code not in RETRY_CODES:
                    self.failed += 1
                    self.count("failed")
                    self.log.warn("Push webhook refused a push with HTTP {code}", code=code)
                    return
                reason = f"HTTP {code}"
            if attempt < self.retries and not self.stopped:
                yield task.deferLater(self.reactor, self.retryDelay * 2 ** attempt, lambda: None)
            else:
                self.failed += 1
                self.count("failed")
                self.log.warn("Push webhook failed {n} time(s), giving up: {reason}",
                              n=attempt + 1, reason=reason)

    def _post(self, body: bytes) -> defer.Deferred:
        from twisted.web.client import FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        headers = Headers({b"Content-Type": [b"application/json"], b"User-Agent": [b"xmppchat-push"]})
        d = self.agent.request(b"POST", self.url, headers, FileBodyProducer(BytesIO(body)))
        d.addCallback(lambda response: readBody(response).addCallback(lambda _: response.code))
        d.addTimeout(self.timeout, self.reactor)
        return d

    def stop(self) -> None:
        self.stopped = True
        self.queue.clear()


def makeNotifier(config, reactor):
    """
    The notifier configured in C{[push]}.
    """
    if config.notifier == "webhook":
        return WebhookNotifier(config.url, reactor, timeout=config.timeout, retries=config.retries,
                               retryDelay=config.retry_delay, queueSize=config.queue_size,
                               concurrency=config.concurrency)
    return LogNotifier()


def summaryForm(sender: str, body: str | None) -> domish.Element:
    form = domish.Element((NS_DATA, "x"))
    form["type"] = "submit"
    for var, value in (("FORM_TYPE", NS_PUSH_SUMMARY), ("message-count", "1"),
                       ("last-message-sender", sender), ("last-message-body", body)):
        if value is not None:
            field = form.addElement("field")
            field["var"] = var
            field.addElement("value", content=value)
    return form


# -- the module -----------------------------------------------------------------------


class PushModule(Module):
    """
    Push decisions, the configured notifier and XEP-0357 registrations.
    """

    name = "push"
    features = (NS_PUSH,)
    accountFeatures = (NS_PUSH,)

    def setUp(self):
        self.config = self.host.config.push
        reactor = self.host.clock
        if not hasattr(reactor, "connectTCP"):  # a test Clock: the webhook needs a real reactor
            from twisted.internet import reactor
        self.notifier = makeNotifier(self.config, reactor)
        pushes = self.host.metrics.pushes
        self.notifier.count = lambda result: pushes[result].inc()
        # bare JID -> {(app server JID, node): publish-options form or None}
        self.registrations: dict[str, dict] = {}

    def tearDown(self):
        self.notifier.stop()

    # -- who gets a push -------------------------------------------------------

    @hook("message/bare", priority=90)
    @hook("message/full", priority=90)
    def onMessage(self, event):
        to = event.to
        if to is None or to.user is None or event.stanzaType == "groupchat" \
                or not pushable(event.stanza, event.stanzaType):
            return None
        if event.origin is not None and event.origin.bare == to.userhost():
            return None
        resource = to.resource if event.kind == "full" else None
        sender = event.stanza.getAttribute("from", "")
        self.consider(to.userhost(), event.stanza, event.stanzaType, sender, resource).addErrback(
            lambda f: self.log.failure("Push decision failed", f))
        return None

    @defer.inlineCallbacks
    def consider(self, bare: str, stanza, stanzaType: str, sender: str, resource=None, dialogId=None):
        """
        Push C{stanza} to C{bare} if none of the sessions it reaches
        (L{recipients}, the router's delivery rule) is active; fires with
        the payload pushed, or C{None}.  Group messages are left to the
        dialog layer, which calls this once per occupant (1-1 messages are
        considered here, from the routing events).
        """
        receiving = recipients(self.host.sessions, bare, stanzaType, resource)
        if not receiving:
            reason = "offline"
        elif all(s.inactive for s in receiving):
            reason = "inactive"
        else:
            return None
        user, _, domain = bare.partition("@")
        if domain != self.host.domain:
            return None
        if receiving and receiving[0].account is not None:
            account = receiving[0].account
        else:
            account = yield self.storage.accounts.getAccountByLocalpart(user)
        if account is None:
            return None
        info = messageInfo(stanza)
        if dialogId is None:
            dialogId = info.extraParam("dialog_id")
        senderBare = sender.partition("/")[0]
        answers = yield ask(self.host.hooks, "notifications-enabled", Query(
            self.host, user=bare, peer=senderBare, dialogId=dialogId, stanza=stanza))
        if any(a is False for a in answers):
            return None
        body = str(info.body)[:MAX_BODY] if info.body is not None and self.config.include_body else None
        registrations = self.registrations.get(bare, {})
        payload = {
            "to": bare, "user_id": account.id, "from": senderBare, "message_id": stanza.getAttribute("id"),
            "type": stanzaType, "dialog_id": dialogId, "reason": reason, "stamp": self.host.clock.seconds(),
            "xep0357": [{"jid": jid, "node": node} for jid, node in registrations],
        }
        if body is not None:
            payload["body"] = body
        self.notifier.notify(payload)
        for (jid, node), options in registrations.items():
            self.publish(bare, jid, node, options, senderBare, body)
        return payload

    def publish(self, bare, jid, node, options, sender, body) -> None:
        """
        XEP-0357 §7: publish a summary notification to an app server.
        """
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "set"
        iq["from"] = bare
        iq["to"] = jid
        iq["id"] = "push-" + secrets.token_hex(8)
        pubsub = iq.addElement((NS_PUBSUB, "pubsub"))
        publish = pubsub.addElement("publish")
        if node:
            publish["node"] = node
        notification = publish.addElement("item").addElement((NS_PUSH, "notification"))
        notification.addChild(summaryForm(sender, body))
        if options is not None:
            pubsub.addElement("publish-options").addChild(options)
        self.router.deliver(iq)

    # -- XEP-0357 enable / disable -------------------------------------------------

    def _request(self, event):
        """
        The session, payload, app server JID and node of an enable/disable.
        """
        session = self.requireSession(event)
        element = event.stanza.firstChildElement()
        try:
            jid = parseJID(element.getAttribute("jid", "")).full()
        except InvalidJID:
            raise StanzaError("jid-malformed", text="Invalid app server jid") from None
        return session, element, jid, element.getAttribute("node")

    @hook(f"iq-set/self/{NS_PUSH}:enable")
    def onEnable(self, event):
        session, element, jid, node = self._request(event)
        if node is not None and len(node) > MAX_NODE:
            raise StanzaError("not-acceptable", text=f"node longer than {MAX_NODE} characters")
        options = None
        for child in element.elements():
            if child.uri == NS_DATA and child.name == "x":
                options = child
        if options is not None and len(options.toXml()) > MAX_OPTIONS_BYTES:
            raise StanzaError("not-acceptable", text=f"publish options larger than {MAX_OPTIONS_BYTES} bytes")
        registrations = self.registrations.setdefault(session.bare, {})
        if (jid, node) not in registrations and len(registrations) >= MAX_REGISTRATIONS:
            raise StanzaError("resource-constraint", text=f"At most {MAX_REGISTRATIONS} push registrations")
        registrations[(jid, node)] = options
        return self.reply(event)

    @hook(f"iq-set/self/{NS_PUSH}:disable")
    def onDisable(self, event):
        session, _, jid, node = self._request(event)
        registrations = self.registrations.get(session.bare, {})
        for key in list(registrations):
            if key[0] == jid and (node is None or key[1] == node):
                del registrations[key]
        if not registrations:
            self.registrations.pop(session.bare, None)
        return self.reply(event)
