"""IO managers: how step outputs are stored and loaded by the steps downstream.

``mem_io_manager`` keeps outputs in memory (in-process runs only); ``fs_io_manager`` pickles
them under a directory or fsspec URL, so steps in other processes or machines can read them.
"""

from __future__ import annotations

import inspect
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definitions.config import Field, Noneable, as_config_schema
from orchestrator.definitions.resources import (
    ConfigurableResource,
    InitResourceContext,
    ResourceDefinition,
    resource_decorator,
)
from orchestrator.errors import OutputStorageError


@dataclass(frozen=True)
class OutputContext:
    """Identifies one output of one step of one run.

    Attributes:
        definition_metadata: the ``Out(metadata=...)`` of the output (also ``metadata``).
        output_metadata: what the IO manager recorded with :meth:`add_output_metadata`; it
            goes on the step's ``HANDLED_OUTPUT`` event.
    """

    run_id: str
    step_key: str
    name: str
    definition_metadata: Mapping[str, Any] = field(default_factory=dict)
    output_metadata: dict[str, Any] = field(default_factory=dict)
    config: Any = None  # the output's run config for its IO manager (ops.<op>.outputs.<name>)
    mapping_key: str | None = None  # which value of a dynamic output

    @property
    def identifier(self) -> tuple[str, ...]:
        base = (self.run_id, self.step_key, self.name)
        return base if self.mapping_key is None else (*base, self.mapping_key)

    def get_identifier(self) -> list[str]:
        return list(self.identifier)

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.definition_metadata

    def add_output_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Record metadata about the stored output (rows written, a path, a URL)."""
        self.output_metadata.update(metadata)


@dataclass(frozen=True)
class InputContext:
    """What an IO manager receives when a step loads an input."""

    name: str
    step_key: str
    run_id: str
    upstream_output: OutputContext | None  # None: no op feeds the input (an input manager's)
    definition_metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.definition_metadata


def build_output_context(
    step_key: str = "EPHEMERAL_OP",
    name: str = "result",
    metadata: Mapping[str, Any] | None = None,
    run_id: str = "EPHEMERAL",
    definition_metadata: Mapping[str, Any] | None = None,
) -> OutputContext:
    """An ``OutputContext`` for calling an IO manager's ``handle_output`` in a unit test."""
    return OutputContext(run_id, step_key, name, dict(definition_metadata or metadata or {}))


def build_input_context(
    name: str = "input",
    upstream_output: OutputContext | None = None,
    metadata: Mapping[str, Any] | None = None,
    step_key: str = "EPHEMERAL_OP",
    run_id: str = "EPHEMERAL",
    definition_metadata: Mapping[str, Any] | None = None,
) -> InputContext:
    """An ``InputContext`` for calling an IO manager's ``load_input`` in a unit test;
    ``upstream_output`` (from :func:`build_output_context`) names what to load."""
    upstream = upstream_output or build_output_context(run_id=run_id)
    return InputContext(
        name, step_key, run_id, upstream, dict(definition_metadata or metadata or {})
    )


class IOManager(ABC):
    """Stores step outputs and loads them as inputs of downstream steps."""

    @abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Store ``obj`` as the output named by ``context``."""

    @abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """Load the upstream output ``context.upstream_output``."""


class IOManagerDefinition(ResourceDefinition):
    """A resource whose value is an :class:`IOManager`; ``output_config_schema`` checks the
    config each output may give it (``ops: {op: {outputs: {name: ...}}}``), which the IO
    manager reads as ``context.config``."""

    output_config_schema: Any = None


def io_manager(
    fn: Callable[..., Any] | None = None,
    *,
    config_schema: Any = None,
    description: str | None = None,
    required_resource_keys: set[str] | None = None,
    output_config_schema: Any = None,
    input_config_schema: Any = None,
) -> Any:
    """Decorator: ``fn(init_context) -> IOManager`` (or ``fn()``) becomes an
    ``IOManagerDefinition``; ``output_config_schema`` is the schema of each output's config
    (``input_config_schema`` is accepted and not checked)."""

    decorate = resource_decorator(
        IOManagerDefinition, fn, config_schema, description, required_resource_keys
    )
    if output_config_schema is None:
        return decorate

    def with_output_config(definition: Any) -> Any:
        definition.output_config_schema = as_config_schema(output_config_schema, "output")
        return definition

    if isinstance(decorate, IOManagerDefinition):
        return with_output_config(decorate)
    return lambda f: with_output_config(decorate(f))


def _upstream(context: InputContext) -> OutputContext:
    if context.upstream_output is None:
        raise OutputStorageError(
            f"step {context.step_key!r} input {context.name!r}: no op feeds it, so an IO "
            "manager has nothing to load; give it In(input_manager_key=...) naming an input "
            "manager, a default value, or run config"
        )
    return context.upstream_output


class InMemoryIOManager(IOManager):
    """Keeps outputs in a dict for the life of the run (in-process execution only)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], Any] = {}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.values[context.identifier] = obj

    def load_input(self, context: InputContext) -> Any:
        up = _upstream(context)
        key = up.identifier
        if key not in self.values:
            raise OutputStorageError(
                f"step {context.step_key!r} input {context.name!r}: output "
                f"{up.name!r}{_mapping(up)} of step {up.step_key!r} (run {up.run_id}) is not in "
                "memory. The in-memory IO manager only serves steps of the same in-process "
                "run; use fs_io_manager for re-execution or multi-process runs."
            )
        return self.values[key]


class PickledFilesIOManager(IOManager):
    """Pickles each output to ``<base>/<run_id>/<step_key>/<output>`` (a path or fsspec URL)."""

    def __init__(self, base_dir: str):
        import fsspec

        self.base_dir = base_dir.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.base_dir)
        self._made: set[str] = set()  # directories known to exist

    def path_for(self, ctx: OutputContext) -> str:
        # a mapped step `op[a][b]` is stored under op/a/b (no glob characters in paths); a
        # dynamic output's values one file per mapping key
        step = ctx.step_key.replace("][", "/").replace("[", "/").rstrip("]")
        if ctx.mapping_key is not None:
            return f"{self.root}/{ctx.run_id}/{step}/{ctx.name}/{ctx.mapping_key}.pickle"
        return f"{self.root}/{ctx.run_id}/{step}/{ctx.name}.pickle"

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
        up = _upstream(context)
        path = self.path_for(up)
        try:
            with self.fs.open(path, "rb") as f:
                return pickle.loads(f.read())
        except FileNotFoundError as exc:
            raise OutputStorageError(
                f"step {context.step_key!r} input {context.name!r}: no stored output "
                f"{up.name!r}{_mapping(up)} of step {up.step_key!r} in run {up.run_id} "
                f"(looked at {path})"
            ) from exc


def _mapping(ctx: OutputContext) -> str:
    return f" (mapping key {ctx.mapping_key!r})" if ctx.mapping_key is not None else ""


def _mem(_ctx: InitResourceContext) -> IOManager:
    return InMemoryIOManager()


def _fs(ctx: InitResourceContext) -> IOManager:
    from orchestrator.settings import get_settings

    cfg = ctx.resource_config or {}
    return PickledFilesIOManager(cfg.get("base_dir") or get_settings().storage_dir)


mem_io_manager = IOManagerDefinition(_mem, description="Outputs kept in memory (in-process).")
fs_io_manager = IOManagerDefinition(
    _fs,
    config_schema={"base_dir": Field(Noneable(str), is_required=False)},
    description="Outputs pickled to a directory or fsspec URL (default: ORCHESTRATOR_HOME).",
)


class ConfigurableIOManager(ConfigurableResource, IOManager):
    """An IO manager whose fields are its config (Dagster's Pythonic IO managers): subclass
    it, declare fields, implement ``handle_output`` and ``load_input``, and give an instance
    as the ``io_manager`` resource."""


class FilesystemIOManager(ConfigurableIOManager):
    """Outputs pickled under ``base_dir`` (a directory or fsspec URL; default: the
    deployment's storage, ``ORCHESTRATOR_STORAGE_URL``)."""

    base_dir: str | None = None

    def _files(self) -> PickledFilesIOManager:
        from orchestrator.settings import get_settings

        return PickledFilesIOManager(self.base_dir or get_settings().storage_dir)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._files().handle_output(context, obj)

    def load_input(self, context: InputContext) -> Any:
        return self._files().load_input(context)


class InputManager(ABC):
    """Loads op inputs, whether an upstream op feeds them or not: ``In(input_manager_key=...)``
    names the resource that provides one."""

    @abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """The input's value (``context.upstream_output`` is None when no op feeds it)."""


class InputManagerDefinition(ResourceDefinition):
    """A resource whose value is an :class:`InputManager`."""


class _LoadFunction(InputManager):
    """What ``@input_manager`` makes of its function: called for each load (with the
    ``InputContext`` when it takes an argument); it returns the value, or an
    ``InputManager`` that loads it."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def load_input(self, context: InputContext) -> Any:
        loaded = self.fn(context) if inspect.signature(self.fn).parameters else self.fn()
        if isinstance(loaded, InputManager | IOManager):
            return loaded.load_input(context)
        return loaded


def input_manager(
    fn: Callable[..., Any] | None = None,
    *,
    config_schema: Any = None,
    description: str | None = None,
    required_resource_keys: set[str] | None = None,
    input_config_schema: Any = None,
) -> Any:
    """Decorator: a function of the ``InputContext`` (or of nothing) that returns an input's
    value, or an :class:`InputManager`, becomes an input manager resource."""

    def wrap(f: Callable[..., Any]) -> InputManagerDefinition:
        return InputManagerDefinition(
            lambda _ctx: _LoadFunction(f),
            config_schema=config_schema,
            description=description or f.__doc__,
            required_resource_keys=required_resource_keys,
        )

    return wrap(fn) if fn is not None else wrap
