"""
A lean XMPP client on asyncio streams for tests that log in hundreds of
times: STARTTLS with the server's certificate verified against the test
CA, SASL PLAIN, resource binding, and stanzas as ElementTree elements.
slixmpp spends about 60 ms of CPU per login; this spends a few, so a
stress test measures the server rather than the client.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
TIMEOUT = 20


class StreamClosed(Exception):
    """
    The server closed the stream (or the connection) before what was awaited.
    """


class RawClient:
    """
    One c2s connection to C{server} (anything with C{host}, C{ports["c2s"]},
    C{ca} and C{domain}: an e2e server or L{tests.differential.prosody.ProsodyServer}).
    After L{login}, every stanza received goes to C{onStanza} if set, else
    to the C{stanzas} queue.
    """

    def __init__(self, server):
        self.server = server
        self.jid = None
        self.stanzas: asyncio.Queue = asyncio.Queue()
        self.onStanza = None
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = self._writer = self._parser = self._root = None
        self._elements: asyncio.Queue = asyncio.Queue()
        self._pump = None

    # -- negotiation ----------------------------------------------------------------

    async def login(self, user: str, password: str, resource: str | None = None) -> str:
        """
        Connect, secure, authenticate and bind; the bound full JID.
        """
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.server.ports["c2s"])
        self._pump = asyncio.create_task(self._read())
        features = await self._restart()
        if features.find(f"{{{NS_TLS}}}starttls") is None:
            raise AssertionError("no STARTTLS offered")
        self._write(f"<starttls xmlns='{NS_TLS}'/>")
        await self._expect(f"{{{NS_TLS}}}proceed")
        self._pump.cancel()
        context = ssl.create_default_context(cafile=str(self.server.ca))
        await self._writer.start_tls(context, server_hostname=self.server.domain)
        self._pump = asyncio.create_task(self._read())
        await self._restart()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self._write(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        await self._expect(f"{{{NS_SASL}}}success")
        await self._restart()
        bind = f"<resource>{escape(resource)}</resource>" if resource else ""
        self._write(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>{bind}</bind></iq>")
        reply = await self._expect(f"{{{NS_CLIENT}}}iq")
        self.jid = reply.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        if reply.get("type") != "result" or not self.jid:
            raise AssertionError(f"bind failed: {ET.tostring(reply)!r}")
        self._deliverStanzas()
        return self.jid

    async def _restart(self) -> ET.Element:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._root = None
        self._write("<?xml version='1.0'?><stream:stream to=" + quoteattr(self.server.domain)
                    + f" version='1.0' xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>")
        return await self._expect(f"{{{NS_STREAM}}}features")

    async def _expect(self, tag: str) -> ET.Element:
        element = await asyncio.wait_for(self._elements.get(), TIMEOUT)
        if element is None:
            raise StreamClosed(f"stream closed while waiting for {tag}")
        if element.tag != tag:
            raise AssertionError(f"expected {tag}, got {ET.tostring(element)!r}")
        return element

    # -- reading ---------------------------------------------------------------------

    async def _read(self):
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._parser.feed(data)
                if self._drain():
                    break
        except (ConnectionError, ssl.SSLError):
            pass
        self._elements.put_nowait(None)

    def _drain(self) -> bool:
        """
        Hand on the top-level elements completed so far; true at the end of the stream.
        """
        for event, element in self._parser.read_events():
            if event == "start" and self._root is None:
                self._root = element
            elif event == "end" and element is self._root:
                return True
            elif event == "end" and self._root is not None and len(self._root) and element is self._root[0]:
                self._root.remove(element)
                self._elements.put_nowait(element)
        return False

    def _deliverStanzas(self):
        async def forward():
            while (element := await self._elements.get()) is not None:
                if self.onStanza is not None:
                    self.onStanza(element)
                else:
                    self.stanzas.put_nowait(element)
            if not self.closed.done():
                self.closed.set_result(True)

        self._forward = asyncio.create_task(forward())

    # -- writing ---------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self._writer.write(text.encode())

    def send(self, xml: str) -> None:
        self._write(xml)

    async def request(self, xml: str, id: str) -> ET.Element:
        """
        Send IQ C{xml} (whose id is C{id}) and return the answer; other
        stanzas meanwhile are dropped (use before anything else arrives).
        """
        self.send(xml)
        while True:
            stanza = await asyncio.wait_for(self.stanzas.get(), TIMEOUT)
            if stanza.tag == f"{{{NS_CLIENT}}}iq" and stanza.get("id") == id:
                return stanza

    async def close(self) -> None:
        """
        End the stream and wait (boundedly) for the server to end its own.
        """
        if self._writer is None:
            return
        if not self._writer.is_closing():
            self._write("</stream:stream>")
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), 5)
            except asyncio.TimeoutError:
                pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
        for task in (self._pump, getattr(self, "_forward", None)):
            if task is not None:
                task.cancel()


def body(stanza: ET.Element) -> str | None:
    return stanza.findtext(f"{{{NS_CLIENT}}}body")
