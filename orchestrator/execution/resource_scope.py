"""Building resources for a run or a step, and tearing them down afterwards."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from orchestrator.definitions.resources import InitResourceContext, ResourceDefinition
from orchestrator.errors import ResourceNotFoundError, user_code_boundary
from orchestrator.events import ErrorInfo, Event, EventType, make_event

RESOURCE_TEARDOWN_FAILED = "resource_teardown_failed"  # ENGINE_EVENT kind


class Resources:
    """Attribute access to built resources: ``context.resources.server``."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise ResourceNotFoundError(
                f"resource {name!r} was not requested; add it to the op's "
                f"required_resource_keys (available here: {sorted(self._values)})"
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"Resources({sorted(self._values)})"


class ResourceScope:
    """Builds resources lazily, at most once each, and tears them down in reverse order.

    Args:
        definitions: resource definitions by key.
        config: validated config (JSON form) by key.
        run_id: the run the resources serve.
        log: logger given to resource functions.
    """

    def __init__(
        self,
        definitions: Mapping[str, ResourceDefinition],
        config: Mapping[str, Any],
        run_id: str | None,
        log: logging.Logger | None = None,
    ):
        self.definitions = definitions
        self.config = config
        self.run_id = run_id
        self.log = log or logging.getLogger("orchestrator")
        self._built: dict[str, Any] = {}
        self._generators: list[tuple[str, Generator[Any, Any, Any]]] = []

    def get(self, key: str) -> Any:
        if key in self._built:
            return self._built[key]
        definition = self.definitions.get(key)
        if definition is None:
            raise ResourceNotFoundError(
                f"resource {key!r} is not defined (defined: {sorted(self.definitions)})"
            )
        deps = Resources({k: self.get(k) for k in definition.required_resource_keys})
        raw = self.config.get(key, definition.default_config)
        value = raw
        if definition.config_schema is not None:
            value, problems = definition.config_schema.validate(raw, f"resources.{key}.config")
            if problems:
                from orchestrator.errors import ConfigError

                raise ConfigError(problems)
        ctx = InitResourceContext(
            resource_config=value, resources=deps, run_id=self.run_id, log=self.log
        )
        with user_code_boundary(f"initialization of resource {key!r}"):
            result = definition.resource_fn(ctx)
            if inspect.isgenerator(result):
                gen = result
                result = next(gen)
                self._generators.append((key, gen))
        self._built[key] = result
        return result

    def build(self, keys: Iterable[str]) -> Resources:
        return Resources({k: self.get(k) for k in keys})

    def teardown(self) -> list[tuple[str, BaseException]]:
        """Resume generator resources so their clean-up runs, last built first; returns
        ``(resource key, error)`` of each clean-up that raised, raising none (one failing
        clean-up does not keep the others from running)."""
        errors: list[tuple[str, BaseException]] = []
        while self._generators:
            key, gen = self._generators.pop()
            try:
                with user_code_boundary(f"teardown of resource {key!r}"):
                    next(gen, None)
            except Exception as exc:
                errors.append((key, exc))
        return errors

    def teardown_events(self, step_key: str | None = None) -> list[Event]:
        """:meth:`teardown`, reporting each failed clean-up as an ENGINE_EVENT with its error.
        As in Dagster, a failed clean-up does not fail the step or the run that used the
        resource (it has already produced its result)."""
        return [
            make_event(
                EventType.ENGINE_EVENT,
                self.run_id or "",
                f"Teardown of resource {key!r} failed: {type(exc).__name__}: {exc}",
                step_key=step_key,
                kind=RESOURCE_TEARDOWN_FAILED,
                resource=key,
                error=ErrorInfo.from_exception(exc).to_dict(),
            )
            for key, exc in self.teardown()
        ]
