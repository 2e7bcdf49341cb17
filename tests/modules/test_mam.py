"""
Tests for XEP-0313 MAM with XEP-0059 paging over dialog history
(xmppchat.modules.mam).
"""

from tests.helpers import HostHarness, result
from tests.modules.test_dialogs import chat, group, private, room
from xmppchat.storage.interfaces import DIALOG_GROUP

NS_MAM = "urn:xmpp:mam:2"


BOTH_BACKENDS = True  # every test runs on SQLite and on MongoDB (mongomock)


def ids(n):
    return [f"6b026913da64a5335800{i:04x}" for i in range(n)]


def mamQuery(to="", with_=None, rsm="", start=None, qid="q1"):
    fields = "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
    if with_:
        fields += f"<field var='with'><value>{with_}</value></field>"
    if start:
        fields += f"<field var='start'><value>{start}</value></field>"
    target = f" to='{to}'" if to else ""
    return (f"<iq type='set' id='mam1'{target}><query xmlns='{NS_MAM}' queryid='{qid}'>"
            f"<x xmlns='jabber:x:data' type='submit'>{fields}</x>{rsm}</query></iq>")


def page(transport):
    """(result message ids, fin element) of one query."""
    sent = transport.pop()
    results = [m for m in sent if m.name == "message"]
    [iq] = [e for e in sent if e.name == "iq"]
    assert iq["type"] == "result", iq.toXml()
    return [m.result["id"] for m in results], results, iq.fin


def test_privateHistoryPaging():
    """Querying 'with' a user pages the private dialog forwards with after and backwards with before."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    h.connect("bob")
    all_ = ids(7)
    for i, mid in enumerate(all_):
        h.send(alice, chat("bob@localhost", dialog, body=f"n{i}", mid=mid))
    ta.pop()
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>"
    h.send(alice, mamQuery(with_="bob@localhost", rsm=rsm))
    got, results, fin = page(ta)
    assert got == all_[:3] and fin["complete"] == "false" and str(fin.set.count) == "7"
    forwarded = results[0].result.forwarded
    assert forwarded.delay is not None and str(forwarded.message.body) == "n0"
    assert forwarded.message["from"] == "alice@localhost" and results[0].result["queryid"] == "q1"
    rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>{fin.set.last}</after></set>"
    h.send(alice, mamQuery(with_="bob@localhost", rsm=rsm))
    got, _, fin = page(ta)
    assert got == all_[3:6] and fin["complete"] == "false"
    rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><after>{fin.set.last}</after></set>"
    h.send(alice, mamQuery(with_="bob@localhost", rsm=rsm))
    got, _, fin = page(ta)
    assert got == all_[6:] and fin["complete"] == "true"
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>"
    h.send(alice, mamQuery(with_="bob@localhost", rsm=rsm))
    got, _, fin = page(ta)
    assert got == all_[5:] and fin["complete"] == "false"
    rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>{all_[2]}</before></set>"
    h.send(alice, mamQuery(with_="bob@localhost", rsm=rsm))
    got, _, fin = page(ta)
    assert got == all_[:2] and fin["complete"] == "true"


def test_roomHistoryAndAccess():
    """A query sent to the room JID returns group history from room/senderId; non-occupants get forbidden."""
    h = HostHarness(dialogs={"mam_max_page": 2, "mam_default_page": 2})
    dialog = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    dave, td = h.connect("dave")
    for mid in ids(3):
        h.send(alice, group(dialog, mid=mid))
    tb.pop()
    h.send(bob, mamQuery(to=room(dialog), rsm="<set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set>"))
    got, results, fin = page(tb)
    assert got == ids(3)[:2]  # capped at mam_max_page
    message = results[0].result.forwarded.message
    assert message["from"] == f"{room(dialog)}/{h.accountId('alice')}" and message["type"] == "groupchat"
    assert results[0]["from"] == room(dialog)
    h.send(bob, mamQuery(with_=room(dialog)))
    assert page(tb)[0] == ids(3)[:2]
    h.send(dave, mamQuery(to=room(dialog)))
    [err] = td.pop()
    assert err["type"] == "error" and err.error.firstChildElement().name == "forbidden"


def test_queryErrors():
    """A bad date or an unknown RSM id give the XEP's errors; no dialog gives an empty complete page."""
    h = HostHarness()
    private(h)
    alice, ta = h.connect("alice")
    h.addUser("carol")
    h.send(alice, mamQuery(with_="bob@localhost", start="yesterday"))
    h.send(alice, mamQuery(with_="bob@localhost",
                           rsm="<set xmlns='http://jabber.org/protocol/rsm'><after>6b026913da64a5335800ffff</after></set>"))
    errors = [e.error.firstChildElement().name for e in ta.pop()]
    assert errors == ["bad-request", "item-not-found"]
    h.send(alice, mamQuery(with_="carol@localhost"))
    got, _, fin = page(ta)
    assert got == [] and fin["complete"] == "true"


def test_startFilter():
    """The start field keeps only messages sent at or after it."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    h.clock.advance(1700000000)
    h.send(alice, chat("bob@localhost", dialog, mid=ids(2)[0]))
    h.clock.advance(100)
    h.send(alice, chat("bob@localhost", dialog, mid=ids(2)[1]))
    ta.pop()
    h.send(alice, mamQuery(with_="bob@localhost", start="2023-11-14T22:14:00Z"))
    assert page(ta)[0] == [ids(2)[1]]


NS_SID = "urn:xmpp:sid:0"


def stock(to, body="hi", mid="uuid-1", extra=""):
    """A stock client's 1-1 message: no extraParams."""
    return f"<message to='{to}' type='chat' id='{mid}'><body>{body}</body>{extra}</message>"


def stanzaIds(message):
    return {e["by"]: e["id"] for e in message.elements(NS_SID, "stanza-id")}


def test_stockChatArchivedWithStanzaIds():
    """A stock client's chat (no extraParams) is stored in the pair's private dialog, keeps its id, and
    reaches bob with a stanza-id by bob naming the archive id; a forged stanza-id by
    one of our users is dropped (XEP-0359 §5); chat states, receipts and no-store messages
    are not stored."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    forged = f"<stanza-id xmlns='{NS_SID}' by='bob@localhost' id='forged'/>"
    h.send(alice, stock("bob@localhost", extra=forged))
    [delivered] = [m for m in tb.pop() if m.name == "message"]
    assert delivered["id"] == "uuid-1" and delivered.extraParams is None
    sids = stanzaIds(delivered)
    assert set(sids) == {"bob@localhost"}
    assert sids["bob@localhost"] != "forged"
    h.send(alice, "<message to='bob@localhost' type='chat'>"
                  "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
    h.send(bob, "<message to='alice@localhost' type='chat'>"
                "<received xmlns='urn:xmpp:receipts' id='uuid-1'/></message>")
    h.send(alice, stock("bob@localhost", body="not kept", extra="<no-store xmlns='urn:xmpp:hints'/>"))
    h.send(alice, stock("bob@localhost", body="x" * 70000))
    ta.pop()
    assert [len(str(m.body)) for m in tb.pop() if m.name == "message" and m.body] == [8, 70000]
    h.send(bob, mamQuery())
    got, results, fin = page(tb)
    assert got == [sids["bob@localhost"]] and fin["complete"] == "true"
    assert str(results[0].result.forwarded.message.body) == "hi"
    dialog = result(h.storage.dialogs.findPrivateDialog(h.accountId("alice"), h.accountId("bob")))
    assert h.unread("bob", dialog) == 1 and dialog.lastMessage == "hi"


OMEMO = ("<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>a2V5</key>"
         "<iv>aXY=</iv></header><payload>cGF5bG9hZA==</payload></encrypted>")


def test_stockChatArchivedVerbatim():
    """Issue 16, XEP-0313 §4.1: a stock client's message is archived with its XML as received and MAM
    forwards it verbatim: an OMEMO message (with or without fallback body) keeps its <encrypted/>,
    a plain one its OOB url, reply and origin-id; the body kept for REST and the dialog list is the
    fallback body or 'Encrypted message'; a message edited over REST is rebuilt with the edit."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    extras = ("<x xmlns='jabber:x:oob'><url>https://example.org/a.png</url></x>"
              "<reply xmlns='urn:xmpp:reply:0' to='bob@localhost' id='m0'/>"
              "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>")
    h.send(alice, stock("bob@localhost", body="https://example.org/a.png", mid="m1", extra=extras))
    h.send(alice, stock("bob@localhost", body="I sent you an OMEMO message", mid="m2", extra=OMEMO))
    h.send(alice, f"<message to='bob@localhost' type='chat' id='m3'>{OMEMO}</message>")
    ta.pop()
    tb.pop()
    h.send(bob, mamQuery())
    got, results, fin = page(tb)
    assert len(got) == 3 and fin["complete"] == "true"
    oob, fallback, bare = (r.result.forwarded.message for r in results)
    assert [m["id"] for m in (oob, fallback, bare)] == ["m1", "m2", "m3"]
    assert oob["from"].startswith("alice@localhost") and oob["to"] == "bob@localhost"
    assert str(next(oob.elements("jabber:x:oob", "x")).url) == "https://example.org/a.png"
    assert next(oob.elements("urn:xmpp:reply:0", "reply"))["id"] == "m0"
    assert next(oob.elements(NS_SID, "origin-id"))["id"] == "o1" and oob.extraParams is None
    assert not list(oob.elements(NS_SID, "stanza-id")) and oob.delay is None
    for message in (fallback, bare):
        [enc] = message.elements("eu.siacs.conversations.axolotl", "encrypted")
        assert str(enc.payload) == "cGF5bG9hZA==" and enc.header.key["rid"] == "2"
    assert str(fallback.body) == "I sent you an OMEMO message" and bare.body is None
    stored = [result(h.storage.messages.getMessage(i)) for i in got]
    assert [m.body for m in stored] == ["https://example.org/a.png", "I sent you an OMEMO message",
                                        "Encrypted message"]
    result(h.storage.messages.editMessage(got[0], body="edited"))
    h.send(bob, mamQuery())
    _, results, _ = page(tb)
    assert str(results[0].result.forwarded.message.body) == "edited"


def test_stockChatSwitchOff():
    """dialogs.archive_chat = false: stock chat is delivered but not stored."""
    h = HostHarness(dialogs={"archive_chat": False})
    alice, ta = h.connect("alice")
    bob, tb = h.connect("bob")
    h.send(alice, stock("bob@localhost"))
    [delivered] = [m for m in tb.pop() if m.name == "message"]
    assert stanzaIds(delivered) == {}
    h.send(bob, mamQuery())
    assert page(tb)[0] == []


def test_sdkMessageWithoutSaveNotStored():
    """An SDK message without save_to_history keeps today's rule: not archived."""
    h = HostHarness()
    dialog = private(h)
    alice, ta = h.connect("alice")
    h.send(alice, chat("bob@localhost", dialog, save=None))
    ta.pop()
    h.send(alice, mamQuery())
    assert page(ta)[0] == []


def test_accountArchiveAcrossDialogs():
    """XEP-0313 §4: without 'with' the account archive holds every readable dialog's messages, oldest
    first, paged by RSM after/before; 'with' still narrows; other users' dialogs stay out; the cap
    dialogs.mam_max_dialogs keeps the most recently active dialogs."""
    h = HostHarness()
    dialog = private(h)
    grp = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    other = private(h, "carol", "dave")
    alice, ta = h.connect("alice")
    carol, tc = h.connect("carol")
    all_ = ids(6)
    for i, mid in enumerate(all_):
        h.send(alice, chat("bob@localhost", dialog, mid=mid) if i % 2 else group(grp, mid=mid))
    h.send(carol, chat("dave@localhost", other, mid="6b026913da64a5335800ffff"))
    ta.pop()
    h.send(alice, mamQuery())
    got, results, fin = page(ta)
    assert got == all_ and fin["complete"] == "true" and str(fin.set.count) == "6"
    assert results[0]["from"] == "alice@localhost"
    assert results[0].result.forwarded.message["type"] == "groupchat"
    assert results[1].result.forwarded.message["type"] == "chat"
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>4</max></set>"
    h.send(alice, mamQuery(rsm=rsm))
    got, _, fin = page(ta)
    assert got == all_[:4] and fin["complete"] == "false"
    rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><max>4</max><after>{fin.set.last}</after></set>"
    h.send(alice, mamQuery(rsm=rsm))
    assert page(ta)[0] == all_[4:]
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set>"
    h.send(alice, mamQuery(rsm=rsm))
    assert page(ta)[0] == all_[4:]
    rsm = f"<set xmlns='http://jabber.org/protocol/rsm'><before>{all_[4]}</before></set>"
    h.send(alice, mamQuery(rsm=rsm))
    assert page(ta)[0] == all_[:4]
    h.send(alice, mamQuery(with_="bob@localhost"))
    assert page(ta)[0] == all_[1::2]
    rsm = "<set xmlns='http://jabber.org/protocol/rsm'><after>6b026913da64a5335800ffff</after></set>"
    h.send(alice, mamQuery(rsm=rsm))
    [err] = ta.pop()
    assert err.error.firstChildElement().name == "item-not-found"


def test_accountArchiveDialogCap():
    """With mam_max_dialogs = 1 only the most recently active dialog is searched."""
    h = HostHarness(dialogs={"mam_max_dialogs": 1})
    dialog = private(h)
    grp = h.addDialog(DIALOG_GROUP, "alice", ["bob"])
    alice, ta = h.connect("alice")
    all_ = ids(2)
    h.send(alice, chat("bob@localhost", dialog, mid=all_[0]))
    h.clock.advance(10)
    h.send(alice, group(grp, mid=all_[1]))
    ta.pop()
    h.send(alice, mamQuery())
    assert page(ta)[0] == [all_[1]]


def test_accountAdvertisesMam():
    """The account's disco#info lists urn:xmpp:mam:2 and urn:xmpp:sid:0."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    h.send(alice, "<iq type='get' id='d1' to='alice@localhost'>"
                  "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    [iq] = ta.pop()
    features = {f["var"] for f in iq.query.elements() if f.name == "feature"}
    assert {NS_MAM, NS_SID} <= features


def test_sentCarbonNamesSenderArchive():
    """The sender's sent carbon of an archived message carries a stanza-id by the sender (the same
    archive id); the recipient's copy only one by the recipient."""
    h = HostHarness()
    alice, ta = h.connect("alice")
    phone, tp = h.connect("alice", "phone")
    bob, tb = h.connect("bob")
    h.send(phone, "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
    tp.pop()
    h.send(alice, stock("bob@localhost"))
    [delivered] = [m for m in tb.pop() if m.name == "message"]
    [carbon] = [m for m in tp.pop() if m.name == "message"]
    sent = carbon.sent.forwarded.message
    assert stanzaIds(sent) == {"bob@localhost": stanzaIds(delivered)["bob@localhost"],
                               "alice@localhost": stanzaIds(delivered)["bob@localhost"]}
    assert set(stanzaIds(delivered)) == {"bob@localhost"}
