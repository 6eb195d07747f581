"""The engine as definitions see it: a port for the Dagster-style entry points that live on
definition objects, ``JobDefinition.execute_in_process`` and calling an op directly
(``my_op(...)``).

Definitions sit under the planner and the engine and never import them (the layer contract,
``[tool.importlinter]`` in ``pyproject.toml``). These two entry points still have to run the
engine, so Dagster code runs unchanged: they call the :class:`Engine` installed here, which
the package installs when it is imported (``orchestrator/__init__.py``, the composition root,
runs before any of its modules). This port is the one documented exception to "definitions
know nothing above them"; nothing else in ``orchestrator.definitions`` calls upward.
"""

from __future__ import annotations

from typing import Any, Protocol

from orchestrator.errors import OrchestratorError


class Engine(Protocol):
    """What definitions ask of the engine."""

    def execute_in_process(self, job: Any, **kwargs: Any) -> Any:
        """Run ``job`` (a ``JobDefinition``) in this process; ``kwargs`` as
        ``JobDefinition.execute_in_process`` takes them."""
        ...

    def invoke_op(self, op_def: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call ``op_def``'s function outside any job, as Dagster does."""
        ...


_installed: Engine | None = None


def install(engine: Engine) -> None:
    """Plug the engine in (done once, by ``orchestrator/__init__.py``)."""
    global _installed
    _installed = engine


def engine() -> Engine:
    """The installed engine.

    Raises:
        OrchestratorError: none is installed (only possible if ``orchestrator`` itself was
            never imported, which importing any of its modules does first).
    """
    if _installed is None:
        raise OrchestratorError(
            "the orchestrator engine is not installed: import orchestrator (its __init__ "
            "installs it) before running a job or calling an op directly"
        )
    return _installed
