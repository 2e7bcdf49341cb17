"""
Issue 19, the panel's Overview and Announcements pages in a real browser:
the overview's session count goes up when a slixmpp client connects; an
announcement sent from the panel reaches that client as a headline and is
listed; signing out returns to the sign-in form and the API then answers
401 to the old cookie.  Screenshots of both pages.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import shot, signIn, wait, waitFor
from tests.e2e.test_slixmpp import TIMEOUT, Client
from xmppchat.ops.metrics import RATE_SAMPLE_SECONDS


class OnlineClient:
    """
    A slixmpp client kept online by an event loop in a thread of its own
    while the (synchronous) browser test runs.
    """

    def __init__(self, server, jid: str, password: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.client = self.call(self._login(server, jid, password))

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT + 5)

    @staticmethod
    async def _login(server, jid, password):
        client = Client(server, jid, password)
        assert await client.login()
        return client

    def nextMessage(self):
        return self.call(asyncio.wait_for(self.client.messages.get(), TIMEOUT))

    def close(self):
        try:
            self.call(self.client.logout())
        finally:
            self.client = None
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture(scope="module")
def users(panel):
    panel.server.addusers(["alice"])
    return panel


@pytest.fixture
def alice(users):
    client = OnlineClient(users.server, "alice@localhost/desk", "alice-pw")
    yield client
    client.close()


def stat(browser, name: str) -> str:
    return browser.find_element("css selector", f"#page-overview [data-stat={name}] .value").text


def test_overviewCountsANewSession(users, browser):
    """
    The overview shows 0 sessions, then (refreshing itself) 1 once a
    slixmpp client is online.  Review 19 B7: in the server's first seconds
    the rates are not measured yet and show "–", then numbers.
    """
    signIn(browser, users)
    wait(browser, "#page-overview [data-stat=sessions] .value")
    uptime, messages = browser.execute_script(  # one rendering: both from the same answer
        "return ['uptime', 'messages'].map(s =>"
        " document.querySelector(`#page-overview [data-stat=${s}] .value`).textContent)")
    seconds = int(uptime.split()[0]) if uptime.endswith(" s") and " min" not in uptime else 60
    if seconds <= RATE_SAMPLE_SECONDS - 2:
        assert messages == "–", (uptime, messages)
    waitFor(browser, lambda b: stat(b, "messages") == "0", timeout=TIMEOUT,
            message="the messages rate was not shown once measured")
    waitFor(browser, lambda b: stat(b, "sessions") == "0", message="sessions should start at 0")
    client = OnlineClient(users.server, "alice@localhost/overview", "alice-pw")
    try:
        waitFor(browser, lambda b: stat(b, "sessions") == "1", message="the overview did not count the client")
        rows = browser.find_elements("css selector", "#page-overview table.results tbody tr")
        assert any(r.text.split()[:2] == ["c2s", "1"] for r in rows)
        assert stat(browser, "version")
        shot(browser, "overview")
    finally:
        client.close()
    waitFor(browser, lambda b: stat(b, "sessions") == "0", message="the overview did not see the logout")


def test_announcementReachesTheClientAndSignOutEndsTheSession(users, browser, alice):
    """
    An announcement to online users from the panel: the client gets the
    headline, the notice gives the count, the list shows it; then sign
    out: the sign-in form, and the cookie gets 401 from the API.
    """
    signIn(browser, users, page="announcements")
    form = wait(browser, "#page-announcements form")
    form.find_element("name", "subject").send_keys("Maintenance")
    form.find_element("name", "body").send_keys("The server restarts at 22:00.")
    form.find_element("css selector", "button[data-action=announce]").click()
    notice = wait(browser, "#notice.ok")
    assert "1 online session(s) got it" in notice.text
    message = alice.nextMessage()
    assert (message["type"], message["subject"], message["body"]) == (
        "headline", "Maintenance", "The server restarts at 22:00.")
    assert str(message["from"]) == "localhost"
    row = wait(browser, "#page-announcements table.results tbody tr")
    assert "Maintenance" in row.text and "root" in row.text
    shot(browser, "announcements")
    cookie = browser.get_cookie("xmppchat_admin")["value"]
    wait(browser, "button[data-action=sign-out]").click()
    wait(browser, "#page-signin form")
    request = urllib.request.Request(f"{users.base}/admin/api/overview", headers={"Cookie": f"xmppchat_admin={cookie}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401


def test_announcementToAllIsConfirmedFirst(users, browser):
    """Sending to all users asks for confirmation: dismissed, nothing is sent; accepted, it is stored for the offline users."""
    signIn(browser, users, page="announcements")
    form = wait(browser, "#page-announcements form")
    form.find_element("css selector", "select[name=to] option[value=all]").click()
    form.find_element("name", "body").send_keys("To everyone")
    before = users.api("GET", "announcements")[1]["total"]
    form.find_element("css selector", "button[data-action=announce]").click()
    waitFor(browser, lambda b: b.switch_to.alert).dismiss()
    assert users.api("GET", "announcements")[1]["total"] == before
    form.find_element("css selector", "button[data-action=announce]").click()
    waitFor(browser, lambda b: b.switch_to.alert).accept()
    assert "stored for" in wait(browser, "#notice.ok").text
    assert users.api("GET", "announcements")[1]["total"] == before + 1


COUNT_OVERVIEW_CALLS = """
window.overviewCalls = 0;
const fetch = window.fetch;
window.fetch = (url, ...rest) => {
  if (String(url).startsWith("api/overview")) window.overviewCalls += 1;
  return fetch(url, ...rest);
};
"""


def test_refreshStopsWhenThePageIsLeft(users, browser):
    """The overview asks the API again every few seconds while shown, and no more once another page is opened."""
    signIn(browser, users)
    wait(browser, "#page-overview [data-stat=sessions] .value")
    browser.execute_script(COUNT_OVERVIEW_CALLS)
    waitFor(browser, lambda b: b.execute_script("return window.overviewCalls") >= 1,
            message="the overview did not refresh itself")
    browser.execute_script("location.hash = '#/announcements'")
    wait(browser, "#page-announcements")
    calls = browser.execute_script("return window.overviewCalls")
    time.sleep(7)  # more than one refresh interval
    assert browser.execute_script("return window.overviewCalls") == calls
