"""Dynamic fan-out (DynamicOut, map, collect) on every executor: in-process, multiprocess and
Celery (real workers on the embedded Valkey)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    DynamicOut,
    DynamicOutput,
    ExecuteJobResult,
    Instance,
    ReexecutionOptions,
    TagConcurrencyLimit,
    execute_job,
    job,
    op,
    reconstructable,
)
from orchestrator.concurrency.limits import UnlimitedArbiter
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.errors import DefinitionError, MissingInputError
from orchestrator.execution.loop import MAPPING_RESOLVED, ExecutionLoop
from orchestrator.plan.build import build_plan
from orchestrator.storage.redis import RedisInstance
from tests import dynamic_jobs
from tests.dynamic_jobs import CHAINED, FAN_OUT, MAP_GRAPH, NESTED
from tests.gauge import Gauge

EXECUTORS = list(dynamic_jobs.EXECUTORS)


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    if request.param == "celery":
        request.getfixturevalue("cluster_env")  # real workers; settings point at them
    return str(request.param)


def run(
    job_def: Any, executor: str, config: dict[str, Any] | None = None, **kw: Any
) -> ExecuteJobResult:
    if executor == "in_process":
        return job_def.execute_in_process(run_config=config, raise_on_error=False, **kw)
    instance = kw.pop("instance", None) or Instance.from_settings()
    return execute_job(reconstructable(job_def), instance=instance, run_config=config, **kw)


def process_config(**values: Any) -> dict[str, Any]:
    return {"ops": {"process": {"config": values}}}


def failures(result: ExecuteJobResult) -> list[str]:
    return [e.message for e in result.all_events if e.event_type_value.endswith("FAILURE")]


def successes(result: ExecuteJobResult) -> Counter[str]:
    return Counter(e.step_key for e in result.get_step_success_events())


def test_map_over_three_keys_then_collect(executor: str) -> None:
    result = run(FAN_OUT[executor], executor)
    assert result.success, failures(result)
    assert result.output_for_node("merge") == "A-a,B-b,C-c"  # in mapping-key order
    assert result.output_for_node("process") == {"a": "A-a", "b": "B-b", "c": "C-c"}
    assert successes(result) == Counter(["emit", "process[a]", "process[b]", "process[c]", "merge"])
    (resolved,) = [e for e in result.all_events if e.data.get("kind") == MAPPING_RESOLVED]
    assert resolved.step_key == "emit" and resolved.data["mapping_keys"] == ["a", "b", "c"]


def test_map_of_a_graph(executor: str) -> None:
    result = run(MAP_GRAPH[executor], executor)
    assert result.success, failures(result)
    assert result.output_for_node("merge") == "A!!,B!!,C!!"
    assert {"twice.first[a]", "twice.second[c]"} <= set(successes(result))


def test_chained_map(executor: str) -> None:
    result = run(CHAINED[executor], executor)
    assert result.success, failures(result)
    assert result.output_for_node("merge") == "A-a!,B-b!,C-c!"
    assert result.output_for_node("shout") == {"a": "A-a!", "b": "B-b!", "c": "C-c!"}


def test_nested_maps_name_steps_with_both_keys(executor: str) -> None:
    result = run(NESTED[executor], executor)
    assert result.success, failures(result)
    assert result.output_for_node("merge") == "A0/k0+A1/k1,B0/k0+B1/k1,C0/k0+C1/k1"
    assert {"expand[a]", "tag_key[a][k0]", "tag_key[c][k1]", "join_inner[b]"} <= set(
        successes(result)
    )


def test_empty_dynamic_output_collects_nothing_and_skips_the_map(executor: str) -> None:
    config = {"ops": {"emit": {"config": {"keys": []}}}}
    result = run(CHAINED[executor], executor, config)
    assert result.success, failures(result)
    assert result.output_for_node("merge") == ""  # merge got []
    skipped = {e.step_key: e.message for e in result.get_step_skipped_events()}
    assert set(skipped) == {"process[?]", "shout[?]"}
    assert "no mapping keys" in skipped["process[?]"]


def test_one_mapped_step_fails_and_the_others_keep_their_outputs(executor: str) -> None:
    result = run(FAN_OUT[executor], executor, process_config(fail_key="b"))
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["process[b]"]
    assert [e.step_key for e in result.get_step_skipped_events()] == ["merge"]
    assert result.output_for_node("process") == {"a": "A-a", "c": "C-c"}


def test_retry_of_one_mapped_step(executor: str) -> None:
    result = run(FAN_OUT[executor], executor, process_config(flaky_key="b"))
    assert result.success, failures(result)
    retried = [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried == ["process[b]"]
    assert result.output_for_node("merge") == "A-a,B-b,C-c"
    assert successes(result)["process[b]"] == 1


def test_cross_run_limit_of_one_holds_for_mapped_steps_of_two_runs(
    executor: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue("cluster_env")  # a shared instance: the Redis limiter applies
    instance = Instance.from_settings()
    assert isinstance(instance, RedisInstance)
    limiter = RedisLimiter(instance.client, instance.keys)
    limiter.set_limit(TagConcurrencyLimit(key="database", value="dyn", limit=1))
    try:
        # each body waits until two run at once (or 3 s): without the limit they would
        config = process_config(gauge=str(tmp_path), barrier=2)
        config["ops"]["emit"] = {"config": {"keys": ["a", "b"]}}
        results: list[ExecuteJobResult] = []
        job_def = FAN_OUT[executor]
        if executor == "in_process":
            job_def = dynamic_jobs.fan_out_in_process
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    execute_job(reconstructable(job_def), instance=instance, run_config=config)
                )
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == 2 and all(r.success for r in results)
        assert Gauge(tmp_path).peaks()["database=dyn"] == 1
    finally:
        limiter.delete_limit("database", "dyn")
        instance.close()


def test_reexecution_from_failure_runs_only_the_failed_mapped_step(
    executor: str, tmp_path: Path
) -> None:
    instance = Instance.from_settings() if executor == "celery" else Instance.ephemeral()
    recon = reconstructable(FAN_OUT[executor])
    parent = execute_job(recon, instance=instance, run_config=process_config(fail_key="b"))
    assert not parent.success
    options = ReexecutionOptions.from_failure(parent.run_id, instance)
    assert set(options.step_selection) == {"process[b]", "merge"}
    fixed = process_config(fail_key="")  # the cause of the failure is gone
    again = execute_job(recon, instance=instance, run_config=fixed, reexecution_options=options)
    assert again.success
    assert set(successes(again)) == {"process[b]", "merge"}  # a and c are read from the parent
    assert again.output_for_node("merge") == "A-a,B-b,C-c"


def test_selection_of_the_dynamic_op_and_its_downstream() -> None:
    recon = reconstructable(dynamic_jobs.fan_out_multiprocess)
    result = execute_job(recon, op_selection=["emit*"])
    assert result.success and result.output_for_node("merge") == "A-a,B-b,C-c"
    only_emit = execute_job(recon, op_selection=["emit"])
    assert only_emit.success and set(successes(only_emit)) == {"emit"}
    with pytest.raises(MissingInputError, match="process"):
        execute_job(recon, op_selection=["process"])


def test_explicit_selection_of_a_mapped_step_in_a_reexecution() -> None:
    instance = Instance.ephemeral()
    recon = reconstructable(dynamic_jobs.fan_out_multiprocess)
    parent = execute_job(recon, instance=instance)
    again = execute_job(
        recon,
        instance=instance,
        reexecution_options=ReexecutionOptions(parent.run_id, ("process[c]", "merge")),
    )
    assert again.success and set(successes(again)) == {"process[c]", "merge"}
    assert again.output_for_node("merge") == "A-a,B-b,C-c"


def test_a_replayed_log_rebuilds_the_same_steps_and_records_nothing_twice() -> None:
    result = dynamic_jobs.chained_in_process.execute_in_process()
    plan_json = (
        result.instance.plan_json(result.run_id) if hasattr(result.instance, "plan_json") else None
    )

    plan = build_plan(dynamic_jobs.chained_in_process)[0] if plan_json is None else None
    assert plan is not None
    events = result.all_events
    loop = ExecutionLoop.from_events(plan, result.run_id, UnlimitedArbiter(), events)
    assert loop.resolved == {"emit:result": ("a", "b", "c")}
    assert loop.succeeded and set(loop.steps) >= {"process[a]", "shout[c]", "merge"}
    tick = loop.tick(0.0)
    assert tick.done and not tick.events and not tick.launch


# -- definitions and bad mapping keys ---------------------------------------------------------


@op(out=DynamicOut())
def keys_given(context: Any) -> Any:
    for key in context.op_config["keys"]:
        yield DynamicOutput(1, mapping_key=key)


@op
def one(value: int) -> int:
    return value


@job
def keyed() -> None:
    keys_given().map(one)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["a-b"], "mapping key 'a-b' is not valid"),
        (["x", "x"], "mapping key 'x' was yielded twice"),
    ],
)
def test_bad_mapping_keys_fail_the_step_clearly(keys: list[str], message: str) -> None:
    result = keyed.execute_in_process(
        run_config={"ops": {"keys_given": {"config": {"keys": keys}}}}, raise_on_error=False
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "keys_given" and message in failure.message


def test_a_dynamic_output_passed_as_it_is_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"use \.map\(op\)"):

        @job
        def wrong() -> None:
            one(keys_given())


def test_an_op_mapped_over_two_dynamic_outputs_is_a_definition_error() -> None:
    @op(out={"left": DynamicOut(), "right": DynamicOut()})
    def two() -> Any:
        yield DynamicOutput(1, mapping_key="a", output_name="left")
        yield DynamicOutput(2, mapping_key="a", output_name="right")

    @op
    def pair(x: int, y: int) -> int:
        return x + y

    with pytest.raises(DefinitionError, match="only be mapped over one dynamic output"):

        @job
        def wrong() -> None:
            left, right = two()
            left.map(lambda x: right.map(lambda y: pair(x, y)))


# -- the terminal view of a large fan-out ------------------------------------------------------


@op(out=DynamicOut())
def fifty() -> Any:
    for i in range(50):
        yield DynamicOutput(i, mapping_key=f"k{i}")


@op
def noisy(context: Any, value: int) -> int:
    context.log.info(f"working on {value}")
    if value == 7:
        raise ValueError("seven")
    return value


@op
def merge_ints(values: list[int]) -> int:
    return sum(values)


@job
def wide() -> None:
    merge_ints(fifty().map(noisy).collect())


def test_the_progress_view_folds_mapped_steps_but_shows_each_failure() -> None:
    from orchestrator.cli.progress import MappedFolding

    result = wide.execute_in_process(raise_on_error=False)
    folding = MappedFolding()
    lines = [str(line) for e in result.all_events if (line := folding.line(e)) is not None]
    assert any("50 mapping keys -> noisy[*]" in ln for ln in lines)
    assert sum("✓ noisy[k" in ln for ln in lines) == MappedFolding.SHOWN
    assert any(ln.startswith("✗ noisy[k7]") for ln in lines)
    assert "✓ noisy[*]  45/50 succeeded" in lines
    assert len(lines) < 25 and sum(folding.folded.values()) > 50


def test_a_mapped_op_called_directly_reads_its_mapping_key_from_the_test_context() -> None:
    from orchestrator import build_op_context

    @op
    def keyed(context: Any) -> str:
        return f"key={context.get_mapping_key()}"

    assert keyed(build_op_context(mapping_key="k1")) == "key=k1"
    assert keyed(build_op_context()) == "key=None"
