"""
Issue 19, the admin panel's Users page in Chromium: search a user, open
him and kick him while a slixmpp client is connected (its stream ends
with policy-violation); create a user and log in with his password;
reset a password and log in with the new one; see a lockout and lift
it; delete a user.  Screenshots: users-list, users-view.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from tests.browser.conftest import panelServer, shot, signIn, wait, waitFor
from tests.e2e.conftest import stopServer
from tests.e2e.test_adminapi import streamErrors
from tests.e2e.test_login_lockout import ATTACKER_IP, saslAttempts
from tests.e2e.test_slixmpp import TIMEOUT, Client, run

USERS = ("alice", "bob", "carol", "dave")
LOCKOUT = 3


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    # three wrong passwords lock a source out of an account, without delays before
    running = panelServer(tmp_path_factory, extra=f"""
[limits]
failed_logins_free = 10
failed_logins_lockout = {LOCKOUT}
""")
    running.server.addusers(USERS[1:])
    status, _ = running.api("POST", "users", {"name": "alice", "password": "alice-pw",
                                              "full_name": "Alice Liddell", "email": "alice@example.org",
                                              "custom_data": '{"team": "red", "level": 3}'})
    assert status == 201
    yield running
    stopServer(running.server)


def fill(form, **values):
    for name, value in values.items():
        field = form.find_element("name", name)
        field.clear()
        field.send_keys(value)


def submit(browser, action):
    wait(browser, f"#page-users button[data-action={action}]").click()


def notice(browser, text):
    """The ok notice once it says C{text}."""
    waitFor(browser, lambda b: text in wait(b, "#notice.ok").text, message=f"no notice {text!r}")


def openUser(browser, panel, name):
    browser.get(panel.url + "#/users/" + name)
    return wait(browser, "#page-users h2.user")


def test_searchOpenAndKick(panel, browser):
    """Search "ali", open alice from the results, kick her: her slixmpp stream ends with policy-violation."""
    aliceId = panel.api("GET", "users?q=alice")[1]["users"][0]["id"]

    def inBrowser():
        signIn(browser, panel, page="users")
        fill(wait(browser, "#page-users form"), q="ali")
        submit(browser, "search")
        link = wait(browser, "#page-users table.results a[href='#/users/alice%40localhost']")
        rows = browser.find_elements("css selector", "#page-users table.results tbody tr")
        assert len(rows) == 1
        shot(browser, "users-list")
        link.click()
        assert wait(browser, "#page-users h2.user").text == "alice@localhost"
        waitFor(browser, lambda b: "alice@localhost/panel" in b.find_element("id", "page-users").text)
        terms = browser.find_elements("css selector", "#page-users dl.props dt")
        assert [t.text for t in terms][:4] == ["Id", "Full name", "E-mail", "Created"]
        assert browser.find_element("css selector", "#page-users dl.props dd").text == str(aliceId)
        assert '"team": "red"' in wait(browser, "#page-users pre.custom-data").text
        shot(browser, "users-view")
        fill(wait(browser, "#page-users button[data-action=kick]").find_element("xpath", ".."),
             reason="panel test")
        submit(browser, "kick")
        notice(browser, "Ended 1 session(s) of alice@localhost")

    async def scenario():
        alice = Client(panel.server, "alice@localhost/panel", "alice-pw")
        errors = streamErrors(alice)
        assert await alice.login()
        await asyncio.to_thread(inBrowser)
        assert await asyncio.wait_for(errors, TIMEOUT) == "policy-violation"

    run(scenario())
    status, view = panel.api("GET", "users/alice")
    assert status == 200 and view["sessions"] == []


def test_createUserThenLogIn(panel, browser):
    """The create form makes a user (with a full name) who logs in over XMPP with that password."""
    signIn(browser, panel, page="users")
    form = wait(browser, "#page-users button[data-action=create]").find_element("xpath", "..")
    fill(form, name="newbie", password="newbie-pw-1", full_name="New Bie")
    submit(browser, "create")
    notice(browser, "Created newbie@localhost")
    wait(browser, "#page-users table.results a[href='#/users/newbie%40localhost']")
    status, view = panel.api("GET", "users/newbie")
    assert status == 200 and view["profile"] == {"full_name": "New Bie"}

    async def scenario():
        newbie = Client(panel.server, "newbie@localhost", "newbie-pw-1")
        assert await newbie.login()
        await newbie.logout()

    run(scenario())


def test_resetPasswordThenLogIn(panel, browser):
    """The password form sets bob's password: the new one logs in, the old one no longer."""
    signIn(browser, panel, page="users")
    openUser(browser, panel, "bob")
    fill(wait(browser, "#page-users button[data-action=password]").find_element("xpath", ".."),
         password="bob-new-pw")
    submit(browser, "password")
    notice(browser, "Password of bob@localhost changed")

    async def scenario():
        # one mechanism: one failed login (LOCKOUT of them would lock this source out)
        old = Client(panel.server, "bob@localhost", "bob-pw", mechanism="PLAIN")
        assert not await old.login()
        new = Client(panel.server, "bob@localhost", "bob-new-pw")
        assert await new.login()
        await new.logout()

    run(scenario())


def test_lockoutShownAndUnlocked(panel, browser):
    """Wrong passwords lock a source out of carol: the view says so, Unlock lifts it at once."""
    saslAttempts(panel.server, ATTACKER_IP, "carol", ["wrong"] * LOCKOUT)
    assert saslAttempts(panel.server, ATTACKER_IP, "carol", ["carol-pw"]) == ["temporary-auth-failure"]
    signIn(browser, panel, page="users")
    openUser(browser, panel, "carol")
    assert "Locked out until" in wait(browser, "#page-users p.lockout.locked").text
    assert ATTACKER_IP in browser.find_element("id", "page-users").text
    submit(browser, "unlock")
    notice(browser, "Unlocked carol")
    assert "Not locked out" in wait(browser, "#page-users p.lockout").text
    assert saslAttempts(panel.server, ATTACKER_IP, "carol", ["carol-pw"]) == ["success"]


def test_blockAndUnblockFromTheUserView(panel, browser):
    """
    The user view shows whether an account is blocked and blocks and
    unblocks it (the moderation routes): blocked, carol's login fails;
    unblocked, it works again.
    """
    signIn(browser, panel, page="users")
    openUser(browser, panel, "carol")
    assert "Not blocked" in wait(browser, "#page-users p.blocked").text
    submit(browser, "block")
    waitFor(browser, lambda b: b.switch_to.alert).accept()
    notice(browser, "Blocked carol@localhost")
    assert "Blocked:" in wait(browser, "#page-users p.blocked.locked").text
    assert panel.api("GET", "users/carol")[1]["blocked"] is True
    assert saslAttempts(panel.server, "127.0.0.1", "carol", ["carol-pw"]) != ["success"]
    submit(browser, "unblock")
    notice(browser, "Unblocked carol@localhost")
    assert saslAttempts(panel.server, "127.0.0.1", "carol", ["carol-pw"]) == ["success"]


def test_deleteAfterConfirming(panel, browser):
    """Delete asks first: dismissed, dave stays; accepted, he is gone."""
    signIn(browser, panel, page="users")
    openUser(browser, panel, "dave")
    submit(browser, "delete")
    waitFor(browser, lambda b: b.switch_to.alert).dismiss()
    assert panel.api("GET", "users/dave")[0] == 200
    submit(browser, "delete")
    waitFor(browser, lambda b: b.switch_to.alert).accept()
    notice(browser, "Deleted dave@localhost")
    assert panel.api("GET", "users/dave")[0] == 404


@pytest.mark.parametrize("name", [".", ".."])
def test_dotNamesAreAddressedByJID(panel, browser, name):
    """
    Review 19 B4: a user named "." or ".." (the admin API takes them) is
    opened from the list and deleted: the page addresses users by JID, as a
    URL resolves "." and ".." path segments even encoded.
    """
    status, made = panel.api("POST", "users", {"name": name, "password": "dot-password-1"})
    assert status in (200, 201), made
    signIn(browser, panel, page="users")
    browser.get(panel.url + "#/users?q=" + quote(made["jid"].split("@")[0]))
    wait(browser, f"#page-users table.results a[href='#/users/{quote(made['jid'], safe='')}']").click()
    assert wait(browser, "#page-users h2.user").text == made["jid"]
    submit(browser, "delete")
    waitFor(browser, lambda b: b.switch_to.alert).accept()
    notice(browser, f"Deleted {made['jid']}")
    assert panel.api("GET", "users/" + quote(made["jid"], safe=""))[0] == 404
