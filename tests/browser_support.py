"""A real browser for the web UI tests: headless Chromium driven by Selenium, against the
processes of ``tests.web_support``'s ``web_stack``.

``open_browser`` (for a fixture) gives a :class:`Browser`: open a page, wait for what the page
must show (explicit waits only), save screenshots as test artifacts, check the browser console.
Chromium and its driver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``);
Selenium Manager never runs (machines are offline). Without them the tests skip, unless
``ORCHESTRATOR_TEST_BROWSER=1`` (CI) asks for the browser: then they fail.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_ENV = "ORCHESTRATOR_TEST_BROWSER"
ARTIFACTS_ENV = "ORCHESTRATOR_TEST_ARTIFACTS"
UI_TIMEOUT = 60.0  # upper bound for anything the page must show; never reached when it works
MAX_SHOT_HEIGHT = 4000  # a full-page screenshot stops there (a long event log)

# "http://127.0.0.1:1234/api/x - Failed to load resource: the server responded with a status
# of 404 (Not Found)": the only console errors a test may expect (a deliberate 4xx).
RESOURCE_4XX = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


def artifacts_dir() -> Path:
    """Where screenshots go: ``$ORCHESTRATOR_TEST_ARTIFACTS`` or ``test-artifacts/screenshots``
    under the repository (created)."""
    path = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "test-artifacts" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_browser() -> None:
    """Skip (or, when ``ORCHESTRATOR_TEST_BROWSER=1``, fail) without Chromium, its driver or
    Selenium."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]  # an executable
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    reason = (
        f"the browser tests need {', '.join(missing)} "
        "(Debian: apt-get install chromium chromium-driver; pip install selenium)"
    )
    if os.environ.get(BROWSER_ENV) == "1":
        pytest.fail(f"{BROWSER_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def css(testid: str, **data: str) -> str:
    """A CSS selector for ``data-testid`` and ``data-*`` attributes (``run_id`` ->
    ``data-run-id``)."""
    attrs = "".join(f'[data-{k.replace("_", "-")}="{v}"]' for k, v in data.items())
    return f'[data-testid="{testid}"]{attrs}'


@dataclass
class Browser:
    """One headless Chromium on one server."""

    driver: Any  # selenium.webdriver.Chrome
    base_url: str
    artifacts: Path

    # -- pages -------------------------------------------------------------------------------

    def open(self, path: str) -> None:
        """Load ``path`` and wait for the page script to replace the "Loading…" placeholder."""
        self.driver.get(f"{self.base_url}{path}")
        self.wait(
            f"{path} to render",
            lambda d: d.execute_script(
                "const m = document.getElementById('app');"
                "return m.children.length > 0"
                " && ![...m.children].some((c) => c.textContent === 'Loading…');"
            ),
        )
        self.mark_page()

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url)

    def mark_page(self) -> None:
        """Tag the loaded document: :meth:`same_page` then tells whether it was reloaded."""
        self.driver.execute_script("window.__browserTestMark = true;")

    def same_page(self) -> bool:
        """Whether the document is still the one :meth:`mark_page` tagged (no reload)."""
        return bool(self.driver.execute_script("return window.__browserTestMark === true;"))

    def hold_requests(self, url_part: str) -> None:
        """From the next page load on, hold the page's ``fetch`` calls whose URL contains
        ``url_part`` until :meth:`release_requests` (how a test widens a race window);
        :meth:`held_requests` counts the calls held."""
        script = (
            "(() => {"
            f" const part = {json.dumps(url_part)};"
            " let release; const gate = new Promise((r) => { release = r; });"
            " window.__heldRequests = 0; window.__releaseRequests = () => release();"
            " const original = window.fetch.bind(window);"
            " window.fetch = async (input, init) => {"
            "  const url = typeof input === 'string' ? input : input.url;"
            "  if (url.includes(part)) { window.__heldRequests += 1; await gate; }"
            "  return original(input, init);"
            " };"
            "})();"
        )
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})

    def held_requests(self) -> int:
        return int(self.driver.execute_script("return window.__heldRequests || 0;"))

    def release_requests(self) -> None:
        self.driver.execute_script("window.__releaseRequests();")

    # -- waiting -----------------------------------------------------------------------------

    def wait(self, what: str, condition: Callable[[Any], Any], timeout: float = UI_TIMEOUT) -> Any:
        """The first truthy ``condition(driver)``; fails naming ``what`` (and the page's
        flash message, if any) after ``timeout`` seconds."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            TimeoutException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        waiter = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        try:
            return waiter.until(condition)
        except TimeoutException:
            flash = self.driver.execute_script(
                "const f = document.getElementById('flash');"
                "return f && !f.hidden ? f.innerText : '';"
            )
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} on {self.path}"
                + (f" (the page says: {flash})" if flash else "")
            ) from None

    def element(self, selector: str, what: str | None = None) -> Any:
        """Wait for one element matching the CSS ``selector`` and return it."""
        from selenium.webdriver.common.by import By

        return self.wait(
            what or selector,
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, selector)), None),
        )

    def elements(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    # Pages re-render what changed (a refresh on a live event): an element found a moment ago
    # may be replaced, so these read or act inside a wait, on the element found then.

    def text(self, selector: str) -> str:
        """The text of the first element matching ``selector`` (waiting for it)."""
        return str(self.wait(selector, lambda d: self._first(selector).text or " ").strip())

    def attr(self, selector: str, name: str) -> str | None:
        """Attribute ``name`` of the first element matching ``selector`` (waiting for it)."""
        found: list[str | None] = self.wait(
            selector, lambda d: [self._first(selector).get_attribute(name)]
        )
        return found[0]

    def enabled(self, selector: str) -> bool:
        return bool(self.wait(selector, lambda d: [self._first(selector).is_enabled()])[0])

    def click(self, selector: str) -> None:
        """Click the first element matching ``selector`` once it is there and enabled."""

        def clicked(_driver: Any) -> bool:
            element = self._first(selector)
            if not element.is_enabled():
                return False
            element.click()
            return True

        self.wait(f"{selector} to be clickable", clicked)

    def attrs(self, selector: str, name: str) -> list[str | None]:
        """Attribute ``name`` of every element matching ``selector`` (read at one moment)."""
        return list(
            self.wait(
                selector, lambda d: [[e.get_attribute(name) for e in self.elements(selector)]]
            )[0]
        )

    def _first(self, selector: str) -> Any:
        from selenium.common.exceptions import NoSuchElementException
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            raise NoSuchElementException(selector)
        return found[0]

    def gone(self, selector: str, what: str) -> None:
        """Wait until nothing matches ``selector``."""
        self.wait(what, lambda d: not self.elements(selector))

    # -- artifacts ---------------------------------------------------------------------------

    def shot(self, name: str) -> Path:
        """Save the whole page (up to MAX_SHOT_HEIGHT px) as ``<artifacts>/<name>.png``."""
        path = self.artifacts / f"{name}.png"
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        # Captured beyond the viewport, the page has no scrollbar: it is laid out as wide as
        # the window, not as the content was with one.
        width = max(size["width"], self.driver.execute_script("return window.innerWidth;"))
        clip = {
            "x": 0,
            "y": 0,
            "width": width,
            "height": min(size["height"], MAX_SHOT_HEIGHT),
            "scale": 1,
        }
        data = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    # -- the console -------------------------------------------------------------------------

    def console_errors(self, allow_4xx: bool = False) -> list[str]:
        """SEVERE console entries since the last call (read once: the driver forgets them),
        except, with ``allow_4xx``, failed loads answered 4xx (a test provoking an error)."""
        entries = self.driver.get_log("browser")
        return [
            e["message"]
            for e in entries
            if e["level"] == "SEVERE" and not (allow_4xx and RESOURCE_4XX.search(e["message"]))
        ]

    def check_console(self, allow_4xx: bool = False) -> None:
        errors = self.console_errors(allow_4xx)
        assert not errors, "the browser console has errors:\n" + "\n".join(errors)


def make_driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def open_browser(base_url: str, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A fresh headless Chromium on the server at ``base_url``, for a fixture to yield from.
    A test that fails leaves a screenshot of where it stopped (``FAILED-<test>.png``); console
    errors the test did not check fail it (at teardown)."""
    require_browser()
    driver = make_driver()
    failed_before = request.session.testsfailed
    tab = Browser(driver, base_url, artifacts_dir())
    failed_shot = f"FAILED-{request.node.name}"
    (tab.artifacts / f"{failed_shot}.png").unlink(missing_ok=True)  # an earlier run's
    try:
        yield tab
        if request.session.testsfailed > failed_before:
            with contextlib.suppress(Exception):  # a help for the reader, never a new error
                tab.shot(failed_shot)
        else:
            tab.check_console()
    finally:
        driver.quit()


# -- the API, for what a test sets up around the page ----------------------------------------


def finished_status(http: httpx.Client, run_id: str) -> str:
    """Wait until the run ends; its status."""

    def ended() -> str | None:
        status = http.get(f"/api/runs/{run_id}").json()["run"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    return str(wait_until(f"run {run_id} to end", ended))
