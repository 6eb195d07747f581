"""The web UI in a real browser (headless Chromium, ``tests.browser_support``) against real
processes: ``orchestrator ui``, a run coordinator and a Celery worker on the embedded Valkey
(``tests.web_support``). Each page state a user would look at is saved as a PNG screenshot
(``$ORCHESTRATOR_TEST_ARTIFACTS`` or ``test-artifacts/screenshots``), and a test fails on
errors in the browser console."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.concurrency.redis import RedisLimiter
from tests.browser_support import (
    Browser,
    css,
    finished_status,
    open_browser,
    require_browser,
)
from tests.web_support import WebStack, hold_config, launch, wait_step_state

pytestmark = pytest.mark.timeout(180)

BAD_YAML = "ops:\n  make_greeting:\n    config:\n      times: many\n"  # no name, times no int
NO_NAME_YAML = "ops:\n  make_greeting:\n    config:\n      times: 2\n"
GOOD_YAML = "ops:\n  make_greeting:\n    config:\n      name: browser\n      times: 2\n"
GREET_YAML = "ops:\n  make_greeting:\n    config:\n      name: web\n"
NAME_PATH = "ops.make_greeting.config.name"
TIMES_PATH = "ops.make_greeting.config.times"
RUN_URL = re.compile(r"/runs/([^/?#]+)$")


@pytest.fixture(autouse=True, scope="module")
def _needs_a_browser() -> None:
    require_browser()  # before the web stack starts: skip (or fail, in CI) without Chromium


@pytest.fixture
def browser(web_stack: WebStack, request: pytest.FixtureRequest) -> Iterator[Browser]:
    yield from open_browser(web_stack.url, request)


def type_config(browser: Browser, text: str) -> None:
    """Replace the editor's text by typing ``text`` (key presses, as a user would)."""
    from selenium.webdriver.common.keys import Keys

    editor = browser.element(css("config-editor"))
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(text)
    assert editor.get_attribute("value") == text


def checked(browser: Browser, state: str) -> None:
    """Wait until the server's check of the current editor text says ``state``."""
    browser.element(css("check-status", state=state), f"the config check to say {state}")


def error_paths(browser: Browser) -> set[str | None]:
    return set(browser.attrs(css("config-error"), "data-path"))


def step_state(step: str, state: str) -> str:
    return css("step-row", step=step, state=state)


def test_launchpad_marks_config_errors_then_launches(browser: Browser) -> None:
    from selenium.webdriver.common.keys import Keys

    # Given the Launchpad of greet, whose op make_greeting needs config
    browser.open("/?job=greet")
    browser.element(css("job-item", job="greet") + '[aria-current="page"]')
    ops = f"{css('selected-ops')} li"
    assert browser.attrs(ops, "data-op") == ["make_greeting", "shout"]
    assert browser.attrs(ops, "data-selected") == ["true", "true"]

    # When the user types a config without name and with a word for an int
    type_config(browser, BAD_YAML)

    # Then both problems are listed with their paths, line 4 is marked, Launch is off
    checked(browser, "invalid")
    assert {NAME_PATH, TIMES_PATH} <= error_paths(browser)
    times = css("config-error", path=TIMES_PATH)
    assert browser.attr(times, "data-line") == "4" and "line 4" in browser.text(times)
    browser.element(css("gutter-error") + '[data-line="4"]')
    assert not browser.enabled(css("launch-button"))
    assert "Fix the problems" in browser.text(css("launch-note"))
    browser.shot("launchpad-error")

    # And the error's line link selects that line in the editor
    browser.click(f"{times} button.line-link")
    selected = browser.driver.execute_script(
        "const a = document.activeElement;return a.value.slice(a.selectionStart, a.selectionEnd);"
    )
    assert selected == "      times: many"

    # When the user fixes times but still gives no name, only the name is wrong
    type_config(browser, NO_NAME_YAML)
    checked(browser, "invalid")
    assert error_paths(browser) == {NAME_PATH}
    assert not browser.enabled(css("launch-button"))

    # And "Scaffold missing config" fills the name in, keeping what was typed
    browser.click(css("scaffold-button"))
    browser.wait(
        "the scaffolded config in the editor",
        lambda d: "name:" in (browser.attr(css("config-editor"), "value") or ""),
    )
    checked(browser, "valid")
    assert "times: 2" in (browser.attr(css("config-editor"), "value") or "")
    assert not browser.elements(css("config-error")) and not browser.elements(css("gutter-error"))
    assert browser.enabled(css("launch-button"))

    # An op selection previews the ops it selects
    browser.element(css("op-selection")).send_keys("shout")
    browser.element(f'{ops}[data-op="shout"][data-selected="true"]')
    browser.element(f'{ops}[data-op="make_greeting"][data-selected="false"]')
    browser.element(css("op-selection")).send_keys(Keys.CONTROL, "a", Keys.DELETE)
    browser.element(f'{ops}[data-op="make_greeting"][data-selected="true"]')

    # When the user types a valid config
    type_config(browser, GOOD_YAML)
    checked(browser, "valid")
    assert not browser.elements(css("config-error")) and not browser.elements(css("gutter-error"))
    assert browser.enabled(css("launch-button"))
    browser.shot("launchpad-valid")

    # And launches it
    browser.click(css("launch-button"))

    # Then the run's page opens and follows the run to its end
    run_id = browser.wait("the run page", lambda d: RUN_URL.search(d.current_url)).group(1)
    browser.element(css("run-status"), "the run page to render")
    browser.mark_page()
    browser.element(css("run-status", status="SUCCESS"), "the run to succeed")
    for step in ("make_greeting", "shout"):
        browser.element(step_state(step, "succeeded"))
        browser.element(css("timeline-bar", step=step, kind="running"))
    browser.element(css("event-row", type="RUN_SUCCESS"))
    assert browser.same_page()
    assert browser.attr("h1 .mono", "title") == run_id
    assert not browser.enabled(css("cancel-button"))
    assert browser.enabled(css("reexecute-button"))
    browser.shot("run-success")
    browser.check_console()


def test_run_page_follows_a_running_run_live(
    browser: Browser, web_stack: WebStack, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    try:
        with web_stack.http() as http:
            # Given a run whose step is running (until the release file exists)
            run_id = launch(http, "hold", run_config=hold_config(release))
            wait_step_state(http, run_id, "hold_slot", "running")

            # When its page is open
            browser.open(f"/runs/{run_id}")
            browser.element(step_state("hold_slot", "running"))
            browser.element(css("run-status", status="STARTED"))
            browser.element(css("timeline-bar", step="hold_slot", kind="running") + ".open")
            assert not browser.enabled(css("reexecute-button"))
            browser.shot("run-running")

            # And the step is let go
            release.write_text("go")

            # Then the page follows the run to its end without a reload
            browser.element(css("run-status", status="SUCCESS"), "the run to succeed")
            browser.element(step_state("hold_slot", "succeeded"))
            browser.element(step_state("after_hold", "succeeded"))
            browser.element(css("event-row", type="RUN_SUCCESS"))
            browser.element(css("event-row", type="STEP_SUCCESS"))
            browser.element(css("timeline-bar", step="after_hold", kind="running"))
            assert not browser.elements(css("timeline-bar") + ".open")
            assert browser.same_page()
            assert "run ended: SUCCESS" in browser.text(css("event-stream-status"))
            browser.shot("run-live-success")
            assert finished_status(http, run_id) == "SUCCESS"
    finally:
        release.touch()
    browser.check_console()


def test_run_page_catches_up_with_a_run_that_ended_while_it_loaded(
    browser: Browser, web_stack: WebStack, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    try:
        with web_stack.http() as http:
            # Given a running run whose page has shown its detail but not yet loaded its events
            run_id = launch(http, "hold", run_config=hold_config(release))
            wait_step_state(http, run_id, "hold_slot", "running")
            browser.hold_requests("/events?")
            browser.open(f"/runs/{run_id}")
            browser.element(css("run-status", status="STARTED"))
            browser.wait("the page to ask for the events", lambda d: browser.held_requests())

            # When the run ends before the events arrive (so no live stream will open)
            release.write_text("go")
            assert finished_status(http, run_id) == "SUCCESS"
            browser.release_requests()

            # Then the page still shows the end, not the detail it fetched first
            browser.element(css("event-row", type="RUN_SUCCESS"))
            browser.element(css("run-status", status="SUCCESS"), "the page to catch up")
            browser.element(step_state("after_hold", "succeeded"))
            assert browser.same_page()
    finally:
        release.touch()
    browser.check_console()


def test_wait_reason_and_concurrency_page(
    browser: Browser, web_stack: WebStack, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    config = hold_config(release)
    with web_stack.http() as http:
        put = http.put("/api/concurrency/limits/web_test_db", json={"limit": 1, "value": "main"})
        assert put.status_code == 200, put.text
        try:
            # processes cache limit definitions for limits_ttl seconds (documented): let it lapse
            time.sleep(RedisLimiter(web_stack.client, web_stack.keys).limits_ttl + 0.5)
            # Given a run holding the only slot of web_test_db=main
            holder = launch(http, "hold", run_config=config)
            wait_step_state(http, holder, "hold_slot", "running")

            # When a second run wants it and its page is open
            waiter = launch(http, "hold", run_config=config)
            browser.open(f"/runs/{waiter}")

            # Then the page shows why its step waits: the limit, who holds it, its place
            reason = f"{step_state('hold_slot', 'waiting for slot')} {css('wait-reason')}"
            browser.element(reason, "the step's wait reason")
            text = browser.text(reason)
            assert "waiting for" in text and "web_test_db=main" in text, text
            assert "(limit 1)" in text and "position 1 of 1" in text, text
            assert holder[:8] in text, text
            browser.element(f'{reason} a[href="/runs/{holder}"]')
            browser.shot("run-waiting")
            browser.check_console()

            # And the concurrency page shows the limit with its holder and its waiter
            browser.open("/concurrency")
            card = css("limit-card", spec="web_test_db=main")
            browser.element(f"{card} {css('holder-row', run_id=holder)}")
            browser.element(f"{card} {css('waiter-row', run_id=waiter)}")
            usage = browser.text(f"{card} .usage")
            assert "1 of 1 slots held" in usage and "1 waiting" in usage, usage
            browser.shot("concurrency")

            # When the holder is let go, both runs end and the page empties (it polls)
            release.write_text("go")
            browser.gone(f"{card} {css('holder-row')}", "the holders to leave the page")
            browser.gone(f"{card} {css('waiter-row')}", "the waiters to leave the page")
            assert finished_status(http, holder) == "SUCCESS"
            assert finished_status(http, waiter) == "SUCCESS"
            assert browser.same_page()
            browser.check_console()
        finally:
            release.touch()
            http.delete("/api/concurrency/limits/web_test_db", params={"value": "main"})


def test_cancel_a_run_from_its_page(browser: Browser, web_stack: WebStack, tmp_path: Path) -> None:
    release = tmp_path / "release"
    try:
        with web_stack.http() as http:
            # Given the page of a run whose step is running
            run_id = launch(http, "hold", run_config=hold_config(release))
            browser.open(f"/runs/{run_id}")
            browser.element(step_state("hold_slot", "running"), "the step to run")

            # When the user cancels it
            browser.click(css("cancel-button"))

            # Then the page shows the cancel under way: the in-process step cannot be
            # interrupted, so the run stops when the op returns (let go here, not in 60 s)
            browser.element(css("run-status", status="CANCELING"), "the cancel to be requested")
            assert "Cancel requested" in browser.text(".actions [role=status]")
            browser.element(css("event-row", type="RUN_CANCELING"))
            release.write_text("go")

            # And then canceled, the later step never run, and re-execution offered instead
            browser.element(css("run-status", status="CANCELED"), "the run to be canceled")
            browser.element(step_state("after_hold", "not started"))
            browser.element(css("event-row", type="RUN_CANCELED"))
            browser.wait(
                "Cancel to be disabled", lambda d: not browser.enabled(css("cancel-button"))
            )
            assert browser.enabled(css("reexecute-button"))
            assert browser.same_page()
            browser.shot("run-canceled")
            assert finished_status(http, run_id) == "CANCELED"
    finally:
        release.touch()
    browser.check_console()


def test_runs_list_and_workers_pages(browser: Browser, web_stack: WebStack) -> None:
    with web_stack.http() as http:
        run_id = launch(http, "greet", run_config_yaml=GREET_YAML, tags={"ui": "browser"})
        assert finished_status(http, run_id) == "SUCCESS"

    # The runs page lists the run with counts per status
    browser.open("/runs")
    row = css("run-row", run_id=run_id, status="SUCCESS")
    assert "greet" in browser.text(row) and "ui=browser" in browser.text(row)
    total = int(browser.attr(css("status-count", status="ALL"), "data-count") or 0)
    success = int(browser.attr(css("status-count", status="SUCCESS"), "data-count") or 0)
    assert total >= success >= 1
    assert browser.attr(css("status-count", status="ALL"), "aria-pressed") == "true"
    browser.shot("runs")

    # A status count filters the list (kept in the URL)
    browser.click(css("status-count", status="CANCELED"))
    browser.wait("the status filter in the URL", lambda d: "status=CANCELED" in d.current_url)
    browser.gone(css("run-row", run_id=run_id), "the SUCCESS run to be filtered out")
    assert set(browser.attrs(css("run-row"), "data-status")) <= {"CANCELED"}

    # A run's link opens its page
    browser.click(css("status-count", status="ALL"))
    browser.click(f'{css("run-row", run_id=run_id)} a[href="/runs/{run_id}"]')
    browser.wait("the run page", lambda d: d.current_url.endswith(f"/runs/{run_id}"))
    browser.element(css("run-status", status="SUCCESS"))
    browser.check_console()

    # The workers page shows the live worker and the queue it consumes
    browser.open("/workers")
    assert "orchestrator" in browser.text(css("worker-row"))
    assert browser.attr(css("queue-row", queue="orchestrator"), "data-no-consumer") == "false"
    browser.element(css("coordinator-row"))
    assert browser.text(css("workers-summary")).startswith("1 worker,")
    browser.shot("workers")
    browser.check_console()


def test_unknown_run_shows_an_error(browser: Browser) -> None:
    # The page of a run that does not exist says so (its API call answers 404: expected)
    browser.open("/runs/no-such-run")
    error = browser.text(css("page-error"))
    assert "no-such-run" in error or "not found" in error.lower(), error
    browser.shot("run-not-found")
    browser.check_console(allow_4xx=True)


def test_run_page_groups_mapped_steps(browser: Browser, web_stack: WebStack) -> None:
    with web_stack.http() as http:
        # Given a run of fan_out_job: process mapped over 60 keys, k7 failing
        run_id = launch(http, "fan_out_job")
        assert finished_status(http, run_id) == "FAILURE"

    # When its page is open
    browser.open(f"/runs/{run_id}")
    browser.element(css("run-status", status="FAILURE"))

    # Then the mapped op is one group row, counted per state, closed
    group = css("step-group-process", group="process", state="failed", count="60")
    browser.element(group, "the group row of process")
    text = browser.text(group)
    assert "process[*]" in text and "60 steps" in text, text
    assert re.search(r"succeeded\s+59\b", text) and re.search(r"failed\s+1\b", text), text
    browser.element(f'{group} .group-count[data-state="succeeded"][data-count="59"]')
    browser.element(f'{group} .group-count[data-state="failed"][data-count="1"]')
    assert browser.attr(group, "aria-expanded") == "false"

    # And none of its 60 steps is rendered: only the steps that are not mapped
    assert browser.attrs(css("step-row"), "data-step") == ["emit", "merge"]
    browser.element(step_state("emit", "succeeded"))
    timeline = css("timeline")
    assert len(browser.elements(f"{timeline} {css('timeline-group-process')}")) == 1
    browser.element(css("timeline-group-bar", group="process", state="failed"))
    assert not browser.elements(f"{timeline} .tl-member")

    # And the event log's step filter offers the group, not each mapped step
    step_filter = f"{css('event-filter-step')} option"
    browser.element(css("event-row", type="RUN_FAILURE"))
    values = browser.attrs(step_filter, "value")
    assert "process[*]" in values and "emit" in values, values
    assert not [v for v in values if v and v.startswith("process[k")], values
    browser.shot("run-fan-out-collapsed")

    # When the user opens the group
    browser.click(f"{group} button.group-toggle")

    # Then its 60 steps are listed under it, the failed one with its error
    member = css("step-row", group="process")
    browser.element(f'{group}[aria-expanded="true"]', "the group to open")
    failed = step_state("process[k7]", "failed")
    browser.element(f"{failed}.member", "the failed mapped step")
    assert "cannot process 7" in browser.text(f"{failed} {css('step-error')}")
    browser.element(step_state("process[k0]", "succeeded"))
    steps = browser.attrs(member, "data-step")
    assert steps == [f"process[k{i}]" for i in range(60)], steps
    assert set(browser.attrs(member, "data-state")) == {"succeeded", "failed"}
    assert not browser.elements(css("group-more"))
    assert len(browser.elements(f"{timeline} .tl-member")) == 60
    browser.shot("run-fan-out-expanded")

    # And the group's option in the step filter shows the events of its steps only
    from selenium.webdriver.support.ui import Select

    Select(browser.element(css("event-filter-step"))).select_by_value("process[*]")
    browser.wait("the step filter to apply", lambda d: "match" in browser.text(css("event-note")))
    shown = browser.driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=\"event-row\"] td:nth-child(4)')]"
        ".map((td) => td.textContent);"
    )
    assert shown and all(s.startswith("process[k") for s in shown), shown[:5]
    assert "process[k7]" in shown
    browser.check_console()
