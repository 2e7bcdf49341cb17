"""
XEP-0199: XMPP Ping. https://xmpp.org/extensions/xep-0199.html

Client-to-server pings are answered (§4.2).  Server-to-client pings (§4.1)
detect dead connections: one sweep every few seconds pings every bound
session that has been silent for C{limits.ping_interval} seconds and closes
those that stay silent C{limits.ping_timeout} seconds longer, so a vanished
mobile client stops counting as online (and its messages go offline).
"""

from __future__ import annotations

import secrets

from twisted.internet import task
from twisted.words.xish import domish

from xmppchat.modules.base import Module, hook
from xmppchat.stanzas import NS_CLIENT

NS_PING = "urn:xmpp:ping"


class PingModule(Module):
    """
    XEP-0199 §4.1 (server to client) and §4.2 (client to server).
    """

    name = "ping"
    features = (NS_PING,)

    def setUp(self):
        limits = self.host.config.limits
        self.interval = limits.ping_interval
        self.timeout = limits.ping_timeout
        self._loop = None
        if self.interval:
            self._loop = task.LoopingCall(self.sweep)
            self._loop.clock = self.host.clock
            self._loop.start(max(1.0, min(self.interval, self.timeout) / 2.0), now=False)

    def tearDown(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    @hook(f"iq-get/host/{NS_PING}:ping")
    @hook(f"iq-get/self/{NS_PING}:ping")
    def onPing(self, event):
        return self.reply(event)

    def sweep(self):
        """
        Ping silent sessions; close those that did not answer in time.
        """
        now = self.host.clock.seconds()
        for session in list(self.host.sessions.all()):
            transport = session.stream.transport
            silent = now - getattr(transport, "lastReceived", now)
            if silent < self.interval:
                session.state.pop("ping", None)
                continue
            sent = session.state.get("ping")
            if sent is None:
                session.state["ping"] = now
                ping = domish.Element((NS_CLIENT, "iq"))
                ping["type"] = "get"
                ping["id"] = "ping-" + secrets.token_hex(6)
                ping["from"] = self.host.domain
                ping["to"] = session.full
                ping.addElement((NS_PING, "ping"))
                session.send(ping)
            elif now - sent >= self.timeout:
                session.close("connection-timeout", "No answer to ping")
