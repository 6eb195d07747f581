"""``/api/runs``: launch, list, show, cancel and re-execute runs; read and stream their events.

Live updates are server-sent events whose ids are the Redis stream ids of the run's event log:
a browser that reconnects sends ``Last-Event-ID`` and gets exactly the events after it (no
duplicate, no gap).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from orchestrator.coordinator import cancel_run, driver_state, launch_run
from orchestrator.events import RUN_TERMINAL, Event
from orchestrator.execution.reexecution import PARENT_RUN_TAG, ReexecutionOptions
from orchestrator.storage.base import RunRecord, RunsFilter, RunStatus
from orchestrator.views.groups import is_placeholder, summarize_run
from orchestrator.views.payloads import event_json, group_json, lease_json, run_json, step_json
from orchestrator.views.steps import StepStatus
from orchestrator.web.errors import ApiError
from orchestrator.web.launch import CheckRequest, launch
from orchestrator.web.state import WebState
from orchestrator.web.timeline import step_timelines

_TERMINAL_TYPES = frozenset(t.value for t in RUN_TERMINAL)
STREAM_WAIT_SECONDS = 2.0  # one blocking read of an SSE stream (then the record is checked)
MAX_EVENTS_PAGE = 10_000


class LaunchRequest(CheckRequest):
    """``POST /api/runs``: what to run."""

    job: str = Field(min_length=1, description="The job's name.")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="A key reused within 7 days returns the run it launched, launching none.",
    )


class LaunchResponse(BaseModel):
    run_id: str
    created: bool = Field(description="False: the idempotency key had launched this run.")


class ReexecuteRequest(BaseModel):
    """``POST /api/runs/{run_id}/reexecute``."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["all", "from_failure", "selected"] = "all"
    step_selection: list[str] | None = Field(
        None, description="With strategy 'selected': op selection queries of the steps."
    )


def _state(request: Request) -> WebState:
    return request.app.state.web


def _record(state: WebState, run_id: str) -> RunRecord:
    record = state.instance.get_run(run_id)
    if record is None:
        raise ApiError(404, f"no run with id {run_id!r}")
    return record


def _tag_filters(values: list[str]) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep or not key:
            raise ApiError(422, f"tag filter {value!r}: expected KEY=VALUE")
        tags[key] = tag_value
    return tags or None


def _statuses(values: list[str]) -> list[RunStatus] | None:
    out = []
    for value in values:
        try:
            out.append(RunStatus(value.upper()))
        except ValueError:
            raise ApiError(
                422, f"unknown status {value!r}; valid: {', '.join(RunStatus)}"
            ) from None
    return out or None


def wait_reasons(state: WebState, run_id: str, waiting: set[str]) -> dict[str, dict[str, Any]]:
    """For each waiting step: the limits it waits for, their holders and its place in line."""
    if not waiting:
        return {}
    leases = [
        lease
        for lease in state.limiter.run_leases(run_id)
        if lease.state == "waiting" and lease.step_key in waiting
    ]
    buckets = sorted({b for lease in leases for b in lease.buckets})
    by_bucket = {b.bucket: b for b in state.limiter.bucket_states(buckets)} if buckets else {}
    now = time.time()
    out: dict[str, dict[str, Any]] = {}
    for lease in leases:
        limits = []
        for name in lease.buckets:
            bucket = by_bucket.get(name)
            if bucket is None:
                continue
            line = [w.lease_id for w in bucket.waiters]
            position = line.index(lease.lease_id) + 1 if lease.lease_id in line else None
            limits.append(
                {
                    "bucket": name,
                    "limit": bucket.limit,
                    "holders": [lease_json(h, now) for h in bucket.holders],
                    "position": position,
                    "waiters": len(line),
                }
            )
        out[lease.step_key] = {
            "lease_id": lease.lease_id,
            "priority": lease.priority,
            "waited_seconds": max(0.0, now - lease.queued),
            "limits": limits,
        }
    return out


def run_detail(state: WebState, record: RunRecord) -> dict[str, Any]:
    """``GET /api/runs/{run_id}``: the record, each step (state, attempts, worker, times,
    timeline, wait reason, mapped op group), the groups of mapped steps (``process[*]``,
    counted per state), who drives it, and its parent and child runs. ``step_counts``
    counts the steps that run: a placeholder skipped because nothing was mapped
    (``process[?]``, listed among the steps) is its group's, not counted."""
    instance = state.instance
    events = instance.all_events(record.run_id)
    run_steps = summarize_run(events, instance.plan_json(record.run_id))
    timelines = step_timelines(events)
    waiting = {s.step_key for s in run_steps.steps if s.status is StepStatus.WAITING_FOR_SLOT}
    reasons = wait_reasons(state, record.run_id, waiting)
    counts: dict[str, int] = {}
    step_rows = []
    for step in run_steps.steps:
        if not is_placeholder(step.step_key):
            counts[step.status.value] = counts.get(step.status.value, 0) + 1
        row = step_json(step)
        row["timeline"] = timelines.get(step.step_key, [])
        row["wait"] = reasons.get(step.step_key)
        step_rows.append(row)
    driver = None
    if not record.is_finished:
        driver = driver_state(instance, record.run_id).describe(time.time())
    return {
        "run": run_json(record),
        "steps": step_rows,
        "groups": [group_json(g) for g in run_steps.groups],
        "step_counts": counts,
        "driver": driver,
        "parent_run_id": record.parent_run_id or record.tags.get(PARENT_RUN_TAG),
        "child_run_ids": instance.child_run_ids(record.run_id),
        "event_count": len(events),
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/runs", tags=["runs"])

    @router.post("", status_code=201, response_model=LaunchResponse)
    def launch_endpoint(body: LaunchRequest, request: Request) -> Any:
        """Validate and queue a run for the coordinators; 201 with its id. A reused
        ``idempotency_key`` answers 200 with the run it launched before."""
        run_id, created = launch(_state(request), body.spec(body.job), body.idempotency_key)
        if not created:
            return JSONResponse({"run_id": run_id, "created": False}, status_code=200)
        return {"run_id": run_id, "created": True}

    @router.get("")
    def list_runs(
        request: Request,
        status: Annotated[list[str], Query(description="Repeatable: any of them.")] = [],  # noqa: B006
        job: str | None = None,
        tag: Annotated[list[str], Query(description="KEY=VALUE, repeatable: all.")] = [],  # noqa: B006
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Runs newest first, one page at a time (pass ``cursor`` back for the next), and how
        many runs there are per status (of ``job`` when given)."""
        state = _state(request)
        filters = RunsFilter(job_name=job, statuses=_statuses(status), tags=_tag_filters(tag))
        page = state.instance.runs_page(filters, limit=limit, cursor=cursor)
        counts = state.instance.count_runs_by_status(job)
        return {
            "runs": [run_json(r) for r in page.records],
            "cursor": page.cursor,
            "counts": {s.value: n for s, n in counts.items()},
        }

    @router.get("/{run_id}")
    def show_run(run_id: str, request: Request) -> dict[str, Any]:
        state = _state(request)
        return run_detail(state, _record(state, run_id))

    @router.post("/{run_id}/cancel")
    def cancel(run_id: str, request: Request) -> dict[str, Any]:
        """Cancel a run: a queued one ends CANCELED at once; a running one is told to stop."""
        state = _state(request)
        _record(state, run_id)
        return {"run_id": run_id, "status": cancel_run(state.instance, run_id)}

    @router.post("/{run_id}/reexecute", status_code=201, response_model=LaunchResponse)
    def reexecute(run_id: str, body: ReexecuteRequest, request: Request) -> Any:
        """Queue a new run of a finished run's job: all steps, the steps that did not succeed
        (``from_failure``), or ``selected`` steps; other steps' outputs are read from it."""
        state = _state(request)
        record = _record(state, run_id)
        if not record.is_finished:
            raise ApiError(422, f"run {run_id} is {record.status.value}; wait for it to end")
        if body.strategy == "from_failure":
            options = ReexecutionOptions.from_failure(run_id, state.instance)
        elif body.strategy == "selected":
            if not body.step_selection:
                raise ApiError(422, "strategy 'selected' needs step_selection (op queries)")
            options = ReexecutionOptions(run_id, tuple(body.step_selection))
        else:
            options = ReexecutionOptions(run_id)
        new_run = launch_run(None, state.instance, reexecution_options=options)
        return {"run_id": new_run, "created": True}

    @router.get("/{run_id}/events")
    def events(
        run_id: str,
        request: Request,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 1000,
    ) -> dict[str, Any]:
        """Events oldest first, after the event id ``after``; ``cursor`` is the last id
        returned (pass it as ``after``), ``has_more`` whether more are stored."""
        state = _state(request)
        _record(state, run_id)
        after = after or None  # an empty cursor: from the start
        rows = state.instance.get_events(run_id, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "events": [event_json(cursor, event) for cursor, event in rows],
            "cursor": rows[-1][0] if rows else after,
            "has_more": more,
        }

    @router.get("/{run_id}/events/stream")
    async def stream(
        run_id: str,
        request: Request,
        after: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        """Server-sent events: each event of the run (SSE id = its event id) after
        ``Last-Event-ID`` (or ``after``), live; ends with an ``end`` event once the run has
        ended."""
        state = _state(request)
        await anyio.to_thread.run_sync(_record, state, run_id)
        start = last_event_id or after or None
        if start is not None:  # a bad cursor is a 422 now, not a broken stream later
            await anyio.to_thread.run_sync(
                lambda: state.instance.get_events(run_id, after=start, limit=1)
            )
        return EventSourceResponse(_event_stream(state, run_id, start), ping=15)

    return router


def _message(position: str, event: Event) -> dict[str, Any]:
    return {"id": position, "event": "event", "data": json.dumps(event_json(position, event))}


async def _event_stream(
    state: WebState, run_id: str, cursor: str | None
) -> AsyncIterator[dict[str, Any]]:
    instance = state.instance
    while True:
        batch = await anyio.to_thread.run_sync(
            partial(instance.wait_for_events, run_id, cursor, STREAM_WAIT_SECONDS, 500),
            abandon_on_cancel=True,
        )
        ended = False
        for position, event in batch:
            cursor = position
            yield {
                "id": position,
                "event": "event",
                "data": json.dumps(event_json(position, event)),
            }
            ended = ended or event.event_type_value in _TERMINAL_TYPES
        if ended:
            break
        if not batch:
            record = await anyio.to_thread.run_sync(instance.get_run, run_id)
            if record is None or record.is_finished:
                rest = await anyio.to_thread.run_sync(partial(instance.get_events, run_id, cursor))
                for position, event in rest:
                    cursor = position
                    yield _message(position, event)
                break
    record = await anyio.to_thread.run_sync(instance.get_run, run_id)
    status = record.status.value if record is not None else None
    yield {"event": "end", "data": json.dumps({"run_id": run_id, "status": status})}
