"""The multiprocess executor: each step attempt runs in its own child process.

Children rebuild the job from its pointer (the job must be reconstructable) and send their
events back over a pipe. A child that dies without reporting (segfault, ``os._exit``, SIGKILL,
out of memory) becomes a STEP_FAILURE naming its exit code or signal, so a run never hangs on
a dead child, and one child's death fails only its own step.

Isolation: every attempt gets a fresh process. ``spawn`` starts a new interpreter per step
(slowest, nothing inherited); ``forkserver`` forks each child from a server process that has
already imported the framework and ``preload_modules`` (fast; children share only what the
server imported before forking).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from orchestrator.concurrency.limits import LocalArbiter, SlotArbiter
from orchestrator.errors import InvalidInputError, ReconstructionError
from orchestrator.execution.context import RunContext
from orchestrator.execution.events import STEP_TERMINAL, Event, EventType, make_event
from orchestrator.execution.loop import Launch, LoopStalledError
from orchestrator.executors.base import Executor
from orchestrator.executors.config import MultiprocessConfig
from orchestrator.storage.io_managers import InMemoryIOManager

_ENDS_ATTEMPT = {e.value for e in STEP_TERMINAL} | {EventType.STEP_UP_FOR_RETRY.value}
_CHILD_MODULE = "orchestrator.executors.mp_child"


def describe_exit(code: int | None) -> str:
    """'exit code 3' or 'signal SIGKILL (exit code -9)'."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"signal {name} (exit code {code})"
    return f"exit code {code}"


class _Child:
    def __init__(self, launch: Launch, process: BaseProcess, conn: Connection):
        self.launch = launch
        self.process = process
        self.conn = conn
        self.ended = False  # a terminal event for the attempt was received
        self.terminated = False  # we asked it to stop (cancel)


class MultiprocessExecutor(Executor):
    """Runs each launched step in a child process, ``max_concurrent`` at a time."""

    def __init__(self, config: MultiprocessConfig | None = None):
        self.config = config or MultiprocessConfig()
        self.retries_enabled = self.config.retries.is_enabled
        self.max_concurrent = self.config.max_concurrent or os.cpu_count() or 1
        self._children: dict[str, _Child] = {}
        self._payload_base: dict[str, Any] = {}
        self._mp: Any = None

    def make_arbiter(self, ctx: RunContext) -> SlotArbiter:
        return LocalArbiter(self.config.tag_concurrency_limits, self.max_concurrent)

    def start(self, ctx: RunContext) -> None:
        pointer = ctx.pointer
        if pointer is None:
            raise ReconstructionError(
                f"job {ctx.job.name!r} must be reconstructable to run on the multiprocess "
                "executor: run it with execute_job(reconstructable(job)) or from the CLI, or "
                "use execute_in_process() / execution: {config: {in_process: {}}}"
            )
        io_manager = ctx.resources.get("io_manager") if ctx.resources else None
        if isinstance(io_manager, InMemoryIOManager):
            raise InvalidInputError(
                "the in-memory IO manager cannot pass outputs between step processes; use "
                "fs_io_manager (the default) with the multiprocess executor"
            )
        try:
            json.dumps(dict(ctx.input_values))
        except TypeError as exc:
            raise InvalidInputError(
                f"input_values must be JSON-serializable to reach step processes ({exc})"
            ) from exc
        self._payload_base = {
            "pointer": dict(pointer),
            "plan": ctx.plan.to_json(),
            "run_id": ctx.run_id,
            "run_tags": dict(ctx.run_tags),
            "input_values": dict(ctx.input_values),
            "retries_enabled": self.retries_enabled,
        }
        method = self.config.start_method.name
        self._mp = multiprocessing.get_context(method)
        if method == "forkserver":
            preload = [_CHILD_MODULE]
            preload += list(self.config.start_method.forkserver.preload_modules or [])  # type: ignore[union-attr]
            module = pointer["location"].get("module")
            if module and module not in preload:
                preload.append(module)
            self._mp.set_forkserver_preload(preload)

    def launch(self, launch: Launch) -> None:
        from orchestrator.executors.mp_child import run_step_in_child

        payload = {**self._payload_base, "step_key": launch.step_key, "attempt": launch.attempt}
        reader, writer = self._mp.Pipe(duplex=False)
        process = self._mp.Process(
            target=run_step_in_child,
            args=(payload, writer),
            name=f"step:{launch.step_key}#{launch.attempt}",
            daemon=True,
        )
        process.start()
        writer.close()  # the child holds the only write end: EOF means it is gone
        self._children[launch.attempt_id] = _Child(launch, process, reader)

    def wait(self, timeout: float | None) -> list[Event]:
        if not self._children:
            if timeout is None:
                raise LoopStalledError("multiprocess executor: waiting with no step running")
            time.sleep(timeout)  # nothing running until a retry delay has passed
            return []
        by_conn = {c.conn: c for c in self._children.values()}
        ready = wait(list(by_conn), timeout)
        events: list[Event] = []
        for conn in ready:
            events.extend(self._drain(by_conn[conn]))  # type: ignore[index]
        return events

    def _drain(self, child: _Child) -> list[Event]:
        events: list[Event] = []
        try:
            while child.conn.poll():
                event = Event.from_dict(child.conn.recv())
                if event.event_type_value in _ENDS_ATTEMPT:
                    child.ended = True
                events.append(event)
        except (EOFError, OSError):
            events.extend(self._reap(child))
        return events

    def _reap(self, child: _Child) -> list[Event]:
        """The child's pipe closed: collect its exit and report it if it died early."""
        child.process.join()
        child.conn.close()
        del self._children[child.launch.attempt_id]
        if child.ended:
            return []
        launch = child.launch
        how = describe_exit(child.process.exitcode)
        if child.terminated:
            message = f"Step {launch.step_key!r} was terminated (run canceled): {how}"
        else:
            message = f"Step process for {launch.step_key!r} died before reporting a result: {how}"
        return [
            make_event(
                EventType.STEP_FAILURE,
                launch.run_id,
                message,
                step_key=launch.step_key,
                attempt=launch.attempt,
                exit_code=child.process.exitcode,
                error={
                    "cls_name": "StepProcessDied",
                    "message": message,
                    "stack": "",
                    "cause": None,
                },
            )
        ]

    def terminate(self, attempt_ids: list[str]) -> None:
        for attempt_id in attempt_ids:
            child = self._children.get(attempt_id)
            if child is not None and child.process.is_alive():
                child.terminated = True
                child.process.terminate()

    def close(self) -> None:
        for child in list(self._children.values()):
            if child.process.is_alive():
                child.process.kill()
            child.process.join(timeout=5)
            child.conn.close()
        self._children.clear()
