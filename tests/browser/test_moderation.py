"""
Issue 19, the Moderation page in a real browser: a user reports a
message over REST (a C{MessageReports} record as the SDK's
C{ConnectyCube.data.create} makes it), the administrator sees it with the
message, opens it in its dialog, deletes it for everyone, and blocks the
sender; real clients (REST, slixmpp live and its XEP-0313 archive) see
each effect.
"""

from __future__ import annotations

import asyncio

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.browser.conftest import shot, signIn, wait, waitFor
from tests.e2e.test_mam import archive
from tests.e2e.test_mam import login as mamClient
from tests.e2e.test_rest import call, restUsers
from tests.e2e.test_slixmpp import Client, run

NS_DELETE = "urn:xmpp:message-delete:0"
TIMEOUT = 20


def texts(browser, css):
    return [e.text for e in browser.find_elements("css selector", css)]


def accept(browser):
    """Confirm the page's window.confirm()."""
    waitFor(browser, lambda b: b.switch_to.alert, message="no confirmation asked").accept()


def test_deleteReportedMessageAndBlockItsSender(panel, browser):
    """
    The report shows the message; "In context" shows it between its
    neighbours; "Delete for everyone" removes it from the reporter's REST
    and XEP-0313 history and tells his online client; "Block" ends the sender's
    session and his next login fails.
    """
    server = panel.server
    users = restUsers(server, "modreporter", "modspammer")
    (reporterToken, reporterId), (spammerToken, spammerId) = users["modreporter"], users["modspammer"]
    sent = []
    for text in ("hello there", "buy cheap pills at example.com", "bye"):
        status, message = call(server, "POST", "/chat/Message.json",
                               {"recipient_id": reporterId, "message": text}, spammerToken)
        assert status == 201, message
        sent.append(message)
    reported = sent[1]
    dialogId = reported["chat_dialog_id"]
    status, record = call(server, "POST", "/data/MessageReports.json",
                          {"reportedMessageId": reported["_id"], "reason": "Phishing link"},
                          reporterToken)
    assert status == 201, record
    status, _ = call(server, "POST", "/data/UserReports.json",
                     {"reportedUserId": spammerId, "reason": "Sends spam"}, reporterToken)
    assert status == 201

    async def inBrowser(fn):
        return await asyncio.get_running_loop().run_in_executor(None, fn)

    async def scenario():
        reporter = await mamClient(server, f"{reporterId}-1@localhost", "modreporter-pw-1")
        spammer = Client(server, f"{spammerId}-1@localhost", "modspammer-pw-1")
        removed = asyncio.get_running_loop().create_future()
        reporter.register_handler(Callback("remove", MatchXPath(
            f"{{jabber:client}}message/{{{NS_DELETE}}}remove"),
            lambda m: removed.done() or removed.set_result(m)))
        errors = []
        spammer.add_event_handler("stream_error", lambda e: errors.append(e))
        ended = asyncio.get_running_loop().create_future()
        spammer.add_event_handler("disconnected", lambda *_: ended.done() or ended.set_result(True))
        assert await spammer.login()
        assert reported["message"] in (await archive(reporter))[1]  # XEP-0313 has it

        def reportsAndContext():
            signIn(browser, panel, page="moderation")
            browser.get(panel.url + "#/moderation?kind=message")
            waitFor(browser, lambda b: "buy cheap pills at example.com" in " ".join(
                texts(b, "#page-moderation table.results[data-kind=message] td")),
                message="the report with its message is not listed")
            cells = " ".join(texts(browser, "#page-moderation table.results td"))
            assert "Phishing link" in cells and "modspammer" in cells and "modreporter" in cells
            shot(browser, "moderation-reports")
            wait(browser, f"button[data-action=context][data-message='{reported['_id']}']").click()
            assert "buy cheap pills" in wait(browser, "#page-moderation #reported-message").text
            items = texts(browser, "#page-moderation ol.context li")
            assert [i for i, t in enumerate(items) if "hello there" in t] == [0]
            assert "bye" in items[2] and len(items) == 3
            shot(browser, "moderation-context")
            wait(browser, "#page-moderation p.actions button[data-action=delete-message]").click()
            accept(browser)
            assert "deleted for everyone" in wait(browser, "#notice.ok").text
            wait(browser, "#page-moderation p.gone")
            browser.get(panel.url + "#/moderation?kind=message")
            waitFor(browser, lambda b: "(deleted)" in " ".join(
                texts(b, "#page-moderation table.results[data-kind=message] td")),
                message="the report does not show the message as deleted")

        await inBrowser(reportsAndContext)
        got = await asyncio.wait_for(removed, TIMEOUT)
        assert got.xml.find(f"{{{NS_DELETE}}}remove").get("id") == reported["_id"]
        assert str(got["from"]) == f"{spammerId}-1@localhost"
        status, history = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialogId}",
                               None, reporterToken)
        assert status == 200
        assert [m["message"] for m in history["items"]] == ["hello there", "bye"]
        assert (await archive(reporter))[1] == ["hello there", "bye"]

        def block():
            browser.get(panel.url + "#/moderation?kind=user")
            wait(browser, f"button[data-action=block][data-user='{spammerId}-1']").click()
            accept(browser)
            assert "is blocked" in wait(browser, "#notice.ok").text
            wait(browser, f"button[data-action=unblock][data-user='{spammerId}-1']")
            assert "blocked" in texts(browser, "#page-moderation .badge.blocked")
            shot(browser, "moderation-blocked")

        await inBrowser(block)
        await asyncio.wait_for(ended, TIMEOUT)
        assert [e["condition"] for e in errors] == ["policy-violation"]
        again = Client(server, f"{spammerId}-1@localhost", "modspammer-pw-1")
        assert await again.login() is False
        status, body = call(server, "POST", "/session.json", {
            "application_id": 1, "auth_key": "e2e-auth-key",
            "user": {"login": "modspammer", "password": "modspammer-pw-1"}})
        assert status == 403, body
        await reporter.logout()

    run(scenario())
