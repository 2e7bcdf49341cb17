"""
Per-user message rate limit (RFC 6120 §13.12, §8.3.3.18
C{resource-constraint}). https://www.rfc-editor.org/rfc/rfc6120#section-13.12

Every message a user's clients send goes through one token bucket per
account (all its resources together): C{limits.message_burst} messages at
once, refilled at C{limits.message_rate} per second.  A message beyond it is
not routed; the sender gets a C{resource-constraint} error of type C{wait}
saying when to retry.  The bucket is dropped when the user's last session
ends.  C{message_rate = 0} turns the limit off.
"""

from __future__ import annotations

from xmppchat import observe
from xmppchat.modules.base import Module, hook
from xmppchat.ratelimit import TokenBucket
from xmppchat.stanzas import errorReply


class RateLimitModule(Module):
    """
    Token bucket per account on messages sent by its clients.
    """

    name = "ratelimit"

    def setUp(self):
        limits = self.host.config.limits
        self.rate = limits.message_rate
        self.burst = limits.message_burst
        self.buckets: dict[str, TokenBucket] = {}

    @hook("pre-message/bare", priority=1000)
    @hook("pre-message/full", priority=1000)
    @hook("pre-message/host", priority=1000)
    def onMessage(self, event):
        origin = event.origin
        if origin is None or not self.rate:
            return None
        now = self.host.clock.seconds()
        bucket = self.buckets.get(origin.bare)
        if bucket is None:
            bucket = self.buckets[origin.bare] = TokenBucket(self.rate, self.burst, now)
        if bucket.take(now):
            return None
        observe.emit("rate-limited", scope="messages", key=origin.bare)
        stanza = event.stanza
        if event.stanzaType != "error":
            wait = bucket.wait(now)
            reply = errorReply(stanza, "resource-constraint",
                               f"Too many messages: at most {self.rate} per second; "
                               f"retry in {wait:.1f} s", "wait")
            if reply.getAttribute("from") is None:
                reply["from"] = self.host.domain
            origin.send(reply)
        return True

    @hook("session-ended")
    def onSessionEnded(self, event):
        bare = event.session.bare
        if not self.host.sessions.isConnected(bare):
            self.buckets.pop(bare, None)
