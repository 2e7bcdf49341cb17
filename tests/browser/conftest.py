"""
Browser tests of the web admin panel (issue 19): a real server subprocess
with the panel on (tests.e2e.conftest), driven by Debian's headless
Chromium through Selenium and Debian's chromedriver.

Without /usr/bin/chromium and /usr/bin/chromedriver the tests are
skipped, except in CI (C{CI} set), where .ci/run installs both and a
missing browser is a failure.  Screenshots go to C{$XMPPCHAT_SCREENSHOTS}
or a pytest temporary directory, never into the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import startServer, stopServer
from xmppchat.ops.panel.auth import MIN_ITERATIONS, hashPassword

CHROMIUM = os.environ.get("XMPPCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("XMPPCHAT_CHROMEDRIVER", "/usr/bin/chromedriver")
ADMIN = "root"
PANEL_PASSWORD = "panel-password-for-tests"
ADMIN_KEY = "browser-admin-key-0123456789abcdefghijkl"
WAIT = 15
# hashed once, with the fewest iterations the config accepts: sign-ins stay fast
_HASH = hashPassword(PANEL_PASSWORD, MIN_ITERATIONS)


def panelConfig(extra: str = "") -> str:
    """
    The [ops] table of a server with the panel and the admin key on an
    ephemeral port, then C{extra}.
    """
    return f"""
[ops]
enabled = true
interface = "127.0.0.1"
port = 0
admin_key = "{ADMIN_KEY}"
panel = true

[[ops.administrators]]
name = "{ADMIN}"
password_hash = "{_HASH}"
""" + extra


class Panel:
    """
    A running server with the panel: C{.url} (ends with C{/admin/}),
    C{.api(method, path, body)} with the bearer key, C{.server}.
    """

    def __init__(self, server):
        self.server = server
        self.base = f"http://127.0.0.1:{server.ports['ops']}"
        self.url = self.base + "/admin/"

    def api(self, method: str, path: str, body=None, headers=None):
        """C{(status, decoded JSON)} of one admin API call with the admin key."""
        request = urllib.request.Request(
            f"{self.base}/admin/api/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_KEY}",
                     **(headers or {})},
            method=method)
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


def panelServer(tmp_path_factory, extra: str = "", **kwargs) -> Panel:
    """
    Start a server with the panel (C{extra}: more config text, after the
    [ops] table; C{kwargs} go to L{startServer}).
    """
    server = startServer(tmp_path_factory.mktemp("panel"), extra=panelConfig(extra), **kwargs)
    return Panel(server)


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    running = panelServer(tmp_path_factory)
    yield running
    stopServer(running.server)


def _browserMissing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(path)):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    return None


@pytest.fixture
def browser(tmp_path):
    """
    A headless Chromium, closed after the test.
    """
    missing = _browserMissing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # as the machine's notes ask: no background traffic to the closed network
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                     "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait(browser, css: str, timeout: float = WAIT, visible: bool = True):
    """
    The first element matching C{css} once it is there (and shown).
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    condition = EC.visibility_of_element_located if visible else EC.presence_of_element_located
    return WebDriverWait(browser, timeout).until(condition((By.CSS_SELECTOR, css)))


def waitFor(browser, predicate, timeout: float = WAIT, message: str = ""):
    """Wait until C{predicate(browser)} is true (returns its value)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(predicate, message)


def signIn(browser, panel: Panel, name: str = ADMIN, password: str = PANEL_PASSWORD,
           page: str = "overview"):
    """
    Open the panel, sign in, and wait for C{page}.
    """
    browser.get(panel.url + "#/" + page)
    form = wait(browser, "#page-signin form")
    form.find_element("name", "name").send_keys(name)
    form.find_element("name", "password").send_keys(password)
    form.find_element("css selector", "button[data-action=sign-in]").click()
    return wait(browser, f"#page-{page}")


def screenshotDir() -> Path:
    """Where screenshots go: $XMPPCHAT_SCREENSHOTS, else <temp>/xmppchat-screenshots."""
    chosen = Path(os.environ.get("XMPPCHAT_SCREENSHOTS")
                  or Path(tempfile.gettempdir()) / "xmppchat-screenshots")
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def shot(browser, name: str) -> Path:
    """Save a PNG of the browser's window as <screenshotDir()>/<name>.png."""
    path = screenshotDir() / f"{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000, f"empty screenshot {path}"
    return path
