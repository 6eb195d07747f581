"""Resources: ``ResourceDefinition``, ``@resource`` and ``ConfigurableResource``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from pydantic import ConfigDict

from orchestrator.definitions.config import Config, ConfigSchema, as_config_schema


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


def build_init_resource_context(config: Any = None, resources: Any = None) -> InitResourceContext:
    """An ``InitResourceContext`` for calling a resource function directly in tests."""
    return InitResourceContext(resource_config=config, resources=resources)


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
        self.config_schema: ConfigSchema | None = as_config_schema(config_schema, "resource")
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the resource function directly (tests)."""
        return self.resource_fn(*args, **kwargs)


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

    def wrap(f: Callable[..., Any]) -> ResourceDefinition:
        takes_context = len(inspect.signature(f).parameters) > 0
        impl: Callable[[InitResourceContext], Any] = f if takes_context else (lambda _ctx: f())
        return ResourceDefinition(
            impl,
            config_schema=config_schema,
            description=description or f.__doc__,
            required_resource_keys=required_resource_keys,
        )

    return wrap(fn) if fn is not None else wrap


class ConfigurableResource(Config):
    """A resource whose fields are its config; the instance itself is given to ops.

    Subclass it, declare fields, add methods. Fields given at construction are defaults that
    run config (``resources: {key: {config: {...}}}``) can override. Override
    ``setup_for_execution`` / ``teardown_after_execution`` for set-up and clean-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Called after the resource is built for a run."""

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Called when the run (or step) that used the resource is done."""


def _configurable_resource_definition(instance: ConfigurableResource) -> ResourceDefinition:
    cls = type(instance)
    schema = ConfigSchema(model=cls, adapter=None, user_class=True)

    def build(ctx: InitResourceContext) -> Any:
        res = ctx.resource_config if isinstance(ctx.resource_config, cls) else instance
        res.setup_for_execution(ctx)
        try:
            yield res
        finally:
            res.teardown_after_execution(ctx)

    definition = ResourceDefinition(build, description=cls.__doc__)
    definition.config_schema = schema
    definition.default_config = {k: getattr(instance, k) for k in instance.model_fields_set}
    return definition


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
