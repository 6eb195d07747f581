"""Each step's timeline (the run page's Gantt chart), folded from the run's event log.

A step's life is a row of segments: ``waiting`` (asked for concurrency slots, none granted),
``queued`` (sent to a worker queue, not started), ``running`` (an attempt started). A running
segment ends with the attempt's outcome: ``success``, ``failure``, ``retry`` (failed, another
attempt follows) or ``lost`` (its worker stopped renewing it). Segments still open have no
``end``; once the run has ended they are closed at its end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.events import Event, EventType
from orchestrator.execution.loop import ATTEMPT_LOST, LAUNCHED, WAITING_FOR_SLOT

_RUN_END = frozenset({"RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"})
_OUTCOMES = {
    EventType.STEP_SUCCESS.value: "success",
    EventType.STEP_FAILURE.value: "failure",
    EventType.STEP_UP_FOR_RETRY.value: "retry",
}


@dataclass
class Segment:
    kind: str
    start: float
    attempt: int | None = None
    end: float | None = None
    outcome: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "attempt": self.attempt,
            "outcome": self.outcome,
        }


@dataclass
class _Row:
    segments: list[Segment] = field(default_factory=list)
    done: bool = False

    def open(self) -> Segment | None:
        last = self.segments[-1] if self.segments else None
        return last if last is not None and last.end is None else None

    def close(self, at: float, outcome: str | None = None) -> None:
        current = self.open()
        if current is not None:
            current.end = max(at, current.start)
            current.outcome = outcome or current.outcome

    def begin(self, kind: str, at: float, attempt: int | None) -> None:
        current = self.open()
        if current is not None and current.kind == kind and current.attempt == attempt:
            return  # a repeated event (a replayed loop re-logs its wait)
        self.close(at)
        self.segments.append(Segment(kind, at, attempt))


def step_timelines(events: Iterable[Event]) -> dict[str, list[dict[str, Any]]]:
    """Step key -> its segments (JSON), from a run's events, oldest first."""
    rows: dict[str, _Row] = {}
    run_end: float | None = None
    for event in events:
        etype = event.event_type_value
        if event.step_key is None:
            if etype in _RUN_END:
                run_end = event.timestamp
            continue
        row = rows.setdefault(event.step_key, _Row())
        if row.done:
            continue
        attempt = event.data.get("attempt")
        attempt = attempt if isinstance(attempt, int) else None
        if etype == EventType.ENGINE_EVENT.value:
            kind = event.data.get("kind")
            if kind == WAITING_FOR_SLOT:
                row.begin("waiting", event.timestamp, attempt)
            elif kind == LAUNCHED:
                current = row.open()
                if current is None or current.kind != "running":
                    row.begin("queued", event.timestamp, attempt)
            elif kind == ATTEMPT_LOST:
                row.close(event.timestamp, "lost")
        elif etype in (EventType.STEP_START.value, EventType.STEP_RESTARTED.value):
            row.begin("running", event.timestamp, attempt)
        elif etype in _OUTCOMES:
            row.close(event.timestamp, _OUTCOMES[etype])
            row.done = etype != EventType.STEP_UP_FOR_RETRY.value
        elif etype == EventType.STEP_SKIPPED.value:
            row.close(event.timestamp)
            row.done = True
    if run_end is not None:
        for row in rows.values():
            row.close(run_end, "stopped")
    return {key: [s.to_json() for s in row.segments] for key, row in rows.items()}
