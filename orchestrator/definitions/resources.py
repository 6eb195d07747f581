"""Resources: ``ResourceDefinition``, ``@resource`` and ``ConfigurableResource``."""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from unittest import mock

import pydantic
from pydantic import BaseModel, ConfigDict, PrivateAttr

from orchestrator.definitions.config import (
    Config,
    ConfigSchema,
    ConfiguredSchema,
    as_config_schema,
    configured_schema,
)


@dataclass
class InitResourceContext:
    """What a resource function receives.

    Attributes:
        resource_config: the validated config of this resource.
        resources: the resources this one requires (``required_resource_keys``).
        run_id: the run the resource is built for (None outside a run).
        log: a logger.
    """

    resource_config: Any = None
    resources: Any = None
    run_id: str | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("orchestrator"))


class ResourceDefinition:
    """Defines how a resource is built (and torn down) for a run.

    Args:
        resource_fn: called with an ``InitResourceContext``; returns the resource, or yields it
            once (code after the ``yield`` runs as teardown).
        config_schema: schema of the resource's config.
        description: shown in docs.
        required_resource_keys: other resources this one needs.
    """

    def __init__(
        self,
        resource_fn: Callable[[InitResourceContext], Any],
        config_schema: Any = None,
        description: str | None = None,
        required_resource_keys: set[str] | None = None,
        default_config: Any = None,
    ):
        self.resource_fn = resource_fn
        self.config_schema: ConfigSchema | ConfiguredSchema | None = as_config_schema(
            config_schema, "resource"
        )
        self.description = description
        self.required_resource_keys = frozenset(required_resource_keys or ())
        self.default_config = default_config

    @staticmethod
    def hardcoded_resource(value: Any, description: str | None = None) -> ResourceDefinition:
        """A resource that is always ``value``."""
        return ResourceDefinition(lambda _ctx: value, description=description)

    @staticmethod
    def mock_resource(description: str | None = None) -> ResourceDefinition:
        """A resource that is a fresh ``MagicMock`` (for tests and local runs)."""
        return ResourceDefinition(lambda _ctx: mock.MagicMock(), description=description)

    @staticmethod
    def none_resource(description: str | None = None) -> ResourceDefinition:
        """A resource that is ``None``."""
        return ResourceDefinition.hardcoded_resource(None, description)

    def configured(
        self,
        config_or_config_fn: Any,
        config_schema: Any = None,
        description: str | None = None,
        name: str | None = None,
    ) -> ResourceDefinition:
        """A new resource whose config is fixed (a dict) or computed by a function of new
        config (validated by ``config_schema``) onto this resource's config."""
        copy = ResourceDefinition(
            self.resource_fn,
            description=description or self.description,
            required_resource_keys=set(self.required_resource_keys),
        )
        copy.config_schema = configured_schema(
            self.config_schema, config_or_config_fn, config_schema, name or "resource"
        )
        return copy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the resource function directly (tests): with an ``InitResourceContext``, or
        with nothing for a function that takes none. A resource that yields is returned as a
        context manager (``with my_resource() as value:``), its teardown run at exit."""
        if not args and not kwargs:
            args = (InitResourceContext(),)
        result = self.resource_fn(*args, **kwargs)
        if inspect.isgenerator(result):
            return contextmanager(lambda: result)()
        return result


def resource(
    fn: Callable[..., Any] | None = None,
    *,
    config_schema: Any = None,
    description: str | None = None,
    required_resource_keys: set[str] | None = None,
) -> Any:
    """Decorator turning a function of an ``InitResourceContext`` into a ``ResourceDefinition``.

    The function may also take no arguments. A generator function yields the resource once and
    is resumed for teardown after the run (or step) that used it.
    """

    return resource_decorator(
        ResourceDefinition, fn, config_schema, description, required_resource_keys
    )


D = TypeVar("D", bound="ResourceDefinition")


def resource_decorator(
    cls: type[D],
    fn: Any,
    config_schema: Any,
    description: str | None,
    required_resource_keys: set[str] | None,
) -> Any:
    """``@resource`` and ``@io_manager``: a function of an ``InitResourceContext`` (or of
    nothing) becomes a ``cls``; a first argument that is no function is the config schema
    (``@resource({"url": str})``, as in Dagster)."""
    if fn is not None and not inspect.isfunction(fn):
        config_schema, fn = fn, None

    def wrap(f: Callable[..., Any]) -> D:
        takes_context = len(inspect.signature(f).parameters) > 0
        impl: Callable[[InitResourceContext], Any] = f if takes_context else (lambda _ctx: f())
        return cls(
            impl,
            config_schema=config_schema,
            description=description or f.__doc__,
            required_resource_keys=required_resource_keys,
        )

    return wrap(fn) if fn is not None else wrap


class EnvVar(str):
    """A ``ConfigurableResource`` field read from the environment when the resource is built
    for a run (in the process that runs the step), not when the job is defined:
    ``Database(password=EnvVar("DB_PASSWORD"))``. Its string value is the variable's name, so
    no secret is stored with the run."""

    @property
    def env_var_name(self) -> str:
        return str(self)

    def get_value(self, default: str | None = None) -> str | None:
        return os.environ.get(self.env_var_name, default)


class ConfigurableResource(Config):
    """A resource whose fields are its config; the instance itself is given to ops.

    Subclass it, declare fields, add methods. Fields given at construction are defaults that
    run config (``resources: {key: {config: {...}}}``) can override. Override
    ``setup_for_execution`` / ``teardown_after_execution`` for set-up and clean-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)
    _env_vars: dict[str, EnvVar] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any):
        super().__init__(**data)
        # fields given as EnvVar (validation turns them into plain strings): read at build time
        self._env_vars = {k: v for k, v in data.items() if isinstance(v, EnvVar)}

    @classmethod
    def configure_at_launch(cls, **defaults: Any) -> ResourceDefinition:
        """This resource with its fields given in run config when a run is launched
        (``resources: {key: {config: {...}}}``); ``defaults`` fill what run config leaves out.
        (As a field of another resource, it is not supported: give that one a built value.)"""
        return _configurable_resource_definition(cls, defaults)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Called after the resource is built for a run."""

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Called when the run (or step) that used the resource is done."""


def _resolve_env_vars(res: Any, env_fields: Mapping[str, EnvVar]) -> Any:
    """A copy of ``res`` whose fields still naming an ``EnvVar`` hold the variable's value."""
    todo = {k: v for k, v in env_fields.items() if getattr(res, k) == v}
    if not todo:
        return res
    missing = [v.env_var_name for v in todo.values() if v.get_value() is None]
    if missing:
        from orchestrator.errors import ConfigError

        raise ConfigError(
            [
                (f"resource field {k}", f"environment variable {v!r} is not set")
                for k, v in todo.items()
                if v in missing
            ],
            heading=f"Cannot build resource {type(res).__name__}",
        )
    return res.model_copy(update={k: v.get_value() for k, v in todo.items()})


def _configurable_resource_definition(
    instance: ConfigurableResource | type[ConfigurableResource],
    launch_defaults: Mapping[str, Any] | None = None,
) -> ResourceDefinition:
    """The definition of a ``ConfigurableResource`` instance (its fields are defaults that run
    config may override) or, for ``configure_at_launch``, of its class (run config gives the
    fields)."""
    cls = instance if isinstance(instance, type) else type(instance)
    env_fields = {} if isinstance(instance, type) else dict(instance._env_vars)
    # fields holding other resources or objects (ResourceDependency) are no config: they stay
    # out of run config and the plan, and come from the instance when the resource is built
    deps = {} if isinstance(instance, type) else _dependency_fields(instance)
    model: type[ConfigurableResource] = cls
    if deps:
        model = pydantic.create_model(  # type: ignore[call-overload]
            cls.__name__, __base__=cls, **{k: (Any, None) for k in deps}
        )
    schema = ConfigSchema(model=model, adapter=None, user_class=True)

    def build(ctx: InitResourceContext) -> Any:
        if isinstance(ctx.resource_config, cls):
            res = ctx.resource_config
            if deps:
                res = cls.model_validate({**res.model_dump(exclude=set(deps)), **deps})
        elif isinstance(instance, type):
            res = cls(**dict(launch_defaults or {}))
        else:
            res = instance
        res = _resolve_env_vars(res, env_fields)
        res.setup_for_execution(ctx)
        try:
            yield res
        finally:
            res.teardown_after_execution(ctx)

    definition = ResourceDefinition(build, description=cls.__doc__)
    definition.config_schema = schema
    if isinstance(instance, type):
        definition.default_config = dict(launch_defaults or {})
    else:
        definition.default_config = {
            k: getattr(instance, k) for k in instance.model_fields_set if k not in deps
        }
    return definition


def _dependency_fields(instance: ConfigurableResource) -> dict[str, Any]:
    """Fields of ``instance`` whose values are not config (not JSON-like): other objects."""
    out: dict[str, Any] = {}
    for name in type(instance).model_fields:
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            continue  # a nested resource or Config: plain config values
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            out[name] = value
    return out


def as_resource_definition(value: Any) -> ResourceDefinition:
    """Accept what users pass as a resource: a definition, a ``ConfigurableResource`` or any
    plain object (used as is)."""
    if isinstance(value, ResourceDefinition):
        return value
    if isinstance(value, ConfigurableResource):
        return _configurable_resource_definition(value)
    return ResourceDefinition.hardcoded_resource(value)


def as_resource_definitions(values: Mapping[str, Any] | None) -> dict[str, ResourceDefinition]:
    """Apply :func:`as_resource_definition` to every value of a mapping."""
    return {k: as_resource_definition(v) for k, v in (values or {}).items()}


T = TypeVar("T")
RESOURCE_PARAM = "orchestrator.resource_param"
# An op parameter annotated ResourceParam[T] receives the resource named like the parameter.
ResourceParam = Annotated[T, RESOURCE_PARAM]
Resource = ResourceParam  # the older name some Dagster examples use
# A ConfigurableResource field holding another resource (or any object): ResourceDependency[T]
ResourceDependency = Annotated[T, "orchestrator.resource_dependency"]


def make_values_resource(**fields: Any) -> ResourceDefinition:
    """A resource whose value is its config: ``make_values_resource(region=str)`` takes
    ``{"region": "eu"}`` and ops read ``context.resources.values["region"]``; with no fields
    it takes any config."""
    from orchestrator.definitions.config import Field as ConfigField

    schema: Any = dict(fields) if fields else ConfigField(Any, is_required=False)
    return ResourceDefinition(lambda ctx: ctx.resource_config, config_schema=schema)
