"""The planner: (job, selection, run config, partition) -> :class:`ExecutionPlan`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.definitions.io import In, is_dynamic
from orchestrator.definitions.nodes import FanIn, FromJobInput, FromStep, OpNode, Source
from orchestrator.errors import MissingInputError, MissingResourceError, did_you_mean
from orchestrator.plan.dynamic import output_id, template_key
from orchestrator.plan.run_config import (
    ResolvedConfig,
    effective_run_config,
    validate_run_config,
)
from orchestrator.plan.steps import (
    DEFAULT_QUEUE,
    PRIORITY_TAG,
    QUEUE_TAG,
    ExecutionPlan,
    ExecutionStep,
    InputKind,
    MappedSelection,
    StepInput,
    StepOutput,
    StepOutputHandle,
)

if TYPE_CHECKING:
    from orchestrator.definitions.job import JobDefinition
    from orchestrator.definitions.resources import ResourceDefinition


@dataclass(frozen=True)
class ParentRun:
    """A finished run whose stored outputs a re-execution may read."""

    run_id: str
    outputs: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (step, output)
    # the mapping keys each of its dynamic outputs produced ("step:output" -> keys)
    resolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def parse_priority(value: Any, where: str) -> int:
    """Tag values are strings; a priority must be an integer."""
    try:
        return int(value)
    except (TypeError, ValueError):
        from orchestrator.errors import InvalidInputError

        raise InvalidInputError(
            f"{where}: tag {PRIORITY_TAG!r} must be an integer, got {value!r}"
        ) from None


def needed_resource_keys(
    job: JobDefinition, resource_defs: Mapping[str, ResourceDefinition]
) -> set[str]:
    """Resource keys the selected ops (and their hooks and resources) need.

    Raises:
        MissingResourceError: an op, hook or resource needs a key the job does not provide.
    """
    needed: set[str] = set()
    for node in job.op_nodes.values():
        wanted = set(node.op_def.all_resource_keys)
        for hook in node.hook_defs:
            wanted |= hook.required_resource_keys
        for key in sorted(wanted):
            if key not in resource_defs:
                raise MissingResourceError(
                    f"op {node.handle!r} requires resource {key!r}, which job {job.name!r} does "
                    f"not provide (it has: {', '.join(sorted(resource_defs)) or 'none'})."
                    f"{did_you_mean(key, resource_defs)} Add it to resource_defs, to "
                    "Definitions(resources=...), or pass it with resources=."
                )
        needed |= wanted
    stack = list(needed)
    while stack:
        for dep in resource_defs[stack.pop()].required_resource_keys:
            if dep not in resource_defs:
                raise MissingResourceError(
                    f"a resource requires resource {dep!r}, which job {job.name!r} does not provide"
                )
            if dep not in needed:
                needed.add(dep)
                stack.append(dep)
    return needed


class _InputPlanner:
    def __init__(
        self,
        job: JobDefinition,
        config: ResolvedConfig,
        input_values: Mapping[str, Any],
        parent: ParentRun | None,
    ):
        self.job = job
        self.config = config
        self.input_values = input_values
        self.parent = parent
        self.selected = job.selected_handles

    def depth(self, handle: str) -> int:
        return len(self.job.all_op_nodes[handle].mapped_over)

    def plan(self, node: OpNode, name: str, spec: In, source: Source) -> StepInput | None:
        """Plan one input; None means the input is dropped (an unconnected Nothing input)."""
        dynamic = self._dynamic(node, name, spec, source)
        if dynamic is not None:
            return dynamic
        refs = self._selected_refs(source)
        if refs is not None:
            kind = InputKind.NOTHING if spec.is_nothing else InputKind.STEP_OUTPUT
            return StepInput(name, kind, sources=refs, fan_in=isinstance(source, FanIn))
        if spec.is_nothing:
            return None  # an order-only dependency on something not run: nothing to wait for
        mixed = self._mixed_fan_in(source)
        if mixed is not None:
            return StepInput(name, InputKind.STEP_OUTPUT, sources=mixed, fan_in=True)
        provided = self._provided(node.handle, name, source)
        if provided is not None:
            return provided
        raise MissingInputError(self._missing_message(node, name, source))

    def _dynamic(self, node: OpNode, name: str, spec: In, source: Source) -> StepInput | None:
        """An input that maps over or collects a dynamic output, or reads a mapped op's output
        (sources named by template key: ``orchestrator.plan.dynamic`` resolves them per
        mapping key); None for any other input."""
        parts = source.sources if isinstance(source, FanIn) else (source,)
        steps = [p for p in parts if isinstance(p, FromStep)]
        if not any(p.mode or self.depth(p.step_key) for p in steps):
            return None
        refs = []
        for part in steps:
            if part.step_key in self.selected:
                run_id = None
            elif self.parent is not None:
                run_id = self.parent.run_id
            else:
                raise MissingInputError(self._missing_message(node, name, source))
            key = template_key(part.step_key, self.depth(part.step_key))
            refs.append(StepOutputHandle(key, part.output, run_id))
        over, mode = None, ""
        if isinstance(source, FromStep):
            mode = source.mode
            up = self.job.all_op_nodes[source.step_key]
            if mode == "collect" and is_dynamic(up.op_def.outs[source.output]):
                over = output_id(template_key(up.handle, len(up.mapped_over)), source.output)
            elif mode == "collect":
                handle, output = up.mapped_over[-1]
                over = output_id(template_key(handle, len(up.mapped_over) - 1), output)
        return StepInput(
            name,
            InputKind.NOTHING if spec.is_nothing else InputKind.STEP_OUTPUT,
            sources=tuple(refs),
            fan_in=isinstance(source, FanIn) or mode == "collect",
            mode=mode,
            over=over,
        )

    def _selected_refs(self, source: Source) -> tuple[StepOutputHandle, ...] | None:
        """Step outputs of this run that feed the input, or None if any source is elsewhere."""
        parts = source.sources if isinstance(source, FanIn) else (source,)
        if source is None or not all(
            isinstance(p, FromStep) and p.step_key in self.selected for p in parts
        ):
            return None
        return tuple(StepOutputHandle(p.step_key, p.output) for p in parts)  # type: ignore[union-attr]

    def _mixed_fan_in(self, source: Source) -> tuple[StepOutputHandle, ...] | None:
        """A re-execution's fan-in whose sources are partly steps run again and partly
        outputs the parent run stored (read from it, in the fan-in's order); None otherwise."""
        if self.parent is None or not isinstance(source, FanIn):
            return None
        refs = []
        for part in source.sources:
            if not isinstance(part, FromStep):
                return None
            if part.step_key in self.selected:
                refs.append(StepOutputHandle(part.step_key, part.output))
            elif (part.step_key, part.output) in self.parent.outputs:
                refs.append(StepOutputHandle(part.step_key, part.output, self.parent.run_id))
            else:
                return None
        if all(ref.run_id is not None for ref in refs):
            return None  # all stored: a PARENT_RUN input (see _provided)
        return tuple(refs)

    def _provided(self, handle: str, name: str, source: Source) -> StepInput | None:
        op_inputs = self.config.op_inputs.get(handle, {})
        if name in op_inputs:
            return StepInput(name, InputKind.VALUE, value=op_inputs[name])
        # given at the level of a graph it is mapped from (innermost graph first)
        for graph_handle, graph_input in self.job.all_op_nodes[handle].via.get(name, ()):
            graph_inputs = self.config.op_inputs.get(graph_handle, {})
            if graph_input in graph_inputs:
                return StepInput(name, InputKind.VALUE, value=graph_inputs[graph_input])
        if f"{handle}.{name}" in self.input_values:
            return StepInput(name, InputKind.INPUT_VALUE, key=f"{handle}.{name}")
        if isinstance(source, FromJobInput):
            if source.name in self.input_values:
                return StepInput(name, InputKind.INPUT_VALUE, key=source.name)
            if source.name in self.config.job_inputs:
                return StepInput(name, InputKind.VALUE, value=self.config.job_inputs[source.name])
        parts = source.sources if isinstance(source, FanIn) else (source,)
        if (
            self.parent is not None
            and source is not None
            and all(
                isinstance(p, FromStep) and (p.step_key, p.output) in self.parent.outputs
                for p in parts
            )
        ):
            refs = tuple(StepOutputHandle(p.step_key, p.output) for p in parts)  # type: ignore[union-attr]
            return StepInput(
                name,
                InputKind.PARENT_RUN,
                sources=refs,
                fan_in=isinstance(source, FanIn),
                parent_run_id=self.parent.run_id,
            )
        spec = self.job.all_op_nodes[handle].op_def.ins[name]
        if spec.input_manager_key:
            return StepInput(name, InputKind.INPUT_MANAGER, key=spec.input_manager_key)
        if spec.has_default:
            return StepInput(name, InputKind.DEFAULT)
        return None

    def _missing_message(self, node: OpNode, name: str, source: Source) -> str:
        if isinstance(source, FromStep | FanIn):
            parts = source.sources if isinstance(source, FanIn) else (source,)
            absent = [
                p.step_key
                for p in parts
                if isinstance(p, FromStep)
                and p.step_key not in self.selected
                and (self.parent is None or (p.step_key, p.output) not in self.parent.outputs)
            ]
            upstream = ", ".join(repr(key) for key in absent)
            if self.parent is not None:
                why = (
                    f"upstream op {upstream} is not selected and parent run "
                    f"{self.parent.run_id} stored no output of it"
                )
            else:
                why = f"its upstream op {upstream} is not selected"
        elif isinstance(source, FromJobInput):
            why = f"it comes from the job input {source.name!r}, which has no value"
        else:
            why = "it is not connected to any op output and has no default value"
        *graphs, op_name = node.handle.split(".")
        path = f"{{{op_name}: {{inputs: {{{name}: ...}}}}}}"
        for graph_name in reversed(graphs):  # ops inside graphs nest under `ops`
            path = f"{{{graph_name}: {{ops: {path}}}}}"
        via = node.via.get(name, ())
        if via:  # the outermost graph it is mapped from takes it too
            graph_handle, graph_input = via[-1]
            *outer, graph_name = graph_handle.split(".")
            graph_path = f"{{{graph_name}: {{inputs: {{{graph_input}: ...}}}}}}"
            for outer_name in reversed(outer):
                graph_path = f"{{{outer_name}: {{ops: {graph_path}}}}}"
            path = f"{path} or, for the graph, ops: {graph_path}"
        return (
            f"Input {name!r} of op {node.handle!r} has no value: {why}. Provide it in one of "
            f"three ways: run config (ops: {path}), input_values="
            f"{{'{node.handle}.{name}': ...}}, or re-execute "
            "a parent run that stored this output (orchestrator run reexecute)."
        )


def resolve_effective_config(job: JobDefinition, raw: Mapping[str, Any]) -> ResolvedConfig:
    """Validate a run's stored run config (``ExecutionPlan.run_config``: already the
    effective config, after config mapping and partitions) without planning again: what a
    process driving a stored plan needs (executor and logger config).

    Raises:
        ConfigError: the config no longer validates (the job changed since the launch).
    """
    resource_defs = job.resource_defs
    return validate_run_config(job, raw, resource_defs, needed_resource_keys(job, resource_defs))


def build_plan(
    job: JobDefinition,
    run_config: Any = None,
    partition_key: str | None = None,
    resource_defs: Mapping[str, ResourceDefinition] | None = None,
    input_values: Mapping[str, Any] | None = None,
    run_tags: Mapping[str, str] | None = None,
    parent: ParentRun | None = None,
) -> tuple[ExecutionPlan, ResolvedConfig]:
    """Plan a run of ``job`` (its ``op_selection`` included).

    Args:
        job: the job (a subset if it has an op selection).
        run_config: launch run config; replaces the job's default config.
        partition_key: partition to run, for partitioned jobs.
        resource_defs: the resources the run will use (default: the job's).
        input_values: Python values for job inputs or ``"op.input"`` keys.
        run_tags: the run's tags (for the run-level ``orchestrator/priority``).
        parent: the parent run, when re-executing.

    Returns:
        The plan, and the validated config it was built from.

    Raises:
        ConfigError, PartitionError, MissingInputError, MissingResourceError, SelectionError.
    """
    resource_defs = resource_defs if resource_defs is not None else job.resource_defs
    raw = effective_run_config(job, run_config, partition_key)
    needed = needed_resource_keys(job, resource_defs)
    resolved = validate_run_config(job, raw, resource_defs, needed)
    values = {**job.input_values, **(input_values or {})}
    inputs = _InputPlanner(job, resolved, values, parent)
    run_priority = parse_priority((run_tags or {}).get(PRIORITY_TAG, 0), "run tags")

    steps: list[ExecutionStep] = []
    for handle, node in job.op_nodes.items():
        step_inputs = []
        for name, spec in node.op_def.ins.items():
            planned = inputs.plan(node, name, spec, node.inputs.get(name))
            if planned is not None:
                step_inputs.append(planned)
        outputs = tuple(
            StepOutput(
                n,
                o.is_required,
                o.is_nothing,
                o.io_manager_key,
                resolved.op_outputs.get(handle, {}).get(n),
                is_dynamic(o),
            )
            for n, o in node.op_def.outs.items()
        )
        resources = set(node.op_def.all_resource_keys)
        for hook in node.hook_defs:
            resources |= hook.required_resource_keys
        steps.append(
            ExecutionStep(
                key=template_key(handle, len(node.mapped_over)),
                op_name=node.op_def.name,
                inputs=tuple(step_inputs),
                outputs=outputs,
                tags=dict(node.tags),
                retry_policy=node.retry_policy,
                queue=node.tags.get(QUEUE_TAG, DEFAULT_QUEUE),
                priority=parse_priority(node.tags.get(PRIORITY_TAG, 0), f"op {handle!r}")
                + run_priority,
                config=resolved.op_config.get(handle),
                resource_keys=tuple(sorted(resources)),
                mapped_over=node.mapped_over,
            )
        )
    plan = ExecutionPlan(
        job_name=job.name,
        steps=tuple(steps),
        run_config=raw,
        op_selection=tuple(job.op_selection) if job.op_selection else None,
        partition_key=partition_key,
        resource_config=resolved.resource_config,
        mapped=_mapped_selection(job, parent),
    )
    return plan, resolved


def _mapped_selection(job: JobDefinition, parent: ParentRun | None) -> MappedSelection | None:
    """What a re-execution's mapped steps take from the parent run (None when nothing)."""
    keys = job.selected_mapping_keys
    if parent is None:
        if keys:
            from orchestrator.errors import SelectionError

            named = ", ".join(sorted(k for v in keys.values() for k in v))
            raise SelectionError(
                f"a selection of mapped steps ({named}) needs a parent run to take the other "
                "mapping keys from: re-execute a run (orchestrator run reexecute)"
            )
        return None
    stored = frozenset(output_id(step, out) for step, out in parent.outputs if "[" in step)
    if not parent.resolved and not stored:
        return None
    return MappedSelection(parent.run_id, dict(parent.resolved), keys, stored)
