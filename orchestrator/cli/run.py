"""``orchestrator run ...``: list, show, follow and re-execute the runs of the shared instance.

Runs are read from the instance every command shares (``ORCHESTRATOR_REDIS_URL``, or the
embedded server under ``ORCHESTRATOR_HOME``), so a run executed by one process is listed by the
next. What is shown is computed by the pure functions of :mod:`orchestrator.cli.run_view`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import click
import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    EXIT_RUN_FAILED,
    BadInput,
    bad_input_exits,
    get_instance,
    make_console,
    op_selection_option,
)
from orchestrator.cli.common import (
    ONE_SHOT_PATIENCE_SECONDS as ONE_SHOT,
)
from orchestrator.cli.progress import (
    execute_with_progress,
    quiet_last_resort_logging,
    user_traceback,
)
from orchestrator.cli.run_view import format_time, log_line, run_duration, short_tags, styled
from orchestrator.cli.steps_table import steps_table
from orchestrator.errors import CodeLocationError, ReconstructionError
from orchestrator.events import RUN_TERMINAL, Event, EventType
from orchestrator.storage.base import Instance, RunRecord, RunsFilter, RunStatus
from orchestrator.views.groups import summarize_run
from orchestrator.views.payloads import event_json, group_json, run_json, step_json
from orchestrator.views.steps import describe_pointer

# Tables of runs are laid out at least this wide when stdout is not a terminal.
_TABLE_WIDTH = 160
# How long ``run logs --follow`` blocks in one wait before it re-checks the run's record (a run
# whose driver died ends without a terminal event; the record still says it is finished).
_FOLLOW_WAIT_SECONDS = 5.0

_TERMINAL_TYPES = frozenset(t.value for t in RUN_TERMINAL)

F = TypeVar("F", bound=Callable[..., Any])


def _json_option(help_text: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def _print_json(value: Any) -> None:
    """Plain JSON on stdout: no markup, no wrapping (``click.echo``, not rich)."""
    click.echo(json.dumps(value, indent=2))


@click.group("run")
def run() -> None:
    """Inspect the runs stored in the shared instance, follow them, re-execute them."""


def _require_run(instance: Instance, run_id: str) -> RunRecord:
    record = instance.get_run(run_id)
    if record is None:
        raise BadInput(f"no run with id {run_id!r} (see `orchestrator run list`)")
    return record


def _parse_tag_filters(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        tags[key] = tag_value
    return tags or None


def _parse_statuses(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[RunStatus] | None:
    statuses = []
    for value in values:
        try:
            statuses.append(RunStatus(value.upper()))
        except ValueError:
            raise click.BadParameter(
                f"unknown status {value!r}; valid: {', '.join(RunStatus)}"
            ) from None
    return statuses or None


# -- run list --------------------------------------------------------------------------------


@run.command("list", short_help="List runs, newest first.")
@click.option("--job", "job_name", metavar="NAME", help="Only runs of this job.")
@click.option(
    "--status",
    "statuses",
    metavar="STATUS",
    multiple=True,
    callback=_parse_statuses,
    help=f"Only runs with this status (repeatable: any of them): {', '.join(RunStatus)}.",
)
@click.option(
    "--tag",
    "tags",
    metavar="KEY=VALUE",
    multiple=True,
    callback=_parse_tag_filters,
    help="Only runs with this tag (repeatable: all of them).",
)
@click.option(
    "--limit",
    metavar="N",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most this many runs.",
)
@_json_option("Print a JSON array of runs (the same filters and limit) for scripts.")
def list_command(
    job_name: str | None,
    statuses: list[RunStatus] | None,
    tags: dict[str, str] | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the runs of the shared instance, newest first: id, job, status, start, duration,
    tags.

    \b
    Examples:
      orchestrator run list --job etl --status FAILURE
      orchestrator run list --tag team=data --limit 5
      orchestrator run list --status FAILURE --json
    """
    filters = RunsFilter(job_name=job_name, statuses=statuses, tags=tags)
    out = make_console(min_width=_TABLE_WIDTH)
    with bad_input_exits(), get_instance() as instance:
        records = instance.get_runs(filters, limit=limit + 1)
    if as_json:
        _print_json([run_json(record) for record in records[:limit]])
        return
    if not records:
        out.print("No runs found.", markup=False)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Run ID", no_wrap=True)
    table.add_column("Job", style="bold", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Tags", overflow="fold")
    for record in records[:limit]:
        table.add_row(
            record.run_id,
            Text(record.job_name),
            styled(record.status.value),
            format_time(record.start_time),
            run_duration(record),
            Text(short_tags(record.tags), style="dim"),
        )
    out.print(table)
    if len(records) > limit:
        out.print(f"(the newest {limit} runs; --limit N shows more)", style="dim", markup=False)


# -- run show --------------------------------------------------------------------------------


@run.command("show", short_help="Show a run: status, config, and each step's state.")
@click.argument("run_id")
@click.option(
    "--steps",
    "steps_shown",
    type=click.Choice(["grouped", "all"]),
    default="grouped",
    show_default=True,
    help="grouped: one line per mapped op (process[*]) with its state counts and failed "
    "steps; all: every mapped step too.",
)
@_json_option(
    'Print one JSON object for scripts: {"run": ..., "steps": [...], "groups": [...], '
    '"driver": ...} (every step, mapped ones included).'
)
def show_command(run_id: str, steps_shown: str, as_json: bool) -> None:
    """Show one run: status, job, tags, timestamps, parent run, run config, and each step with
    its state (succeeded, failed, skipped, running, waiting for slot, up for retry, not
    started), attempts, duration and error. An op mapped over a dynamic output is one line
    (process[*]) with how many of its steps are in each state, followed by its failed steps
    (the first 10); --steps all lists all its steps. Failed steps' tracebacks follow on stderr
    (with --json, read them from `orchestrator run logs RUN_ID --json`)."""
    out = make_console(min_width=_TABLE_WIDTH)
    err = make_console(stderr=True)
    with bad_input_exits(), get_instance() as instance:
        record = _require_run(instance, run_id)
        events = instance.all_events(run_id)
        plan_json = _stored_plan(instance, run_id)
        driver = _driver_note(instance, record)
    run_steps = summarize_run(events, plan_json)
    if as_json:
        _print_json(
            {
                "run": run_json(record),
                "steps": [step_json(s) for s in run_steps.steps],
                "groups": [group_json(g) for g in run_steps.groups],
                "driver": driver,
            }
        )
        return
    _print_header(out, record, driver)
    out.print()
    if not run_steps.steps and not run_steps.groups:
        out.print("No steps have started yet.", markup=False)
        return
    table, listed = steps_table(run_steps, expand=steps_shown == "all")
    out.print(table)
    failed = set(listed)
    for event in events:
        if event.event_type_value == EventType.STEP_FAILURE and event.step_key in failed:
            stack = user_traceback(event.error)
            if stack:
                err.print(Text(f"Step {event.step_key!r} failed:", style="red"))
                err.print(Text(stack, style="dim"))


def _stored_plan(instance: Instance, run_id: str) -> str | None:
    """The run's execution plan as launched runs store it (Redis only), so steps that have not
    started yet are listed too."""
    from orchestrator.storage.redis import RedisInstance

    if not isinstance(instance, RedisInstance):
        return None
    return instance.plan_json(run_id)


def _driver_note(instance: Instance, record: RunRecord) -> str | None:
    """Who drives a run that has not ended (shared instances), e.g. that its coordinator's
    lease lapsed and when, so a run whose driver is gone is not silently STARTED."""
    import time

    from orchestrator.coordinator import driver_state
    from orchestrator.storage.base import RunStatus
    from orchestrator.storage.redis import RedisInstance

    if record.is_finished or not isinstance(instance, RedisInstance):
        return None
    state = driver_state(instance, record.run_id)
    if record.status is RunStatus.QUEUED and state.owner is None:
        if state.coordinators:
            return "waiting in the run queue for a coordinator"
        return (
            "waiting in the run queue; no coordinator is running: start one with "
            "`orchestrator coordinator start -f/-m ...`"
        )
    return state.describe(time.time())


def _print_header(out: Console, record: RunRecord, driver: str | None = None) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("Run", record.run_id),
        ("Job", record.job_name),
        ("Status", styled(record.status.value)),
        ("Created", format_time(record.created_at)),
        ("Started", format_time(record.start_time) or "-"),
        ("Ended", format_time(record.end_time) or "-"),
        ("Duration", run_duration(record) or "-"),
    ]
    if driver:
        rows.append(("Driver", driver))
    if record.parent_run_id:
        rows.append(("Parent run", record.parent_run_id))
    if record.root_run_id and record.root_run_id != record.parent_run_id:
        rows.append(("Root run", record.root_run_id))
    if record.op_selection:
        rows.append(("Op selection", ", ".join(record.op_selection)))
    if record.partition_key is not None:
        rows.append(("Partition", record.partition_key))
    location = describe_pointer(record.pointer)
    if location:
        rows.append(("Code location", location))
    tags = ", ".join(f"{k}={v}" for k, v in sorted(record.tags.items()))
    rows.append(("Tags", tags or "-"))
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    out.print(grid)
    out.print()
    out.print("Run config:", style="bold", markup=False)
    if record.run_config:
        text = yaml.safe_dump(dict(record.run_config), sort_keys=False, default_flow_style=False)
        out.print(Text("  " + text.rstrip().replace("\n", "\n  ")))
    else:
        out.print("  (none)", style="dim", markup=False)


# -- run logs --------------------------------------------------------------------------------


@run.command("logs", short_help="Print a run's events; --follow streams a live run.")
@click.argument("run_id")
@click.option(
    "--follow",
    "-F",
    "follow",
    is_flag=True,
    help="Keep printing events as they are stored, until the run ends.",
)
@_json_option("Print one JSON object per event and line (JSON Lines), with its id.")
def logs_command(run_id: str, follow: bool, as_json: bool) -> None:
    """Print a run's events, oldest first: time, event type, step, message.

    With --follow, wait for new events (woken by each one, no polling) and return once the run
    has ended (RUN_SUCCESS, RUN_FAILURE or RUN_CANCELED). The exit code is 0 whatever the run's
    outcome: it says the log was printed (see `orchestrator run show` for the outcome).

    With --json, each line is one event as a JSON object (id, run_id, type, step_key,
    timestamp, message, level, data, error), written out line by line also with --follow.
    """
    out = make_console()

    def emit(cursor: str, event: Event) -> None:
        if as_json:
            # click.echo flushes each line: a script reading a pipe gets each event as it comes.
            click.echo(json.dumps(event_json(cursor, event)))
        else:
            out.print(log_line(event))

    with bad_input_exits(), get_instance(patience=None if follow else ONE_SHOT) as instance:
        _require_run(instance, run_id)
        if not follow:
            for cursor, event in instance.get_events(run_id):
                emit(cursor, event)
            return
        _follow(emit, instance, run_id)


def _follow(emit: Callable[[str, Event], None], instance: Instance, run_id: str) -> None:
    """Emit the run's events as they are stored, until the run ends."""
    cursor: str | None = None
    while True:
        batch = instance.wait_for_events(run_id, cursor, timeout=_FOLLOW_WAIT_SECONDS)
        for position, event in batch:
            emit(position, event)
            cursor = position
            if event.event_type_value in _TERMINAL_TYPES:
                return
        if batch:
            continue
        record = instance.get_run(run_id)
        if record is None or record.is_finished:
            # Ended without a terminal event (its driver died) or was deleted: print the rest.
            for position, event in instance.get_events(run_id, cursor):
                emit(position, event)
                cursor = position
            return


# -- run reexecute ---------------------------------------------------------------------------


@run.command("reexecute", short_help="Run a finished run's job again, reusing its outputs.")
@click.argument("run_id")
@click.option(
    "--from-failure",
    is_flag=True,
    help="Re-run only the steps that did not succeed (failed, skipped or never started).",
)
@op_selection_option
def reexecute_command(run_id: str, from_failure: bool, op_selection: list[str] | None) -> None:
    """Start a new run of RUN_ID's job here, with its run config, tags and partition; outputs
    of steps not selected are read from RUN_ID's stored outputs. The new run is linked to its
    parent (tag parent_run_id).

    Without options the whole job runs again. Run it from the directory RUN_ID was launched in:
    its code location (a file path or module) is resolved from there. Exit code: 0 the new run
    succeeded, 1 it failed, 2 bad input (unknown run, a run still going, nothing to re-run,
    unloadable code location).

    \b
    Examples:
      orchestrator run reexecute 3f2c... --from-failure
      orchestrator run reexecute 3f2c... --op-selection 'load*'
    """
    from orchestrator.execution.reexecution import ReexecutionOptions, parent_job
    from orchestrator.runs.api import execute_job

    if from_failure and op_selection:
        raise click.UsageError("give --from-failure or --op-selection, not both")
    quiet_last_resort_logging()
    out, err = make_console(), make_console(stderr=True)
    with bad_input_exits(), get_instance(patience=None) as instance:
        parent = _require_run(instance, run_id)
        try:
            parent_job(parent).get_definition()  # fail early, with a hint, if it won't load
        except (CodeLocationError, ReconstructionError) as exc:
            where = describe_pointer(parent.pointer)
            raise BadInput(
                f"cannot load the job of run {run_id} ({where}): {exc}\n"
                "Re-execute from the directory the run was launched in."
            ) from exc
        if from_failure:
            options = ReexecutionOptions.from_failure(run_id, instance)
        else:
            options = ReexecutionOptions(run_id, tuple(op_selection or ()))
        new_run_id = str(uuid.uuid4())
        steps = ", ".join(options.step_selection) or "all steps"
        out.print(Text(f"Re-executing run {run_id} as run {new_run_id} ({steps})", style="dim"))
        succeeded = execute_with_progress(
            out,
            err,
            instance,
            new_run_id,
            lambda: execute_job(
                None, instance=instance, reexecution_options=options, run_id=new_run_id
            ),
        )
    if not succeeded:
        raise click.exceptions.Exit(EXIT_RUN_FAILED)


@run.command("cancel", short_help="Cancel a run: queued steps revoked, running ones stopped.")
@click.argument("run_id")
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep trying to deliver the cancel while Redis does not answer.",
)
def cancel_command(run_id: str, wait: float) -> None:
    """Cancel a run. A run still waiting for a coordinator ends CANCELED at once; a running
    run is told to stop: its coordinator revokes queued steps, terminates running ones, frees
    their concurrency slots and ends the run CANCELED. During a Redis outage the cancel is
    delivered once the server answers again (within --wait seconds). Exit 0 when the cancel
    was taken (or the run had already finished), 2 for an unknown run or a server that did not
    answer in time."""
    from orchestrator.coordinator import cancel_run
    from orchestrator.storage.redis import RedisInstance

    with bad_input_exits(), get_instance(patience=wait, wait_for_server=wait) as instance:
        _require_run(instance, run_id)
        assert isinstance(instance, RedisInstance)
        status = cancel_run(instance, run_id)
    make_console().print(f"Run {run_id}: {status}", markup=False)
