"""Results of ``execute_in_process`` and ``execute_job``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from orchestrator.errors import InvariantViolationError
from orchestrator.events import Event, EventType


def _is_dagster_event(event: Event) -> bool:
    from orchestrator.execution.loop import LAUNCHED

    if event.event_type_value == EventType.LOG_MESSAGE.value:
        return False
    return not (
        event.event_type_value == EventType.ENGINE_EVENT.value
        and event.data.get("kind") == LAUNCHED
    )


class ExecuteInProcessResult:
    """The outcome of a run executed from Python.

    Attributes:
        run_id: the run.
        success: True when no step failed (skipped steps are fine) and the run was not
            cancelled.
        all_events: every event of the run, oldest first.
    """

    def __init__(
        self,
        run_id: str,
        job_name: str,
        instance: Any,
        load_output: Callable[..., Any],
        success: bool,
        produced: dict[str, set[str]],
        graph: Any = None,
        mapping: dict[str, dict[str, tuple[str, ...]]] | None = None,
    ):
        self.run_id = run_id
        self.job_name = job_name
        self._instance = instance
        self._load_output = load_output
        self.success = success
        self._produced = produced
        self._graph = graph
        self._mapping = mapping or {}

    @property
    def all_events(self) -> list[Event]:
        return list(self._instance.all_events(self.run_id))

    @property
    def run(self) -> Any:
        """The stored run record."""
        return self._instance.get_run(self.run_id)

    dagster_run = run

    @property
    def instance(self) -> Any:
        return self._instance

    @property
    def all_node_events(self) -> list[Event]:
        """Every step event (events of ops), oldest first; as in Dagster, log lines and the
        engine's own bookkeeping (a step's launch) are left out (``all_events`` has them)."""
        return [e for e in self.all_events if e.step_key is not None and _is_dagster_event(e)]

    def events_for_node(self, node_name: str) -> list[Event]:
        """Events of one node: an op's handle (``outer.inner.op``) or a graph's (``outer``),
        whose events are those of every op inside it (log lines and launch bookkeeping left
        out, as in Dagster)."""
        prefix = node_name + "."
        return [
            e
            for e in self.all_node_events
            if e.step_key == node_name or (e.step_key or "").startswith(prefix)
        ]

    def filter_events(self, event_filter: Callable[[Event], bool]) -> list[Event]:
        return [e for e in self.all_events if event_filter(e)]

    def get_job_success_event(self) -> Event:
        return self._only(EventType.RUN_SUCCESS)

    def get_job_failure_event(self) -> Event:
        return self._only(EventType.RUN_FAILURE)

    def _only(self, etype: EventType) -> Event:
        found = self._of_type(etype)
        if not found:
            raise InvariantViolationError(f"run {self.run_id} has no {etype.value} event")
        return found[-1]

    def get_asset_materialization_events(self) -> list[Event]:
        return self._of_type(EventType.ASSET_MATERIALIZATION)

    def get_asset_observation_events(self) -> list[Event]:
        return self._of_type(EventType.ASSET_OBSERVATION)

    def asset_materializations_for_node(self, node_name: str) -> list[Any]:
        """The ``AssetMaterialization``s the node's ops logged."""
        return [
            e.event_specific_data.materialization
            for e in self.events_for_node(node_name)
            if e.is_asset_materialization
        ]

    def asset_observations_for_node(self, node_name: str) -> list[Any]:
        return [
            e.event_specific_data.asset_observation
            for e in self.events_for_node(node_name)
            if e.is_asset_observation
        ]

    def expectation_results_for_node(self, node_name: str) -> list[Any]:
        return [
            e.event_specific_data.expectation_result
            for e in self.events_for_node(node_name)
            if e.is_expectation_result
        ]

    def _of_type(self, etype: EventType) -> list[Event]:
        return [e for e in self.all_events if e.event_type_value == etype.value]

    def get_step_success_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_SUCCESS)

    def get_step_failure_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_FAILURE)

    def get_step_skipped_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_SKIPPED)

    def output_for_node(self, node_str: str, output_name: str = "result") -> Any:
        """The value of output ``output_name`` of op ``node_str`` (its handle). As in Dagster,
        a dynamic output, or the output of an op mapped over one, is a dict keyed by mapping
        key (in the order the keys were produced).

        Raises:
            InvariantViolationError: the op did not run in this run, or did not produce that output.
        """
        mapped = self._mapped_values(node_str, output_name)
        if mapped is not None:
            return mapped
        if node_str not in self._produced and self._graph is not None:
            from orchestrator.definitions.nodes import resolve_output

            with contextlib.suppress(KeyError):
                node_str, output_name = resolve_output(self._graph, node_str, output_name)
        if node_str not in self._produced:
            raise InvariantViolationError(
                f"op {node_str!r} did not run in run {self.run_id}; ops that ran: "
                f"{sorted(self._produced)}"
            )
        if output_name not in self._produced[node_str]:
            raise InvariantViolationError(
                f"op {node_str!r} produced no output {output_name!r} in run {self.run_id} "
                f"(produced: {sorted(self._produced[node_str])})"
            )
        return self._load_output(node_str, output_name)

    def _mapped_values(self, node_str: str, output_name: str) -> dict[str, Any] | None:
        keys = self._mapping.get(node_str, {}).get(output_name)
        if keys is not None and output_name in self._produced.get(node_str, ()):
            return {k: self._load_output(node_str, output_name, k) for k in keys}
        prefix = node_str + "["
        steps = [k for k in self._produced if k.startswith(prefix)]
        if node_str in self._produced or not steps:
            return None
        return {
            step[len(prefix) : -1]: self._load_output(step, output_name)
            for step in steps
            if output_name in self._produced[step]
        }

    def output_value(self, output_name: str = "result") -> Any:
        """For a single-op job: that op's output."""
        if len(self._produced) != 1:
            raise InvariantViolationError(
                "output_value() needs a job with one op; use output_for_node(name)"
            )
        return self.output_for_node(next(iter(self._produced)), output_name)

    def __repr__(self) -> str:
        return f"<ExecuteInProcessResult run_id={self.run_id} success={self.success}>"


ExecuteJobResult = ExecuteInProcessResult
