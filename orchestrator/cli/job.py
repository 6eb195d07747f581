"""``orchestrator job ...``: list the jobs of a code location, execute one here."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import click
from rich import box
from rich.table import Table
from rich.text import Text

from orchestrator.cli.common import (
    EXIT_RUN_FAILED,
    RunFailed,
    bad_input_exits,
    get_instance,
    job_option,
    location_options,
    make_console,
    require_location,
    run_options,
)
from orchestrator.cli.local_workers import local_pool_for_run
from orchestrator.cli.progress import RunProgress, print_run_end, quiet_last_resort_logging
from orchestrator.definitions.loading import find_job, jobs_in_module, load_location
from orchestrator.definitions.reconstruct import ReconstructableJob
from orchestrator.runs.api import execute_job


@click.group("job")
def job() -> None:
    """List and run the jobs of a code location (-f FILE or -m MODULE)."""


@job.command("list", short_help="List the jobs of a code location.")
@location_options
def list_command(file: str | None, module: str | None) -> None:
    """List the jobs of a code location: name, number of ops, description.

    A location holding module-level Definitions offers their jobs; otherwise every
    module-level job is listed.
    """
    require_location(file, module)
    with bad_input_exits():
        jobs = jobs_in_module(load_location(file, module))
    out = make_console()
    if not jobs:
        out.print("No jobs found (no module-level Definitions or jobs).", markup=False)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Job", style="bold", no_wrap=True)
    table.add_column("Ops", justify="right")
    table.add_column("Description", overflow="fold")
    for name, (job_def, _pointer) in jobs.items():
        table.add_row(Text(name), str(len(job_def.all_op_nodes)), Text(job_def.description or ""))
    out.print(table)


@job.command("execute", short_help="Run a job here, show its progress, wait for its end.")
@location_options
@job_option
@run_options
def execute_command(
    file: str | None,
    module: str | None,
    job_name: str | None,
    run_config: dict[str, Any] | None,
    op_selection: list[str] | None,
    partition: str | None,
    tags: dict[str, str] | None,
) -> None:
    """Run a job here with its own executor, print its steps as they finish, and wait.

    Several -c files are merged in order (later files win) and replace the job's default
    config. Exit code: 0 the run succeeded, 1 it failed, 2 bad input (unknown job or op,
    invalid config, missing input or resource, bad partition key, unloadable code location).

    \b
    Examples:
      orchestrator job execute -f jobs.py -j my_job -c prod.yaml
      orchestrator job execute -m my_project.jobs -j etl --op-selection '*load' \\
          --tags '{"team": "data"}'
    """
    require_location(file, module)
    quiet_last_resort_logging()
    out, err = make_console(), make_console(stderr=True)
    with bad_input_exits(), get_instance(patience=None) as instance:
        job_def, pointer = find_job(file, module, job_name)
        run_id = str(uuid.uuid4())
        say = partial(out.print, markup=False)
        with (
            local_pool_for_run(job_def, instance, file, module, say),
            RunProgress(out, instance, run_id),
        ):
            try:
                execute_job(
                    ReconstructableJob(pointer, job_def),
                    instance=instance,
                    run_config=run_config,
                    tags=tags,
                    op_selection=op_selection,
                    partition_key=partition,
                    run_id=run_id,
                )
            except Exception as exc:
                if instance.get_run(run_id) is None:
                    raise  # nothing ran: bad input (exit 2), or a bug that needs its traceback
                # The engine failed mid-run; the run is stored as failed with the stack.
                raise RunFailed(f"run {run_id} failed: {type(exc).__name__}: {exc}") from exc
        if not print_run_end(out, err, instance, run_id):
            raise click.exceptions.Exit(EXIT_RUN_FAILED)


@job.command("launch", short_help="Queue a run for the coordinators; print its id.")
@location_options
@job_option
@run_options
def launch_command(
    file: str | None,
    module: str | None,
    job_name: str | None,
    run_config: dict[str, Any] | None,
    op_selection: list[str] | None,
    partition: str | None,
    tags: dict[str, str] | None,
) -> None:
    """Validate and plan a run, store it QUEUED and return at once; a run coordinator
    (`orchestrator coordinator start`) picks it up. The run id is the last line printed.

    Run priority: tag `orchestrator/priority` (integer, higher first) orders the queue of
    waiting runs and adds to every step's priority.

    \b
    Example:
      orchestrator job launch -f examples/distributed.py -j warehouse_load \\
          --tags '{"orchestrator/priority": "5"}'
    """
    from orchestrator.coordinator import launch_run
    from orchestrator.storage.redis import RedisInstance

    require_location(file, module)
    out = make_console()
    with bad_input_exits(), get_instance() as instance:
        assert isinstance(instance, RedisInstance)
        job_def, pointer = find_job(file, module, job_name)
        run_id = launch_run(
            ReconstructableJob(pointer, job_def),
            instance,
            run_config=run_config,
            op_selection=op_selection,
            partition_key=partition,
            tags=tags,
        )
    out.print(
        f"Launched run of {job_def.name!r}; follow it with: orchestrator run logs "
        f"{run_id} --follow",
        markup=False,
    )
    click.echo(run_id)
