"""``orchestrator dev``: everything for distributed runs on one machine, in one command."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from orchestrator.cli.common import make_console
from orchestrator.cli.local_workers import LocalWorkerPool
from orchestrator.cli.worker import serving_setup

DEFAULT_LOCATION = "examples/distributed.py"


@click.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help=f"Python file of jobs (repeatable; default: {DEFAULT_LOCATION}).",
)
@click.option("-m", "--module", "modules", multiple=True, help="Module of jobs (repeatable).")
@click.option(
    "-c",
    "--concurrency",
    type=int,
    default=2,
    show_default=True,
    help="Steps the local worker runs at once.",
)
@click.option(
    "-Q",
    "--queues",
    default="orchestrator",
    show_default=True,
    help="Comma-separated queues the local worker consumes.",
)
@click.option("--ui-port", default=3000, show_default=True, help="Port of the web UI (0: none).")
def dev(
    files: tuple[str, ...],
    modules: tuple[str, ...],
    concurrency: int,
    queues: str,
    ui_port: int,
) -> None:
    """Start the embedded Valkey server (unless ORCHESTRATOR_REDIS_URL is set), a local
    Celery worker pool, a run coordinator and the web UI on 127.0.0.1, then wait until
    Ctrl-C.

    \b
    In another terminal:
      orchestrator job launch -f examples/distributed.py -j warehouse_load
      orchestrator run list
      orchestrator concurrency list
    """
    from orchestrator.coordinator import Coordinator

    if not files and not modules:
        files = (DEFAULT_LOCATION,)
    out = make_console()
    locations, instance = serving_setup(files, modules)
    worker = LocalWorkerPool(files, modules, queues.split(","), concurrency)
    coord = Coordinator(instance, locations)
    web = None
    if ui_port:
        from orchestrator.cli.ui import BackgroundServer, build_server, url_for

        web = BackgroundServer(build_server(files, modules, "127.0.0.1", ui_port))
        web.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        coord.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
    url = instance.client.connection_pool.connection_kwargs
    out.print(
        f"orchestrator dev: Redis at {url.get('host')}:{url.get('port')}, a worker "
        f"(pid {worker.pid}, {concurrency} processes, queues {queues}) and a coordinator are "
        f"running for {', '.join(str(loc) for loc in locations)}.\n"
        + (f"Web UI: {url_for('127.0.0.1', ui_port)}\n" if web is not None else "")
        + f"Launch a run:  orchestrator job launch -f {files[0] if files else '...'} -j <job>\n"
        "Stop with Ctrl-C.",
        markup=False,
    )
    try:
        coord.serve()
    finally:
        if web is not None:
            web.stop()
        worker.stop()
