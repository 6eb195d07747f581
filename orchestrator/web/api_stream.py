"""``/api/stream/runs``: server-sent events, one per run status change of any run (a run
launched, started, ended), keyed by the ids of the runs feed stream in Redis; the runs page
refreshes on them instead of polling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Request
from sse_starlette.sse import EventSourceResponse

from orchestrator.web.state import WebState

FEED_WAIT_SECONDS = 5.0


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/stream", tags=["runs"])

    @router.get("/runs")
    async def runs_feed(
        request: Request,
        after: str | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        """Each run status change (``{run_id, job_name, status, ended}``) from now on, or
        after ``Last-Event-ID`` / ``after`` (a feed id)."""
        state: WebState = request.app.state.web
        start = last_event_id or after or "$"
        if start != "$":
            await anyio.to_thread.run_sync(lambda: state.instance.run_changes_after(start, 1))
        return EventSourceResponse(_feed(state, start), ping=15)

    return router


async def _feed(state: WebState, cursor: str) -> AsyncIterator[dict[str, Any]]:
    while True:
        cursor, changes = await anyio.to_thread.run_sync(
            partial(state.instance.wait_for_run_changes, cursor, FEED_WAIT_SECONDS),
            abandon_on_cancel=True,
        )
        for change in changes:
            yield {"id": change["id"], "event": "run", "data": json.dumps(change)}
