"""The multiprocess executor: each step attempt runs in its own child process.

Children rebuild the job from its pointer (the job must be reconstructable) and send their
events back over a pipe. A child that dies without reporting (segfault, ``os._exit``, SIGKILL,
out of memory) becomes a STEP_FAILURE naming its exit code or signal, so a run never hangs on
a dead child, and one child's death fails only its own step.

Isolation, by mode:

- default: every attempt gets a fresh process. ``spawn`` starts a new interpreter per step
  (slowest; nothing inherited); ``forkserver`` forks each child from a server process that has
  already imported the framework and ``preload_modules`` (faster; children start from what the
  server imported, nothing from earlier steps).
- ``reuse_processes: true``: up to ``max_concurrent`` long-lived children run steps one after
  another (fastest; steps share a child's module state, e.g. caches and globals). A child that
  dies fails only the step it was running and is replaced on the next launch.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from orchestrator.concurrency.limits import LocalArbiter, SlotArbiter
from orchestrator.definitions.executor_config import MultiprocessConfig
from orchestrator.definitions.io_managers import InMemoryIOManager
from orchestrator.errors import InvalidInputError, ReconstructionError
from orchestrator.events import STEP_TERMINAL, Event, EventType, step_failure
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import Launch, LoopStalledError
from orchestrator.executors.base import Executor
from orchestrator.plan.steps import ExecutionPlan

TERMINATE_GRACE = 5.0  # seconds a step process gets between SIGTERM (or EOF) and SIGKILL
FINISH_GRACE = 30.0  # seconds finished steps get for their hooks and teardown at run end
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
    """A step process: one attempt (fresh mode), or many in turn (``reuse_processes``)."""

    def __init__(self, process: BaseProcess, conn: Connection, reused: bool):
        self.process = process
        self.conn = conn
        self.reused = reused
        self.launch: Launch | None = None  # the attempt it is running, if any
        self.ended = False  # a terminal event for that attempt was received
        self.terminated: float | None = None  # when we asked it to stop (cancel)

    def assign(self, launch: Launch) -> None:
        self.launch, self.ended, self.terminated = launch, False, None


class MultiprocessExecutor(Executor):
    """Runs each launched step in a child process, ``max_concurrent`` at a time."""

    def __init__(self, config: MultiprocessConfig | None = None):
        self.config = config or MultiprocessConfig()
        self.retries_enabled = self.config.retries.is_enabled
        self.max_concurrent = self.config.max_concurrent or os.cpu_count() or 1
        self._children: list[_Child] = []
        self._payload_base: dict[str, Any] = {}
        self._plan: ExecutionPlan | None = None
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
        self._plan = ctx.plan
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
        from orchestrator.executors.mp_child import run_step_in_child, serve_steps

        payload = {**self._payload_base, "step_key": launch.step_key, "attempt": launch.attempt}
        assert self._plan is not None
        payload["step"] = self._plan.to_ship(launch.step)
        if not self.config.reuse_processes:
            reader, writer = self._mp.Pipe(duplex=False)
            process = self._mp.Process(
                target=run_step_in_child,
                args=(payload, writer),
                name=f"step:{launch.step_key}#{launch.attempt}",
                daemon=False,
            )
            process.start()
            writer.close()  # the child holds the only write end: EOF means it is gone
            child = _Child(process, reader, reused=False)
            self._children.append(child)
        else:
            idle = next((c for c in self._children if c.launch is None), None)
            if idle is not None:
                child = idle
            else:  # the arbiter caps attempts at max_concurrent: room for one more
                ours, theirs = self._mp.Pipe(duplex=True)
                process = self._mp.Process(
                    target=serve_steps, args=(theirs,), name="step-process", daemon=False
                )
                process.start()
                theirs.close()
                child = _Child(process, ours, reused=True)
                self._children.append(child)
            child.conn.send(payload)
        child.assign(launch)

    def wait(self, timeout: float | None) -> list[Event]:
        self._escalate()
        if not any(c.launch is not None for c in self._children):
            if self.inbox is not None:
                self.inbox.wait(timeout)  # a slot grant or cancel, or a retry delay passing
            elif timeout is None:
                raise LoopStalledError("multiprocess executor: waiting with no step running")
            else:
                time.sleep(timeout)  # nothing running until a retry delay has passed
            return []
        by_conn: dict[Any, _Child] = {c.conn: c for c in self._children}
        if any(c.terminated is not None for c in self._children):
            timeout = min(timeout or TERMINATE_GRACE, TERMINATE_GRACE)
        watched: list[Any] = list(by_conn)
        if self.inbox is not None:
            watched.append(self.inbox)  # readable when the driver has something to take
        events: list[Event] = []
        for ready in wait(watched, timeout):
            if ready in by_conn:
                events.extend(self._drain(by_conn[ready]))
        return events

    def _drain(self, child: _Child) -> list[Event]:
        from orchestrator.executors.mp_child import DONE

        events: list[Event] = []
        try:
            while child.conn.poll():
                data = child.conn.recv()
                if DONE in data:
                    child.launch = None  # a reused child is free for the next step
                    continue
                event = Event.from_dict(data)
                if event.event_type_value in _ENDS_ATTEMPT:
                    child.ended = True
                events.append(event)
        except (EOFError, OSError):
            events.extend(self._reap(child))
        return events

    def _reap(self, child: _Child) -> list[Event]:
        """The child's pipe closed: collect its exit and report it if it died mid-step."""
        child.process.join(timeout=TERMINATE_GRACE)
        if child.process.is_alive():  # pipe closed but still running (a leftover thread)
            child.process.kill()
            child.process.join(timeout=TERMINATE_GRACE)
        child.conn.close()
        self._children.remove(child)
        launch = child.launch
        if launch is None or child.ended:
            return []
        how = describe_exit(child.process.exitcode)
        if child.terminated:
            message = f"Step {launch.step_key!r} was terminated (run canceled): {how}"
        else:
            message = f"Step process for {launch.step_key!r} died before reporting a result: {how}"
        return [
            step_failure(
                launch.run_id,
                launch.step_key,
                launch.attempt,
                message,
                error="StepProcessDied",
                exit_code=child.process.exitcode,
            )
        ]

    def terminate(self, attempt_ids: list[str]) -> None:
        ids = set(attempt_ids)
        for child in self._children:
            if child.launch is not None and child.launch.attempt_id in ids:
                child.terminated = time.monotonic()
                child.process.terminate()

    def _escalate(self) -> None:
        """A step process that ignores SIGTERM is killed after a grace period."""
        now = time.monotonic()
        for child in self._children:
            if (
                child.terminated is not None
                and now - child.terminated > TERMINATE_GRACE
                and child.process.is_alive()
            ):
                child.process.kill()

    def finish(self) -> list[Event]:
        """Collect the last events (hooks, teardown) of children still ending their step."""
        events: list[Event] = []
        deadline = time.monotonic() + FINISH_GRACE
        while time.monotonic() < deadline:
            ending = [c for c in self._children if (c.launch is not None or not c.reused)]
            if not ending:
                break
            by_conn = {c.conn: c for c in ending}
            for conn in wait(list(by_conn), deadline - time.monotonic()):
                events.extend(self._drain(by_conn[conn]))  # type: ignore[index]
        return events

    def close(self) -> None:
        for child in self._children:
            if child.reused and child.launch is None:
                with contextlib.suppress(OSError):
                    child.conn.send(None)  # an idle reused child ends by itself
        for child in self._children:
            child.process.join(timeout=5 if child.reused and child.launch is None else 0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(timeout=5)
            child.conn.close()
        self._children.clear()
