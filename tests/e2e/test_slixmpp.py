"""
Real-client tests: slixmpp talks to a real xmppchat server over loopback
(STARTTLS with a verified certificate, direct TLS, PLAIN and SCRAM).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import slixmpp

TIMEOUT = 20


class Client(slixmpp.ClientXMPP):
    """
    A slixmpp client that records what it receives.
    """

    def __init__(self, server, jid, password, mechanism=None, directTLS=False, presence=True):
        slixmpp.ClientXMPP.__init__(self, jid, password, sasl_mech=mechanism)
        self.initialPresence = presence  # sent at session start unless false
        self.running = server
        self.ca_certs = server.ca
        self.enable_direct_tls = directTLS
        self.enable_starttls = not directTLS
        self.enable_plaintext = False
        self.directTLS = directTLS
        self.messages: asyncio.Queue = asyncio.Queue()
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._sessionStart)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("failed_auth", self._failedAuth)
        self.add_event_handler("disconnected", self._disconnected)

    def _sessionStart(self, _):
        if self.initialPresence:
            self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def _failedAuth(self, *_):
        if not self.started.done():
            self.started.set_result(False)

    def _disconnected(self, *_):
        if not self.started.done():
            self.started.set_result(False)

    async def login(self):
        port = self.running.ports["c2s-tls" if self.directTLS else "c2s"]
        self.connect("127.0.0.1", port)
        return await asyncio.wait_for(self.started, TIMEOUT)

    async def logout(self):
        self.disconnect()
        await asyncio.wait_for(self.disconnected, TIMEOUT)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


@pytest.fixture(scope="module")
def users(server):
    for name in ("alice", "bob", "carol", "dave"):
        server.adduser(name, f"{name}-pw")
    return server


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_loginAndChat(users, mechanism):
    """Two clients log in over STARTTLS (certificate verified) with each mechanism and exchange a message."""

    async def scenario():
        alice = Client(users, "alice@localhost", "alice-pw", mechanism)
        bob = Client(users, "bob@localhost", "bob-pw", mechanism)
        assert await alice.login() and await bob.login()
        assert alice.boundjid.resource and len(alice.boundjid.resource) >= 16
        alice.send_message(mto="bob@localhost", mbody=f"hi via {mechanism}", mtype="chat")
        received = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        assert received["body"] == f"hi via {mechanism}"
        assert received["from"].bare == "alice@localhost"
        bob.send_message(mto=str(alice.boundjid), mbody="back", mtype="chat")
        reply = await asyncio.wait_for(alice.messages.get(), TIMEOUT)
        assert reply["body"] == "back"
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_directTLS(users):
    """A client using direct TLS (XEP-0368) logs in with SCRAM-SHA-256 and pings the server."""

    async def scenario():
        alice = Client(users, "alice@localhost", "alice-pw", "SCRAM-SHA-256", directTLS=True)
        assert await alice.login()
        alice.register_plugin("xep_0199")
        rtt = await alice.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT)
        assert rtt is not None
        await alice.logout()

    run(scenario())


def test_offlineDelivery(users):
    """A message to an offline user is delivered with a delay stamp when they log in."""

    async def scenario():
        carol = Client(users, "carol@localhost", "carol-pw")
        assert await carol.login()
        carol.send_message(mto="dave@localhost", mbody="while you were out", mtype="chat")
        await asyncio.sleep(0.5)
        await carol.logout()
        dave = Client(users, "dave@localhost", "dave-pw")
        dave.register_plugin("xep_0203")
        assert await dave.login()
        message = await asyncio.wait_for(dave.messages.get(), TIMEOUT)
        assert message["body"] == "while you were out"
        assert message["delay"]["stamp"] is not None
        await dave.logout()

    run(scenario())


def test_wrongPassword(users):
    """A wrong password fails cleanly: no session, the failure is reported to the client."""

    async def scenario():
        alice = Client(users, "alice@localhost", "wrong-password", "SCRAM-SHA-256")
        ok = await alice.login()
        assert ok is False
        alice.disconnect()

    run(scenario())


def _rawTLSConnection(server, context=None):
    """
    A raw socket that negotiated STARTTLS by hand (verifying the server
    against the test CA unless another C{context} is given), ready for a
    new stream.
    """
    sock = socket.create_connection(("127.0.0.1", server.ports["c2s"]), timeout=TIMEOUT)
    header = (b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
              b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    sock.sendall(header)
    data = b""
    while b"</stream:features>" not in data:
        data += sock.recv(4096)
    sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    data = b""
    while b"proceed" not in data:
        data += sock.recv(4096)
    if context is None:
        context = ssl.create_default_context(cafile=str(server.ca))
    tls = context.wrap_socket(sock, server_hostname="localhost")
    tls.sendall(header)
    return tls


def _readUntilClosed(sock) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_malformedStreamGetsErrorOthersUnaffected(users):
    """A client sending malformed XML gets a stream error and is closed while another client keeps chatting."""

    async def scenario():
        alice = Client(users, "alice@localhost", "alice-pw")
        bob = Client(users, "bob@localhost", "bob-pw")
        assert await alice.login() and await bob.login()
        loop = asyncio.get_running_loop()

        def attack():
            tls = _rawTLSConnection(users)
            tls.sendall(b"<message><body>unclosed</bod></message>")
            return _readUntilClosed(tls)

        reply = await loop.run_in_executor(None, attack)
        assert b"not-well-formed" in reply and b"</stream:stream>" in reply

        def laughs():
            sock = socket.create_connection(("127.0.0.1", users.ports["c2s"]), timeout=TIMEOUT)
            sock.sendall(b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                         b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                         b"<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                         b"xmlns:stream='http://etherx.jabber.org/streams'>&lol2;")
            return _readUntilClosed(sock)

        reply = await loop.run_in_executor(None, laughs)
        assert b"restricted-xml" in reply

        alice.send_message(mto="bob@localhost", mbody="still here", mtype="chat")
        received = await asyncio.wait_for(bob.messages.get(), TIMEOUT)
        assert received["body"] == "still here"
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_oversizedStanza(users):
    """A stanza over the size limit ends that stream with policy-violation."""

    def attack():
        tls = _rawTLSConnection(users)
        tls.sendall(b"<message><body>" + b"x" * 300_000 + b"</body></message>")
        return _readUntilClosed(tls)

    reply = attack()
    assert b"policy-violation" in reply
