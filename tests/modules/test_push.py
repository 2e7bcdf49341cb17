"""
Tests for push decisions, the webhook notifier (fake agent and clock) and
XEP-0357 registrations.
"""

import json

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from tests.helpers import HostHarness, result, xml
from xmppchat.config import ConfigError, buildConfig
from xmppchat.modules.push import LogNotifier, WebhookNotifier, makeNotifier

NS_PUSH = "urn:xmpp:push:0"
CHAT = ("<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body>"
        "<extraParams xmlns='jabber:client'><dialog_id>d1</dialog_id>{extra}</extraParams></message>")


class Recorder:
    def __init__(self):
        self.payloads = []

    def notify(self, payload):
        self.payloads.append(payload)

    def stop(self):
        pass


def harness():
    h = HostHarness()
    h.addUser("bob")
    recorder = Recorder()
    h.host.modules["push"].notifier = recorder
    alice, _ = h.connect("alice")
    return h, alice, recorder.payloads


def test_offlineRecipientPushed():
    """A chat message to an offline user produces one push with the message's details."""
    h, alice, pushed = harness()
    h.send(alice, CHAT.format(extra=""))
    [p] = pushed
    bob = result(h.host.storage.accounts.getAccountByLocalpart("bob"))
    assert (p["to"], p["user_id"], p["from"], p["message_id"], p["dialog_id"], p["reason"], p["body"]) == (
        "bob@localhost", bob.id, "alice@localhost", "m1", "d1", "offline", "hello bob")
    json.dumps(p)


def test_activeRecipientNotPushed():
    """An online, active recipient gets no push; one active session among inactive ones is enough."""
    h, alice, pushed = harness()
    b1, _ = h.connect("bob", "one")
    b2, _ = h.connect("bob", "two")
    h.host.modules["csi"].setInactive(b1)
    h.send(alice, CHAT.format(extra=""))
    assert pushed == []
    h.host.modules["csi"].setInactive(b2)
    h.send(alice, CHAT.format(extra=""))
    assert [p["reason"] for p in pushed] == ["inactive"]


def test_inactiveFullJIDTarget():
    """A message to the full JID of an inactive session is pushed even if another session is active."""
    h, alice, pushed = harness()
    b1, _ = h.connect("bob", "one")
    h.connect("bob", "two")
    h.host.modules["csi"].setInactive(b1)
    h.send(alice, f"<message to='{b1.full}' type='chat'><body>x</body></message>")
    assert [p["reason"] for p in pushed] == ["inactive"]


def test_neverPushed():
    """Silent messages, chat states, markers, receipts, corrections, headlines and errors get no push."""
    h, alice, pushed = harness()
    for text in (
        CHAT.format(extra="<silent>1</silent>"),
        "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='bob@localhost' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='m'/></message>",
        "<message to='bob@localhost' type='chat'><received xmlns='urn:xmpp:receipts' id='m'/></message>",
        "<message to='bob@localhost' type='chat'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m'/></message>",
        "<message to='bob@localhost' type='headline'><body>sys</body></message>",
        "<message to='bob@localhost' type='chat'><body>   </body></message>",
    ):
        h.send(alice, text)
    assert pushed == []


def test_attachmentWithoutBodyPushed():
    """An SDK message with only an attachment is pushed."""
    h, alice, pushed = harness()
    h.send(alice, "<message to='bob@localhost' type='chat'><extraParams xmlns='jabber:client'>"
                  "<attachment type='image' uid='u1'/></extraParams></message>")
    assert len(pushed) == 1 and "body" not in pushed[0]


def test_vetoHook():
    """A notifications-enabled answer of False suppresses the push; True or no answer allows it."""
    h, alice, pushed = harness()
    asked = []

    def veto(q):
        asked.append((q.user, q.peer, q.dialogId))
        q.answer(q.dialogId != "d1")

    h.host.hooks.add("notifications-enabled", veto)
    h.send(alice, CHAT.format(extra=""))
    assert pushed == [] and asked == [("bob@localhost", "alice@localhost", "d1")]
    h.send(alice, CHAT.format(extra="").replace("d1", "d2"))
    assert len(pushed) == 1


def test_unknownUserNotPushed():
    """No push for a message to an account that does not exist."""
    h, alice, pushed = harness()
    h.send(alice, "<message to='ghost@localhost' type='chat'><body>x</body></message>")
    assert pushed == []


def test_xep0357EnablePublishDisable():
    """XEP-0357: enable registers an app server that receives a summary publish; disable removes it."""
    h, alice, pushed = harness()
    received = []

    class Component:
        def receive(self, origin, stanza, to):
            received.append(stanza)

    h.host.components["push.localhost"] = Component()
    bob, tb = h.connect("bob")
    h.send(bob, f"<iq type='set' id='e1'><enable xmlns='{NS_PUSH}' jid='push.localhost' node='n1'>"
                "<x xmlns='jabber:x:data' type='submit'><field var='secret'><value>s</value></field></x>"
                "</enable></iq>")
    assert [e["type"] for e in tb.pop() if e.name == "iq"] == ["result"]
    h.host.endSession(bob)
    h.send(alice, CHAT.format(extra=""))
    [iq] = received
    assert iq["to"] == "push.localhost" and iq["from"] == "bob@localhost"
    publish = iq.pubsub.publish
    assert publish["node"] == "n1" and publish.item.notification.uri == NS_PUSH
    assert "urn:xmpp:push:summary" in iq.toXml() and iq.pubsub.firstChildElement() is publish
    assert iq.pubsub.children[-1].name == "publish-options"
    assert pushed[0]["xep0357"] == [{"jid": "push.localhost", "node": "n1"}]
    bob, tb = h.connect("bob", available=False)
    h.send(bob, f"<iq type='set' id='d1'><disable xmlns='{NS_PUSH}' jid='push.localhost'/></iq>")
    assert [e["type"] for e in tb.pop() if e.name == "iq"] == ["result"]
    assert h.host.modules["push"].registrations == {}


def test_accountDiscoAdvertisesPush():
    """The account's disco#info lists urn:xmpp:push:0."""
    h, alice, _ = harness()
    h.send(alice, "<iq type='get' id='i' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    [reply] = alice.stream.transport.pop()
    assert NS_PUSH in reply.toXml()


def test_makeNotifier():
    """The [push] section chooses the notifier; the log notifier is the default."""
    assert isinstance(makeNotifier(HostHarness().config.push, task.Clock()), LogNotifier)
    h = HostHarness(push={"notifier": "webhook", "url": "http://127.0.0.1:9/hook"})
    assert isinstance(h.host.modules["push"].notifier, WebhookNotifier)


# -- the webhook notifier with a fake agent ------------------------------------------


class FakeResponse:
    def __init__(self, code):
        self.code = code
        self.phrase = b"X"

    def deliverBody(self, protocol):
        protocol.dataReceived(b"ok")
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """Answers each request with the next Deferred the test controls."""

    def __init__(self):
        self.requests = []

    def request(self, method, uri, headers, producer):
        d = defer.Deferred()
        self.requests.append((method, uri, headers, producer, d))
        return d

    def body(self, i):
        return json.loads(self.requests[i][3]._inputFile.getvalue())


def notifier(**kw):
    clock = task.Clock()
    agent = FakeAgent()
    args = dict(timeout=5, retries=2, retryDelay=1, queueSize=3, concurrency=1)
    args.update(kw)
    return WebhookNotifier("http://hooks.example/push", clock, agent=agent, **args), clock, agent


def test_webhookPostsJSON():
    """A push is POSTed as JSON with a JSON content type; a 2xx counts as sent."""
    n, clock, agent = notifier()
    n.notify({"to": "bob@localhost", "reason": "offline"})
    [(method, uri, headers, _, d)] = agent.requests
    assert method == b"POST" and uri == b"http://hooks.example/push"
    assert headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert agent.body(0) == {"to": "bob@localhost", "reason": "offline"}
    d.callback(FakeResponse(204))
    assert (n.sent, n.failed, n.workers) == (1, 0, 0)


def test_webhookRetriesWithBackoff():
    """5xx and network errors are retried after 1 s, then 2 s; success after a retry counts as sent."""
    n, clock, agent = notifier()
    n.notify({"n": 1})
    agent.requests[0][4].callback(FakeResponse(503))
    clock.advance(0.9)
    assert len(agent.requests) == 1
    clock.advance(0.1)
    assert len(agent.requests) == 2
    agent.requests[1][4].errback(ConnectionRefusedError("refused"))
    clock.advance(1.9)
    assert len(agent.requests) == 2
    clock.advance(0.1)
    agent.requests[2][4].callback(FakeResponse(200))
    assert (n.sent, n.failed) == (1, 0)


def test_webhookGivesUp():
    """After the configured retries the push is counted as failed; a 4xx is not retried."""
    n, clock, agent = notifier(retries=1)
    n.notify({"n": 1})
    agent.requests[0][4].callback(FakeResponse(500))
    clock.advance(1)
    agent.requests[1][4].callback(FakeResponse(500))
    assert (n.sent, n.failed) == (0, 1)
    n.notify({"n": 2})
    agent.requests[2][4].callback(FakeResponse(400))
    clock.advance(10)
    assert len(agent.requests) == 3 and n.failed == 2


def test_webhookTimeout():
    """A request that does not answer within the timeout is cancelled and retried."""
    n, clock, agent = notifier()
    n.notify({"n": 1})
    clock.advance(5)
    assert agent.requests[0][4].called  # cancelled by the timeout
    clock.advance(1)
    assert len(agent.requests) == 2


def test_webhookQueueDropsOldest():
    """With the queue full, the oldest waiting push is dropped and counted."""
    n, clock, agent = notifier(queueSize=2)
    for i in range(5):
        n.notify({"n": i})
    # push 0 is in flight; 1 and 2 were dropped for 3 and 4
    assert n.dropped == 2 and len(n.queue) == 2
    agent.requests[0][4].callback(FakeResponse(200))
    agent.requests[1][4].callback(FakeResponse(200))
    agent.requests[2][4].callback(FakeResponse(200))
    assert [agent.body(i)["n"] for i in range(3)] == [0, 3, 4] and n.sent == 3


def test_configValidation():
    """A webhook notifier without a URL, or an unknown notifier, is a configuration error."""
    with pytest.raises(ConfigError) as e:
        buildConfig({"push": {"notifier": "webhook"}})
    assert "push.url" in str(e.value)
    with pytest.raises(ConfigError) as e:
        buildConfig({"push": {"notifier": "pigeon"}})
    assert "push.notifier" in str(e.value)


def test_groupchatLeftToDialogLayer():
    """Routed groupchat messages are not pushed by the routing hooks; consider() pushes them for the dialog layer."""
    h, alice, pushed = harness()
    push = h.host.modules["push"]
    stanza = xml("<message type='groupchat' id='g1' from='1_d9@muc.localhost/7'><body>group hi</body></message>")
    payload = result(push.consider("bob@localhost", stanza, "groupchat", "alice@localhost", dialogId="d9"))
    assert payload["reason"] == "offline" and payload["dialog_id"] == "d9" and pushed == [payload]


def test_xep0357Limits():
    """Oversized publish options get not-acceptable; more than 16 registrations get resource-constraint."""
    h, _, _ = harness()
    bob, tb = h.connect("bob")
    big = "<x xmlns='jabber:x:data' type='submit'><field var='k'><value>" + "v" * 5000 + "</value></field></x>"
    h.send(bob, f"<iq type='set' id='big'><enable xmlns='{NS_PUSH}' jid='push.example' node='n'>{big}</enable></iq>")
    [reply] = [e for e in tb.pop() if e.name == "iq"]
    assert reply.error.firstChildElement().name == "not-acceptable"
    for i in range(17):
        h.send(bob, f"<iq type='set' id='e{i}'><enable xmlns='{NS_PUSH}' jid='push.example' node='n{i}'/></iq>")
    replies = [e for e in tb.pop() if e.name == "iq"]
    assert [r["type"] for r in replies] == ["result"] * 16 + ["error"]
    assert replies[-1].error.firstChildElement().name == "resource-constraint"
    h.send(bob, f"<iq type='set' id='bad'><enable xmlns='{NS_PUSH}' jid='@@'/></iq>")
    [reply] = [e for e in tb.pop() if e.name == "iq"]
    assert reply.error.firstChildElement().name == "jid-malformed"


def test_pushAgreesWithDelivery():
    """One rule (router.recipients) decides both: a resource bound without presence gets the message from storage, and the push says 'offline'."""
    h, alice, pushed = harness()
    bob, tb = h.connect("bob", available=False)
    h.send(alice, CHAT.format(extra=""))
    assert [e for e in tb.pop() if e.name == "message"] == []
    assert result(h.storage.offline.countOffline("bob")) == 1
    assert [p["reason"] for p in pushed] == ["offline"]
    h.send(bob, "<presence/>")
    assert [e["id"] for e in tb.pop() if e.name == "message"] == ["m1"]
