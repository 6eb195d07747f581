"""``orchestrator worker start``: a Celery worker that runs steps of given code locations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from orchestrator.cli.common import bad_input_exits, get_instance
from orchestrator.definitions.reconstruct import CodeLocation


def code_locations(files: tuple[str, ...], modules: tuple[str, ...]) -> list[CodeLocation]:
    """The code locations given with repeated -f/-m or, with neither, the setting
    ``ORCHESTRATOR_CODE_LOCATIONS`` (at least one)."""
    from orchestrator.settings import get_settings

    locations = [CodeLocation(file=f) for f in files] + [CodeLocation(module=m) for m in modules]
    if not locations:
        locations = parse_code_locations(get_settings().code_locations)
    if not locations:
        raise click.UsageError(
            "give at least one code location with -f FILE or -m MODULE "
            "(or set ORCHESTRATOR_CODE_LOCATIONS, e.g. 'jobs.py,my_package.jobs')"
        )
    return locations


def parse_code_locations(text: str) -> list[CodeLocation]:
    """``ORCHESTRATOR_CODE_LOCATIONS``: comma-separated files (``*.py``) and module names."""
    entries = [e.strip() for e in text.split(",") if e.strip()]
    return [
        CodeLocation(file=e) if e.endswith(".py") or "/" in e else CodeLocation(module=e)
        for e in entries
    ]


def serving_setup(
    files: tuple[str, ...], modules: tuple[str, ...]
) -> tuple[list[CodeLocation], Any]:
    """For long-lived commands: load the code locations (errors show at start) and connect to
    the shared instance, which must answer now (exit 2 with one line otherwise); from then on
    the process rides out Redis outages."""
    from orchestrator.cli.common import get_instance
    from orchestrator.storage.redis import RedisInstance

    with bad_input_exits():
        locations = code_locations(files, modules)
        for location in locations:
            location.load()
        instance = get_instance(patience=None)
    assert isinstance(instance, RedisInstance)
    return locations, instance


F = TypeVar("F", bound=Callable[..., Any])


def code_location_options(f: F) -> F:
    """Repeatable -f FILE / -m MODULE: the code locations a long-lived process serves
    (default: ``ORCHESTRATOR_CODE_LOCATIONS``)."""
    f = click.option(
        "-m", "--module", "modules", multiple=True, help="Module of jobs (repeatable)."
    )(f)
    return click.option(
        "-f", "--file", "files", multiple=True, help="Python file of jobs (repeatable)."
    )(f)


@click.group()
def worker() -> None:
    """Celery workers that run steps."""


@worker.command("start")
@code_location_options
@click.option(
    "-Q",
    "--queues",
    default="orchestrator",
    show_default=True,
    help="Comma-separated queues to consume (steps pick theirs with the op tag "
    "orchestrator/queue).",
)
@click.option(
    "-c",
    "--concurrency",
    type=int,
    default=None,
    help="Steps run at once (pool processes); default: CPU count.",
)
@click.option(
    "--loglevel",
    default="INFO",
    show_default=True,
    help="Celery log level (DEBUG, INFO, WARNING...).",
)
@click.option("-n", "--name", default=None, help="Worker name (default: generated).")
@click.option("--quiet", is_flag=True, help="No start-up banner.")
def start(
    files: tuple[str, ...],
    modules: tuple[str, ...],
    queues: str,
    concurrency: int | None,
    loglevel: str,
    name: str | None,
    quiet: bool,
) -> None:
    """Start a worker (blocks). It runs only steps whose job comes from these code locations;
    a message naming any other is refused with a step failure event.

    \b
    Example:
      orchestrator worker start -f examples/main_job.py -Q orchestrator,gpu -c 4
    """
    from orchestrator.cli.common import ping_broker
    from orchestrator.distributed.worker_process import start_worker
    from orchestrator.settings import get_settings

    with bad_input_exits():
        locations = code_locations(files, modules)
        queue_list = [q.strip() for q in queues.split(",") if q.strip()]
        get_instance().close()  # Redis must answer now: exit 2 with one line otherwise
        settings = get_settings()
        if settings.broker_url:
            ping_broker(settings.broker_url)
        start_worker(locations, queue_list, concurrency, loglevel, name, quiet)


@worker.command("health")
def health() -> None:
    """Exit 0 when a worker on this host answers a ping through the broker, 1 otherwise (for
    container health checks)."""
    from orchestrator.cli.health import worker_health

    worker_health()
