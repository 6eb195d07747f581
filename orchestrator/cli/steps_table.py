"""The steps table of ``orchestrator run show``: one row per step that is not mapped, one row
per mapped op (``process[*]``: its state, the time its steps took, how many are in each state)
followed by its failed steps (at most :data:`MAX_LISTED_FAILURES`), or by every one of its
steps when expanded. Builds the table; printing is the command's."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from orchestrator.cli.run_view import STATUS_STYLES, format_time, styled
from orchestrator.views.groups import COUNT_ORDER, RunSteps, StepGroup
from orchestrator.views.steps import StepStatus, StepSummary, format_duration

# Failed steps of one mapped op listed under its row (the rest are counted: "and N more").
MAX_LISTED_FAILURES = 10
_INDENT = "  "


def steps_table(run_steps: RunSteps, *, expand: bool = False) -> tuple[Table, list[str]]:
    """The table, and the failed steps it lists (whose tracebacks the command prints).

    Args:
        run_steps: the run's steps and groups (:func:`~orchestrator.views.groups.
            summarize_run`).
        expand: list every step of each mapped op under its row, not only failed ones.
    """
    steps = run_steps.real_steps
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Step", style="bold", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Attempts", justify="right")
    table.add_column("Duration", justify="right", no_wrap=True)
    with_workers = any(step.worker for step in steps)
    if with_workers:
        table.add_column("Worker", overflow="fold")
    table.add_column("Details", overflow="fold")
    by_key = {s.step_key: s for s in steps}
    listed: list[str] = []

    def add_step(step: StepSummary, indent: str = "") -> None:
        if step.error:
            details = Text(step.error, style="red")
        else:
            details = Text(step.note or "", style="dim")
        cells: list[Text | str] = [
            Text(indent + step.step_key),
            styled(step.status.value),
            str(step.attempts) if step.attempts else "",
            format_duration(step.duration_ms),
        ]
        if with_workers:
            cells.append(Text(step.worker or "", style="dim"))
        table.add_row(*cells, details)
        if step.status is StepStatus.FAILED:
            listed.append(step.step_key)

    for row in run_steps.rows():
        if isinstance(row, StepSummary):
            add_step(row)
            continue
        cells: list[Text | str] = [
            Text(row.label),
            styled(row.status.value),
            "",
            format_duration(row.duration_ms),
        ]
        if with_workers:
            cells.append("")
        table.add_row(*cells, group_details(row))
        if expand:
            members = list(row.step_keys)
        else:
            members = [s.step_key for s in row.failed[:MAX_LISTED_FAILURES]]
        for key in members:
            add_step(by_key[key], _INDENT)
        hidden = 0 if expand else len(row.failed) - len(members)
        if hidden:
            more: list[Text | str] = [
                Text(f"{_INDENT}and {hidden} more failed", style="dim"),
                "",
                "",
                "",
            ]
            if with_workers:
                more.append("")
            table.add_row(*more, Text("--steps all lists every step", style="dim"))
    return table, listed


def group_details(group: StepGroup) -> Text:
    """``5 steps: 4 succeeded, 1 failed  12:00:01 → 12:00:03``, states coloured, then its
    note (nothing to map, waiting for mapping keys)."""
    if not group.size:
        return Text(group.note or "", style="dim")
    text = Text(f"{group.size} {'step' if group.size == 1 else 'steps'}")
    parts = [(status, n) for status in COUNT_ORDER if (n := group.counts.get(status))]
    for i, (status, n) in enumerate(parts):
        text.append(": " if i == 0 else ", ")
        text.append(f"{n} {status.value}", style=STATUS_STYLES.get(status, ""))
    if group.start_time is not None:
        text.append(f"  {_clock(group.start_time)} → {_clock(group.end_time)}", style="dim")
    if group.note:
        text.append(f"  {group.note}", style="dim")
    return text


def _clock(timestamp: float | None) -> str:
    """``12:00:01`` (the date is the run's, in its header); ``…`` while not known."""
    return format_time(timestamp)[11:] if timestamp is not None else "…"
