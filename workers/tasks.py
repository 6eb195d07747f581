"""The Celery tasks a worker runs: a step message in, the step worker's call, Celery's answer out.

Imported by workers only (the app built by ``orchestrator.distributed.celery_app.create_app`` names
this module in Celery's ``include``). ``shared_task`` registers the tasks on whichever app the
worker runs; what happens to a step lives in ``orchestrator.distributed.step_worker``.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.exceptions import Reject

from orchestrator.distributed.celery_app import PING_TASK, STEP_TASK
from orchestrator.distributed.step_worker import RequeueMessage, run_step_message


@shared_task(
    name=STEP_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def execute_step(self: Any, message: dict[str, Any]) -> str:
    """Run one step attempt (see ``run_step_message``); returns what happened, for the log."""
    try:
        return run_step_message(message, node=self.request.hostname)
    except RequeueMessage as exc:  # Redis failed before the claim: back to the broker
        raise Reject(str(exc), requeue=True) from exc


@shared_task(name=PING_TASK, ignore_result=False)
def ping(value: Any = None) -> Any:
    """Returns its argument: a health check, and the raw-Celery baseline of benchmarks."""
    return value
