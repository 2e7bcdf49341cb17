"""
A compliance check in the manner of Conversations' XMPP Compliance Tester
(iNPUTmice/ComplianceTester) for XEP-0479, XMPP Compliance Suites 2023,
"Advanced IM Server" (the Core and IM categories' Advanced Server columns),
plus the Conversations suite's extras (CSI, push, proxy65, OMEMO, MUC MAM).

One slixmpp client logs in to a server configured like the dev config and
looks only at what a client can see: stream features, disco#info of the
server and of its own account, and the components the server lists in
disco#items.  Each requirement is one test (most are one case of
test_advertised: a feature where the Tester looks).  Requirements not met
are strict xfails naming what is missing (a strict xfail that passes fails
the run, so a mark is never left behind once the feature lands).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.e2e.conftest import startServer, stopServer
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

NS_STREAM = "http://etherx.jabber.org/streams"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
NS_MUC = "http://jabber.org/protocol/muc"


def missing(feature: str):
    """A requirement nobody builds yet (see the README's compliance table)."""
    return pytest.mark.xfail(reason=f"{feature}: not implemented", strict=True)


class Info:
    """What one disco#info answer says: identities, features and XEP-0128 forms."""

    def __init__(self, query: ET.Element | None, error: str | None = None):
        self.error = error
        self.identities: set = set()
        self.features: set = set()
        self.forms: dict = {}  # FORM_TYPE -> {var: [values]}
        if query is None:
            return
        for child in query:
            if child.tag == f"{{{NS_INFO}}}identity":
                self.identities.add((child.get("category"), child.get("type")))
            elif child.tag == f"{{{NS_INFO}}}feature":
                self.features.add(child.get("var"))
            elif child.tag == f"{{{NS_DATA}}}x":
                fields = {f.get("var"): [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
                          for f in child.findall(f"{{{NS_DATA}}}field")}
                formType = (fields.pop("FORM_TYPE", None) or [""])[0]
                self.forms[formType] = fields


async def ask(client, to, xmlns, itype="get", payload=None) -> ET.Element:
    """An IQ to C{to}; its result, or an C{error} element named after the condition."""
    iq = client.make_iq(itype=itype, ito=to) if payload is not None else client.make_iq_get(
        queryxmlns=xmlns, ito=to)
    if payload is not None:
        iq.append(payload)
    try:
        reply = await iq.send(timeout=TIMEOUT)
    except Exception as e:  # IqError, IqTimeout: recorded, judged by the tests
        condition = getattr(e, "condition", type(e).__name__)
        return ET.Element("error", condition=str(condition))
    return reply.xml


async def info(client, to) -> Info:
    reply = await ask(client, to, NS_INFO)
    if reply.tag == "error":
        return Info(None, reply.get("condition"))
    return Info(reply.find(f"{{{NS_INFO}}}query"))


async def survey(server) -> dict:
    """Everything the tests judge, gathered by one logged-in client, as the Compliance Tester does."""
    client = Client(server, "compliance@localhost", "compliance-pw")
    features = []

    def record(stanza):
        if stanza.xml.tag == f"{{{NS_STREAM}}}features":
            features.append(ET.fromstring(ET.tostring(stanza.xml)))
        return stanza

    client.add_filter("in", record)
    assert await client.login()
    domain = server.domain
    report = {"features": {child.tag for child in features[-1]}, "server": await info(client, domain),
              "account": await info(client, client.boundjid.bare), "components": {}}
    items = await ask(client, domain, NS_ITEMS)
    for item in items.iter(f"{{{NS_ITEMS}}}item"):
        report["components"][item.get("jid")] = await info(client, item.get("jid"))
    services = await ask(client, domain, "urn:xmpp:extdisco:2", payload=ET.Element("{urn:xmpp:extdisco:2}services"))
    report["services"] = [dict(s.attrib) for s in services.iter("{urn:xmpp:extdisco:2}service")]
    muc = next((jid for jid, i in report["components"].items() if NS_MUC in i.features), None)
    if muc is not None:
        report["room"], report["selfping"] = await joinRoom(client, f"compliance-room@{muc}", "tester")
    client.disconnect()
    return report


async def joinRoom(client, room, nick):
    """Join (create) C{room} as C{nick}; its disco#info and how a XEP-0410 self-ping is answered."""
    joined = asyncio.get_event_loop().create_future()

    def onPresence(presence):
        # the self-presence (status 110) names the nick the room gave us
        selfPresence = presence.xml.find("{http://jabber.org/protocol/muc#user}x/"
                                         "{http://jabber.org/protocol/muc#user}status[@code='110']")
        if presence["from"].bare == room and not joined.done() and (
                selfPresence is not None or presence["type"] == "error"):
            joined.set_result((presence["type"], presence["from"].resource))

    client.add_event_handler("presence", onPresence)
    presence = client.make_presence(pto=f"{room}/{nick}")
    presence.xml.append(ET.Element(f"{{{NS_MUC}}}x"))
    presence.send()
    presenceType, nick = await asyncio.wait_for(joined, TIMEOUT)
    if presenceType == "error":
        return Info(None, "join refused"), "not joined"
    # an instant room (XEP-0045 §10.1.2), for servers that lock new rooms
    owner = ET.Element("{http://jabber.org/protocol/muc#owner}query")
    ET.SubElement(owner, f"{{{NS_DATA}}}x", type="submit")
    await ask(client, room, None, itype="set", payload=owner)
    ping = await ask(client, f"{room}/{nick}", None, payload=ET.Element("{urn:xmpp:ping}ping"))
    return await info(client, room), "result" if ping.tag != "error" else ping.get("condition")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # the dev config's listeners: c2s with STARTTLS, direct TLS, WebSocket, BOSH;
    # and a XEP-0114 component listener (off in the dev config)
    server = startServer(tmp_path_factory.mktemp("compliance"), extra="""
[websocket]
enabled = true
port = 0

[bosh]
enabled = true
port = 0

[contact]
abuse = ["mailto:abuse@localhost"]

[[extdisco.services]]
type = "turn"
host = "turn.localhost"
port = 3478
secret = "compliance-secret"

[components]
enabled = true
port = 0

[[components.external]]
domain = "bot.localhost"
secret = "compliance-component-secret"
""")
    try:
        server.adduser("compliance", "compliance-pw")
        yield run(survey(server)) | {"ports": server.ports}
    finally:
        stopServer(server)


def test_report_gathered(report):
    """The survey logged in over STARTTLS (certificate verified), and the server answered disco#info for itself and the account."""
    assert report["server"].error is None and report["account"].error is None
    assert ("server", "im") in report["server"].identities


def advertised(report, where: str, feature: str) -> bool:
    """
    Whether C{feature} is in the stream features (C{where="stream"}), the
    disco#info of the server or the account, or of any listed component.
    """
    if where == "stream":
        return feature in report["features"]
    if where == "components":
        return any(feature in i.features for i in report["components"].values())
    if where == "server or components":
        return advertised(report, "server", feature) or advertised(report, "components", feature)
    return feature in report[where].features


# Each XEP-0479 Advanced IM Server requirement the Compliance Tester judges by
# an advertised feature: (id, where, feature), with the mark of what is missing.
ADVERTISED = [
    # Core category
    pytest.param("server", NS_INFO, id="XEP-0030-disco#info"),
    pytest.param("server", NS_ITEMS, id="XEP-0030-disco#items"),
    pytest.param("stream", "{http://jabber.org/protocol/caps}c", id="XEP-0115-caps"),
    # IM category
    pytest.param("stream", "{urn:xmpp:features:rosterver}ver", id="RFC-6121-rosterver"),
    pytest.param("server", "vcard-temp", id="XEP-0054-vcard-temp"),
    pytest.param("account", "urn:xmpp:pep-vcard-conversion:0", id="XEP-0398-avatar-conversion"),
    pytest.param("server", "urn:xmpp:carbons:2", id="XEP-0280-carbons"),
    pytest.param("server", "urn:xmpp:blocking", id="XEP-0191-blocking"),
    pytest.param("components", NS_MUC, id="XEP-0045-MUC-service"),
    pytest.param("account", "urn:xmpp:bookmarks:1#compat", id="XEP-0402-bookmarks-compat"),
    pytest.param("account", "http://jabber.org/protocol/pubsub#publish-options", id="XEP-0223-publish-options"),
    pytest.param("server", "jabber:iq:private", id="XEP-0049-private-storage"),
    pytest.param("stream", "{urn:xmpp:sm:3}sm", id="XEP-0198-stream-management"),
    # the Compliance Tester asks the account, not the server
    pytest.param("account", "urn:xmpp:mam:2", id="XEP-0313-MAM"),
    pytest.param("server or components", "urn:xmpp:http:upload:0", id="XEP-0363-HTTP-upload"),
    # Mobile category, the Conversations suite, specifications of note
    pytest.param("stream", "{urn:xmpp:csi:0}csi", id="XEP-0352-CSI"),
    pytest.param("account", "urn:xmpp:push:0", id="XEP-0357-push"),
    pytest.param("components", "http://jabber.org/protocol/bytestreams", id="XEP-0065-proxy",
                 marks=missing("XEP-0065 SOCKS5 bytestreams proxy component")),
    pytest.param("server", "urn:xmpp:ping", id="XEP-0199-ping"),
    pytest.param("server", "jabber:iq:version", id="XEP-0092-version"),
    pytest.param("server", "urn:xmpp:extdisco:2", id="XEP-0215-external-services"),
]


@pytest.mark.parametrize(("where", "feature"), ADVERTISED)
def test_advertised(report, where, feature):
    """The requirement's feature is advertised where the Compliance Tester looks for it."""
    assert advertised(report, where, feature)


def test_core_directTLS(report):
    """XEP-0368: the server accepts direct TLS connections (the dev config's tls_port)."""
    assert report["ports"].get("c2s-tls")


def test_core_components(report):
    """XEP-0114: server extensibility through external components (a component listener)."""
    assert report["ports"].get("component")


def test_core_pep(report):
    """XEP-0163: the account's disco#info has the pubsub/pep identity (the Compliance Tester's PEP test)."""
    assert ("pubsub", "pep") in report["account"].identities


def test_im_mucArchive(report):
    """XEP-0313 for MUC (Advanced Group Chat): a room created by joining it has a MAM archive."""
    assert "urn:xmpp:mam:2" in report["room"].features


def test_im_mucSelfPing(report):
    """XEP-0410: a ping to one's own occupant JID is answered with a result while joined."""
    assert report["selfping"] == "result"


def test_web_transports(report):
    """RFC 7395 and XEP-0206 (Web category): WebSocket and BOSH listeners are running."""
    assert report["ports"].get("websocket") and report["ports"].get("bosh")


def test_note_contactAddresses(report):
    """XEP-0157 (the Compliance Tester's abuse-contact test): the server's disco#info lists abuse addresses."""
    assert report["server"].forms["http://jabber.org/network/serverinfo"]["abuse-addresses"] == [
        "mailto:abuse@localhost"]


def test_av_externalServices(report):
    """XEP-0215 (A/V Calling category): the TURN server with time-limited credentials."""
    [turn] = report["services"]
    assert (turn["type"], turn["host"], turn["port"]) == ("turn", "turn.localhost", "3478")
    assert turn["username"].endswith(":compliance@localhost") and turn["password"]
