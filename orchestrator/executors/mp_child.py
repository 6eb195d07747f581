"""Entry point of a multiprocess executor child: rebuild the job, run one step, send events.

Kept tiny and importable on its own: the forkserver preloads it so that a forked child starts
with the framework already imported.
"""

from __future__ import annotations

import logging
from multiprocessing.connection import Connection
from typing import Any

from orchestrator.definitions.reconstruct import load_job
from orchestrator.execution.context import RunContext
from orchestrator.execution.events import Event
from orchestrator.execution.step_runner import StepRunner
from orchestrator.plan.steps import ExecutionPlan

_plans: dict[str, ExecutionPlan] = {}


def run_step_in_child(payload: dict[str, Any], conn: Connection) -> None:
    """Run ``payload['step_key']`` of the run described by ``payload``; every event goes to
    ``conn`` as a dict. Returns when the step attempt has ended."""

    def emit(event: Event) -> None:
        conn.send(event.to_dict())

    try:
        job = load_job(payload["pointer"])
        plan_json: str = payload["plan"]
        plan = _plans.get(plan_json)
        if plan is None:
            plan = _plans[plan_json] = ExecutionPlan.from_json(plan_json)
        ctx = RunContext(
            run_id=payload["run_id"],
            job=job,
            plan=plan,
            run_tags=payload["run_tags"],
            emit=emit,
            input_values=payload.get("input_values") or {},
            retries_enabled=payload["retries_enabled"],
            loggers=[logging.getLogger("orchestrator")],
        )
        StepRunner(ctx).run(payload["step_key"], payload["attempt"])
    finally:
        conn.close()
