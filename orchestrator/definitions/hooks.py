"""Op hooks: ``@success_hook``, ``@failure_hook`` and the ``HookContext`` they receive."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class HookContext:
    """What a hook function receives.

    Attributes:
        op_handle: the step (node handle) the hook runs for, e.g. ``outer.inner``.
        step_key: same as ``op_handle``.
        run_id: the run.
        job_name: the job.
        resources: the resources named in ``required_resource_keys``.
        op_exception: the exception the op raised (failure hooks), else None.
        op_output_values: output name -> value (success hooks).
        log: a logger.
    """

    op_handle: str
    step_key: str
    run_id: str
    job_name: str
    resources: Any
    op_exception: BaseException | None
    op_output_values: dict[str, Any]
    log: logging.Logger
    op_config: Any = None
    run_tags: dict[str, str] | None = None

    @property
    def op(self) -> Any:
        """The op invocation, as Dagster's ``context.op``: ``.name`` is its node name."""
        from types import SimpleNamespace

        return SimpleNamespace(name=self.op_handle.rsplit(".", 1)[-1])


@dataclass(frozen=True, eq=False)
class HookDefinition:
    """A function run after a step succeeds or fails.

    Attributes:
        name: the hook's name (the function's name by default).
        hook_fn: called with a ``HookContext``.
        on: ``"success"`` or ``"failure"``.
        required_resource_keys: resources the hook uses.
    """

    name: str
    hook_fn: Callable[[HookContext], Any]
    on: str
    required_resource_keys: frozenset[str] = frozenset()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A hook can decorate a job or graph (``@my_hook @job ...``) or be called in tests."""
        from orchestrator.definitions.job import JobDefinition

        if len(args) == 1 and not kwargs and isinstance(args[0], JobDefinition):
            return args[0].with_hooks({self})
        return self.hook_fn(*args, **kwargs)


def _hook(
    on: str,
    fn: Callable[..., Any] | None,
    name: str | None,
    required_resource_keys: set[str] | None,
) -> Any:
    def wrap(f: Callable[..., Any]) -> HookDefinition:
        takes_context = len(inspect.signature(f).parameters) > 0
        impl: Callable[[HookContext], Any] = f if takes_context else (lambda _ctx: f())
        return HookDefinition(name or f.__name__, impl, on, frozenset(required_resource_keys or ()))

    return wrap(fn) if fn is not None else wrap


def success_hook(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    required_resource_keys: set[str] | None = None,
) -> Any:
    """Decorator: the function runs after each step it is attached to succeeds."""
    return _hook("success", fn, name, required_resource_keys)


def failure_hook(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    required_resource_keys: set[str] | None = None,
) -> Any:
    """Decorator: the function runs after each step it is attached to fails (for good, i.e.
    not when it is retried)."""
    return _hook("failure", fn, name, required_resource_keys)
