"""``orchestrator coordinator start``: the long-lived process that drives launched runs."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from orchestrator.cli.common import make_console
from orchestrator.cli.worker import code_location_options, serving_setup


@click.group()
def coordinator() -> None:
    """Run coordinators: drive launched runs (many at once) without taking step slots."""


@coordinator.command("start")
@code_location_options
@click.option(
    "--max-runs",
    type=int,
    default=None,
    help="Runs driven at once (default: ORCHESTRATOR_MAX_CONCURRENT_RUNS).",
)
def start(files: tuple[str, ...], modules: tuple[str, ...], max_runs: int | None) -> None:
    """Take launched runs off the run queue and drive them until interrupted. Runs of a
    coordinator that died are resumed from their event logs.

    \b
    Example:
      orchestrator coordinator start -f examples/distributed.py
    """
    from orchestrator.coordinator import Coordinator

    out = make_console()
    locations, instance = serving_setup(files, modules)
    coord = Coordinator(instance, locations, max_concurrent_runs=max_runs)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        coord.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    out.print(
        f"Coordinator {coord.id} serving {', '.join(str(loc) for loc in locations)} "
        f"(up to {coord.max_runs} runs at once)",
        markup=False,
    )
    coord.serve()
    out.print("Coordinator stopping; runs it was driving will be resumed by another.", markup=False)


@coordinator.command("health")
def health() -> None:
    """Exit 0 when a coordinator on this host has a live heartbeat, 1 otherwise (for
    container health checks)."""
    from orchestrator.cli.health import coordinator_health

    coordinator_health()
