"""
Issue 19, the Dialogs page in a real browser: sign in, create a broadcast
dialog, send a message into it from the panel and see a real client get
it over XMPP (a broadcast reaches every online user of the application,
xmppchat.modules.dialogfanout) and a user read it in the REST history;
filter the dialog list by a configured extension field; edit and delete a
dialog.  Screenshots of the list and of a dialog.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.conftest import panelServer, shot, signIn, wait, waitFor
from tests.e2e.conftest import stopServer
from tests.e2e.test_rest import call
from tests.e2e.test_seed import PASSWORD, signup
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

FIELDS = '\n[dialogs]\nextension_fields = ["category"]\n'
CSS = "css selector"


@pytest.fixture(scope="module")
def dialogsPanel(tmp_path_factory):
    """A panel server whose dialogs have the extension field "category", and REST users owner and reader."""
    running = panelServer(tmp_path_factory, FIELDS)
    running.users = {name: signup(running.server, name) for name in ("owner", "reader")}
    yield running
    stopServer(running.server)


def fill(form, values: dict) -> None:
    for name, value in values.items():
        field = form.find_element("name", name)
        field.clear()
        field.send_keys(value)


def resultLinks(browser) -> list:
    """The dialog links of the results table, read in one go (the page may be drawn again meanwhile)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#page-dialogs table.results a')]"
        ".map(a => a.getAttribute('href'));")


def notice(browser, text: str):
    return waitFor(browser, lambda b: text in (b.find_element(CSS, "#notice.ok").text
                                               if b.find_elements(CSS, "#notice.ok") else ""),
                   message=f"no notice {text!r}")


def test_createBroadcastAndSendItsMessage(dialogsPanel, browser):
    """
    A broadcast dialog made in the panel is stored as type 1 with its
    owner and extension; the message sent from the panel reaches a real
    XMPP client of another user and is in that user's REST history.
    """
    panel, server = dialogsPanel, dialogsPanel.server
    ownerId = panel.users["owner"][0]
    readerId, readerToken = panel.users["reader"]
    signIn(browser, panel, page="dialogs")
    form = wait(browser, "#page-dialogs form#create-broadcast")
    fill(form, {"name": "Panel news", "owner": "nobody", "description": "made in the panel",
                "ext.category": "news"})
    form.find_element(CSS, "button[data-action=create-broadcast]").click()
    assert "No such user" in wait(browser, "#notice.error").text  # the API's reason, nothing made
    fill(form, {"owner": "owner"})
    form.find_element(CSS, "button[data-action=create-broadcast]").click()
    wait(browser, "#dialog-details")
    notice(browser, "created")
    dialogId = browser.current_url.rpartition("#/dialogs/")[2]
    status, dialog = panel.api("GET", f"dialogs/{dialogId}")
    assert status == 200 and (dialog["type"], dialog["owner_id"], dialog["name"]) == (1, ownerId, "Panel news")
    assert dialog["extensions"] == {"category": "news"} and dialog["description"] == "made in the panel"

    async def scenario():
        reader = Client(server, f"{readerId}-1@localhost", PASSWORD)
        assert await reader.login()
        try:
            def send():
                form = wait(browser, "form#send-message")
                form.find_element("name", "message").send_keys("Hello from the panel")
                form.find_element(CSS, "button[data-action=send]").click()
                notice(browser, "sent")

            await asyncio.to_thread(send)
            while True:
                got = await asyncio.wait_for(reader.messages.get(), TIMEOUT)
                if got["body"]:
                    break
            assert got["body"] == "Hello from the panel" and got["type"] == "groupchat"
            assert str(got["from"]) == f"1_{dialogId}@muc.localhost/{ownerId}"
        finally:
            await reader.logout()

    run(scenario())
    status, history = call(server, "GET", f"/chat/Message.json?chat_dialog_id={dialogId}", token=readerToken)
    assert status == 200, history
    assert [(m["message"], m["sender_id"]) for m in history["items"]] == [("Hello from the panel", ownerId)]
    details = waitFor(browser, lambda b: "Hello from the panel" in b.find_element(CSS, "#dialog-details").text
                      and b.find_element(CSS, "#dialog-details"))
    assert "Messages\n1" in details.text
    shot(browser, "dialogs-view")


def test_filterByExtensionField(dialogsPanel, browser):
    """The search form's extension field and value narrow the results to the dialogs with that value."""
    created = {}
    for name, category in (("Sports talk", "sports"), ("Tech digest", "tech")):
        status, d = dialogsPanel.api("POST", "dialogs", {"name": name, "owner": "owner",
                                                         "extensions": {"category": category}})
        assert status == 201, d
        created[category] = d["id"]
    signIn(browser, dialogsPanel, page="dialogs")
    waitFor(browser, lambda b: len(resultLinks(b)) >= 2, message="no dialogs listed")
    assert {f"#/dialogs/{i}" for i in created.values()} <= set(resultLinks(browser))
    form = wait(browser, "#page-dialogs form")
    from selenium.webdriver.support.ui import Select

    Select(form.find_element("name", "field")).select_by_value("category")
    fill(form, {"value": "sports"})
    form.find_element(CSS, "button[data-action=search]").click()
    waitFor(browser, lambda b: resultLinks(b) == [f"#/dialogs/{created['sports']}"],
            message="the filter did not narrow the list")
    assert "field=category" in browser.current_url and "value=sports" in browser.current_url
    shot(browser, "dialogs-list")


def test_editAndDelete(dialogsPanel, browser):
    """The edit form changes the dialog as stored; Delete (confirmed) removes it for everyone."""
    status, d = dialogsPanel.api("POST", "dialogs", {"name": "Old name", "owner": "owner"})
    assert status == 201, d
    readerId = dialogsPanel.users["reader"][0]
    signIn(browser, dialogsPanel, page="dialogs")
    browser.get(f"{dialogsPanel.url}#/dialogs/{d['id']}")
    form = wait(browser, "form#edit-dialog")
    fill(form, {"name": "New name", "description": "edited", "admins_ids": str(readerId),
                "ext.category": "misc"})
    form.find_element(CSS, "button[data-action=save]").click()
    notice(browser, "Saved")
    status, shown = dialogsPanel.api("GET", f"dialogs/{d['id']}")
    assert (shown["name"], shown["description"], shown["admins_ids"], shown["extensions"]) == (
        "New name", "edited", [readerId], {"category": "misc"}), shown
    wait(browser, "button[data-action=delete]").click()
    browser.switch_to.alert.accept()
    notice(browser, "deleted")
    assert browser.current_url.endswith("#/dialogs")
    assert dialogsPanel.api("GET", f"dialogs/{d['id']}")[0] == 404
