"""
Scenes for differential tests: slixmpp clients (L{tests.e2e.test_slixmpp.Client})
of one server record every stanza the server sends them, and the record is
normalised into short strings that two servers can be compared on.

Normalisation keeps what RFC 6120/6121 define and drops what legitimately
differs between servers: stanza ids, timestamps, resource strings (a full
JID becomes C{alice/1}, the first session of that scene's alice, and a
resource no session of the scene has becomes C{alice/?}), and XEP-0091
legacy delay elements (obsolete; XEP-0203 is what is compared).  IQ
results and errors answer the clients' own requests: scenarios look at
those themselves.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError

from tests.e2e.test_slixmpp import TIMEOUT, Client, run

NS_ROSTER = "jabber:iq:roster"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
# Rendered by describe() itself, or dropped (see the module docstring).
HANDLED = {
    "{jabber:client}body", "{jabber:client}show", "{jabber:client}priority", "{jabber:client}status",
    "{jabber:client}error", f"{{{NS_DELAY}}}delay", "{jabber:x:delay}x",
    # XEP-0359 archive ids (both servers archive 1-1 chat): compared by tests/differential/test_mam.py
    "{urn:xmpp:sid:0}stanza-id",
}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class Scene:
    """
    The clients of one scenario on one server.  Users are named by short
    names (C{alice}); their localparts are C{<prefix>-<short>} so that
    scenarios sharing a server never share accounts.
    """

    def __init__(self, server, prefix: str):
        self.server = server
        self.prefix = prefix
        self.clients: list[Client] = []
        self.labels: dict[Client, str] = {}
        self.received: list[tuple[Client, ET.Element]] = []
        self.last = time.monotonic()

    def jid(self, short: str) -> str:
        return f"{self.prefix}-{short}@{self.server.domain}"

    def client(self, short: str, presence=False) -> Client:
        """
        A client of user C{short}, recording from its first stanza on; no
        initial presence unless C{presence}, and no automatic answers to
        subscription requests.
        """
        c = Client(self.server, self.jid(short), f"{self.prefix}-{short}-pw", presence=presence)
        c.auto_authorize = None
        c.auto_subscribe = False
        count = sum(1 for label in self.labels.values() if label.startswith(short + "/"))
        self.labels[c] = f"{short}/{count + 1}"
        self.clients.append(c)
        c.add_filter("in", lambda stanza, c=c: self._record(c, stanza))
        return c

    async def login(self, short: str, presence=False) -> Client:
        c = self.client(short, presence)
        assert await c.login(), f"{self.labels[c]} could not log in to {self.server.name}"
        return c

    async def online(self, *shorts: str, rosters: bool = False) -> list:
        """
        A new session of each of C{shorts} that (after fetching its roster,
        if C{rosters}) sends initial presence; returns once all is quiet.
        """
        clients = [await self.login(short) for short in shorts]
        for c in clients:
            if rosters:
                await self.roster(c)
            c.send_presence()
        await self.settle()
        return clients

    def _record(self, client, stanza):
        xml = stanza.xml
        if _local(xml.tag) in ("message", "presence", "iq"):
            self.received.append((client, ET.fromstring(ET.tostring(xml))))
            self.last = time.monotonic()
        return stanza

    async def settle(self, quiet: float = 0.3, limit: float = TIMEOUT):
        """
        Until no stanza arrived for C{quiet} seconds.
        """
        started = time.monotonic()
        while True:
            now = time.monotonic()
            if now - max(self.last, started) >= quiet or now - started > limit:
                return
            await asyncio.sleep(0.05)

    def mark(self) -> int:
        """
        A position in the record, for L{observed} to start from.
        """
        return len(self.received)

    def observed(self, since: int = 0, ordered: bool = False, kinds=None, others: bool = False) -> dict:
        """
        What each client received since C{since}: label -> list of
        descriptions, in arrival order if C{ordered}, else sorted (where
        the RFCs leave the interleaving of independent stanzas open);
        only those of C{kinds} (C{"message"}, C{"presence"},
        C{"roster-push"}, C{"iq"}) if given; only those from other
        accounts if C{others}.
        """
        out = {label: [] for label in self.labels.values()}
        for client, xml in self.received[since:]:
            if others and (xml.get("from") or "").partition("/")[0] == client.boundjid.bare:
                continue
            text = self.describe(xml, client)
            if text is not None and (kinds is None or text.split()[0] in kinds):
                out[self.labels[client]].append(text)
        if not ordered:
            out = {label: sorted(texts) for label, texts in out.items()}
        return out

    def name(self, jid) -> str:
        if not jid:
            return "-"
        jid = str(jid)
        if jid == self.server.domain:
            return "server"
        for c, label in self.labels.items():
            if c.boundjid.full == jid:
                return label
        bare, _, resource = jid.partition("/")
        local, _, domain = bare.partition("@")
        short = local[len(self.prefix) + 1:] if local.startswith(self.prefix + "-") else local
        if domain != self.server.domain:
            return jid
        return f"{short}/?" if resource else short

    def describe(self, xml: ET.Element, client) -> str | None:
        kind = _local(xml.tag)
        stanzaType = xml.get("type")
        if kind == "iq" and stanzaType in ("result", "error"):
            return None
        ns = "{jabber:client}"
        # On a client's own stream the addressee is that client: a
        # missing 'to' is its full JID (RFC 6120 §8.1.1.1).
        to = self.name(xml.get("to")) if xml.get("to") else self.labels[client]
        if kind == "iq":
            query = xml.find(f"{{{NS_ROSTER}}}query")
            if query is not None and stanzaType == "set":
                # RFC 6121 §2.1.6: a push comes from the account's bare JID or has no 'from'.
                items = " ".join(self.item(item) for item in query)
                return f"roster-push to={to} {items}"
            children = " ".join(child.tag for child in xml)
            return f"iq {stanzaType} from={self.name(xml.get('from'))} to={to} {children}"
        if stanzaType is None:
            stanzaType = "available" if kind == "presence" else "normal"
        parts = [kind, stanzaType, f"from={self.name(xml.get('from'))}", f"to={to}"]
        for tag in ("show", "priority", "status", "body"):
            if tag == "body" and stanzaType == "error":
                continue  # RFC 6120 §8.3.1: an error MAY include the original payload
            child = xml.find(ns + tag)
            if child is not None:
                parts.append(f"{tag}={child.text or ''!r}" if tag in ("status", "body") else f"{tag}={child.text}")
        # XEP-0203 on messages is compared; on presence it is not: Prosody
        # stamps presence it re-sends from its record (another resource's,
        # a probe answer), which XEP-0203 provides for and no rule of RFC
        # 6121 requires or forbids.
        if kind == "message" and xml.find(f"{{{NS_DELAY}}}delay") is not None:
            parts.append("delayed")
        error = xml.find(ns + "error")
        if error is not None:
            conditions = [_local(c.tag) for c in error if c.tag.startswith(f"{{{NS_STANZAS}}}") and _local(c.tag) != "text"]
            parts.append(f"error={error.get('type')}/{','.join(conditions)}")
        parts.extend(f"+{child.tag}" for child in xml if child.tag not in HANDLED)
        return " ".join(parts)

    def item(self, item: ET.Element) -> str:
        """
        A roster item as C{bob:to}, C{bob:none:ask=subscribe}, C{bob:none:approved}.
        """
        return (f"{self.name(item.get('jid'))}:{item.get('subscription', 'none')}"
                + (f":ask={item.get('ask')}" if item.get("ask") else "")
                + (":approved" if item.get("approved") == "true" else ""))

    async def roster(self, client) -> list:
        """
        C{client}'s roster items, fetched without roster versioning (RFC
        6121 §2.1.3); this also makes its session an interested resource
        (§2.1.6: only those get roster pushes).
        """
        iq = client.make_iq_get(queryxmlns=NS_ROSTER)
        reply = await iq.send(timeout=TIMEOUT)
        query = reply.xml.find(f"{{{NS_ROSTER}}}query")
        return sorted(self.item(item) for item in (query if query is not None else []))

    async def ask(self, client, to: str) -> str:
        """
        How C{to} answers a software-version IQ from C{client}:
        C{"result"} or C{"<error type>/<condition> from=<name>"}.
        """
        iq = client.make_iq_get(queryxmlns="jabber:iq:version", ito=to)
        try:
            await iq.send(timeout=10)
        except IqError as e:
            return f"{e.iq['error']['type']}/{e.condition} from={self.name(e.iq['from'])}"
        return "result"

    async def close(self):
        # slixmpp replaces a client's 'disconnected' future once it fired:
        # take them all before the first disconnection.
        waits = [c.disconnected for c in self.clients if c.is_connected()]
        for c in self.clients:
            if c.is_connected():
                c.disconnect()
        await asyncio.wait_for(asyncio.gather(*waits), TIMEOUT)



def play(server, prefix: str, script):
    """
    Run C{await script(scene)} on a new L{Scene} and return its result;
    every client is disconnected at the end.
    """
    async def main():
        scene = Scene(server, prefix)
        try:
            return await script(scene)
        finally:
            await scene.close()

    return run(main())


async def befriend(server, prefix: str, a: str, b: str) -> None:
    """
    Users C{a} and C{b} of scene C{prefix} subscribe to each other through
    the RFC 6121 §3.1 handshake (in a scene of their own, without sending
    available presence), so that a test's scene starts with both offline.
    """
    scene = Scene(server, prefix)
    try:
        ca, cb = await scene.login(a), await scene.login(b)
        for user, contact, cu, cc in ((a, b, ca, cb), (b, a, cb, ca)):
            await scene.roster(cu)
            cu.send_presence_subscription(pto=scene.jid(contact))
            await scene.settle()
            cc.send_presence(pto=scene.jid(user), ptype="subscribed")
            await scene.settle()
        rosters = (await scene.roster(ca), await scene.roster(cb))
        assert rosters == ([f"{b}:both"], [f"{a}:both"]), f"handshake failed on {server.name}: {rosters}"
    finally:
        await scene.close()
