"""The step runner: runs one step attempt in the calling process and emits its events.

Resources up and down, config validated, inputs loaded, the op called, outputs stored through
IO managers, hooks run. Whatever happens, exactly one of STEP_SUCCESS, STEP_FAILURE or
STEP_UP_FOR_RETRY ends the attempt.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.definitions.hooks import HookContext
from orchestrator.definitions.io import DEFAULT_OUTPUT, DynamicOutput, In, Output, is_dynamic
from orchestrator.definitions.io_managers import InputContext, OutputContext
from orchestrator.definitions.op import OpDefinition
from orchestrator.definitions.types import DagsterType, check_type, resolve_type, type_name
from orchestrator.errors import (
    ConfigError,
    Failure,
    OrchestratorError,
    OutputStorageError,
    RetryRequested,
    StepError,
    TypeCheckError,
    UserCodeError,
    user_code_boundary,
)
from orchestrator.events import ErrorInfo, Event, EventType, make_event, metadata_fields
from orchestrator.execution.context import (
    LogManager,
    OpExecutionContext,
    RunContext,
    logging_to,
)
from orchestrator.execution.resource_scope import ResourceScope
from orchestrator.metadata import AssetMaterialization, ExpectationResult
from orchestrator.plan.dynamic import mapping_key_problem
from orchestrator.plan.steps import ExecutionStep, InputKind


@dataclass
class StepOutcome:
    """How an attempt ended. ``user_exception`` is the op's own exception, if it raised."""

    status: str  # "success" | "failure" | "retry"
    user_exception: BaseException | None = None
    error: BaseException | None = None


def _type_check(
    step: ExecutionStep, kind: str, name: str, expected: Any, value: Any, context: Any
) -> None:
    """Check an input's or output's value against its declared type (a failing check is a
    :class:`TypeCheckError`; a check function that raises is the user's error)."""
    if isinstance(resolve_type(expected), DagsterType):  # its check function is user code
        with user_code_boundary(f"type check of {kind} {name!r}"):
            check = check_type(expected, value, context)
    else:
        check = check_type(expected, value, context)
    if not check.success:
        raise TypeCheckError(
            f"type check failed for {kind} {name!r} of step {step.key!r} "
            f"({type_name(expected)}): {check.description or 'the check said no'}"
        )


def _user_exception(exc: BaseException) -> BaseException:
    return exc.user_exception if isinstance(exc, UserCodeError) else exc


def start_event(run_id: str, step_key: str, attempt: int, worker: str | None = None) -> Event:
    """The STEP_START event of an attempt; ``worker`` names where it runs (a Celery worker's
    node name and process), so an operator sees where each step ran."""
    where = f" on {worker}" if worker else ""
    return make_event(
        EventType.STEP_START,
        run_id,
        f"Started execution of step {step_key!r}{where}",
        step_key=step_key,
        attempt=attempt,
        worker=worker,
    )


class StepRunner:
    """Runs attempts of the steps of one run (see module docstring)."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def run(
        self,
        step_key: str,
        attempt: int,
        announce: bool = True,
        step: ExecutionStep | None = None,
    ) -> StepOutcome:
        """Run one attempt. ``announce=False``: the caller already stored STEP_START (a Celery
        worker does so atomically with claiming the attempt; see :func:`start_event`).
        ``step``: the step as launched, when the plan does not hold it (a mapped step)."""
        ctx = self.ctx
        step = step if step is not None else ctx.plan.step(step_key)
        node = ctx.job.all_op_nodes[step.handle]
        op_def = node.op_def
        retry_number = attempt - 1
        scope = ctx.resources or ResourceScope(
            ctx.job.resource_defs, ctx.plan.resource_config, ctx.run_id
        )
        emit = ctx.emit
        started = time.perf_counter()
        if announce:
            emit(start_event(ctx.run_id, step_key, attempt))
        op_config: Any = None
        try:
            try:
                op_config = self._config(op_def, step)
                context = self._op_context(step, op_def, op_config, scope, retry_number)
                outputs, metadata = self._compute(step, op_def, op_config, scope, context)
                self._check_outputs(step, op_def, outputs)
                self._store_outputs(step, outputs, metadata, scope, attempt, context)
            except (RetryRequested, Failure, UserCodeError) as exc:
                return self._failed(
                    step, node, exc, attempt, scope, op_config, started, retryable=True
                )
            except OrchestratorError as exc:
                return self._failed(
                    step, node, exc, attempt, scope, op_config, started, retryable=False
                )
            emit(
                make_event(
                    EventType.STEP_SUCCESS,
                    ctx.run_id,
                    f"Finished execution of step {step_key!r}",
                    step_key=step_key,
                    attempt=attempt,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                )
            )
            self._hooks(step_key, node, "success", scope, None, outputs, op_config)
            return StepOutcome("success")
        finally:
            if ctx.resources is None:  # step-scoped resources: cleaned up after each step
                for event in scope.teardown_events(step_key):
                    emit(event)

    # -- the attempt's phases ---------------------------------------------------------------

    def _op_context(
        self,
        step: ExecutionStep,
        op_def: OpDefinition,
        op_config: Any,
        scope: ResourceScope,
        retry_number: int,
    ) -> OpExecutionContext:
        """The context the op sees (its resources built now: they may be user code)."""
        ctx = self.ctx
        return OpExecutionContext(
            run_id=ctx.run_id,
            job_name=ctx.plan.job_name,
            op_handle=step.key,
            op_def=op_def,
            op_config=op_config,
            resources=scope.build(op_def.required_resource_keys),
            log=LogManager(ctx.run_id, step.key, ctx.loggers, ctx.emit),
            retry_number=retry_number,
            partition_key=ctx.partition_key,
            run_tags=ctx.run_tags,
            run_config=ctx.plan.run_config,
            instance=ctx.instance,
            mapping_key=step.mapping_key,
        )

    def _compute(
        self,
        step: ExecutionStep,
        op_def: OpDefinition,
        op_config: Any,
        scope: ResourceScope,
        context: OpExecutionContext,
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Call the op's function and collect what it returns or yields, type-checked: its
        outputs by name (mapped ones by mapping key), and the metadata given with them."""
        kwargs = self._inputs(step, op_def, scope, context)
        for param, key in op_def.resource_params.items():
            kwargs[param] = scope.get(key)
        if op_def.config_param:
            kwargs[op_def.config_param] = op_config
        args = [context] if op_def.takes_context else []
        outputs: dict[str, Any] = {}
        metadata: dict[str, dict[str, Any]] = {}
        with logging_to(context.log):  # get_dagster_logger() lines join the run log
            with user_code_boundary(f"op {step.key!r}"):
                result = op_def.compute_fn(*args, **kwargs)
            produced = self._outputs(op_def, result, context)
            while True:
                # a generator op runs between yields: user code, but not the type check
                with user_code_boundary(f"op {step.key!r}"):
                    item = next(produced, None)
                if item is None:
                    break
                name, value, meta, mapping_key = item
                self._check_type(step, op_def, name, value, context)
                if mapping_key is None:
                    outputs[name] = value
                    if meta:
                        metadata[name] = dict(meta)
                else:
                    self._add_mapped(step, outputs, name, mapping_key, value, meta)
        return outputs, metadata

    def _store_outputs(
        self,
        step: ExecutionStep,
        outputs: dict[str, Any],
        metadata: dict[str, dict[str, Any]],
        scope: ResourceScope,
        attempt: int,
        context: OpExecutionContext,
    ) -> None:
        """Hand each output to its IO manager (a dynamic one, value by value)."""
        for out in step.outputs:
            if out.is_dynamic:
                self._store_dynamic(step, out, outputs, scope, attempt, context)
            elif out.name in outputs:
                self._store(
                    step,
                    out.name,
                    out.io_manager_key,
                    out.is_nothing,
                    outputs[out.name],
                    scope,
                    attempt,
                    {**context.get_output_metadata(out.name), **metadata.get(out.name, {})},
                )

    # -- pieces -----------------------------------------------------------------------------

    def _config(self, op_def: OpDefinition, step: ExecutionStep) -> Any:
        if op_def.config_schema is None:
            return step.config  # no schema: whatever config was given, unchecked
        value, problems = op_def.config_schema.validate(step.config, f"ops.{step.key}.config")
        if problems:
            raise ConfigError(problems)
        return value

    def _inputs(
        self, step: ExecutionStep, op_def: OpDefinition, scope: ResourceScope, context: Any
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for step_input in step.inputs:
            name = step_input.name
            if step_input.kind is InputKind.NOTHING or name not in op_def.input_params:
                continue
            spec = op_def.ins[name]
            if step_input.kind in (InputKind.STEP_OUTPUT, InputKind.PARENT_RUN):
                run_id = step_input.parent_run_id or self.ctx.run_id
                values = []
                for src in step_input.sources:
                    try:
                        values.append(
                            self._load(
                                step,
                                spec,
                                name,
                                src.run_id or run_id,
                                src.step_key,
                                src.output_name,
                                scope,
                                src.mapping_key,
                            )
                        )
                    except OutputStorageError:
                        if not step_input.fan_in:
                            raise
                        # a fan-in source that produced nothing (skipped) is left out
                value = values if step_input.fan_in else values[0]
            elif step_input.kind is InputKind.INPUT_MANAGER:
                assert step_input.key is not None
                value = self._load_with(step, spec, name, step_input.key, None, scope)
            elif step_input.kind is InputKind.VALUE:
                value = step_input.value
            elif step_input.kind is InputKind.INPUT_VALUE:
                assert step_input.key is not None
                if step_input.key not in self.ctx.input_values:
                    raise StepError(
                        f"input {name!r} of step {step.key!r}: input value "
                        f"{step_input.key!r} was not shipped to this process"
                    )
                value = self.ctx.input_values[step_input.key]
            else:
                value = spec.default_value
            if not step_input.fan_in:
                _type_check(step, "input", name, spec.dagster_type, value, context)
            kwargs[name] = value
        return kwargs

    def _load(
        self,
        step: ExecutionStep,
        spec: In,
        name: str,
        run_id: str,
        up_key: str,
        up_output: str,
        scope: ResourceScope,
        mapping_key: str | None = None,
    ) -> Any:
        """Load input ``name`` from output ``up_output`` of step ``up_key`` (of ``run_id``;
        one value of it if it is dynamic) with that output's IO manager, or with the input's
        own manager if it names one."""
        io_key = "io_manager"
        up_step = None
        handle = up_key.split("[", 1)[0]
        planned = self.ctx.plan.by_handle(handle)
        if planned is not None:
            up_step = next((o for o in planned.outputs if o.name == up_output), None)
            io_key = up_step.io_manager_key if up_step else io_key
        nodes = self.ctx.job.all_op_nodes
        up_def = nodes[handle].op_def.outs.get(up_output) if handle in nodes else None
        upstream = OutputContext(
            run_id,
            up_key,
            up_output,
            definition_metadata=dict(up_def.metadata) if up_def else {},
            config=up_step.config if up_step is not None else None,
            mapping_key=mapping_key,
        )
        return self._load_with(step, spec, name, spec.input_manager_key or io_key, upstream, scope)

    def _load_with(
        self,
        step: ExecutionStep,
        spec: In,
        name: str,
        io_key: str,
        upstream: OutputContext | None,
        scope: ResourceScope,
    ) -> Any:
        """Load input ``name`` with the IO or input manager ``io_key`` (``upstream`` is None
        for an input no op feeds)."""
        manager = scope.get(io_key)
        context = InputContext(
            name=name,
            step_key=step.key,
            run_id=self.ctx.run_id,
            upstream_output=upstream,
            definition_metadata=dict(spec.metadata),
        )
        with user_code_boundary(f"IO manager {io_key!r} loading input {name!r}"):
            return manager.load_input(context)

    def _outputs(
        self, op_def: OpDefinition, result: Any, context: OpExecutionContext
    ) -> Iterator[tuple[str, Any, Any, str | None]]:
        names = list(op_def.outs)
        if inspect.isgenerator(result):
            for item in result:
                if isinstance(item, AssetMaterialization | ExpectationResult):
                    context.log_event(item)
                    continue
                if not isinstance(item, Output | DynamicOutput):
                    raise StepError(
                        f"op {op_def.name!r} yielded {item!r}; a generator op must yield "
                        "Output(value, output_name) or DynamicOutput(value, mapping_key) "
                        "objects (or AssetMaterialization, AssetObservation, ExpectationResult)"
                    )
                yield self._item(op_def, item)
            return
        if isinstance(result, Output | DynamicOutput):
            yield self._item(op_def, result)
            return
        if len(names) == 1:
            yield from self._single(op_def, names[0], result)
            return
        if result is None and all(not o.is_required or o.is_nothing for o in op_def.outs.values()):
            return
        if not isinstance(result, tuple) or len(result) != len(names):
            raise StepError(
                f"op {op_def.name!r} has outputs {names}; return a tuple of {len(names)} values "
                f"in that order (or yield Output objects), got {result!r}"
            )
        for name, value in zip(names, result, strict=True):
            if isinstance(value, Output):
                # Output(v) in a returned tuple: its position names it, unless it says otherwise
                given = name if value.output_name == DEFAULT_OUTPUT else value.output_name
                yield (*self._named(op_def, given, value.value), value.metadata, None)
            else:
                yield from self._single(op_def, name, value)

    def _single(
        self, op_def: OpDefinition, name: str, value: Any
    ) -> Iterator[tuple[str, Any, Any, str | None]]:
        """A returned value for output ``name``: a dynamic output's is a list of
        DynamicOutput."""
        if not is_dynamic(op_def.outs[name]):
            yield name, value, None, None
            return
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, DynamicOutput) for v in value
        ):
            raise StepError(
                f"op {op_def.name!r}: output {name!r} is a DynamicOut; return a list of "
                f"DynamicOutput(value, mapping_key) (or yield them), got {value!r}"
            )
        for item in value:
            given = name if item.output_name == DEFAULT_OUTPUT else item.output_name
            yield self._item(op_def, replace(item, output_name=given))

    def _item(
        self, op_def: OpDefinition, item: Output[Any] | DynamicOutput[Any]
    ) -> tuple[str, Any, Any, str | None]:
        name, value = self._named(op_def, item.output_name, item.value)
        dynamic = is_dynamic(op_def.outs[name])
        if isinstance(item, DynamicOutput) != dynamic:
            want = "DynamicOutput(value, mapping_key)" if dynamic else "Output(value)"
            what = "a DynamicOut" if dynamic else "not dynamic"
            raise StepError(
                f"op {op_def.name!r}: output {name!r} is {what}; give its values as {want}"
            )
        key = item.mapping_key if isinstance(item, DynamicOutput) else None
        return name, value, item.metadata, key

    @staticmethod
    def _named(op_def: OpDefinition, name: str, value: Any) -> tuple[str, Any]:
        if name not in op_def.outs:
            if name == DEFAULT_OUTPUT and len(op_def.outs) == 1:
                return next(iter(op_def.outs)), value
            raise StepError(
                f"op {op_def.name!r} has no output named {name!r} (outputs: {list(op_def.outs)})"
            )
        return name, value

    @staticmethod
    def _check_type(
        step: ExecutionStep, op_def: OpDefinition, name: str, value: Any, context: Any
    ) -> None:
        _type_check(step, "output", name, op_def.outs[name].dagster_type, value, context)

    @staticmethod
    def _add_mapped(
        step: ExecutionStep,
        outputs: dict[str, Any],
        name: str,
        mapping_key: str,
        value: Any,
        meta: Any,
    ) -> None:
        """One value of a dynamic output; a bad or repeated mapping key fails the step."""
        values: dict[str, tuple[Any, Any]] = outputs.setdefault(name, {})
        problem = mapping_key_problem(mapping_key)
        if problem is None and mapping_key in values:
            problem = (
                f"mapping key {mapping_key!r} was yielded twice; each DynamicOutput of an "
                "output needs its own mapping_key"
            )
        if problem is not None:
            raise StepError(f"step {step.key!r}, dynamic output {name!r}: {problem}")
        values[mapping_key] = (value, meta)

    @staticmethod
    def _check_outputs(step: ExecutionStep, op_def: OpDefinition, outputs: dict[str, Any]) -> None:
        for out in step.outputs:
            if out.is_dynamic:
                continue  # a required dynamic output may have no values (nothing is mapped)
            if out.is_required and not out.is_nothing and out.name not in outputs:
                raise StepError(
                    f"op {op_def.name!r} did not produce its required output {out.name!r}; "
                    "mark it Out(is_required=False) if it may be skipped"
                )

    def _store_dynamic(
        self,
        step: ExecutionStep,
        out: Any,
        outputs: dict[str, Any],
        scope: ResourceScope,
        attempt: int,
        context: OpExecutionContext,
    ) -> None:
        """Store each value of a dynamic output under its mapping key; a required one with no
        values still says so (an empty output: its collects get [])."""
        values: dict[str, tuple[Any, Any]] | None = outputs.get(out.name)
        if values is None and not out.is_required:
            return  # not produced: what maps over it is skipped
        if not values:
            self.ctx.emit(
                make_event(
                    EventType.STEP_OUTPUT,
                    self.ctx.run_id,
                    f"Dynamic output {out.name!r} yielded no values",
                    step_key=step.key,
                    attempt=attempt,
                    output_name=out.name,
                    dynamic=True,
                )
            )
            return
        for mapping_key, (value, meta) in values.items():
            self._store(
                step,
                out.name,
                out.io_manager_key,
                out.is_nothing,
                value,
                scope,
                attempt,
                {**context.get_output_metadata(out.name), **dict(meta or {})},
                mapping_key,
            )

    def _store(
        self,
        step: ExecutionStep,
        name: str,
        io_key: str,
        is_nothing: bool,
        value: Any,
        scope: ResourceScope,
        attempt: int,
        metadata: dict[str, Any] | None = None,
        mapping_key: str | None = None,
    ) -> None:
        dynamic: dict[str, Any] = (
            {"mapping_key": mapping_key, "dynamic": True} if mapping_key is not None else {}
        )
        where = f" for mapping key {mapping_key!r}" if mapping_key is not None else ""
        self.ctx.emit(
            make_event(
                EventType.STEP_OUTPUT,
                self.ctx.run_id,
                f"Yielded output {name!r}{where}",
                step_key=step.key,
                attempt=attempt,
                output_name=name,
                **dynamic,
                **metadata_fields(metadata),
            )
        )
        if is_nothing:
            return
        manager = scope.get(io_key)
        node = self.ctx.job.all_op_nodes.get(step.handle)
        out_def = node.op_def.outs.get(name) if node is not None else None
        step_out = next((o for o in step.outputs if o.name == name), None)
        context = OutputContext(
            self.ctx.run_id,
            step.key,
            name,
            definition_metadata=dict(out_def.metadata) if out_def else {},
            config=step_out.config if step_out is not None else None,
            mapping_key=mapping_key,
        )
        with user_code_boundary(f"IO manager {io_key!r} storing output {name!r}"):
            manager.handle_output(context, value)
        self.ctx.emit(
            make_event(
                EventType.HANDLED_OUTPUT,
                self.ctx.run_id,
                f"Handled output {name!r}{where} using IO manager {io_key!r}",
                step_key=step.key,
                attempt=attempt,
                output_name=name,
                **dynamic,
                manager_key=io_key,
                **metadata_fields(context.output_metadata),
            )
        )

    def _failed(
        self,
        step: ExecutionStep,
        node: Any,
        exc: BaseException,
        attempt: int,
        scope: ResourceScope,
        op_config: Any,
        started: float,
        retryable: bool,
    ) -> StepOutcome:
        ctx = self.ctx
        retry_number = attempt - 1
        user_exc = _user_exception(exc)
        delay: float | None = None
        if retryable and ctx.retries_enabled:
            if isinstance(exc, RetryRequested):
                if retry_number < exc.max_retries:
                    delay = exc.seconds_to_wait or 0.0
            elif (
                step.retry_policy is not None
                and retry_number < step.retry_policy.max_retries
                and not (isinstance(user_exc, Failure) and not user_exc.allow_retries)
            ):
                delay = step.retry_policy.calculate_delay(retry_number + 1)
        info = ErrorInfo.from_exception(exc)
        if delay is not None:
            ctx.emit(
                make_event(
                    EventType.STEP_UP_FOR_RETRY,
                    ctx.run_id,
                    f"Step {step.key!r} failed ({info.cls_name}: {info.message}); retry "
                    f"{retry_number + 1} in {delay:.3g}s",
                    step_key=step.key,
                    attempt=attempt,
                    seconds_to_wait=delay,
                    error=info.to_dict(),
                )
            )
            return StepOutcome("retry", user_exception=user_exc, error=exc)
        failure = user_exc if isinstance(user_exc, Failure) else None
        ctx.emit(
            make_event(
                EventType.STEP_FAILURE,
                ctx.run_id,
                f"Execution of step {step.key!r} failed: {info.cls_name}: {info.message}",
                step_key=step.key,
                attempt=attempt,
                error=info.to_dict(),
                user_failure=True if failure is not None else None,
                description=failure.description if failure is not None else None,
                **metadata_fields(failure.metadata if failure is not None else None),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )
        self._hooks(step.key, node, "failure", scope, user_exc, {}, op_config)
        is_user = isinstance(exc, UserCodeError | Failure | RetryRequested)
        return StepOutcome("failure", user_exception=user_exc if is_user else None, error=exc)

    def _hooks(
        self,
        step_key: str,
        node: Any,
        on: str,
        scope: ResourceScope,
        exc: BaseException | None,
        outputs: dict[str, Any],
        op_config: Any,
    ) -> None:
        import logging

        for hook in sorted(node.hook_defs, key=lambda h: h.name):
            if hook.on != on:
                continue
            try:
                hctx = HookContext(
                    op_handle=step_key,
                    step_key=step_key,
                    run_id=self.ctx.run_id,
                    job_name=self.ctx.plan.job_name,
                    resources=scope.build(hook.required_resource_keys),
                    op_exception=exc,
                    op_output_values=outputs,
                    log=logging.getLogger("orchestrator"),
                    op_config=op_config,
                    run_tags=dict(self.ctx.run_tags),
                )
                with user_code_boundary(f"hook {hook.name!r}"):
                    hook.hook_fn(hctx)
            except Exception as hook_exc:
                info = ErrorInfo.from_exception(hook_exc)
                self.ctx.emit(
                    make_event(
                        EventType.HOOK_ERRORED,
                        self.ctx.run_id,
                        f"Hook {hook.name!r} failed: {info.message}",
                        step_key=step_key,
                        hook=hook.name,
                        error=info.to_dict(),
                    )
                )
                continue
            self.ctx.emit(
                make_event(
                    EventType.HOOK_COMPLETED,
                    self.ctx.run_id,
                    f"Hook {hook.name!r} finished",
                    step_key=step_key,
                    hook=hook.name,
                )
            )
