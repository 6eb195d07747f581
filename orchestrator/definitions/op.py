"""``@op`` and ``OpDefinition``: a Python function with declared inputs, outputs, config and
resources."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from orchestrator.definitions import engine
from orchestrator.definitions.config import (
    ConfigSchema,
    ConfiguredSchema,
    as_config_schema,
    configured_schema,
)
from orchestrator.definitions.hooks import HookDefinition
from orchestrator.definitions.io import DEFAULT_OUTPUT, In, Out, Output, is_dynamic
from orchestrator.definitions.resources import RESOURCE_PARAM, ConfigurableResource
from orchestrator.definitions.retry import RetryPolicy
from orchestrator.errors import DefinitionError

if TYPE_CHECKING:
    pass

NodeDefinition = "OpDefinition | GraphDefinition"


def _resolve_annotation(fn: Callable[..., Any], annotation: Any) -> Any:
    if isinstance(annotation, str):
        try:
            return eval(annotation, fn.__globals__)  # annotations under `from __future__`
        except Exception:
            return annotation
    return annotation


def _is_context_param(name: str, annotation: Any) -> bool:
    if name in ("context", "_context", "_", "ctx"):
        return True
    return getattr(annotation, "__name__", "") in ("OpExecutionContext", "AssetExecutionContext")


def _is_resource_param(annotation: Any) -> bool:
    """A ``ConfigurableResource`` subclass, or ``ResourceParam[T]``."""
    if inspect.isclass(annotation) and issubclass(annotation, ConfigurableResource):
        return True
    return get_origin(annotation) is Annotated and RESOURCE_PARAM in getattr(
        annotation, "__metadata__", ()
    )


@dataclass(frozen=True)
class _Signature:
    takes_context: bool
    config_param: str | None
    config_class: Any
    resource_params: dict[str, str]
    input_params: list[str]
    annotations: dict[str, Any]
    defaults: dict[str, Any]
    var_keyword: bool


def _inspect_fn(fn: Callable[..., Any]) -> _Signature:
    params = list(inspect.signature(fn).parameters.values())
    takes_context = False
    if params:
        first = params[0]
        if _is_context_param(first.name, _resolve_annotation(fn, first.annotation)):
            takes_context = True
            params = params[1:]
    config_param, config_class = None, None
    resource_params: dict[str, str] = {}
    input_params: list[str] = []
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    var_keyword = False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True  # inputs declared in `ins` beyond the named parameters
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise DefinitionError(
                f"op function {fn.__name__!r}: *{p.name} is not supported; declare the inputs "
                "with ins={...} and take them as named parameters or **kwargs"
            )
        if p.default is not inspect.Parameter.empty:
            defaults[p.name] = p.default
        ann = _resolve_annotation(fn, p.annotation)
        if _is_resource_param(ann):
            resource_params[p.name] = p.name
        elif p.name == "config" or (
            inspect.isclass(ann) and issubclass(ann, BaseModel) and config_param is None
        ):
            config_param, config_class = p.name, ann
        else:
            input_params.append(p.name)
            if ann is not inspect.Parameter.empty:
                annotations[p.name] = ann
    return _Signature(
        takes_context,
        config_param,
        config_class,
        resource_params,
        input_params,
        annotations,
        defaults,
        var_keyword,
    )


@dataclass(frozen=True)
class IODefinition:
    """An input or output of an op as Dagster's ``InputDefinition``/``OutputDefinition``
    show it."""

    name: str
    dagster_type: Any
    description: str | None
    metadata: Mapping[str, Any]

    @staticmethod
    def of(name: str, spec: Any) -> IODefinition:
        from orchestrator.definitions.types import as_dagster_type

        return IODefinition(
            name, as_dagster_type(spec.dagster_type), spec.description, dict(spec.metadata)
        )


@dataclass(frozen=True, eq=False)
class OpDefinition:
    """An op: the unit of computation of a job.

    Use the ``@op`` decorator rather than building one by hand. Calling an op inside a ``@job``
    or ``@graph`` body adds an invocation of it; calling it anywhere else runs the function
    directly (handy in unit tests).
    """

    name: str
    compute_fn: Callable[..., Any]
    ins: Mapping[str, In]
    outs: Mapping[str, Out]
    config_schema: ConfigSchema | ConfiguredSchema | None = None
    required_resource_keys: frozenset[str] = frozenset()
    resource_params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    description: str | None = None
    takes_context: bool = False
    config_param: str | None = None
    input_params: tuple[str, ...] = ()

    @property
    def input_names(self) -> list[str]:
        return list(self.ins)

    @property
    def input_defs(self) -> list[IODefinition]:
        """Dagster's view of the inputs: ``name``, ``dagster_type`` (``.display_name``)..."""
        return [IODefinition.of(n, i) for n, i in self.ins.items()]

    @property
    def output_defs(self) -> list[IODefinition]:
        return [IODefinition.of(n, o) for n, o in self.outs.items()]

    @property
    def output_names(self) -> list[str]:
        return list(self.outs)

    @property
    def all_resource_keys(self) -> frozenset[str]:
        """Every resource key the op needs, including IO managers of its outputs."""
        io_keys = {o.io_manager_key for o in self.outs.values() if not o.is_nothing}
        io_keys |= {i.input_manager_key for i in self.ins.values() if i.input_manager_key}
        return self.required_resource_keys | set(self.resource_params.values()) | io_keys

    def configured(
        self,
        config_or_config_fn: Any,
        name: str,
        config_schema: Any = None,
        description: str | None = None,
    ) -> OpDefinition:
        """A new op, named ``name``, whose config is fixed (a dict) or computed by a function
        of new config (validated by ``config_schema``) onto this op's config."""
        return replace(
            self,
            name=name,
            config_schema=configured_schema(
                self.config_schema, config_or_config_fn, config_schema, name
            ),
            description=description or self.description,
        )

    # -- invocation helpers (each returns a pending invocation usable in a composition) --------

    def alias(self, name: str) -> PendingInvocation:
        """Invoke this op under another node name."""
        return PendingInvocation(self).alias(name)

    def tag(self, tags: Mapping[str, Any]) -> PendingInvocation:
        """Invoke this op with extra tags."""
        return PendingInvocation(self).tag(tags)

    def with_hooks(self, hooks: Any) -> PendingInvocation:
        """Invoke this op with hooks attached."""
        return PendingInvocation(self).with_hooks(hooks)

    def with_retry_policy(self, policy: RetryPolicy) -> PendingInvocation:
        """Invoke this op with a retry policy of its own."""
        return PendingInvocation(self).with_retry_policy(policy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from orchestrator.definitions.graph import current_composition

        composition = current_composition()
        if composition is not None:
            return composition.invoke(PendingInvocation(self), args, kwargs)
        return engine.engine().invoke_op(  # outside a job: a direct call
            self, args, dict(kwargs)
        )


@dataclass(frozen=True)
class PendingInvocation:
    """A node definition plus per-invocation settings (alias, tags, hooks, retry policy)."""

    node_def: Any  # OpDefinition | GraphDefinition
    given_alias: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    hook_defs: frozenset[HookDefinition] = frozenset()
    retry_policy: RetryPolicy | None = None

    def alias(self, name: str) -> PendingInvocation:
        return replace(self, given_alias=name)

    def tag(self, tags: Mapping[str, Any]) -> PendingInvocation:
        return replace(self, tags={**self.tags, **normalize_tags(tags)})

    def with_hooks(self, hooks: Any) -> PendingInvocation:
        return replace(self, hook_defs=self.hook_defs | frozenset(hooks))

    def with_retry_policy(self, policy: RetryPolicy) -> PendingInvocation:
        return replace(self, retry_policy=policy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from orchestrator.definitions.graph import current_composition

        composition = current_composition()
        if composition is None:
            raise DefinitionError(
                f"{self.node_def.name!r} with alias/tags/hooks can only be called inside the "
                "body of a @job or @graph"
            )
        return composition.invoke(self, args, kwargs)


def normalize_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags are strings; other values are stored as JSON (as Dagster does)."""
    import json

    out: dict[str, str] = {}
    for k, v in (tags or {}).items():
        out[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


_NO_TYPE = (inspect.Signature.empty, None, type(None), Any, Output)


def _return_type(fn: Callable[..., Any]) -> Any:
    """The output type ``fn``'s return annotation declares, as Dagster infers it, or None.

    ``-> None`` (and no annotation, ``Any`` or an unresolvable string) declares no type, so an
    op annotated ``-> None`` may return None. A generator's annotation describes the iterator
    and ``-> Output`` the wrapper, not the value, so neither declares one.
    """
    if inspect.isgeneratorfunction(fn):
        return None
    ann = _resolve_annotation(fn, inspect.signature(fn).return_annotation)
    if get_origin(ann) is Output:  # -> Output[int]: the output's type is int
        (ann,) = get_args(ann)
    if isinstance(ann, str) or any(ann is no_type for no_type in _NO_TYPE):
        return None
    return ann


def _normalize_outs(out: Out | Mapping[str, Out] | None, return_type: Any = None) -> dict[str, Out]:
    if out is None:
        return {DEFAULT_OUTPUT: Out(dagster_type=return_type)}
    if isinstance(out, Out):
        # a dynamic op's annotation describes its DynamicOutput list, not each value
        if out.dagster_type is None and return_type is not None and not is_dynamic(out):
            out = replace(out, dagster_type=return_type)
        return {DEFAULT_OUTPUT: out}
    if isinstance(out, Mapping):
        for name, o in out.items():
            if not isinstance(o, Out):
                raise DefinitionError(f"out[{name!r}] must be an Out(...), got {o!r}")
        return dict(out)
    raise DefinitionError(f"out must be an Out or a dict of Out, got {out!r}")


def op(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    ins: Mapping[str, In] | None = None,
    out: Out | Mapping[str, Out] | None = None,
    config_schema: Any = None,
    required_resource_keys: set[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    retry_policy: RetryPolicy | None = None,
    description: str | None = None,
) -> Any:
    """Decorator that turns a function into an :class:`OpDefinition`.

    The function may take ``context`` first, then its inputs by name, a ``config`` parameter
    annotated with a ``Config`` subclass, and resource parameters annotated with
    ``ConfigurableResource`` subclasses.

    Args:
        name: the op's name (default: the function's name).
        ins: input declarations (``In``) keyed by parameter name.
        out: one ``Out`` or a dict of named ``Out`` for several outputs. A single output
            without a ``dagster_type`` takes the function's return annotation (``-> int``).
        config_schema: dict schema, type or ``Config`` class for ``context.op_config``.
        required_resource_keys: resources reached through ``context.resources``.
        tags: string tags (other values are stored as JSON).
        retry_policy: how failures are retried.
        description: shown in docs (default: the docstring).

    Raises:
        DefinitionError: inputs, config or outputs are declared inconsistently.
    """

    def wrap(f: Callable[..., Any]) -> OpDefinition:
        op_name = name or f.__name__
        sig = _inspect_fn(f)
        declared = dict(ins or {})
        for key in declared:
            if key not in sig.input_params and not (declared[key].is_nothing or sig.var_keyword):
                raise DefinitionError(
                    f"op {op_name!r}: ins names {key!r}, which is not a parameter of the function"
                )
        all_ins: dict[str, In] = {}
        for p in sig.input_params:
            spec = declared.get(p) or In(dagster_type=sig.annotations.get(p))
            if p in sig.defaults and not spec.has_default:  # a Python default is the input's
                spec = replace(spec, default_value=sig.defaults[p])
            all_ins[p] = spec
        for key, value in declared.items():
            all_ins.setdefault(key, value)
        schema = config_schema
        if sig.config_class is not None and inspect.isclass(sig.config_class):
            if config_schema is not None:
                raise DefinitionError(
                    f"op {op_name!r}: give either config_schema or a `config: SomeConfig` "
                    "parameter, not both"
                )
            schema = sig.config_class
        return OpDefinition(
            name=op_name,
            compute_fn=f,
            ins=all_ins,
            outs=_normalize_outs(out, _return_type(f)),
            config_schema=as_config_schema(schema, op_name),
            required_resource_keys=frozenset(required_resource_keys or ()),
            resource_params=sig.resource_params,
            tags=normalize_tags(tags),
            retry_policy=retry_policy,
            description=description or inspect.getdoc(f),
            takes_context=sig.takes_context,
            config_param=sig.config_param,
            input_params=tuple(
                [*sig.input_params]
                + [k for k in declared if sig.var_keyword and k not in sig.input_params]
            ),
        )

    return wrap(fn) if fn is not None else wrap
