"""Mapped steps grouped by their op, as ``run show``, the run detail API and the run page show
them: one group ``process[*]`` instead of one line per step ``process[a]``, ``process[b]``, ...

An op mapped over a dynamic output runs as one step per mapping key (``process[a]``;
``inner[a][b]`` when mapped twice; ``g.process[a]`` inside a graph). The stored plan holds a
*template* of it (``process[?]``), which is not a step; ``mapping_resolved`` engine events say
which keys each dynamic output produced; a STEP_SKIPPED of ``process[?]`` says it mapped nothing.
:func:`summarize_run` folds the plan and the event log into the steps (as
:func:`~orchestrator.cli.run_view.step_summaries`) and one :class:`StepGroup` per mapped op.
Pure functions: nothing here reads storage or prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.events import Event, EventType
from orchestrator.execution.loop import MAPPING_RESOLVED
from orchestrator.plan.dynamic import UNRESOLVED, expected_step_keys, output_id, split_step_key
from orchestrator.views.steps import StepStatus, StepSummary, step_summaries

# How a group counts its steps, in the order they are shown.
COUNT_ORDER: tuple[StepStatus, ...] = (
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.RUNNING,
    StepStatus.UP_FOR_RETRY,
    StepStatus.WAITING_FOR_SLOT,
    StepStatus.QUEUED,
    StepStatus.SKIPPED,
    StepStatus.NOT_STARTED,
)
# A group takes the state of its most active unfinished step, in this order of precedence.
_ACTIVE = (
    StepStatus.RUNNING,
    StepStatus.UP_FOR_RETRY,
    StepStatus.QUEUED,
    StepStatus.WAITING_FOR_SLOT,
    StepStatus.NOT_STARTED,
)


def mapped_handle(step_key: str) -> str | None:
    """The op handle of a mapped step, template or placeholder (``g.process[a]`` ->
    ``g.process``); None for a step that is not mapped."""
    handle, bracket, _ = step_key.partition("[")
    return handle if bracket else None


def is_placeholder(step_key: str) -> bool:
    """Whether the key is a template or placeholder (``process[?]``), not a step that runs."""
    return UNRESOLVED in step_key


def group_label(handle: str, depth: int) -> str:
    """``process[*]`` (``inner[*][*]`` for an op mapped twice)."""
    return handle + "[*]" * max(depth, 1)


@dataclass(frozen=True)
class StepGroup:
    """The steps of one mapped op.

    Attributes:
        handle: the op's handle (``process``, ``g.process``).
        depth: how many mappings the op is under (1 for ``process[a]``).
        step_keys: its steps, in the order of the run's steps (placeholders left out).
        counts: its steps per state (every state of :data:`COUNT_ORDER`, zeros included).
        start_time: the first start of any of its steps, if one started.
        end_time: the last outcome of its steps, once none is unfinished.
        failed: its failed steps, in order.
        unmapped: placeholders skipped because a dynamic output mapped nothing
            (``process[?]``; ``inner[a][?]`` for one outer key).
        reasons: why those mapped nothing (``dynamic output 'result' of 'emit' produced no
            mapping keys``).
        producer: the op handle whose dynamic output it is mapped over (innermost), if known.
    """

    handle: str
    depth: int
    step_keys: tuple[str, ...] = ()
    counts: Mapping[StepStatus, int] = field(default_factory=dict)
    start_time: float | None = None
    end_time: float | None = None
    failed: tuple[StepSummary, ...] = ()
    unmapped: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    producer: str | None = None

    @property
    def label(self) -> str:
        return group_label(self.handle, self.depth)

    @property
    def size(self) -> int:
        return len(self.step_keys)

    @property
    def status(self) -> StepStatus:
        """Its most active unfinished state; once all finished: failed if one failed,
        succeeded if one succeeded, else skipped (also when it mapped nothing)."""
        if not self.step_keys:
            return StepStatus.SKIPPED if self.unmapped else StepStatus.NOT_STARTED
        for status in (*_ACTIVE, StepStatus.FAILED, StepStatus.SUCCEEDED):
            if self.counts.get(status):
                return status
        return StepStatus.SKIPPED

    @property
    def note(self) -> str | None:
        """Why it has no steps (nothing to map, mapping keys not known yet), or which of its
        mappings mapped nothing."""
        reason = "; ".join(self.reasons) or None
        if not self.step_keys and self.unmapped:
            return f"nothing to map: {reason}" if reason else "nothing to map"
        if not self.step_keys:
            if self.producer:
                return f"waiting for the mapping keys of {self.producer!r}"
            return "waiting for mapping keys"
        if self.unmapped:
            shown = ", ".join(self.unmapped[:3])
            more = f" and {len(self.unmapped) - 3} more" if len(self.unmapped) > 3 else ""
            return f"nothing to map for {shown}{more}"
        return None

    @property
    def duration_ms(self) -> float | None:
        """First start to last outcome of its steps (None while one is unfinished)."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, (self.end_time - self.start_time) * 1000)


@dataclass(frozen=True)
class RunSteps:
    """A run's steps and the groups of its mapped ones (see :func:`summarize_run`)."""

    steps: list[StepSummary]
    groups: list[StepGroup]

    def rows(self) -> list[StepSummary | StepGroup]:
        """What ``run show`` lists, in order: each step that is not mapped, and each group in
        place of its steps (at its first step; a group with no step follows the op it is mapped
        over)."""
        by_handle = {g.handle: g for g in self.groups}
        after: dict[str, list[StepGroup]] = {}
        for group in self.groups:
            if not group.step_keys and group.producer:
                after.setdefault(group.producer, []).append(group)
        anchored = {g.handle for followers in after.values() for g in followers}
        rows: list[StepSummary | StepGroup] = []
        placed: set[str] = set()

        def place(row: StepSummary | StepGroup, name: str) -> None:
            rows.append(row)
            placed.add(name)
            for follower in after.pop(name, []):
                place(follower, follower.handle)

        for step in self.steps:
            handle = mapped_handle(step.step_key)
            if handle is None:
                place(step, step.step_key)
            elif handle not in placed and handle not in anchored and handle in by_handle:
                place(by_handle[handle], handle)
        for group in self.groups:
            if group.handle not in placed:
                place(group, group.handle)
        return rows

    @property
    def real_steps(self) -> list[StepSummary]:
        """The steps without placeholders (``process[?]``): the steps that ran or will run."""
        return [s for s in self.steps if not is_placeholder(s.step_key)]


# -- reading the plan and the events -------------------------------------------------------


@dataclass
class _Mappings:
    """What a run knows of its mapped ops: from the plan's templates, then from its
    ``mapping_resolved`` events (in plan order, then in the order first met)."""

    depth: dict[str, int] = field(default_factory=dict)  # handle -> how many mappings
    producer: dict[str, str] = field(default_factory=dict)  # handle -> producer's handle
    mapped_over: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "step:output" -> keys
    chosen: dict[str, frozenset[str]] = field(default_factory=dict)  # re-execution's keys
    reasons: dict[str, list[str]] = field(default_factory=dict)  # handle -> nothing mapped
    order: list[str] = field(default_factory=list)  # plan keys, templates included

    def know(self, handle: str, depth: int, producer: str | None) -> None:
        self.depth.setdefault(handle, depth)
        if producer:
            self.producer.setdefault(handle, producer)


def _read_plan(plan_json: str | None, into: _Mappings) -> None:
    """The plan's step order, templates and (for a re-execution) what it takes over from
    its parent; nothing when there is no readable plan."""
    if not plan_json:
        return
    try:
        plan = json.loads(plan_json)
    except ValueError:
        return
    if not isinstance(plan, Mapping) or not isinstance(plan.get("steps"), list):
        return
    for step in plan["steps"]:
        if not isinstance(step, Mapping) or not isinstance(step.get("key"), str):
            continue
        key: str = step["key"]
        into.order.append(key)
        if not is_placeholder(key):
            continue
        handle = split_step_key(key)[0]
        over = tuple((str(h), str(o)) for h, o in step.get("mapped_over") or ())
        into.know(handle, key.count(UNRESOLVED), over[-1][0] if over else None)
        if over:
            into.mapped_over[handle] = over
    mapped = plan.get("mapped")
    if isinstance(mapped, Mapping):
        for oid, keys in (mapped.get("resolved") or {}).items():
            into.resolved[str(oid)] = tuple(str(k) for k in keys)
        for handle, keys in (mapped.get("keys") or {}).items():
            into.chosen[str(handle)] = frozenset(str(k) for k in keys)


def _read_events(events: Iterable[Event], into: _Mappings) -> None:
    """Mapped ops and their mapping keys from the run's ``mapping_resolved`` events."""
    for event in events:
        if event.step_key is None or event.event_type_value != EventType.ENGINE_EVENT:
            continue
        data = event.data
        if data.get("kind") != MAPPING_RESOLVED:
            continue
        producer, prefix = split_step_key(event.step_key)
        output = str(data.get("output_name"))
        keys = data.get("mapping_keys")
        if isinstance(keys, list):
            into.resolved[output_id(event.step_key, output)] = tuple(str(k) for k in keys)
        for handle in data.get("steps") or ():
            into.know(str(handle), len(prefix) + 1, producer)
            if not keys:
                what = "was not produced" if keys is None else "produced no mapping keys"
                reason = f"dynamic output {output!r} of {event.step_key!r} {what}"
                into.reasons.setdefault(str(handle), []).append(reason)


def _planned_keys(mappings: _Mappings) -> list[str]:
    """The plan's steps in order, each template in place of the steps its mapping keys made
    so far (those a re-execution selected)."""
    keys: list[str] = []
    for key in mappings.order:
        if not is_placeholder(key):
            keys.append(key)
            continue
        handle = split_step_key(key)[0]
        over = mappings.mapped_over.get(handle)
        if not over:
            continue
        made = expected_step_keys(handle, over, mappings.resolved)
        chosen = mappings.chosen.get(handle)
        keys += [k for k in made if chosen is None or k in chosen]
    return keys


def summarize_run(events: Sequence[Event], plan_json: str | None = None) -> RunSteps:
    """A run's steps and its mapped ops' groups.

    Args:
        events: the run's events, oldest first.
        plan_json: the run's stored plan (``ExecutionPlan.to_json``), if any: its steps are
            listed first, in order, ``not started`` until they have an event; a template is
            replaced by the steps its mapping keys made so far.

    Returns:
        Every step (as :func:`~orchestrator.cli.run_view.step_summaries`; placeholders such
        as a skipped ``process[?]`` included) and one :class:`StepGroup` per mapped op.
    """
    mappings = _Mappings()
    _read_plan(plan_json, mappings)
    _read_events(events, mappings)
    steps = step_summaries(events, _planned_keys(mappings))
    return RunSteps(steps, _group_steps(steps, mappings))


def _group_steps(steps: Sequence[StepSummary], known: _Mappings) -> list[StepGroup]:
    """One group per mapped op: those ``known`` from the plan and events first, then any
    other op with a mapped step among ``steps``."""
    members: dict[str, list[StepSummary]] = {handle: [] for handle in known.depth}
    for step in steps:
        handle = mapped_handle(step.step_key)
        if handle is not None:
            members.setdefault(handle, []).append(step)
    return [_group(handle, found, known) for handle, found in members.items()]


def _group(handle: str, found: list[StepSummary], known: _Mappings) -> StepGroup:
    real = [s for s in found if not is_placeholder(s.step_key)]
    unmapped = [s for s in found if is_placeholder(s.step_key)]
    counts = dict.fromkeys(COUNT_ORDER, 0)
    for step in real:
        counts[step.status] = counts.get(step.status, 0) + 1
    starts = [s.start_time for s in real if s.start_time is not None]
    ends = [s.end_time for s in real if s.end_time is not None]
    unfinished = any(
        s.status not in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED) for s in real
    )
    reasons = known.reasons.get(handle) or [s.note for s in unmapped if s.note]
    depth = known.depth.get(handle) or max((s.step_key.count("[") for s in found), default=1)
    return StepGroup(
        handle=handle,
        depth=depth,
        step_keys=tuple(s.step_key for s in real),
        counts=counts,
        start_time=min(starts) if starts else None,
        end_time=max(ends) if ends and not unfinished else None,
        failed=tuple(s for s in real if s.status is StepStatus.FAILED),
        unmapped=tuple(s.step_key for s in unmapped),
        reasons=tuple(dict.fromkeys(reasons)) if unmapped else (),
        producer=known.producer.get(handle),
    )


def group_counts(group: StepGroup) -> dict[str, int]:
    """Its counts keyed by state name (``"succeeded"``, ``"waiting for slot"``...)."""
    return {status.value: group.counts.get(status, 0) for status in COUNT_ORDER}
