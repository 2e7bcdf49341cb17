"""
XEP-0313 Message Archive Management for stock clients (issue 16, helper
mamacct) with real slixmpp clients: 1-1 chat without ConnectyCube
extraParams is archived in the pair's private dialog, delivered with
XEP-0359 stanza-ids, and an account query without C{with} returns it all.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.test_slixmpp import TIMEOUT, Client, run

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_OMEMO = "eu.siacs.conversations.axolotl"
NS_OOB = "jabber:x:oob"


@pytest.fixture(scope="module")
def users(server):
    server.addusers(["mam-alice", "mam-bob", "mam-carol", "mam-dave", "mam-erin", "mam-frank"])
    return server


async def login(server, user, password=None):
    """
    A session of C{user} (a localpart, or a bare JID with C{password}) that
    records every <message/> as it arrived (raw XML).
    """
    client = Client(server, user if "@" in user else f"{user}@localhost", password or f"{user}-pw")
    client.raw = []

    def record(stanza):
        if stanza.xml.tag.endswith("}message"):
            client.raw.append(ET.fromstring(ET.tostring(stanza.xml)))
        return stanza

    client.add_filter("in", record)
    assert await client.login()
    return client


def stanzaIds(message) -> dict:
    return {e.get("by"): e.get("id") for e in message.findall(f"{{{NS_SID}}}stanza-id")}


def chats(client, body_prefix):
    """The chat messages with a body starting with C{body_prefix} the client received."""
    return [m for m in client.raw if (m.findtext("{jabber:client}body") or "").startswith(body_prefix)]


async def archive(client, rsm=""):
    """(result ids, forwarded bodies, fin element) of an account query without 'with'."""
    queryId = f"q{len(client.raw)}"
    query = ET.fromstring(f"<query xmlns='{NS_MAM}' queryid='{queryId}'>{rsm}</query>")
    before = len(client.raw)
    reply = await client.make_iq_set(query).send(timeout=TIMEOUT)
    assert reply["type"] == "result"
    await asyncio.sleep(0.1)
    results = [r for m in client.raw[before:] for r in m.findall(f"{{{NS_MAM}}}result")
               if r.get("queryid") == queryId]
    bodies = [r.find(f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message").findtext("{jabber:client}body")
              for r in results]
    return [r.get("id") for r in results], bodies, reply.xml.find(f"{{{NS_MAM}}}fin")


def rsmSet(**kw) -> str:
    return (f"<set xmlns='{NS_RSM}'>" + "".join(f"<{k}>{v}</{k}>" if v is not None else f"<{k}/>"
                                                 for k, v in kw.items()) + "</set>")


def test_accountArchiveOfStockChat(users):
    """
    Two stock clients chat both ways; one queries its account archive
    without 'with' and gets every message in order, with the ids the
    stanza-ids carried on delivery; RSM after/before page it.
    """

    async def scenario():
        alice = await login(users, "mam-alice")
        bob = await login(users, "mam-bob")
        phone = await login(users, "mam-alice")
        phone.register_plugin("xep_0280")
        await phone.plugin["xep_0280"].enable(timeout=TIMEOUT)
        for i in range(4):
            sender, peer = (alice, "mam-bob") if i % 2 == 0 else (bob, "mam-alice")
            sender.send_message(mto=f"{peer}@localhost", mbody=f"m{i}", mtype="chat")
            await asyncio.sleep(0.3)
        got = {**{m.findtext("{jabber:client}body"): stanzaIds(m).get("mam-bob@localhost")
                  for m in chats(bob, "m")},
               **{m.findtext("{jabber:client}body"): stanzaIds(m).get("mam-alice@localhost")
                  for m in chats(alice, "m")}}
        assert sorted(got) == ["m0", "m1", "m2", "m3"] and all(got.values())
        ids, bodies, fin = await archive(alice)
        assert bodies == ["m0", "m1", "m2", "m3"] and fin.get("complete") == "true"
        assert ids == [got[b] for b in bodies]
        # the sender's other resource learns the archive id of what it sent from its sent carbon
        sent = [m.find(f"{{{NS_CARBONS}}}sent/{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
                for m in phone.raw]
        carbons = {m.findtext("{jabber:client}body"): stanzaIds(m).get("mam-alice@localhost")
                   for m in sent if m is not None}
        assert carbons == {"m0": ids[0], "m2": ids[2]}
        await phone.logout()
        first, _, fin = await archive(alice, rsmSet(max=2))
        assert first == ids[:2] and fin.get("complete") != "true"
        last = fin.find(f"{{{NS_RSM}}}set").findtext(f"{{{NS_RSM}}}last")
        rest, _, _ = await archive(alice, rsmSet(max=2, after=last))
        assert rest == ids[2:]
        tail, _, _ = await archive(alice, rsmSet(max=1, before=None))
        assert tail == ids[3:]
        head, _, _ = await archive(bob, rsmSet(before=ids[2]))
        assert head == ids[:2]
        await alice.logout()
        await bob.logout()

    run(scenario())


def test_offlineMessageOnceDeliveredOnceArchived(users):
    """A message sent while the peer is offline is delivered once from offline storage and is in MAM once."""

    async def scenario():
        carol = await login(users, "mam-carol")
        carol.send_message(mto="mam-dave@localhost", mbody="offline-1", mtype="chat")
        await asyncio.sleep(0.5)
        dave = await login(users, "mam-dave")
        await asyncio.sleep(1)
        [delivered] = chats(dave, "offline-")
        _, bodies, _ = await archive(dave)
        assert bodies.count("offline-1") == 1
        ids, _, _ = await archive(carol)
        assert stanzaIds(delivered).get("mam-dave@localhost") in ids
        await carol.logout()
        await dave.logout()

    run(scenario())


def test_sdkMessageWithoutSaveToHistoryNotArchived(users):
    """A ConnectyCube-style message with extraParams but no save_to_history is delivered, not stored."""

    async def scenario():
        carol = await login(users, "mam-carol")
        dave = await login(users, "mam-dave")
        message = carol.make_message(mto="mam-dave@localhost", mbody="sdk-unsaved", mtype="chat")
        message.append(ET.fromstring("<extraParams xmlns='jabber:client'><x>1</x></extraParams>"))
        message.send()
        await asyncio.sleep(0.5)
        assert len(chats(dave, "sdk-unsaved")) == 1
        _, bodies, _ = await archive(dave)
        assert "sdk-unsaved" not in bodies
        await carol.logout()
        await dave.logout()

    run(scenario())


def test_omemoAndOobMessagesArchivedVerbatim(users):
    """
    Issue 16, XEP-0313 §4.1: an OMEMO message (a fake <encrypted/> payload,
    no body, as Conversations may send) and a message with a XEP-0066 OOB
    url are in the recipient's account archive with those elements intact.
    """

    async def scenario():
        erin = await login(users, "mam-erin")
        frank = await login(users, "mam-frank")
        omemo = erin.make_message(mto="mam-frank@localhost", mtype="chat")
        omemo.append(ET.fromstring(f"<encrypted xmlns='{NS_OMEMO}'><header sid='7'><key rid='9'>a2V5</key>"
                                   "<iv>aXY=</iv></header><payload>ZmFrZQ==</payload></encrypted>"))
        omemo.send()
        oob = erin.make_message(mto="mam-frank@localhost", mbody="https://example.org/cat.jpg", mtype="chat")
        oob.append(ET.fromstring(f"<x xmlns='{NS_OOB}'><url>https://example.org/cat.jpg</url></x>"))
        oob.send()
        await asyncio.sleep(0.5)
        before = len(frank.raw)
        ids, bodies, fin = await archive(frank)
        assert len(ids) == 2 and fin.get("complete") == "true"
        forwarded = [m.find(f"{{{NS_MAM}}}result/{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
                     for m in frank.raw[before:]]
        first, second = [m for m in forwarded if m is not None]
        assert first.findtext(f"{{{NS_OMEMO}}}encrypted/{{{NS_OMEMO}}}payload") == "ZmFrZQ=="
        assert first.find(f"{{{NS_OMEMO}}}encrypted/{{{NS_OMEMO}}}header/{{{NS_OMEMO}}}key").get("rid") == "9"
        assert first.find("{jabber:client}body") is None
        assert second.findtext(f"{{{NS_OOB}}}x/{{{NS_OOB}}}url") == "https://example.org/cat.jpg"
        assert bodies[1] == "https://example.org/cat.jpg"
        assert all(m.get("from", "").startswith("mam-erin@localhost") for m in (first, second))
        await erin.logout()
        await frank.logout()

    run(scenario())
