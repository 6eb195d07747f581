"""A local Celery worker pool in a child process, for one machine with nothing else running:
``orchestrator dev`` starts one for its lifetime, and ``job execute`` of a Celery job on the
embedded server starts one for the run when no live worker consumes the run's queues (as
Dask's ``Client()`` starts a local cluster). With a configured Redis URL, ``job execute`` never
does: workers there are the deployment's business, and a step waiting on a queue nobody
consumes is reported by the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from orchestrator.errors import InvalidInputError

START_BOUND_SECONDS = 120.0  # a worker that has not registered by then is reported, not awaited
STOP_GRACE_SECONDS = 30.0
DEFAULT_CONCURRENCY = 2


def location_args(files: Sequence[str], modules: Sequence[str]) -> list[str]:
    return [arg for f in files for arg in ("-f", f)] + [arg for m in modules for arg in ("-m", m)]


class LocalWorkerPool:
    """``orchestrator worker start`` in a child process, consuming ``queues`` with
    ``concurrency`` pool processes; :meth:`stop` shuts it down warm (SIGTERM), then kills it
    after :data:`STOP_GRACE_SECONDS`."""

    def __init__(
        self,
        files: Sequence[str],
        modules: Sequence[str],
        queues: Sequence[str],
        concurrency: int = DEFAULT_CONCURRENCY,
        loglevel: str = "WARNING",
        quiet: bool = False,
    ):
        self.queues = sorted(set(queues))
        self.concurrency = concurrency
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli.main",
                "worker",
                "start",
                *location_args(files, modules),
                "-Q",
                ",".join(self.queues),
                "-c",
                str(concurrency),
                "--loglevel",
                loglevel,
                *(["--quiet"] if quiet else []),
            ],
            env=self._environment(quiet),
            # quiet: Celery's own lines (banner, "Warm shutdown") go to stdout; errors and
            # warnings are logged to stderr, which stays
            stdout=subprocess.DEVNULL if quiet else None,
        )

    @staticmethod
    def _environment(quiet: bool) -> dict[str, str]:
        env = os.environ.copy()
        if quiet:  # a pool for one command: only errors (Celery warns when run as root)
            env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser"
        return env

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_registered(self, instance: Any, bound: float = START_BOUND_SECONDS) -> None:
        """Return once the pool's worker is registered for all its queues (so the run's first
        steps are not reported as waiting on an unconsumed queue); raise if the child exits or
        the bound passes."""
        from orchestrator.distributed.workers import WorkerRegistry
        from orchestrator.settings import get_settings

        registry = WorkerRegistry(instance.client, instance.keys, get_settings().lease_seconds)
        deadline = time.monotonic() + bound
        while True:
            for info in registry.live_workers().values():
                if info.get("pid") == self.pid and set(self.queues) <= set(info["queues"]):
                    return
            code = self.process.poll()
            if code is not None:
                raise InvalidInputError(
                    f"the local worker pool exited with code {code} before it was ready "
                    "(its output is above)"
                )
            if time.monotonic() >= deadline:
                self.stop()
                raise InvalidInputError(
                    f"the local worker pool did not register within {bound:.0f} s"
                )
            time.sleep(0.1)  # start-up only; the run itself never polls

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def job_queues(job_def: Any) -> set[str]:
    """Every queue a step of ``job_def`` may be sent to (op tag ``orchestrator/queue``)."""
    from orchestrator.plan.steps import DEFAULT_QUEUE, QUEUE_TAG

    return {node.tags.get(QUEUE_TAG, DEFAULT_QUEUE) for node in job_def.all_op_nodes.values()}


def needs_local_pool(job_def: Any, instance: Any) -> set[str]:
    """The queues a local pool must consume for a ``job execute`` of ``job_def``: empty unless
    the job runs on Celery, the instance is the embedded server (no Redis URL configured) and
    no live worker consumes all of the job's queues."""
    from orchestrator.distributed.workers import WorkerRegistry
    from orchestrator.settings import get_settings

    settings = get_settings()
    if job_def.executor_def.name != "celery" or settings.redis_url:
        return set()
    queues = job_queues(job_def)
    registry = WorkerRegistry(instance.client, instance.keys, settings.lease_seconds)
    if queues <= registry.live_queues():
        return set()
    return queues


@contextmanager
def local_pool_for_run(
    job_def: Any,
    instance: Any,
    file: str | None,
    module: str | None,
    say: Any,
) -> Iterator[LocalWorkerPool | None]:
    """Start a local worker pool for one ``job execute`` when :func:`needs_local_pool` says
    so (``say`` prints the one line telling the user), and stop it when the run ends."""
    queues = needs_local_pool(job_def, instance)
    if not queues:
        yield None
        return
    pool = LocalWorkerPool(
        [file] if file else [],
        [module] if module else [],
        sorted(queues),
        loglevel="ERROR",
        quiet=True,
    )
    try:
        say(
            f"No worker consumes queue{'s' if len(queues) > 1 else ''} "
            f"{', '.join(sorted(queues))} on the embedded server: started a local worker pool "
            f"(pid {pool.pid}, {pool.concurrency} processes) for this run; it stops when the "
            "run ends."
        )
        pool.wait_registered(instance)
        yield pool
    finally:
        pool.stop()
