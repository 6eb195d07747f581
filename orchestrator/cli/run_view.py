"""What ``orchestrator run ...`` prints, as pure functions: times, durations, tags, statuses and
log lines formatted for the terminal. The steps themselves come from
:mod:`orchestrator.views.steps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from rich.text import Text

from orchestrator.events import Event, EventType
from orchestrator.storage.base import RunRecord, RunStatus
from orchestrator.views.steps import StepStatus, error_summary, format_duration

STATUS_STYLES: Mapping[str, str] = {
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "red",
    StepStatus.SKIPPED: "yellow",
    StepStatus.UP_FOR_RETRY: "yellow",
    StepStatus.WAITING_FOR_SLOT: "yellow",
    StepStatus.RUNNING: "cyan",
    StepStatus.QUEUED: "cyan",
    StepStatus.NOT_STARTED: "dim",
    RunStatus.SUCCESS: "green",
    RunStatus.FAILURE: "red",
    RunStatus.CANCELED: "yellow",
    RunStatus.CANCELING: "yellow",
    RunStatus.STARTED: "cyan",
    RunStatus.STARTING: "cyan",
    RunStatus.QUEUED: "dim",
}


# -- formatting ------------------------------------------------------------------------------


def format_time(timestamp: float | None, *, millis: bool = False) -> str:
    """Local time ``2024-05-01 12:00:00`` (``.123`` with ``millis``); empty for None."""
    if timestamp is None:
        return ""
    text = datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if millis else text[:-7]


def run_duration(record: RunRecord) -> str:
    """Start to end of a finished run; empty while it has not both."""
    if record.start_time is None or record.end_time is None:
        return ""
    return format_duration(max(0.0, (record.end_time - record.start_time) * 1000))


def short_tags(tags: Mapping[str, str], width: int = 48) -> str:
    """``key=value, ...`` for a table cell: long values cut to 8 characters, then as many tags
    as fit in ``width`` and ``+N more``."""
    parts = [f"{k}={v if len(v) <= 16 else v[:8] + '…'}" for k, v in sorted(tags.items())]
    shown: list[str] = []
    for i, part in enumerate(parts):
        if shown and len(", ".join([*shown, part])) > width:
            return ", ".join(shown) + f" +{len(parts) - i} more"
        shown.append(part)
    return ", ".join(shown)


def styled(value: str) -> Text:
    """A run or step status, coloured."""
    return Text(value, style=STATUS_STYLES.get(value, ""))


_TYPE_STYLES: Mapping[str, str] = {
    EventType.RUN_SUCCESS: "bold green",
    EventType.STEP_SUCCESS: "green",
    EventType.RUN_FAILURE: "bold red",
    EventType.STEP_FAILURE: "red",
    EventType.HOOK_ERRORED: "red",
    EventType.RUN_CANCELED: "yellow",
    EventType.STEP_SKIPPED: "yellow",
    EventType.STEP_UP_FOR_RETRY: "yellow",
}

# Widest event type name (STEP_UP_FOR_RETRY); log columns line up without knowing the run.
_TYPE_WIDTH = max(len(t.value) for t in EventType)
_STEP_WIDTH = 20


def log_line(event: Event) -> Text:
    """One ``run logs`` line: time, event type, step, message (log lines with their level)."""
    message = event.message
    if event.event_type_value == EventType.LOG_MESSAGE:
        message = f"{event.data.get('level', 'INFO')} {message}"
    elif event.event_type_value == EventType.STEP_FAILURE and not message:
        message = error_summary(event.error)
    line = Text()
    line.append(format_time(event.timestamp, millis=True), style="dim")
    line.append("  ")
    line.append(
        event.event_type_value.ljust(_TYPE_WIDTH),
        style=_TYPE_STYLES.get(event.event_type_value, ""),
    )
    line.append("  ")
    line.append((event.step_key or "-").ljust(_STEP_WIDTH), style="bold")
    line.append("  ")
    line.append(message)
    return line
