"""Config: ``Config`` classes, ``Field`` dict schemas, ``RunConfig``, and config mappings.

Every config schema becomes a :class:`ConfigSchema`, which validates a raw (JSON-like) value and
reports problems as ``(path, message)`` pairs so that an error can name the exact place that is
wrong, e.g. ``ops.do_something.config.config_param``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationInfo

from orchestrator.errors import ConfigError, DefinitionError

Problems = list[tuple[str, str]]


class Config(BaseModel):
    """Base class of typed op and resource config (a pydantic model that rejects unknown keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_NOTSET: Any = object()


class Field:
    """One entry of a dict ``config_schema``.

    Args:
        config: the value's type (``int``, ``str``, ``list[str]``, a nested dict schema, ...).
        default_value: used when the key is absent (makes the entry optional).
        is_required: False makes the entry optional with ``None`` as its value.
        description: shown in docs and errors.
    """

    def __init__(
        self,
        config: Any,
        default_value: Any = _NOTSET,
        is_required: bool | None = None,
        description: str | None = None,
    ):
        self.config_type = config
        self.default_value = default_value
        self.description = description
        if is_required is None:
            is_required = default_value is _NOTSET
        if is_required and default_value is not _NOTSET:
            raise DefinitionError("Field: a field with a default_value cannot be is_required=True")
        self.is_required = is_required


class Noneable:
    """A config type that also accepts ``None``: ``Noneable(int)``."""

    def __init__(self, inner: Any):
        self.inner = inner


class Shape:
    """A config mapping with these fields (what a plain dict schema means):
    ``Shape({"host": str, "port": Field(int, default_value=5432)})``."""

    def __init__(self, fields: Mapping[str, Any], description: str | None = None):
        self.fields = dict(fields)
        self.description = description


class Permissive(Shape):
    """A config mapping that checks the fields it names and keeps any other keys as given."""

    def __init__(self, fields: Mapping[str, Any] | None = None, description: str | None = None):
        super().__init__(fields or {}, description)


class Selector(Shape):
    """Exactly one of the named fields: ``Selector({"csv": str, "parquet": str})`` accepts
    ``{"csv": "a.csv"}``; the op gets that one-key mapping."""


class Array:
    """A list of values of one config type: ``Array(int)``."""

    def __init__(self, inner: Any, description: str | None = None):
        self.inner = inner
        self.description = description


class EnumValue:
    """One value of an :class:`Enum`: its config name and the Python value the op receives
    (the name itself unless given)."""

    def __init__(self, config_value: str, python_value: Any = _NOTSET, description: str = ""):
        self.config_value = config_value
        self.python_value = config_value if python_value is _NOTSET else python_value
        self.description = description


class Enum:
    """A config value that is one of fixed names: ``Enum("Color", [EnumValue("RED"), ...])``.

    ``Enum.from_python_enum(MyEnum)`` takes the names of a Python ``enum.Enum`` and gives the op
    its members."""

    def __init__(self, name: str, enum_values: list[EnumValue]):
        self.name = name
        self.enum_values = list(enum_values)

    @classmethod
    def from_python_enum(cls, enum_type: Any) -> Enum:
        return cls(enum_type.__name__, [EnumValue(m.name, m) for m in enum_type])

    def resolve(self, value: Any) -> Any:
        for ev in self.enum_values:
            if value == ev.config_value:
                return ev.python_value
        names = [ev.config_value for ev in self.enum_values]
        raise ValueError(f"{value!r} is not a value of enum {self.name} (one of {names})")

    def validator(self, value: Any, info: ValidationInfo) -> Any:
        python_value = self.resolve(value)
        return python_value if _resolving(info) else value


def _resolving(info: ValidationInfo) -> bool:
    """False while a run is planned: the plan keeps config in its given (JSON) form, enum
    names and ``{"env": ...}`` included; the step's process resolves them."""
    return not (isinstance(info.context, Mapping) and info.context.get("resolve") is False)


class _EnvSource:
    """A config type that takes the value itself or ``{"env": "VARIABLE"}`` (read when the
    config is validated, in the process that validates it)."""

    def __init__(self, name: str, python_type: type):
        self.name = name
        self.python_type = python_type

    def __repr__(self) -> str:
        return self.name

    def validator(self, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Mapping):
            if set(value) != {"env"} or not isinstance(value["env"], str):
                raise ValueError(f'{self.name}: expected a value or {{"env": "VARIABLE"}}')
            return self.resolve(value) if _resolving(info) else value
        if not isinstance(value, self.python_type) or (
            self.python_type is int and isinstance(value, bool)
        ):
            raise ValueError(
                f'{self.name}: expected a {self.python_type.__name__} or {{"env": "VARIABLE"}}'
            )
        return value

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            variable = value["env"]
            if variable not in os.environ:
                raise ValueError(f"environment variable {variable!r} is not set")
            value = os.environ[variable]
            if self.python_type is bool:
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError(f"{variable}={value!r} is not a boolean (true/false)")
                return lowered in ("true", "1")
            if self.python_type is int:
                try:
                    return int(value)
                except ValueError:
                    raise ValueError(f"{variable}={value!r} is not an integer") from None
        return value


StringSource = _EnvSource("StringSource", str)
IntSource = _EnvSource("IntSource", int)
BoolSource = _EnvSource("BoolSource", bool)


def _selector_annotation(selector: Selector, name: str) -> Any:
    adapters = {
        key: TypeAdapter(_annotation_for(_entry_type(entry), f"{name}_{key}"))
        for key, entry in selector.fields.items()
    }

    def check(value: Any, info: ValidationInfo) -> dict[str, Any]:
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ValueError(f"expected exactly one of {sorted(adapters)}")
        ((key, inner),) = value.items()
        if key not in adapters:
            raise ValueError(f"{key!r} is not one of {sorted(adapters)}")
        return {key: adapters[key].validate_python(inner, context=info.context)}

    return Annotated[dict[str, Any], BeforeValidator(check)]


def _entry_type(entry: Any) -> Any:
    return entry.config_type if isinstance(entry, Field) else entry


def _annotation_for(schema: Any, name: str) -> Any:
    """Turn a dict-schema entry into a pydantic annotation."""
    if isinstance(schema, Noneable):
        return Optional[_annotation_for(schema.inner, name)]  # noqa: UP045
    if isinstance(schema, Selector):
        return _selector_annotation(schema, name)
    if isinstance(schema, Permissive):
        return _model_for_dict(schema.fields, name, extra="allow")
    if isinstance(schema, Shape):
        return _model_for_dict(schema.fields, name)
    if isinstance(schema, Array):
        return list[_annotation_for(schema.inner, name)]  # type: ignore[misc]
    if isinstance(schema, Enum):
        return Annotated[Any, BeforeValidator(schema.validator)]
    if isinstance(schema, _EnvSource):
        return Annotated[Any, BeforeValidator(schema.validator)]
    if isinstance(schema, dict):
        return _model_for_dict(schema, name)
    if isinstance(schema, list) and len(schema) == 1:
        return list[_annotation_for(schema[0], name)]  # type: ignore[misc]
    if schema is None:
        return Any
    return schema


_OMIT_UNSET = "orchestrator_omit_unset"


def _dump(value: Any) -> Any:
    """A validated dict-schema model as the plain dict an op reads: as in Dagster, an optional
    field without a default that was not given is absent (not None)."""
    if isinstance(value, BaseModel):
        out: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra
            if (
                isinstance(extra, dict)
                and extra.get(_OMIT_UNSET)
                and (name not in value.model_fields_set)
            ):
                continue
            out[name] = _dump(getattr(value, name))
        out.update({k: _dump(v) for k, v in (value.model_extra or {}).items()})
        return out
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _all_optional(annotation: Any) -> bool:
    return (
        inspect.isclass(annotation)
        and issubclass(annotation, BaseModel)
        and not any(f.is_required() for f in annotation.model_fields.values())
    )


def _model_for_dict(
    schema: Mapping[str, Any], name: str, extra: Literal["forbid", "allow"] = "forbid"
) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key, entry in schema.items():
        if isinstance(entry, Field):
            annotation = _annotation_for(entry.config_type, f"{name}_{key}")
            if entry.default_value is not _NOTSET:
                default = entry.default_value
            elif entry.is_required:
                default = ...
            else:  # optional without a default: absent from the op's config when not given
                annotation, default = Optional[annotation], None  # noqa: UP045
                fields[key] = (
                    annotation,
                    pydantic.Field(
                        default,
                        description=entry.description,
                        json_schema_extra={_OMIT_UNSET: True},
                    ),
                )
                continue
            fields[key] = (annotation, pydantic.Field(default, description=entry.description))
        elif isinstance(entry, Noneable):  # an absent Noneable entry is None
            fields[key] = (_annotation_for(entry, f"{name}_{key}"), None)
        else:
            annotation = _annotation_for(entry, f"{name}_{key}")
            if _all_optional(annotation):  # a mapping of optional fields may be left out
                fields[key] = (annotation, pydantic.Field(default_factory=annotation))
            else:
                fields[key] = (annotation, ...)
    return pydantic.create_model(
        f"{name}_config", __config__=ConfigDict(extra=extra, strict=True), **fields
    )


@dataclass(frozen=True)
class ConfigSchema:
    """A validated form of any accepted config schema.

    ``model`` is set for ``Config`` classes and dict schemas; ``adapter`` for plain types.
    ``user_class`` is True when the op receives an instance of the user's ``Config`` class.
    """

    model: type[BaseModel] | None
    adapter: TypeAdapter[Any] | None
    user_class: bool
    default: Any = _NOTSET

    @property
    def requires_value(self) -> bool:
        """True when the schema has required entries and no default."""
        if self.default is not _NOTSET:
            return False
        if self.model is not None:
            return any(f.is_required() for f in self.model.model_fields.values())
        return True

    def validate(self, value: Any, path: str, *, resolve: bool = True) -> tuple[Any, Problems]:
        """Validate a raw value. Returns (value for the op, problems); the value is the user's
        ``Config`` instance, a plain dict for dict schemas, or the plain value. With
        ``resolve=False`` (planning) enum names and ``{"env": ...}`` sources stay as given."""
        context = {"resolve": resolve}
        if value is None and self.default is not _NOTSET:
            value = self.default
        if isinstance(value, BaseModel):
            value = value.model_dump()
        try:
            if self.model is not None:
                if value is None:
                    value = {}
                if not isinstance(value, Mapping):
                    return None, [(path, f"expected a mapping, got {type(value).__name__}")]
                obj = self.model.model_validate(value, context=context)
                return (obj if self.user_class else _dump(obj)), []
            assert self.adapter is not None
            return self.adapter.validate_python(value, context=context), []
        except pydantic.ValidationError as exc:
            return None, pydantic_problems(exc, path, self.model)

    def to_json(self, value: Any) -> Any:
        """The JSON form of a validated value (what plans and messages carry)."""
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value


class ConfiguredSchema:
    """The config schema of a ``configured`` definition: the config it takes now (``outer``,
    None for none) is validated, mapped by ``mapping`` (a function of the outer config, or
    fixed config) onto the original definition's config, which is validated by ``inner``.

    The plan keeps the outer config (``resolve=False``, after checking that it maps to valid
    inner config); the step's process maps it again."""

    def __init__(
        self,
        inner: ConfigSchema | ConfiguredSchema | None,
        outer: ConfigSchema | None,
        mapping: Any,
        name: str,
    ):
        self.inner = inner
        self.outer = outer
        self.mapping = mapping
        self.name = name

    @property
    def requires_value(self) -> bool:
        return self.outer is not None and self.outer.requires_value

    def validate(self, value: Any, path: str, *, resolve: bool = True) -> tuple[Any, Problems]:
        outer_value = None
        if self.outer is not None:
            outer_value, problems = self.outer.validate(value, path)
            if problems:
                return None, problems
        elif value not in (None, {}):
            return None, [(path, f"{self.name} is configured: its config is fixed, give none")]
        if callable(self.mapping):
            from orchestrator.errors import user_code_boundary

            with user_code_boundary(f"config mapping of configured {self.name!r}"):
                inner_raw = to_plain(self.mapping(outer_value))
        else:
            inner_raw = to_plain(self.mapping)
        inner_value = inner_raw
        if self.inner is not None:
            inner_value, problems = self.inner.validate(inner_raw, path, resolve=resolve)
            if problems:
                return None, [
                    (p, f"{m} (in the config that configured {self.name!r} maps to)")
                    for p, m in problems
                ]
        if not resolve:
            return (value if self.outer is None else to_plain(outer_value)), []
        return inner_value, []

    def to_json(self, value: Any) -> Any:
        return to_plain(value)


def configured_schema(
    inner: ConfigSchema | ConfiguredSchema | None, config_or_fn: Any, config_schema: Any, name: str
) -> ConfiguredSchema:
    """What ``.configured(config_or_fn, config_schema=...)`` gives a definition."""
    if not callable(config_or_fn) and config_schema is not None:
        raise DefinitionError(
            f"configured {name!r}: config_schema goes with a config function, not fixed config"
        )
    return ConfiguredSchema(inner, as_config_schema(config_schema, name), config_or_fn, name)


def configured(configurable: Any, config_schema: Any = None, **kwargs: Any) -> Any:
    """Dagster's ``configured``: ``configured(my_resource)({"region": "eu"})``, or as a
    decorator on a function mapping new config onto the definition's config::

        @configured(s3_session, config_schema={"region": str})
        def eu_session(config):
            return {"region": config["region"], "unsigned": True}

    An op made this way is named after the decorated function unless ``name=`` is given."""

    def apply(config_or_fn: Any) -> Any:
        if callable(config_or_fn) and "name" not in kwargs and hasattr(configurable, "ins"):
            kwargs["name"] = config_or_fn.__name__
        return configurable.configured(config_or_fn, config_schema=config_schema, **kwargs)

    return apply


def as_config_schema(schema: Any, name: str = "op") -> ConfigSchema | None:
    """Build a :class:`ConfigSchema` from a ``Config`` class, a dict schema, a ``Field`` or a type.

    Raises:
        DefinitionError: the schema is not one of the accepted forms.
    """
    if schema is None:
        return None
    if isinstance(schema, ConfigSchema):
        return schema
    if inspect.isclass(schema) and issubclass(schema, BaseModel):
        return ConfigSchema(model=schema, adapter=None, user_class=True)
    if isinstance(schema, Mapping):
        return ConfigSchema(model=_model_for_dict(schema, name), adapter=None, user_class=False)
    if isinstance(schema, Shape) and not isinstance(schema, Selector):
        extra: Literal["forbid", "allow"] = "allow" if isinstance(schema, Permissive) else "forbid"
        model = _model_for_dict(schema.fields, name, extra)
        return ConfigSchema(model=model, adapter=None, user_class=False)
    if isinstance(schema, Field):
        inner = as_config_schema(schema.config_type, name)
        assert inner is not None
        default = schema.default_value if schema.default_value is not _NOTSET else _NOTSET
        if not schema.is_required and default is _NOTSET:
            default = None
        return ConfigSchema(inner.model, inner.adapter, inner.user_class, default)
    try:
        return ConfigSchema(
            model=None, adapter=TypeAdapter(_annotation_for(schema, name)), user_class=False
        )
    except (TypeError, pydantic.PydanticSchemaGenerationError) as exc:
        raise DefinitionError(f"{name}: unsupported config schema {schema!r}: {exc}") from exc


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *get_args(annotation)]
        model = next(
            (c for c in candidates if inspect.isclass(c) and issubclass(c, BaseModel)), None
        )
    return model


def pydantic_problems(
    exc: pydantic.ValidationError, path: str, model: type[BaseModel] | None = None
) -> Problems:
    """Convert a pydantic ValidationError into (path, message) pairs with readable messages."""
    problems: Problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        full = ".".join([path, *(str(p) for p in loc)]) if loc else path
        kind = err["type"]
        if kind == "missing":
            msg = "missing required config value"
        elif kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            msg = "unknown config key" + (
                f"; expected one of: {', '.join(allowed)}" if allowed else ""
            )
        else:
            msg = f"{err['msg']} (got {err.get('input')!r})"
        problems.append((full, msg))
    return problems


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` merged into ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def to_plain(value: Any) -> Any:
    """Deep-convert ``Config`` instances (and ``RunConfig``) inside a value into plain dicts."""
    if isinstance(value, RunConfig):
        return value.to_dict()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def _node_config(value: Any) -> Any:
    # RunConfig(ops={"x": XConfig(...)}) means {"x": {"config": {...}}}.
    if isinstance(value, BaseModel):
        return {"config": value.model_dump(mode="json")}
    if isinstance(value, Mapping):
        return {
            k: ({kk: _node_config(vv) for kk, vv in v.items()} if k == "ops" else to_plain(v))
            for k, v in value.items()
        }
    return to_plain(value)


class RunConfig:
    """Run config as Python objects; equivalent to the raw dict form.

    Args:
        ops: op name -> its ``Config`` instance or raw ``{"config": ..., "inputs": ...}`` dict.
        resources: resource key -> its config (a ``Config``/resource instance or a raw dict).
        execution: executor config, e.g. ``{"config": {"in_process": {}}}``.
        loggers: logger name -> ``{"config": ...}``.
    """

    def __init__(
        self,
        ops: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        execution: Mapping[str, Any] | None = None,
        loggers: Mapping[str, Any] | None = None,
    ):
        self.ops = dict(ops or {})
        self.resources = dict(resources or {})
        self.execution = dict(execution or {})
        self.loggers = dict(loggers or {})

    def to_dict(self) -> dict[str, Any]:
        """The raw dict form of this run config."""
        out: dict[str, Any] = {}
        if self.ops:
            out["ops"] = {k: _node_config(v) for k, v in self.ops.items()}
        if self.resources:
            out["resources"] = {k: _node_config(v) for k, v in self.resources.items()}
        if self.execution:
            out["execution"] = to_plain(self.execution)
        if self.loggers:
            out["loggers"] = to_plain(self.loggers)
        return out

    def __repr__(self) -> str:
        return f"RunConfig({self.to_dict()!r})"


def run_config_to_dict(run_config: RunConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """Normalize a ``RunConfig``, raw dict or None into the raw dict form."""
    if run_config is None:
        return {}
    if isinstance(run_config, RunConfig):
        return run_config.to_dict()
    if not isinstance(run_config, Mapping):
        raise ConfigError([("<root>", f"run config must be a mapping, got {type(run_config)}")])
    out = dict(run_config)
    if "ops" in out and isinstance(out["ops"], Mapping):
        out["ops"] = {k: _node_config(v) for k, v in out["ops"].items()}
    if "resources" in out and isinstance(out["resources"], Mapping):
        out["resources"] = {k: _node_config(v) for k, v in out["resources"].items()}
    return dict(to_plain(out))


class ConfigMapping:
    """Exposes a narrower config interface for a job and maps it onto full run config.

    Args:
        config_fn: takes the validated outer config and returns run config (dict or RunConfig).
        config_schema: schema of the outer config (a ``Config`` class, dict schema or type).
    """

    def __init__(self, config_fn: Callable[[Any], Any], config_schema: Any = None):
        self.config_fn = config_fn
        self.config_schema = as_config_schema(config_schema, "config_mapping")

    def resolve(self, outer: Any) -> dict[str, Any]:
        """Validate the outer config and return the full run config it maps to.

        Raises:
            ConfigError: the outer config is invalid.
            UserCodeError: the mapping function raised.
        """
        from orchestrator.errors import user_code_boundary

        value = outer
        if self.config_schema is not None:
            value, problems = self.config_schema.validate(outer, "config")
            if problems:
                raise ConfigError(problems, heading="Invalid config for the job's config mapping")
        with user_code_boundary("config mapping function"):
            mapped = self.config_fn(value)
        return run_config_to_dict(mapped)

    def map_config(self, outer: Any, path: str) -> tuple[dict[str, Any], Problems]:
        """Validate config given at ``path`` (a graph's, an executor's) and return what the
        mapping function makes of it (for a graph: its nodes' config,
        ``{node: {"config": ...}}``), or the problems (paths under ``path``)."""
        from orchestrator.errors import user_code_boundary

        value = outer
        if self.config_schema is not None:
            value, problems = self.config_schema.validate(outer, path)
            if problems:
                return {}, problems
        elif outer not in (None, {}):
            return {}, [(path, "this config is fixed by a config mapping; give none")]
        with user_code_boundary("graph config mapping function"):
            mapped = to_plain(self.config_fn(value))
        if not isinstance(mapped, Mapping):
            return {}, [(path, f"the config mapping returned {mapped!r}, not a mapping")]
        return dict(mapped), []


def config_mapping(fn: Callable[[Any], Any] | None = None, *, config_schema: Any = None) -> Any:
    """Decorator making a :class:`ConfigMapping`; the schema defaults to the parameter's
    ``Config`` annotation."""

    def wrap(f: Callable[[Any], Any]) -> ConfigMapping:
        schema = config_schema
        if schema is None:
            params = list(inspect.signature(f).parameters.values())
            if params and params[0].annotation is not inspect.Parameter.empty:
                annotation = params[0].annotation
                if isinstance(annotation, str):
                    annotation = f.__globals__.get(annotation, annotation)
                if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
                    schema = annotation
        return ConfigMapping(f, schema)

    return wrap(fn) if fn is not None else wrap


def is_optional(annotation: Any) -> bool:
    """True for ``Optional[X]`` annotations."""
    return get_origin(annotation) is Union and type(None) in get_args(annotation)


# Dagster's names of the scalar config types.
String = str
Int = int
Float = float
Bool = bool
