"""Showing a run on the terminal: one line per step event as it happens, and a summary.
Mapped steps of a large fan-out are folded into progress lines (:class:`MappedFolding`).

:class:`RunProgress` follows the run's event log in the instance from a background thread
(``wait_for_events``: woken by each stored event, no polling sleeps). Reading the log rather than
hooking the executor means it shows events whoever stores them: the driver in this process, or
workers writing to shared storage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.status import Status
from rich.text import Text

from orchestrator.cli.common import RunFailed
from orchestrator.events import RUN_TERMINAL, ErrorInfo, Event, EventType
from orchestrator.execution.loop import ATTEMPT_LOST, MAPPING_RESOLVED, WAITING_FOR_SLOT
from orchestrator.storage.base import Instance, RunStatus
from orchestrator.views.steps import error_summary, format_duration

# How long one wait for events blocks before the follower checks whether it was told to stop
# (only matters when the run never starts, e.g. its config was rejected).
_WAIT_SECONDS = 0.25

_TERMINAL_TYPES = frozenset(t.value for t in RUN_TERMINAL)


def user_traceback(error: ErrorInfo | None) -> str | None:
    """The traceback of the op's own exception, when the error came from user code."""
    if error is not None and error.cls_name == "UserCodeError" and error.cause is not None:
        return error.cause.stack.rstrip() or None
    return None


def _line(mark: str, style: str, step: str | None, detail: str = "") -> Text:
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(step or "run", style="bold")
    if detail:
        text.append(f"  {detail}", style="dim" if style != "red" else "red")
    return text


def render_event(event: Event) -> Text | None:
    """The terminal line for one event, or None for events not worth a line."""
    etype, step, data = event.event_type_value, event.step_key, event.data
    if etype == EventType.STEP_SUCCESS:
        return _line("✓", "green", step, format_duration(data.get("duration_ms")))
    if etype == EventType.STEP_FAILURE:
        return _line("✗", "red", step, error_summary(event.error) or event.message)
    if etype == EventType.STEP_SKIPPED:
        reason = event.message.partition(": ")[2] or event.message
        return _line("○", "yellow", step, f"skipped: {reason}")
    if etype == EventType.STEP_UP_FOR_RETRY:
        wait = data.get("seconds_to_wait")
        when = f" in {wait:.3g} s" if isinstance(wait, int | float) and wait else ""
        return _line(
            "↻",
            "yellow",
            step,
            f"attempt {data.get('attempt', '?')} failed ({error_summary(event.error)}); "
            f"retrying{when}",
        )
    if etype == EventType.STEP_RESTARTED:
        return _line("↻", "yellow", step, "restarted")
    if etype == EventType.HOOK_ERRORED:
        return _line("!", "yellow", step, event.message)
    if etype == EventType.ENGINE_EVENT and data.get("kind") in (WAITING_FOR_SLOT, ATTEMPT_LOST):
        return _line("…", "yellow", step, event.message)
    if etype == EventType.LOG_MESSAGE:
        return _line("·", "blue", step, f"{data.get('level', 'INFO')} {event.message}")
    if etype == EventType.RUN_FAILURE and "error" in data:  # the engine itself failed
        return _line("✗", "red", None, f"{event.message}")
    if etype == EventType.RUN_CANCELED:
        return _line("■", "yellow", None, "canceled")
    return None


class RunProgress:
    """Prints a run's events as they are stored, while the run goes on in this thread.

    Use as a context manager around the call that runs ``run_id``; leaving it prints whatever
    is left and stops the follower. On a terminal a spinner names the steps in flight.

    Args:
        console: where lines go.
        instance: the instance the run is stored in.
        run_id: the run to follow (it need not exist yet).
    """

    def __init__(self, console: Console, instance: Instance, run_id: str):
        self.console = console
        self.instance = instance
        self.run_id = run_id
        self.events: list[Event] = []
        self._running: dict[str, None] = {}  # steps started and not finished, in start order
        self._mapped = MappedFolding()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._follow, name=f"progress-{run_id[:8]}", daemon=True
        )
        self._status: Status | None = None

    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            self._status = self.console.status("Starting run…")
            self._status.start()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop following once every stored event has been printed."""
        self._stop.set()
        # The follower ends on the run's last event, or within one wait after being told to
        # stop; join it even when no run was stored (bad input), so it is not left blocked on
        # a connection the caller is about to close.
        self._thread.join()
        if self._status is not None:
            self._status.stop()
        folded = sum(self._mapped.folded.values())
        if folded:
            self.console.print(
                Text(
                    f"({folded} lines of mapped steps folded; "
                    f"`orchestrator run logs {self.run_id}` has them all)",
                    style="dim",
                )
            )

    def _follow(self) -> None:
        cursor: str | None = None
        while True:
            batch = self.instance.wait_for_events(self.run_id, cursor, timeout=_WAIT_SECONDS)
            if not batch and self._stop.is_set():
                return
            for _, event in batch:
                self._show(event)
                if event.event_type_value in _TERMINAL_TYPES:
                    return
            if batch:
                cursor = batch[-1][0]

    def _show(self, event: Event) -> None:
        self.events.append(event)
        step = event.step_key
        if event.event_type_value == EventType.STEP_START and step:
            self._running[step] = None
        elif step in self._running and event.event_type_value in (
            EventType.STEP_SUCCESS,
            EventType.STEP_FAILURE,
            EventType.STEP_UP_FOR_RETRY,
        ):
            del self._running[step]
        line = self._mapped.line(event)
        if line is not None:
            self.console.print(line)
        if self._status is not None:
            running = list(self._running)
            more = f" and {len(running) - 5} more" if len(running) > 5 else ""
            self._status.update(
                f"Running {', '.join(running[:5])}{more}…" if running else "Waiting…"
            )


class MappedFolding:
    """Keeps a fan-out of thousands of mapped steps (``op[key]``) to a few lines: the mapping
    keys found, the first successes and log lines of each mapped op, then its progress every
    tenth of the way. Failures, retries and skips always get their line."""

    SHOWN = 3  # successes and log lines shown per mapped op before folding

    def __init__(self) -> None:
        self.total: dict[str, int] = {}  # mapped op -> steps made
        self.done: dict[str, int] = {}
        self.logs: dict[str, int] = {}
        self.folded: dict[str, int] = {}  # lines not shown, per mapped op

    def line(self, event: Event) -> Text | None:
        etype, step, data = event.event_type_value, event.step_key or "", event.data
        if etype == EventType.ENGINE_EVENT and data.get("kind") == MAPPING_RESOLVED:
            keys = data.get("mapping_keys")
            for handle in data.get("steps") or ():
                self.total[handle] = self.total.get(handle, 0) + len(keys or ())
            what = "not produced" if keys is None else f"{len(keys)} mapping keys"
            mapped = ", ".join(f"{h}[*]" for h in data.get("steps") or ()) or "nothing"
            return _line("⇉", "cyan", step, f"{data.get('output_name')}: {what} -> {mapped}")
        if "[" not in step or step.endswith("[?]"):
            return render_event(event)
        group = step.split("[", 1)[0]
        if etype == EventType.STEP_SUCCESS:
            done = self.done[group] = self.done.get(group, 0) + 1
            total = self.total.get(group, 0)
            if done <= self.SHOWN:
                return render_event(event)
            if total and (done == total or done * 10 // total != (done - 1) * 10 // total):
                return _line("✓", "green", f"{group}[*]", f"{done}/{total} succeeded")
            self.folded[group] = self.folded.get(group, 0) + 1
            return None
        if etype == EventType.LOG_MESSAGE:
            shown = self.logs[group] = self.logs.get(group, 0) + 1
            if shown > self.SHOWN:
                self.folded[group] = self.folded.get(group, 0) + 1
                return None
        return render_event(event)


def print_run_end(out: Console, err: Console, instance: Instance, run_id: str) -> bool:
    """Print the run's id and status (stdout), and each failed step with its error and the
    op's traceback (stderr). Returns True when the run succeeded."""
    record = instance.get_run(run_id)
    events = instance.all_events(run_id)
    count = {t: 0 for t in (EventType.STEP_SUCCESS, EventType.STEP_FAILURE, EventType.STEP_SKIPPED)}
    duration: float | None = None
    for event in events:
        etype = EventType(event.event_type_value)
        if etype in count:
            count[etype] += 1
        if etype.value in _TERMINAL_TYPES:
            duration = event.data.get("duration_ms")
    status = record.status if record is not None else RunStatus.FAILURE
    parts = [f"{count[EventType.STEP_SUCCESS]} succeeded"]
    if count[EventType.STEP_FAILURE]:
        parts.append(f"{count[EventType.STEP_FAILURE]} failed")
    if count[EventType.STEP_SKIPPED]:
        parts.append(f"{count[EventType.STEP_SKIPPED]} skipped")
    if duration is not None:
        parts.append(format_duration(duration))
    style = "green" if status is RunStatus.SUCCESS else "red"
    line = Text()
    line.append(f"Run {run_id} ")
    line.append(status.value, style=f"bold {style}")
    line.append(f" ({', '.join(parts)})")
    out.print(line)
    for event in events:
        if event.event_type_value != EventType.STEP_FAILURE:
            continue
        err.print(
            Text(
                f"Step {event.step_key!r} failed: {error_summary(event.error) or event.message}",
                style="red",
            )
        )
        stack = user_traceback(event.error)
        if stack:
            err.print(Text(stack, style="dim"))
    return status is RunStatus.SUCCESS


def execute_with_progress(
    out: Console, err: Console, instance: Instance, run_id: str, execute: Callable[[], object]
) -> bool:
    """Call ``execute`` (which runs ``run_id`` here, stored in ``instance``) while printing its
    progress, then print how it ended (:func:`print_run_end`). Returns True if it succeeded.

    Raises:
        RunFailed: the engine itself failed once the run was stored (exit code 1).
        Exception: whatever ``execute`` raised before the run was stored (bad input: exit 2).
    """
    with RunProgress(out, instance, run_id):
        try:
            execute()
        except Exception as exc:
            if instance.get_run(run_id) is None:
                raise  # nothing ran: bad input (exit 2), or a bug that needs its traceback
            # The engine failed mid-run; the run is stored as failed with the stack.
            raise RunFailed(f"run {run_id} failed: {type(exc).__name__}: {exc}") from exc
    return print_run_end(out, err, instance, run_id)


def quiet_last_resort_logging() -> None:
    """Op log messages are printed from the run's LOG_MESSAGE events; keep Python's last-resort
    handler from printing warnings a second time when nothing configured logging."""
    log = logging.getLogger("orchestrator")
    if not log.hasHandlers():
        log.addHandler(logging.NullHandler())
