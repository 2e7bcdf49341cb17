"""
Tests for XEP-0313 MAM with XEP-0059 paging over dialog history
(xmppchat.modules.mam).
"""

from tests.helpers import HostHarness
from tests.modules.test_dialogs import chat, group, private, room
from xmppchat.storage.interfaces import DIALOG_GROUP

NS_MAM = "urn:xmpp:mam:2"


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
    """No 'with', a bad date, or an unknown RSM id give the XEP's errors; no dialog gives an empty complete page."""
    h = HostHarness()
    private(h)
    alice, ta = h.connect("alice")
    h.addUser("carol")
    h.send(alice, mamQuery())
    h.send(alice, mamQuery(with_="bob@localhost", start="yesterday"))
    h.send(alice, mamQuery(with_="bob@localhost",
                           rsm="<set xmlns='http://jabber.org/protocol/rsm'><after>6b026913da64a5335800ffff</after></set>"))
    errors = [e.error.firstChildElement().name for e in ta.pop()]
    assert errors == ["not-acceptable", "bad-request", "item-not-found"]
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
