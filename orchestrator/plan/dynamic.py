"""Mapped steps: how the plan's templates of mapped ops become steps once mapping keys are known.

A plan holds one *template* per op mapped over a dynamic output (key ``op[?]``; ``op[?][?]``
when mapped twice). When a step's dynamic output is produced, its mapping keys resolve the
templates mapped over it into steps ``op[k]`` (``op[k][j]`` inside an outer mapping), and every
collect input gathering over it learns its sources. Everything here is a pure function of the
plan, a step key and the mapping keys known so far: the execution loop, a resumed coordinator
and a worker derive the same steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from orchestrator.plan.steps import (
    ExecutionPlan,
    ExecutionStep,
    InputKind,
    StepInput,
    StepOutputHandle,
)

UNRESOLVED = "[?]"
_MAPPING_KEY = re.compile(r"^[A-Za-z0-9_]+$")


def step_key_for(handle: str, keys: tuple[str, ...]) -> str:
    """``process`` + ``("a", "b")`` -> ``process[a][b]``."""
    return handle + "".join(f"[{k}]" for k in keys)


def split_step_key(key: str) -> tuple[str, tuple[str, ...]]:
    """``process[a][b]`` -> (``process``, ``("a", "b")``)."""
    handle, bracket, rest = key.partition("[")
    if not bracket:
        return key, ()
    return handle, tuple(rest[:-1].split("]["))


def template_key(handle: str, depth: int) -> str:
    return handle + UNRESOLVED * depth


def output_id(step_key: str, output: str) -> str:
    """How a dynamic output is named where its mapping keys are recorded."""
    return f"{step_key}:{output}"


def mapping_key_problem(key: object) -> str | None:
    """What is wrong with a mapping key, or None."""
    if not isinstance(key, str) or not _MAPPING_KEY.match(key):
        return (
            f"mapping key {key!r} is not valid: use letters, digits and underscores only "
            "(for example a sanitized file name)"
        )
    return None


def in_run(plan: ExecutionPlan, step_key: str) -> bool:
    """Whether the step runs in this plan's run (its op is selected and, for a mapped step,
    its key is selected if the re-execution names keys of its op)."""
    handle, keys = split_step_key(step_key)
    base = plan.by_handle(handle)
    if base is None or len(base.mapped_over) != len(keys):
        return False
    chosen = plan.mapped.keys.get(handle) if plan.mapped is not None else None
    return chosen is None or step_key in chosen


def needed_outputs(step: ExecutionStep, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """The dynamic outputs (step key, output) whose mapping keys the step ``step`` (a template
    with ``keys``, or a plain step) must know before its collect inputs have sources."""
    out = []
    for step_input in step.inputs:
        if step_input.mode == "collect" and step_input.over is not None:
            producer, _, output = step_input.over.rpartition(":")
            handle = producer.split("[", 1)[0]
            out.append((step_key_for(handle, keys[: producer.count(UNRESOLVED)]), output))
    return out


def concrete_step(
    plan: ExecutionPlan,
    step: ExecutionStep,
    keys: tuple[str, ...],
    resolved: Mapping[str, tuple[str, ...]],
) -> ExecutionStep | None:
    """The step ``step`` (a template, or a plain step with collect inputs) runs as for mapping
    keys ``keys``; None while a collect input's mapping keys are not all known."""
    inputs = []
    for step_input in step.inputs:
        made = concrete_input(plan, step_input, keys, resolved)
        if made is None:
            return None
        inputs.append(made)
    if step.is_template:
        return replace(
            step,
            key=step_key_for(step.handle, keys),
            inputs=tuple(inputs),
            mapping_keys=keys,
        )
    return replace(step, inputs=tuple(inputs))


def mapped_step(plan: ExecutionPlan, key: str) -> ExecutionStep:
    """A mapped step derived from its template in ``plan`` (what a worker does with a step
    key it does not find in the plan).

    Raises:
        KeyError: no such op in the plan, or a step that collects (its sources depend on
            mapping keys only the run's coordinator knows: it sends the step with its launch).
    """
    handle, keys = split_step_key(key)
    template = plan.by_handle(handle)
    if template is None or len(template.mapped_over) != len(keys) or not keys:
        raise KeyError(key)
    made = concrete_step(plan, template, keys, {})
    if made is None:
        raise KeyError(f"{key} collects mapped outputs: its launch carries the step")
    return made


def _origin(plan: ExecutionPlan, source: StepOutputHandle, step_key: str) -> str | None:
    """The run a concrete source is read from: None for this run."""
    if source.run_id is not None:
        return source.run_id
    if in_run(plan, step_key):
        return None
    if plan.mapped is not None:
        return plan.mapped.parent_run_id
    return None


def concrete_input(
    plan: ExecutionPlan,
    step_input: StepInput,
    keys: tuple[str, ...],
    resolved: Mapping[str, tuple[str, ...]],
) -> StepInput | None:
    """One input of a step run for mapping keys ``keys``, its sources named by step key; None
    while it collects over a dynamic output whose keys are not known."""
    if step_input.kind not in (InputKind.STEP_OUTPUT, InputKind.NOTHING, InputKind.PARENT_RUN):
        return step_input
    if step_input.mode == "collect":
        return _collect(plan, step_input, keys, resolved)
    if not any(UNRESOLVED in src.step_key for src in step_input.sources) and not step_input.mode:
        return step_input
    sources = []
    for src in step_input.sources:
        handle = src.step_key.split("[", 1)[0]
        depth = src.step_key.count(UNRESOLVED)
        key = step_key_for(handle, keys[:depth])
        parent = step_input.kind is InputKind.PARENT_RUN
        sources.append(
            StepOutputHandle(
                key,
                src.output_name,
                None if parent else _origin(plan, src, key),
                keys[depth] if step_input.mode == "map" else None,
            )
        )
    return replace(step_input, sources=tuple(sources))


def _collect(
    plan: ExecutionPlan,
    step_input: StepInput,
    keys: tuple[str, ...],
    resolved: Mapping[str, tuple[str, ...]],
) -> StepInput | None:
    assert step_input.over is not None
    (src,) = step_input.sources
    producer, _, output = step_input.over.rpartition(":")
    producer_key = step_key_for(producer.split("[", 1)[0], keys[: producer.count(UNRESOLVED)])
    mapping_keys = resolved.get(output_id(producer_key, output))
    if mapping_keys is None:
        return None
    handle = src.step_key.split("[", 1)[0]
    depth = src.step_key.count(UNRESOLVED)
    sources = []
    for mapping_key in mapping_keys:
        if depth == len(keys):  # gathers a dynamic output itself
            key = step_key_for(handle, keys)
            origin = _origin(plan, src, key)
            sources.append(StepOutputHandle(key, src.output_name, origin, mapping_key))
            continue
        key = step_key_for(handle, (*keys, mapping_key))  # gathers an op mapped over it
        origin = _origin(plan, src, key)
        stored = plan.mapped.stored if plan.mapped is not None else frozenset()
        if origin is not None and output_id(key, src.output_name) not in stored:
            continue  # not run again and the parent stored nothing: left out, as skipped
        sources.append(StepOutputHandle(key, src.output_name, origin))
    return replace(step_input, sources=tuple(sources), fan_in=True, kind=InputKind.STEP_OUTPUT)


def expected_step_keys(
    handle: str, mapped_over: tuple[tuple[str, str], ...], resolved: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """The steps of op ``handle`` (mapped over ``mapped_over``) that the mapping keys in
    ``resolved`` make, in order."""
    prefixes: list[tuple[str, ...]] = [()]
    for producer, output in mapped_over:
        prefixes = [
            (*prefix, key)
            for prefix in prefixes
            for key in resolved.get(output_id(step_key_for(producer, prefix), output), ())
        ]
    return [step_key_for(handle, prefix) for prefix in prefixes]
