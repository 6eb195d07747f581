"""What the Redis outage tests share: chains of steps and how to wait on them."""

from __future__ import annotations

import time
from typing import Any

from orchestrator import RunStatus, reconstructable
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.coordinator import launch_run
from orchestrator.storage.redis import RedisInstance
from tests.faults import jobs, marks
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment


def chain_config(hold: float) -> dict[str, Any]:
    return {"ops": {name: {"config": {"hold": hold}} for name in jobs.chain5.op_nodes}}


def launch_chains(instance: RedisInstance, count: int, hold: float) -> list[str]:
    return [
        launch_run(reconstructable(jobs.chain5), instance, run_config=chain_config(hold))
        for _ in range(count)
    ]


def mid_chain(instance: RedisInstance, env: Deployment, run_ids: list[str]) -> bool:
    """Every run has a step body running or done, and some step waits for a slot."""
    counts = marks.body_counts(fault_root(env), run_ids)
    started = {run for run, _ in counts}
    waiting = any(
        e.data.get("kind") == "waiting_for_slot" for r in run_ids for e in instance.all_events(r)
    )
    return started == set(run_ids) and waiting


def ended(instance: RedisInstance, run_ids: list[str]) -> dict[str, RunStatus] | None:
    records = [instance.get_run(r) for r in run_ids]
    if all(r is not None and r.is_finished for r in records):
        return {r.run_id: r.status for r in records if r is not None}
    return None


def outage(env: Deployment, seconds: float) -> None:
    env.valkey.stop()
    time.sleep(seconds)  # the outage itself
    env.valkey.start()


def no_slot_held(limiter: RedisLimiter) -> bool:
    return all(not b.holders and not b.waiters for s in limiter.snapshot() for b in s.buckets)
