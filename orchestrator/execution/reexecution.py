"""Re-execution: a new run of (part of) a finished run's job whose unselected upstream outputs
are read from the parent run's stored outputs (SPEC §3's third way to feed a selected op)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.definitions.op import normalize_tags
from orchestrator.definitions.reconstruct import JobPointer, ReconstructableJob
from orchestrator.errors import InvalidInputError
from orchestrator.events import Event, EventType
from orchestrator.plan.build import ParentRun
from orchestrator.plan.dynamic import expected_step_keys, output_id
from orchestrator.storage.base import Instance, RunRecord

# Tags of a re-execution run: the run it re-executes, and the first run of that lineage.
PARENT_RUN_TAG = "parent_run_id"
ROOT_RUN_TAG = "root_run_id"


@dataclass(frozen=True)
class ReexecutionOptions:
    """Which run to re-execute and which of its steps to run again.

    Attributes:
        parent_run_id: the run to re-execute.
        step_selection: op selection queries (SPEC §3); empty re-runs the whole job.
    """

    parent_run_id: str
    step_selection: tuple[str, ...] = ()

    @classmethod
    def from_failure(cls, run_id: str, instance: Instance) -> ReexecutionOptions:
        """Re-run only the steps of ``run_id`` that did not succeed (failed, skipped, or never
        started); the rest are read from the parent's outputs.

        Raises:
            InvalidInputError: the run is unknown, still going, or has nothing to re-run.
        """
        parent = parent_record(instance, run_id)
        if not parent.is_finished:
            raise InvalidInputError(f"run {run_id} is {parent.status}; wait for it to finish")
        job = parent_job(parent).get_definition()
        events = instance.all_events(run_id)
        succeeded = {
            e.step_key for e in events if e.event_type_value == EventType.STEP_SUCCESS.value
        }
        resolved = stored_outputs(run_id, events).resolved
        todo: list[str] = []
        again: set[str] = set()  # op handles with a step to run again
        for handle, node in job.op_nodes.items():
            if not node.mapped_over:
                if handle not in succeeded:
                    todo.append(handle)
                    again.add(handle)
                continue
            if any(producer in again for producer, _ in node.mapped_over):
                todo.append(handle)  # its mapping keys are made again: all of its steps run
                again.add(handle)
                continue
            failed = [
                k
                for k in expected_step_keys(handle, node.mapped_over, resolved)
                if k not in succeeded
            ]
            todo += failed
            if failed:
                again.add(handle)
        if not todo:
            raise InvalidInputError(f"run {run_id} has no failed or unfinished steps to re-run")
        return cls(run_id, tuple(todo))


def reexecution_arguments(
    instance: Instance,
    options: ReexecutionOptions | None,
    job: Any,
    run_config: Any,
    op_selection: Sequence[str] | None,
    partition_key: str | None,
    tags: Mapping[str, Any] | None,
) -> tuple[Any, Any, list[str] | None, str | None, Mapping[str, Any] | None, ParentRun | None]:
    """A run's (job, run config, op selection, partition key, tags, parent outputs): as given
    when ``options`` is None; for a re-execution of ``options.parent_run_id``, what is not
    given defaults to the parent's (its parent/root tags excepted; the job to its stored
    pointer), and the parent's stored outputs come along.

    Raises:
        InvalidInputError: the parent run is unknown or stored no job pointer.
    """
    if options is None:
        return (
            job,
            run_config,
            list(op_selection) if op_selection else None,
            partition_key,
            tags,
            None,
        )

    record = parent_record(instance, options.parent_run_id)
    inherited = {k: v for k, v in record.tags.items() if k not in (PARENT_RUN_TAG, ROOT_RUN_TAG)}
    return (
        job if job is not None else parent_job(record),
        run_config if run_config is not None else dict(record.run_config),
        list(op_selection or options.step_selection) or None,
        partition_key or record.partition_key,
        {**inherited, **normalize_tags(tags)},
        parent_outputs(instance, record.run_id),
    )


def parent_record(instance: Instance, run_id: str) -> RunRecord:
    record = instance.get_run(run_id)
    if record is None:
        raise InvalidInputError(f"no run with id {run_id!r} in this instance")
    return record


def parent_job(record: RunRecord) -> ReconstructableJob:
    """The parent run's job, rebuilt from its stored pointer (subset as the parent ran it).

    Raises:
        InvalidInputError: the run was executed in-process and stored no pointer.
    """
    if not record.pointer:
        raise InvalidInputError(
            f"run {record.run_id} stored no job pointer (it ran with execute_in_process); "
            "re-execute it with execute_job(reconstructable(job), reexecution_options=...)"
        )
    pointer = JobPointer.from_dict(record.pointer)
    return ReconstructableJob(
        JobPointer(
            pointer.location,
            pointer.attribute,
            pointer.job_name,
            pointer.call,
            pointer.args,
            pointer.kwargs,
        )
    )


def parent_outputs(instance: Instance, run_id: str) -> ParentRun:
    """The outputs the parent run stored (those of step attempts that succeeded) and the
    mapping keys its dynamic outputs produced."""
    return stored_outputs(run_id, instance.all_events(run_id))


def stored_outputs(run_id: str, events: Iterable[Event]) -> ParentRun:
    """:func:`parent_outputs` from the run's events, already read."""
    outputs: dict[tuple[str, int | None], dict[str, list[str]]] = {}
    succeeded: set[tuple[str, int | None]] = set()
    dynamic: set[tuple[str, str]] = set()
    for event in events:
        if event.step_key is None:
            continue
        attempt = (event.step_key, event.data.get("attempt"))
        if event.event_type_value == EventType.STEP_OUTPUT.value:
            name = event.data["output_name"]
            keys = outputs.setdefault(attempt, {}).setdefault(name, [])
            if event.data.get("mapping_key") is not None:
                keys.append(str(event.data["mapping_key"]))
            if event.data.get("dynamic"):
                dynamic.add((event.step_key, name))
        elif event.event_type_value == EventType.STEP_SUCCESS.value:
            succeeded.add(attempt)
    produced: set[tuple[str, str]] = set()
    resolved: dict[str, tuple[str, ...]] = {}
    for attempt, names in outputs.items():
        if attempt not in succeeded:
            continue
        for name, keys in names.items():
            produced.add((attempt[0], name))
            if (attempt[0], name) in dynamic:
                resolved[output_id(attempt[0], name)] = tuple(keys)
    return ParentRun(run_id, frozenset(produced), resolved)
