"""Running jobs from Python: ``execute_in_process`` and ``execute_job``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.definitions.executor_config import (
    InProcessConfig,
    MultiOrInProcessConfig,
    RetriesConfig,
)
from orchestrator.definitions.io_managers import InputContext, OutputContext, mem_io_manager
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.loggers import InitLoggerContext
from orchestrator.definitions.op import normalize_tags
from orchestrator.definitions.resources import ResourceDefinition, as_resource_definitions
from orchestrator.errors import InvalidInputError, RunFailedError
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import ExecutionLoop
from orchestrator.execution.reexecution import PARENT_RUN_TAG, ROOT_RUN_TAG, reexecution_arguments
from orchestrator.execution.resource_scope import ResourceScope
from orchestrator.execution.result import ExecuteInProcessResult
from orchestrator.execution.testing import invoke_op
from orchestrator.executors.base import Executor
from orchestrator.executors.registry import build_executor
from orchestrator.plan.build import ParentRun, build_plan
from orchestrator.plan.run_config import ResolvedConfig
from orchestrator.plan.steps import ExecutionPlan
from orchestrator.runs.driver import drive_run, fail_run
from orchestrator.storage.base import Instance, RunRecord, RunStatus

if TYPE_CHECKING:
    from orchestrator.distributed.ownership import RunOwnership


@dataclass
class PreparedRun:
    """A planned run, stored as QUEUED, ready to be driven."""

    job: JobDefinition
    plan: ExecutionPlan
    resolved: ResolvedConfig
    record: RunRecord
    resource_defs: dict[str, ResourceDefinition]


def run_tags_for(
    job: JobDefinition, partition_key: str | None, tags: Mapping[str, Any] | None
) -> dict[str, str]:
    """Job run tags, then partition tags, then tags given at launch (later ones win)."""
    out = dict(job.run_tags)
    if partition_key is not None and job.partitioned_config is not None:
        out.update(job.partitioned_config.get_tags_for_partition_key(partition_key))
    out.update(normalize_tags(tags))
    return out


def prepare_run(
    job: JobDefinition,
    *,
    instance: Instance,
    run_config: Any = None,
    partition_key: str | None = None,
    op_selection: Sequence[str] | None = None,
    input_values: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    pointer: Mapping[str, Any] | None = None,
    parent: ParentRun | None = None,
    in_memory_io: bool = False,
    store: bool = True,
) -> PreparedRun:
    """Validate and plan a run and store it as QUEUED (unless ``store`` is False: the caller
    stores it). Bad input raises before anything is stored (ConfigError, SelectionError,
    MissingInputError, ResourceNotFoundError, ...)."""
    if op_selection:
        job = job.get_subset(op_selection)
    resource_defs = {**job.resource_defs, **as_resource_definitions(resources)}
    if in_memory_io and not job.has_specified_io_manager and "io_manager" not in (resources or {}):
        resource_defs["io_manager"] = mem_io_manager
    run_tags = run_tags_for(job, partition_key, tags)
    plan, resolved = build_plan(
        job, run_config, partition_key, resource_defs, input_values, run_tags, parent
    )
    parent_record = instance.get_run(parent.run_id) if parent else None
    if parent_record is not None:
        run_tags[PARENT_RUN_TAG] = parent_record.run_id
        run_tags[ROOT_RUN_TAG] = parent_record.root_run_id or parent_record.run_id
    record = RunRecord(
        run_id=run_id or str(uuid.uuid4()),
        job_name=job.name,
        status=RunStatus.QUEUED,
        tags=run_tags,
        run_config=plan.run_config,
        op_selection=tuple(job.op_selection) if job.op_selection else None,
        partition_key=partition_key,
        pointer=pointer,
        parent_run_id=parent.run_id if parent else None,
        root_run_id=(parent_record.root_run_id or parent_record.run_id) if parent_record else None,
    )
    if store:
        instance.create_run(record)
    return PreparedRun(job, plan, resolved, record, resource_defs)


def build_loggers(
    job: JobDefinition, resolved: ResolvedConfig, run_id: str
) -> list[logging.Logger]:
    loggers = []
    for name, definition in job.loggers.items():
        ctx = InitLoggerContext(resolved.logger_config.get(name), run_id, job.name)
        loggers.append(definition.logger_fn(ctx))
    return loggers


def run_prepared(
    prepared: PreparedRun,
    executor: Executor,
    instance: Instance,
    *,
    input_values: Mapping[str, Any] | None = None,
    run_scoped_resources: bool = False,
) -> tuple[ExecutionLoop, ResourceScope | None]:
    """Drive a prepared run to its end on ``executor``.

    On a shared instance the calling process owns the run while it drives it, like a
    coordinator does: if the process dies, the owner record lapses and a coordinator adopts the
    run (resuming it from its event log when it has a job pointer, failing it with the reason
    when it has none)."""
    record = prepared.record
    job = prepared.job
    scope = (
        ResourceScope(prepared.resource_defs, prepared.plan.resource_config, record.run_id)
        if run_scoped_resources
        else None
    )
    ctx = RunContext(
        run_id=record.run_id,
        job=job,
        plan=prepared.plan,
        run_tags=record.tags,
        emit=instance.store_event,
        input_values={**job.input_values, **(input_values or {})},
        retries_enabled=executor.retries_enabled,
        resources=scope,
        loggers=build_loggers(job, prepared.resolved, record.run_id),
        instance=instance,
        pointer=record.pointer,
    )
    ownership = _caller_ownership(instance, record.run_id)
    try:
        loop = drive_run(ctx, executor, instance, ownership=ownership)
    finally:
        if ownership is not None:
            stored = instance.get_run(record.run_id)
            ownership.release(finished=stored is None or stored.is_finished)
    return loop, scope


def execute_in_process(
    job: JobDefinition,
    *,
    run_config: Any = None,
    instance: Instance | None = None,
    partition_key: str | None = None,
    raise_on_error: bool = True,
    op_selection: Sequence[str] | None = None,
    input_values: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> ExecuteInProcessResult:
    """See :meth:`JobDefinition.execute_in_process`."""
    from orchestrator.executors.in_process import InProcessExecutor

    instance = instance or Instance.ephemeral()
    prepared = prepare_run(
        job,
        instance=instance,
        run_config=run_config,
        partition_key=partition_key,
        op_selection=op_selection,
        input_values=input_values,
        resources=resources,
        tags=tags,
        run_id=run_id,
        in_memory_io=True,
    )
    executor = InProcessExecutor(_in_process_config(prepared.resolved.executor_config))
    loop, scope = run_prepared(
        prepared, executor, instance, input_values=input_values, run_scoped_resources=True
    )
    assert scope is not None
    result = _result(prepared, instance, loop, scope)
    # Teardown runs generator clean-up; built values (the in-memory IO manager holding the
    # outputs) stay readable for output_for_node.
    scope.teardown()
    if raise_on_error and not loop.succeeded:
        _raise_first_failure(result, executor.outcomes)
    return result


def _in_process_config(executor_config: Any) -> InProcessConfig:
    """What ``execute_in_process`` keeps of the job's own executor config: its ``retries``
    setting (every built-in executor has one; a custom executor's config gives the default)."""
    if isinstance(executor_config, MultiOrInProcessConfig):
        executor_config = executor_config.in_process or executor_config.multiprocess
    retries = getattr(executor_config, "retries", None)
    if isinstance(retries, RetriesConfig):
        return InProcessConfig(retries=retries)
    return InProcessConfig()


def _caller_ownership(instance: Instance, run_id: str) -> RunOwnership | None:
    """On a shared (Redis) instance, the calling process owns the run it drives (see
    :func:`run_prepared`); its lease keeper renews the ownership from another thread, so a
    long step in this thread does not let it lapse."""
    from orchestrator.storage.redis import RedisInstance

    if not isinstance(instance, RedisInstance):
        return None
    import os
    import socket

    from orchestrator.distributed.ownership import RunOwnership
    from orchestrator.settings import get_settings

    owner = f"caller:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    ownership = RunOwnership(
        instance.client, instance.keys, run_id, owner, get_settings().lease_seconds
    )
    ownership.claim()
    return ownership


def _result(
    prepared: PreparedRun, instance: Instance, loop: ExecutionLoop, reader: ResourceScope
) -> ExecuteInProcessResult:
    """The run's result; outputs are read back through ``reader``'s IO managers."""
    io_keys = {s.handle: {o.name: o.io_manager_key for o in s.outputs} for s in prepared.plan.steps}
    run_id = prepared.record.run_id

    nodes = prepared.job.all_op_nodes

    def load(step_key: str, output: str, mapping_key: str | None = None) -> Any:
        handle = step_key.split("[", 1)[0]
        manager = reader.get(io_keys[handle][output])
        out_def = nodes[handle].op_def.outs.get(output) if handle in nodes else None
        metadata = dict(out_def.metadata) if out_def is not None else {}
        upstream = OutputContext(
            run_id, step_key, output, definition_metadata=metadata, mapping_key=mapping_key
        )
        return manager.load_input(InputContext(output, step_key, run_id, upstream))

    return ExecuteInProcessResult(
        run_id,
        prepared.job.name,
        instance,
        load,
        loop.succeeded,
        _produced(loop),
        prepared.job.graph_def,
        {k: {o: tuple(v) for o, v in outs.items()} for k, outs in loop.mapping.items()},
    )


def _produced(loop: ExecutionLoop) -> dict[str, set[str]]:
    return {
        k: set(v)
        for k, v in loop.produced.items()
        if loop.state[k].value in ("succeeded", "failed")
    }


def _raise_first_failure(result: ExecuteInProcessResult, outcomes: Mapping[str, Any]) -> None:
    for event in result.get_step_failure_events():
        outcome = outcomes.get(event.step_key or "")
        if outcome is not None and outcome.user_exception is not None:
            raise outcome.user_exception
        if outcome is not None and outcome.error is not None:
            raise outcome.error
    raise RunFailedError(f"run {result.run_id} of job {result.job_name!r} failed")


def execute_job(
    job: Any,
    instance: Instance | None = None,
    run_config: Any = None,
    tags: Mapping[str, Any] | None = None,
    raise_on_error: bool = False,
    op_selection: Sequence[str] | None = None,
    partition_key: str | None = None,
    run_id: str | None = None,
    reexecution_options: Any = None,
) -> ExecuteInProcessResult:
    """Run a reconstructable job with its own executor (multiprocess, Celery, ...) from Python.

    Args:
        job: ``reconstructable(my_job)`` (a plain job is made reconstructable if it can be).
        instance: where the run is stored (default: an ephemeral instance).
        run_config: run config; replaces the job's default config.
        tags: extra run tags.
        raise_on_error: raise when the run fails (the op's exception for in-process runs).
        op_selection: run only these ops.
        partition_key: the partition to run.
        run_id: use this run id instead of a fresh one.
        reexecution_options: ``ReexecutionOptions`` to re-execute a finished run of ``instance``
            (``job`` may then be None: the parent's stored pointer is used). Run config,
            partition and tags default to the parent's; outputs of unselected steps are read
            from the parent's stored outputs.

    Returns:
        The result; ``output_for_node`` reads outputs back through the job's IO manager.
    """
    from orchestrator.definitions.reconstruct import reconstructable

    if reexecution_options is not None and instance is None:
        raise InvalidInputError("re-execution needs the instance that stores the parent run")

    job, run_config, op_selection, partition_key, tags, parent = reexecution_arguments(
        instance,  # type: ignore[arg-type]
        reexecution_options,
        job,
        run_config,
        op_selection,
        partition_key,
        tags,
    )
    recon = reconstructable(job)
    if op_selection:
        recon = recon.get_subset(op_selection)
    job_def = recon.get_definition()
    instance = instance or Instance.ephemeral()
    prepared = prepare_run(
        job_def,
        instance=instance,
        run_config=run_config,
        partition_key=partition_key,
        tags=tags,
        run_id=run_id,
        pointer=recon.pointer.to_dict(),
        parent=parent,
    )
    try:
        executor = build_executor(job_def.executor_def, prepared.resolved.executor_config)
    except Exception as exc:
        fail_run(instance, prepared.record.run_id, exc)
        raise
    loop, scope = run_prepared(
        prepared, executor, instance, run_scoped_resources=executor.in_process
    )
    reader = scope or ResourceScope(
        prepared.resource_defs, prepared.plan.resource_config, prepared.record.run_id
    )
    result = _result(prepared, instance, loop, reader)
    if scope is not None:
        scope.teardown()
    if raise_on_error and not loop.succeeded:
        _raise_first_failure(result, getattr(executor, "outcomes", {}))
    return result


def validate_run_config(job_def: JobDefinition, run_config: Any = None) -> dict[str, Any]:
    """Validate run config for ``job_def`` as a launch would, and return it complete: every
    op's config (defaults filled, nested under its graphs as ``ops: {graph: {ops: {...}}}``),
    resources, execution and loggers.

    Raises:
        ConfigError (``DagsterInvalidConfigError``): naming each problem's config path.
    """
    from orchestrator.plan.build import needed_resource_keys
    from orchestrator.plan.run_config import effective_run_config
    from orchestrator.plan.run_config import validate_run_config as check

    raw = effective_run_config(job_def, run_config, None)
    resource_defs = job_def.resource_defs
    resolved = check(job_def, raw, resource_defs, needed_resource_keys(job_def, resource_defs))
    ops: dict[str, Any] = {}
    for handle in job_def.op_nodes:
        *graphs, name = handle.split(".")
        level = ops
        for graph_name in graphs:
            level = level.setdefault(graph_name, {}).setdefault("ops", {})
        entry: dict[str, Any] = {}
        if handle in resolved.op_config:
            entry["config"] = resolved.op_config[handle]
        if resolved.op_inputs.get(handle):
            entry["inputs"] = dict(resolved.op_inputs[handle])
        level[name] = entry
    out: dict[str, Any] = {
        "ops": ops,
        "resources": {k: {"config": v} for k, v in resolved.resource_config.items()},
        "execution": raw.get("execution", {}),
        "loggers": {k: {"config": v} for k, v in resolved.logger_config.items()},
    }
    if resolved.job_inputs:
        out["inputs"] = dict(resolved.job_inputs)
    return out


class DefinitionsEngine:
    """The engine behind the Dagster-style entry points on definitions (the port
    ``orchestrator.definitions.engine``; ``orchestrator/__init__.py`` installs it)."""

    def execute_in_process(self, job: JobDefinition, **kwargs: Any) -> ExecuteInProcessResult:
        return execute_in_process(job, **kwargs)

    def invoke_op(self, op_def: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return invoke_op(op_def, args, kwargs)
