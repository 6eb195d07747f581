"""Entry point of a multiprocess executor child: rebuild the job, run one step, send events.

Kept tiny and importable on its own: the forkserver preloads it so that a forked child starts
with the framework already imported.
"""

from __future__ import annotations

import logging
from multiprocessing.connection import Connection
from typing import Any

from orchestrator.definitions.reconstruct import load_job
from orchestrator.events import Event, step_failure
from orchestrator.execution.context import RunContext
from orchestrator.execution.step_runner import StepRunner
from orchestrator.plan.steps import ExecutionPlan, ExecutionStep

_plans: dict[str, ExecutionPlan] = {}


DONE = "__step_done__"  # sent by a reused child after each step's last event


def run_step_in_child(payload: dict[str, Any], conn: Connection) -> None:
    """Run ``payload['step_key']`` of the run described by ``payload``; every event goes to
    ``conn`` as a dict. Returns when the step attempt has ended (then the pipe closes)."""
    try:
        _run(payload, conn)
    finally:
        conn.close()


def serve_steps(conn: Connection) -> None:
    """A reused child: run steps sent on ``conn`` one after another until it sends None."""
    while True:
        payload = conn.recv()
        if payload is None:
            break
        _run(payload, conn)
        conn.send({DONE: payload["step_key"]})
    conn.close()


def _run(payload: dict[str, Any], conn: Connection) -> None:
    def emit(event: Event) -> None:
        conn.send(event.to_dict())

    try:
        _run_step(payload, emit)
    except Exception as exc:  # the job or plan could not be loaded here: say why
        emit(
            step_failure(
                payload["run_id"],
                payload["step_key"],
                payload["attempt"],
                f"Step {payload['step_key']!r} could not start in its process: "
                f"{type(exc).__name__}: {exc}",
                error=exc,
            )
        )


def _run_step(payload: dict[str, Any], emit: Any) -> None:
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
    given = payload.get("step")
    step = ExecutionStep.from_dict(given) if given is not None else None
    StepRunner(ctx).run(payload["step_key"], payload["attempt"], step=step)
