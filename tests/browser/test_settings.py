"""
Issue 19 in a real browser: the Chat settings and Applications pages.
An administrator adds a dialog extension field in the panel and a REST
client (the ConnectyCube REST API as the SDK calls it) stores it on new
dialogs and filters the dialog list by it; removing the field in the panel
strips it from those dialogs; rotating the auth key in the panel makes the
REST API refuse the old key and take the new one.  Screenshots of both
pages.
"""

from __future__ import annotations

from tests.browser.conftest import shot, signIn, wait, waitFor
from tests.e2e.conftest import REST_APP_ID, REST_AUTH_KEY
from tests.e2e.test_rest import call
from tests.e2e.test_seed import signup

FIELD = "category"


def acceptConfirms(browser):
    """Answer yes to the page's confirmation questions (window.confirm)."""
    browser.execute_script("window.confirm = () => true;")


def notice(browser, text):
    return waitFor(browser, lambda b: text in (wait(b, "#notice.ok").text or ""),
                   message=f"no notice with {text!r}")


def test_extensionFieldAndAuthKeyFromThePanel(panel, browser):
    """Add a field -> REST dialogs carry it and filter by it; remove it -> stripped; rotate the auth
    key -> the old key is refused and the new one accepted."""
    server = panel.server
    signIn(browser, panel, page="settings")
    wait(browser, "tr[data-key='dialogs.extension_fields']")
    shot(browser, "settings")
    form = wait(browser, "form[data-key='dialogs.extension_fields']")
    form.find_element("name", "field").send_keys(FIELD)
    form.find_element("css selector", "button[data-action=add-field]").click()
    notice(browser, f'"{FIELD}" added')
    wait(browser, f".chip[data-field={FIELD}]")
    assert panel.api("GET", "settings")[1]["settings"][0]["panel"] == [FIELD]
    shot(browser, "settings-field-added")

    # a REST client as the SDK: dialogs with the extension, the list filtered by it
    owner, (memberId, _) = signup(server, "owner")[1], signup(server, "member")
    made = {}
    for name, value in (("chess club", "sport"), ("football", "sport"), ("choir", "music")):
        status, answer = call(server, "POST", "/chat/Dialog.json", {
            "type": 2, "name": name, "occupants_ids": str(memberId), "extensions": {FIELD: value}}, token=owner)
        assert status == 201 and answer["extensions"] == {FIELD: value}, answer
        made[name] = answer["_id"]
    status, answer = call(server, "GET", f"/chat/Dialog.json?{FIELD}=sport", token=owner)
    assert status == 200 and sorted(d["name"] for d in answer["items"]) == ["chess club", "football"], answer

    # removed in the panel: gone from every dialog, no longer a filter
    acceptConfirms(browser)
    wait(browser, f".chip[data-field={FIELD}] button[data-action=remove-field]").click()
    notice(browser, "Removed from 3 dialog(s)")
    waitFor(browser, lambda b: not b.find_elements("css selector", f".chip[data-field={FIELD}]"))
    for dialogId in made.values():
        status, answer = call(server, "GET", f"/chat/Dialog/{dialogId}.json", token=owner)
        assert status == 200 and FIELD not in (answer.get("extensions") or {}), answer
    assert call(server, "GET", f"/chat/Dialog.json?{FIELD}=sport", token=owner)[0] == 400

    # the auth key rotated in the panel
    browser.get(panel.url + "#/apps")
    wait(browser, "#page-apps table.results")
    shot(browser, "apps")
    assert wait(browser, "code.auth_key").text.endswith(REST_AUTH_KEY[-4:])
    acceptConfirms(browser)
    wait(browser, "button[data-action=rotate-auth-key]").click()
    new = wait(browser, "#new-secret code").text
    assert len(new) >= 40
    waitFor(browser, lambda b: b.find_element("css selector", "code.auth_key").text.endswith(new[-4:]))
    shot(browser, "apps-rotated")
    session = {"application_id": REST_APP_ID, "auth_key": REST_AUTH_KEY}
    assert call(server, "POST", "/session.json", session)[0] == 422
    status, answer = call(server, "POST", "/session.json", {**session, "auth_key": new})
    assert status == 201, answer
    # the value is shown once: a reload of the page shows only its last 4 characters
    browser.refresh()
    wait(browser, "#page-apps table.results")
    assert not browser.find_elements("css selector", "#new-secret")
    assert new not in browser.page_source
