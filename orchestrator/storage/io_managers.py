"""IO managers: how step outputs are stored and loaded by the steps downstream.

``mem_io_manager`` keeps outputs in memory (in-process runs only); ``fs_io_manager`` pickles
them under a directory or fsspec URL, so steps in other processes or machines can read them.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definitions.config import Field, Noneable
from orchestrator.definitions.resources import InitResourceContext, ResourceDefinition
from orchestrator.errors import OutputStorageError


@dataclass(frozen=True)
class OutputContext:
    """Identifies one output of one step of one run."""

    run_id: str
    step_key: str
    name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identifier(self) -> tuple[str, str, str]:
        return (self.run_id, self.step_key, self.name)


@dataclass(frozen=True)
class InputContext:
    """What an IO manager receives when a step loads an input."""

    name: str
    step_key: str
    run_id: str
    upstream_output: OutputContext
    metadata: Mapping[str, Any] = field(default_factory=dict)


class IOManager(ABC):
    """Stores step outputs and loads them as inputs of downstream steps."""

    @abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Store ``obj`` as the output named by ``context``."""

    @abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """Load the upstream output ``context.upstream_output``."""


class IOManagerDefinition(ResourceDefinition):
    """A resource whose value is an :class:`IOManager`."""


def io_manager(
    fn: Callable[..., Any] | None = None,
    *,
    config_schema: Any = None,
    description: str | None = None,
) -> Any:
    """Decorator: ``fn(init_context) -> IOManager`` becomes an ``IOManagerDefinition``."""

    def wrap(f: Callable[..., Any]) -> IOManagerDefinition:
        return IOManagerDefinition(f, config_schema=config_schema, description=description)

    return wrap(fn) if fn is not None else wrap


class InMemoryIOManager(IOManager):
    """Keeps outputs in a dict for the life of the run (in-process execution only)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], Any] = {}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.values[context.identifier] = obj

    def load_input(self, context: InputContext) -> Any:
        key = context.upstream_output.identifier
        if key not in self.values:
            raise OutputStorageError(
                f"step {context.step_key!r} input {context.name!r}: output "
                f"{key[2]!r} of step {key[1]!r} (run {key[0]}) is not in memory. The in-memory "
                "IO manager only serves steps of the same in-process run; use fs_io_manager for "
                "re-execution or multi-process runs."
            )
        return self.values[key]


class FilesystemIOManager(IOManager):
    """Pickles each output to ``<base>/<run_id>/<step_key>/<output>`` (a path or fsspec URL)."""

    def __init__(self, base_dir: str):
        import fsspec

        self.base_dir = base_dir.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.base_dir)
        self._made: set[str] = set()  # directories known to exist

    def path_for(self, ctx: OutputContext) -> str:
        return f"{self.root}/{ctx.run_id}/{ctx.step_key}/{ctx.name}.pickle"

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        try:
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise OutputStorageError(
                f"step {context.step_key!r} output {context.name!r}: cannot store a "
                f"{type(obj).__name__} with the filesystem IO manager ({exc}). Return a "
                "picklable value, or give the job an IO manager that can store this type."
            ) from exc
        path = self.path_for(context)
        directory = path.rsplit("/", 1)[0]
        if directory not in self._made:
            self.fs.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        tmp = f"{path}.tmp"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, path)  # readers never see a half-written file

    def load_input(self, context: InputContext) -> Any:
        path = self.path_for(context.upstream_output)
        try:
            with self.fs.open(path, "rb") as f:
                return pickle.loads(f.read())
        except FileNotFoundError as exc:
            up = context.upstream_output
            raise OutputStorageError(
                f"step {context.step_key!r} input {context.name!r}: no stored output "
                f"{up.name!r} of step {up.step_key!r} in run {up.run_id} (looked at {path})"
            ) from exc


def _mem(_ctx: InitResourceContext) -> IOManager:
    return InMemoryIOManager()


def _fs(ctx: InitResourceContext) -> IOManager:
    from orchestrator.settings import get_settings

    cfg = ctx.resource_config or {}
    return FilesystemIOManager(cfg.get("base_dir") or get_settings().storage_dir)


mem_io_manager = IOManagerDefinition(_mem, description="Outputs kept in memory (in-process).")
fs_io_manager = IOManagerDefinition(
    _fs,
    config_schema={"base_dir": Field(Noneable(str), is_required=False)},
    description="Outputs pickled to a directory or fsspec URL (default: ORCHESTRATOR_HOME).",
)
