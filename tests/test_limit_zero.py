"""A per-run tag concurrency limit of 0 fails the run at once instead of hanging it."""

from __future__ import annotations

import pytest

from orchestrator import EventType, Instance, RunStatus, execute_job, reconstructable
from orchestrator.errors import InvalidInputError
from tests import limit_zero_jobs


def test_a_per_run_tag_limit_of_0_fails_the_multiprocess_run() -> None:
    # Given a multiprocess job whose 'load' op is tagged database=warehouse, under a per-run
    # limit of 0 on that tag
    instance = Instance.ephemeral()

    # When it runs, Then the run fails as soon as 'load' asks for its slot, saying why
    with pytest.raises(InvalidInputError, match="step 'load' can never start") as raised:
        execute_job(reconstructable(limit_zero_jobs.warehouse_limit_zero), instance=instance)

    assert "Raise the limit or remove the tag" in str(raised.value)
    [run] = instance.get_runs()
    assert run.status is RunStatus.FAILURE
    events = list(instance.all_events(run.run_id))
    by_type = {e.event_type_value: e for e in events}
    assert by_type[EventType.RUN_FAILURE.value].message.startswith("Run failed in the engine")
    assert "'database' with limit 0" in by_type[EventType.RUN_FAILURE.value].message
    # the untagged upstream op ran in a child process; 'load' never started
    started = [e.step_key for e in events if e.event_type_value == EventType.STEP_START.value]
    assert started == ["extract"]


def test_raising_the_limit_lets_the_same_job_run() -> None:
    result = execute_job(
        reconstructable(limit_zero_jobs.warehouse_limit_zero),
        run_config={
            "execution": {"config": {"tag_concurrency_limits": [{"key": "database", "limit": 1}]}}
        },
    )

    assert result.success
    assert result.output_for_node("load") == 2
