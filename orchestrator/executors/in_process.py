"""The in-process executor: steps run one at a time in the calling process."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace

from orchestrator.concurrency.limits import SlotArbiter, UnlimitedArbiter
from orchestrator.definitions.executor_config import InProcessConfig
from orchestrator.events import Event
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import Launch
from orchestrator.execution.step_runner import StepOutcome, StepRunner
from orchestrator.executors.base import Executor


class InProcessExecutor(Executor):
    """Runs each launched step synchronously inside :meth:`wait`."""

    in_process = True
    stores_events = True  # stored as the step emits them, so followers see a long step live

    def __init__(self, config: InProcessConfig | None = None):
        self.config = config or InProcessConfig()
        self.retries_enabled = self.config.retries.is_enabled
        self._queue: deque[Launch] = deque()
        self._events: list[Event] = []
        self._runner: StepRunner | None = None
        self.outcomes: dict[str, StepOutcome] = {}

    def make_arbiter(self, ctx: RunContext) -> SlotArbiter:
        return UnlimitedArbiter()

    def start(self, ctx: RunContext) -> None:
        def emit(event: Event) -> None:
            ctx.emit(event)
            self._events.append(event)

        self._runner = StepRunner(replace(ctx, emit=emit, retries_enabled=self.retries_enabled))

    def launch(self, launch: Launch) -> None:
        self._queue.append(launch)

    def wait(self, timeout: float | None) -> list[Event]:
        if self._queue:
            assert self._runner is not None
            launch = self._queue.popleft()
            self.outcomes[launch.step_key] = self._runner.run(
                launch.step_key, launch.attempt, step=launch.step
            )
        elif self.inbox is not None:
            self.inbox.wait(timeout)  # a slot grant or cancel, or a retry delay passing
        elif timeout is not None:
            time.sleep(timeout)  # nothing runnable until a retry delay has passed
        else:
            from orchestrator.execution.loop import LoopStalledError

            raise LoopStalledError("in-process executor: a step is in flight but none is queued")
        events = list(self._events)
        self._events.clear()  # the runner appends to this same list
        return events

    def finish(self) -> list[Event]:
        """Clean up the run's resources (run-scoped here: built once, shared by its steps);
        a clean-up that fails is reported as an engine event."""
        if self._runner is None or self._runner.ctx.resources is None:
            return []
        events = self._runner.ctx.resources.teardown_events()
        for event in events:
            self._runner.ctx.emit(event)
        return events

    def terminate(self, attempt_ids: list[str]) -> None:
        ids = set(attempt_ids)
        self._queue = deque(lch for lch in self._queue if lch.attempt_id not in ids)

    def close(self) -> None:
        self._queue.clear()
