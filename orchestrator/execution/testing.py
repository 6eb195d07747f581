"""Testing helpers with Dagster's names: contexts and resources for calling ops, resources and
hooks directly in unit tests, outside any job.

``build_op_context`` and ``build_resources`` initialize the resources they are given (resource
definitions, ``ConfigurableResource`` instances or plain objects) and tear them down when the
``with`` block ends (or, for a context used without ``with``, when it is garbage collected).
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orchestrator.definitions.hooks import HookContext
from orchestrator.definitions.loggers import CurrentStderrHandler
from orchestrator.definitions.resources import InitResourceContext, as_resource_definitions
from orchestrator.errors import UserCodeError
from orchestrator.execution.context import LogManager, OpExecutionContext
from orchestrator.execution.resource_scope import Resources, ResourceScope

_TEST_RUN_ID = "EPHEMERAL"


def _scope(
    resources: Mapping[str, Any] | None, resources_config: Mapping[str, Any] | None
) -> tuple[ResourceScope, Resources]:
    definitions = as_resource_definitions(resources)
    config = {k: (v or {}).get("config", v) for k, v in (resources_config or {}).items()}
    scope = ResourceScope(definitions, config, run_id=_TEST_RUN_ID)
    return scope, scope.build(definitions)


def _teardown(scope: ResourceScope) -> None:
    errors = scope.teardown()
    if errors:
        key, exc = errors[0]
        raise (
            exc
            if isinstance(exc, UserCodeError)
            else UserCodeError(f"teardown of resource {key!r} failed: {exc}", exc)
        )


class TestOpExecutionContext(OpExecutionContext):
    """The context ``build_op_context`` makes: an op context whose resources were built for it;
    usable as a context manager (resources torn down at exit)."""

    __test__ = False  # not a pytest test class

    def __init__(self, scope: ResourceScope, **kwargs: Any):
        super().__init__(**kwargs)
        self._scope = scope
        self._finalizer = weakref.finalize(self, scope.teardown)

    def __enter__(self) -> TestOpExecutionContext:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._finalizer.detach()
        _teardown(self._scope)


def _direct_logger() -> logging.Logger:
    """Where ``context.log`` of an op called directly writes: stderr, every level (as
    Dagster's default console logger does for a directly invoked op)."""
    logger = logging.getLogger("orchestrator.direct")
    if not logger.handlers:
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return logger


def build_op_context(
    resources: Mapping[str, Any] | None = None,
    op_config: Any = None,
    resources_config: Mapping[str, Any] | None = None,
    instance: Any = None,
    config: Any = None,
    partition_key: str | None = None,
    run_tags: Mapping[str, str] | None = None,
    run_id: str = _TEST_RUN_ID,
    mapping_key: str | None = None,
) -> TestOpExecutionContext:
    """A context for calling an op function directly: ``my_op(build_op_context(...), x)``.

    Args:
        resources: resources by key: definitions, ``ConfigurableResource`` instances or plain
            values; they are initialized now.
        op_config: the op's config as the op reads it (``context.op_config``); ``config`` is
            the same (Dagster's older name).
        resources_config: config of the resources, by key (``{"db": {"config": {...}}}`` or
            the config itself).
        partition_key: the run's partition, for partitioned ops.
        run_tags: the run's tags.
        mapping_key: what ``context.get_mapping_key()`` returns, for a mapped op.
    """
    scope, built = _scope(resources, resources_config)
    name = "EPHEMERAL_OP"
    return TestOpExecutionContext(
        scope,
        run_id=run_id,
        job_name="EPHEMERAL_JOB",
        op_handle=name,
        op_def=None,
        op_config=op_config if op_config is not None else config,
        resources=built,
        log=LogManager(run_id, None, [_direct_logger()], None),
        partition_key=partition_key,
        run_tags=run_tags,
        instance=instance,
        mapping_key=mapping_key,
    )


@contextmanager
def build_resources(
    resources: Mapping[str, Any],
    instance: Any = None,
    resource_config: Mapping[str, Any] | None = None,
) -> Iterator[Resources]:
    """Initialize ``resources`` outside any run and yield them with attribute access
    (``resources.db``); they are torn down when the ``with`` block ends."""
    scope, built = _scope(resources, resource_config)
    try:
        yield built
    finally:
        _teardown(scope)


def build_hook_context(
    resources: Mapping[str, Any] | None = None,
    op: Any = None,
    op_exception: BaseException | None = None,
    op_output_values: Mapping[str, Any] | None = None,
    op_config: Any = None,
    run_id: str = _TEST_RUN_ID,
    job_name: str = "EPHEMERAL_JOB",
) -> HookContext:
    """A ``HookContext`` for calling a hook function directly (``my_hook(context)``);
    ``op`` names the op the hook is for (an op definition or a name)."""
    name = getattr(op, "name", op) or "EPHEMERAL_OP"
    _, built = _scope(resources, None)
    return HookContext(
        op_handle=str(name),
        step_key=str(name),
        run_id=run_id,
        job_name=job_name,
        resources=built,
        op_exception=op_exception,
        op_output_values=dict(op_output_values or {}),
        log=logging.getLogger("orchestrator"),
        op_config=op_config,
    )


def build_init_resource_context(
    config: Any = None, resources: Mapping[str, Any] | None = None, instance: Any = None
) -> InitResourceContext:
    """An ``InitResourceContext`` for calling a resource function directly:
    ``my_resource(build_init_resource_context(config={...}, resources={"dep": ...}))``; the
    resources it depends on are initialized and reachable as ``context.resources.dep``."""
    _, built = _scope(resources, None)
    return InitResourceContext(resource_config=config, resources=built, run_id=None)


def invoke_op(op_def: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call an op's function directly, as Dagster does outside a job: a context (from
    ``build_op_context``) comes first when the op takes one (``None`` builds an empty one), the
    op's config is checked against its schema, ``Config`` and resource parameters are filled
    from the context, and inputs left out take their ``In(default_value=...)``.

    Raises:
        InvalidInvocationError: a context is missing or not expected, or the arguments do not
            fit the op's inputs.
        ConfigError: the context's op config does not fit the op's config schema.
    """
    from orchestrator.errors import ConfigError, InvalidInvocationError

    name = op_def.name
    context = kwargs.pop("context", None) if op_def.takes_context else None
    if op_def.takes_context and context is None:
        if args and (args[0] is None or isinstance(args[0], OpExecutionContext)):
            context, args = args[0] or build_op_context(), args[1:]
        else:
            raise InvalidInvocationError(
                f"op {name!r} takes a context argument, but none was given when invoking it "
                f"directly; call {name}(build_op_context(...), ...)"
            )
    elif args and isinstance(args[0], OpExecutionContext):
        # as in Dagster, an op without a context parameter may still be given one: it
        # supplies the op's resource and config parameters, and is not passed on
        context, args = args[0], args[1:]
    # positional arguments: a Config or resource instance fills that parameter; the others
    # are the op's inputs, in order
    args = _take_typed_arguments(op_def, args, kwargs)
    if len(args) > len(op_def.input_params):
        raise InvalidInvocationError(
            f"op {name!r} takes {len(op_def.input_params)} input(s) "
            f"({', '.join(op_def.input_params) or 'none'}), {len(args)} were given"
        )
    for param, value in zip(op_def.input_params, args, strict=False):
        if param in kwargs:
            raise InvalidInvocationError(f"op {name!r} got two values for {param!r}")
        kwargs[param] = value
    op_config = getattr(context, "op_config", None)
    if op_def.config_schema is not None and (op_def.config_param not in kwargs):
        value, problems = op_def.config_schema.validate(op_config, f"ops.{name}.config")
        if problems:
            raise ConfigError(problems, heading=f"Invalid config for op {name!r}")
        op_config = value
        if op_def.config_param:
            kwargs[op_def.config_param] = value
    if context is not None:
        context.op_config = op_config
        context.op_def = op_def
        context.op_handle = context.step_key = name
    for param, key in op_def.resource_params.items():
        if param not in kwargs:
            if context is None or key not in context.resources:
                raise InvalidInvocationError(
                    f"op {name!r} needs resource {key!r}: pass it as {param}=... or in "
                    "build_op_context(resources=...)"
                )
            kwargs[param] = context.resources[key]
    for input_name in op_def.input_params:
        if input_name in kwargs:
            continue
        spec = op_def.ins.get(input_name)
        if spec is not None and spec.has_default:
            kwargs[input_name] = spec.default_value
        elif spec is None or not spec.is_nothing:
            raise InvalidInvocationError(
                f"op {name!r} was invoked without input {input_name!r}; pass it positionally "
                f"or as {input_name}=..."
            )
    from orchestrator.definitions.io import Output
    from orchestrator.definitions.types import check_type, type_name
    from orchestrator.errors import TypeCheckError

    def checked(kind: str, what: str, expected: Any, value: Any) -> None:
        check = check_type(expected, value, context)
        if not check.success:
            raise TypeCheckError(
                f"type check failed for {kind} {what!r} of op {name!r} ({type_name(expected)}): "
                f"{check.description or 'the check said no'}"
            )

    for input_name, spec in op_def.ins.items():
        if input_name in kwargs and not spec.is_nothing:
            checked("input", input_name, spec.dagster_type, kwargs[input_name])
    call_args = [context] if op_def.takes_context else []
    result = op_def.compute_fn(*call_args, **kwargs)
    if len(op_def.outs) == 1 and not inspect.isgenerator(result):
        ((out_name, out),) = op_def.outs.items()
        value = result.value if isinstance(result, Output) else result
        if not out.is_nothing:
            checked("output", out_name, out.dagster_type, value)
    return result


def _take_typed_arguments(
    op_def: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Move positional ``Config`` and resource instances to their parameters (by annotation)."""
    from orchestrator.definitions.op import _resolve_annotation

    fn = op_def.compute_fn
    hints = {
        p.name: _resolve_annotation(fn, p.annotation)
        for p in inspect.signature(fn).parameters.values()
    }
    typed = (
        [op_def.config_param, *op_def.resource_params]
        if op_def.config_param
        else [*op_def.resource_params]
    )
    rest = []
    for value in args:
        for param in typed:
            hint = hints.get(param)
            if param not in kwargs and inspect.isclass(hint) and isinstance(value, hint):
                kwargs[param] = value
                break
        else:
            rest.append(value)
    return tuple(rest)
