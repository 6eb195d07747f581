"""``@graph`` and ``GraphDefinition``: ops (and graphs) wired into a DAG by calling them.

A graph body runs once, at decoration time, under a *composition*: every op or graph called in
it adds a node, and the values it passes around are references to node outputs.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

from orchestrator.definitions.hooks import HookDefinition
from orchestrator.definitions.io import DEFAULT_OUTPUT, DynamicOut, In, Out, is_dynamic
from orchestrator.definitions.op import OpDefinition, PendingInvocation, normalize_tags
from orchestrator.definitions.retry import RetryPolicy
from orchestrator.errors import DefinitionError, did_you_mean

# -- references a composition passes around ----------------------------------------------------


@dataclass(frozen=True)
class NodeOutputRef:
    """An output of a sibling node in the same graph. ``mode`` says how a dynamic output (or
    the output of an op mapped over one) reaches the input: ``"map"`` (one value per mapping
    key: the input's op is mapped), ``"collect"`` (every mapped value, in a list) or ``""``
    (as it is)."""

    node: str
    output: str
    mode: str = ""


@dataclass(frozen=True)
class GraphInputRef:
    """An input of the enclosing graph."""

    name: str


Connection = NodeOutputRef | GraphInputRef | tuple[NodeOutputRef | GraphInputRef, ...]


@dataclass(frozen=True)
class Node:
    """One invocation of an op or graph inside a graph."""

    name: str
    definition: Any  # OpDefinition | GraphDefinition
    inputs: Mapping[str, Connection]
    tags: Mapping[str, str] = field(default_factory=dict)
    hook_defs: frozenset[HookDefinition] = frozenset()
    retry_policy: RetryPolicy | None = None


PLAIN, DYNAMIC, MAPPED = "plain", "dynamic", "mapped"


class _InvokedOutput:
    """What calling a node in a composition returns for one of its outputs.

    ``kind`` is ``dynamic`` for a ``DynamicOut`` and ``mapped`` for what ``.map(fn)``
    returned: both can only be mapped again or collected, never passed to an op as they are.
    """

    def __init__(
        self, composition: _Composition, ref: NodeOutputRef | GraphInputRef, kind: str = PLAIN
    ):
        self.composition = composition
        self.ref = ref
        self.kind = kind

    def __repr__(self) -> str:
        return f"<output {self.ref}>"

    def _dynamic_ref(self, what: str) -> NodeOutputRef:
        if self.kind == PLAIN or not isinstance(self.ref, NodeOutputRef):
            raise DefinitionError(
                f"graph {self.composition.graph_name!r}: .{what}() applies to a dynamic output "
                f"(DynamicOut) or to what .map() returned; {self.ref} is neither"
            )
        if current_composition() is not self.composition:
            raise DefinitionError(
                f"graph {self.composition.graph_name!r}: .{what}() must be called in the "
                "body of the graph that made the dynamic output"
            )
        return self.ref

    def map(self, fn: Callable[..., Any]) -> Any:
        """Run ``fn`` (an op, a graph, or a function calling them) once per mapping key: what
        it calls becomes mapped steps ``op[mapping_key]``. Returns what ``fn`` returned, as
        mapped outputs (map them again, or ``.collect()`` them)."""
        ref = self._dynamic_ref("map")
        given = NodeOutputRef(ref.node, ref.output, "map") if self.kind == DYNAMIC else ref
        returned = fn(_InvokedOutput(self.composition, given))
        return self._as_mapped(returned)

    def collect(self) -> _InvokedOutput:
        """Every value of the dynamic output (or of the mapped op), in mapping-key order, as
        one list input of an op (empty when the dynamic output yielded nothing)."""
        ref = self._dynamic_ref("collect")
        return _InvokedOutput(self.composition, NodeOutputRef(ref.node, ref.output, "collect"))

    def _as_mapped(self, returned: Any) -> Any:
        if returned is None:
            return None
        if isinstance(returned, _InvokedOutput):
            ref = returned.ref
            if isinstance(ref, NodeOutputRef) and ref.mode == "map":  # fn returned its argument
                plain = NodeOutputRef(ref.node, ref.output)
                return _InvokedOutput(self.composition, plain, DYNAMIC)
            if returned.kind == DYNAMIC:
                return returned  # a dynamic output inside the mapping: map it again (nested)
            if not isinstance(returned.ref, NodeOutputRef):
                raise DefinitionError(
                    f"graph {self.composition.graph_name!r}: the function given to .map() "
                    f"returned {returned!r}; return the output of an op or graph it called"
                )
            return _InvokedOutput(self.composition, returned.ref, MAPPED)
        if isinstance(returned, tuple):
            mapped = [self._as_mapped(r) for r in returned]
            return type(returned)(*mapped) if hasattr(returned, "_fields") else tuple(mapped)
        raise DefinitionError(
            f"graph {self.composition.graph_name!r}: the function given to .map() returned "
            f"{returned!r}; return op outputs (one, a tuple of them) or nothing"
        )


# -- the composition ---------------------------------------------------------------------------

_local = threading.local()


def current_composition() -> _Composition | None:
    """The composition of the graph body being evaluated on this thread, if any."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


class _Composition:
    def __init__(self, graph_name: str):
        self.graph_name = graph_name
        self.nodes: dict[str, Node] = {}
        self._counts: dict[str, int] = {}

    def _node_name(self, invocation: PendingInvocation) -> str:
        if invocation.given_alias:
            if invocation.given_alias in self.nodes:
                raise DefinitionError(
                    f"graph {self.graph_name!r}: two nodes are named "
                    f"{invocation.given_alias!r}; give each alias a unique name"
                )
            return invocation.given_alias
        base = invocation.node_def.name
        count = self._counts.get(base, 0)
        while True:
            count += 1
            candidate = base if count == 1 else f"{base}_{count}"
            if candidate not in self.nodes:
                self._counts[base] = count
                return candidate

    def _connection(self, node: str, input_name: str, value: Any) -> Connection:
        if isinstance(value, _InvokedOutput):
            if value.composition is not self:
                raise DefinitionError(
                    f"graph {self.graph_name!r}: input {input_name!r} of {node!r} receives an "
                    "output from another graph body"
                )
            if value.kind != PLAIN:
                what = "a dynamic output" if value.kind == DYNAMIC else "a mapped output"
                raise DefinitionError(
                    f"graph {self.graph_name!r}: input {input_name!r} of {node!r} receives "
                    f"{what} ({value.ref}); use .map(op) to run an op once per value, or "
                    ".collect() to pass every value as one list"
                )
            return value.ref
        if isinstance(value, list | tuple) and all(isinstance(v, _InvokedOutput) for v in value):
            # a list of outputs gathered into one input (fan-in); an empty list gives []
            refs = [self._connection(node, input_name, v) for v in value]
            return tuple(refs)  # type: ignore[arg-type]
        raise DefinitionError(
            f"graph {self.graph_name!r}: input {input_name!r} of {node!r} must be the output of "
            f"another op or graph (or a list of them), got {value!r}. Constant values go in run "
            "config ('inputs') or input_values."
        )

    def invoke(
        self, invocation: PendingInvocation, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        definition = invocation.node_def
        name = self._node_name(invocation)
        input_names = (
            list(definition.input_params)
            if isinstance(definition, OpDefinition)
            else list(definition.input_defs)
        )
        if isinstance(definition, OpDefinition):
            input_names += [n for n in definition.ins if n not in input_names]
        if len(args) > len(input_names):
            raise DefinitionError(
                f"{name!r} takes inputs {input_names} but was called with {len(args)} arguments"
            )
        given = dict(zip(input_names, args, strict=False))
        for key, value in kwargs.items():
            if key not in input_names:
                raise DefinitionError(
                    f"{name!r} has no input named {key!r}; its inputs are {input_names}"
                )
            if key in given:
                raise DefinitionError(f"{name!r}: input {key!r} given twice")
            given[key] = value
        inputs = {k: self._connection(name, k, v) for k, v in given.items()}
        self.nodes[name] = Node(
            name=name,
            definition=definition,
            inputs=inputs,
            tags=dict(invocation.tags),
            hook_defs=invocation.hook_defs,
            retry_policy=invocation.retry_policy,
        )
        outputs = list(definition.output_names)
        is_op = isinstance(definition, OpDefinition)
        out_defs = definition.outs if is_op else definition.output_defs
        handles = [
            _InvokedOutput(
                self, NodeOutputRef(name, o), DYNAMIC if is_dynamic(out_defs[o]) else PLAIN
            )
            for o in outputs
        ]
        if len(handles) == 1:
            return handles[0]
        if not handles:
            return None
        outputs_type = namedtuple(f"{definition.name}_outputs", outputs)  # type: ignore[misc]
        return outputs_type(*handles)


def compose(
    name: str, fn: Callable[..., Any], input_names: Sequence[str]
) -> tuple[dict[str, Node], Any, _Composition]:
    """Evaluate a graph body; returns its nodes, its return value and the composition."""
    composition = _Composition(name)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(composition)
    try:
        args = [_InvokedOutput(composition, GraphInputRef(n)) for n in input_names]
        returned = fn(*args)
    finally:
        stack.pop()
    return composition.nodes, returned, composition


# -- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DependencyDefinition:
    """In ``GraphDefinition(dependencies=...)``: an input fed by output ``output`` of node
    ``node``."""

    node: str
    output: str = DEFAULT_OUTPUT
    description: str | None = None


@dataclass(frozen=True)
class MultiDependencyDefinition:
    """An input fed by several outputs, gathered into a list (fan-in)."""

    dependencies: Sequence[DependencyDefinition]


@dataclass(frozen=True, eq=False)  # a dict key: hashed by identity (its tags are a dict)
class NodeInvocation:
    """A key of ``GraphDefinition(dependencies=...)``: the definition ``name`` invoked under
    ``alias`` (and with tags, hooks, a retry policy of its own)."""

    name: str
    alias: str | None = None
    tags: Mapping[str, Any] | None = None
    hook_defs: Any = None
    retry_policy: RetryPolicy | None = None


@dataclass(frozen=True, eq=False)
class GraphDefinition:
    """A DAG of op and graph invocations. Build jobs from it with :meth:`to_job`.

    Usually made by ``@graph``; Dagster's explicit form works too:
    ``GraphDefinition(name="calc", node_defs=[one, add], dependencies={"add": {"num":
    DependencyDefinition("one")}})``, with ``NodeInvocation`` keys for aliases and
    ``MultiDependencyDefinition`` for fan-in.
    """

    name: str
    nodes: Mapping[str, Node] = field(default_factory=dict)
    input_defs: Mapping[str, In] = field(default_factory=dict)
    output_mappings: Mapping[str, NodeOutputRef | GraphInputRef] = field(default_factory=dict)
    output_defs: Mapping[str, Out] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    # ConfigMapping: run config gives the graph `config`, mapped onto its nodes' config
    config_mapping: Any = None
    node_defs: InitVar[Sequence[Any] | None] = None
    dependencies: InitVar[Mapping[Any, Mapping[str, Any]] | None] = None
    config: InitVar[Any] = None

    def __post_init__(
        self,
        node_defs: Sequence[Any] | None,
        dependencies: Mapping[Any, Mapping[str, Any]] | None,
        config: Any,
    ) -> None:
        if node_defs is not None or dependencies is not None:
            if self.nodes:
                raise DefinitionError(
                    f"graph {self.name!r}: give nodes, or node_defs with dependencies, not both"
                )
            nodes = _nodes_from_dependencies(self.name, node_defs or [], dependencies or {})
            object.__setattr__(self, "nodes", nodes)
        if config is not None:
            object.__setattr__(self, "config_mapping", _graph_config(self.name, config))
        object.__setattr__(self, "tags", normalize_tags(self.tags))

    @property
    def output_names(self) -> list[str]:
        return list(self.output_defs)

    @property
    def node_names(self) -> list[str]:
        return list(self.nodes)

    def alias(self, name: str) -> PendingInvocation:
        return PendingInvocation(self).alias(name)

    def tag(self, tags: Mapping[str, Any]) -> PendingInvocation:
        return PendingInvocation(self).tag(tags)

    def with_hooks(self, hooks: Any) -> PendingInvocation:
        return PendingInvocation(self).with_hooks(hooks)

    def with_retry_policy(self, policy: RetryPolicy) -> PendingInvocation:
        return PendingInvocation(self).with_retry_policy(policy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        composition = current_composition()
        if composition is None:
            raise DefinitionError(
                f"graph {self.name!r} can only be called inside a @job or @graph body; "
                f"to run it, use {self.name}.to_job().execute_in_process()"
            )
        return composition.invoke(PendingInvocation(self), args, kwargs)

    def to_job(self, name: str | None = None, **kwargs: Any) -> Any:
        """Bind this graph to resources, config, executor and the rest into a JobDefinition.

        Takes the same keyword arguments as ``@job``.
        """
        from orchestrator.definitions.job import JobDefinition

        job = JobDefinition(graph_def=self, name=name or self.name, **kwargs)
        # Remember the calling module so reconstructable(job) can find the job object there.
        job._defined_in = (sys._getframe(1).f_globals.get("__name__", ""), "")
        return job

    def execute_in_process(self, **kwargs: Any) -> Any:
        """Shortcut for ``to_job().execute_in_process(...)``."""
        return self.to_job().execute_in_process(**kwargs)


def _output_mappings(
    name: str, returned: Any, out: Mapping[str, Out] | Out | None, composition: _Composition
) -> tuple[dict[str, NodeOutputRef | GraphInputRef], dict[str, Out]]:
    def ref(value: Any, what: str) -> NodeOutputRef | GraphInputRef:
        if not isinstance(value, _InvokedOutput) or value.composition is not composition:
            raise DefinitionError(
                f"graph {name!r}: {what} must be the output of an op or graph called in its "
                f"body, got {value!r}"
            )
        if value.kind == MAPPED or (isinstance(value.ref, NodeOutputRef) and value.ref.mode):
            raise DefinitionError(
                f"graph {name!r}: {what} is mapped or collected ({value.ref}); return the "
                "output of an op that takes the .collect()ed list instead"
            )
        return value.ref

    if returned is None:
        return {}, {}
    if isinstance(returned, _InvokedOutput):
        default = DynamicOut() if returned.kind == DYNAMIC else Out()
        out_def = out if isinstance(out, Out) else default
        return {DEFAULT_OUTPUT: ref(returned, "the returned value")}, {DEFAULT_OUTPUT: out_def}
    if isinstance(returned, Mapping):
        outs = dict(out) if isinstance(out, Mapping) else {k: Out() for k in returned}
        return {k: ref(v, f"output {k!r}") for k, v in returned.items()}, outs
    if isinstance(returned, tuple) and out is None and hasattr(returned, "_fields"):
        # a multi-output node's outputs returned as they are: graph outputs of the same names
        names = list(returned._fields)
        mapped = {k: ref(v, f"output {k!r}") for k, v in zip(names, returned, strict=True)}
        return mapped, {k: Out() for k in names}
    if isinstance(returned, tuple) and isinstance(out, Mapping) and len(out) == len(returned):
        mapped = {k: ref(v, f"output {k!r}") for k, v in zip(out, returned, strict=True)}
        return mapped, dict(out)
    raise DefinitionError(
        f"graph {name!r} returned {returned!r}; return one op output, a dict of them, or a tuple "
        "matching out={...}"
    )


def graph(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    ins: Mapping[str, In] | None = None,
    out: Mapping[str, Out] | Out | None = None,
    tags: Mapping[str, Any] | None = None,
    config: Any = None,
) -> Any:
    """Decorator building a :class:`GraphDefinition` from a function that calls ops and graphs.

    The function's parameters become the graph's inputs; what it returns becomes its outputs.
    ``config`` (a ``ConfigMapping``, or a dict of fixed config for the graph's nodes) gives the
    graph a config of its own: run config then says ``ops: {graph: {config: ...}}`` and the
    mapping function returns ``{node: {"config": ...}}`` for the nodes inside.
    """

    def wrap(f: Callable[..., Any]) -> GraphDefinition:
        graph_name = name or f.__name__
        params = list(inspect.signature(f).parameters)
        nodes, returned, composition = compose(graph_name, f, params)
        mappings, out_defs = _output_mappings(graph_name, returned, out, composition)
        input_defs = {p: (ins or {}).get(p) or In() for p in params}
        return GraphDefinition(
            name=graph_name,
            nodes=nodes,
            input_defs=input_defs,
            output_mappings=mappings,
            output_defs=out_defs,
            tags=normalize_tags(tags),
            description=description or inspect.getdoc(f),
            config_mapping=_graph_config(graph_name, config),
        )

    return wrap(fn) if fn is not None else wrap


def _graph_config(graph_name: str, config: Any) -> Any:
    from orchestrator.definitions.config import ConfigMapping

    if config is None or isinstance(config, ConfigMapping):
        return config
    if isinstance(config, Mapping):
        fixed = dict(config)
        return ConfigMapping(lambda _outer: fixed)
    raise DefinitionError(
        f"graph {graph_name!r}: config must be a ConfigMapping or a dict of node config, "
        f"got {config!r}"
    )


def top_level_upstream(graph_def: GraphDefinition) -> dict[str, set[str]]:
    """Node name -> the sibling nodes it takes inputs from, in ``graph_def`` itself (a graph
    inside it is one node): the dependency graph op selection walks."""
    out: dict[str, set[str]] = {}
    for name, node in graph_def.nodes.items():
        parents: set[str] = set()
        for connection in node.inputs.values():
            refs = connection if isinstance(connection, tuple) else (connection,)
            parents.update(ref.node for ref in refs if isinstance(ref, NodeOutputRef))
        out[name] = parents
    return out


def _nodes_from_dependencies(
    graph_name: str, node_defs: Sequence[Any], dependencies: Mapping[Any, Mapping[str, Any]]
) -> dict[str, Node]:
    """Dagster's explicit graph form -> nodes in a topological order."""
    defs = {d.name: d for d in node_defs}
    invocations: dict[str, tuple[Any, NodeInvocation | None]] = {}
    for key in dependencies:
        invocation = key if isinstance(key, NodeInvocation) else None
        def_name = invocation.name if invocation else str(key)
        node_name = (invocation.alias or invocation.name) if invocation else str(key)
        if def_name not in defs:
            raise DefinitionError(
                f"graph {graph_name!r}: dependencies name {def_name!r}, which is not in "
                f"node_defs.{did_you_mean(def_name, defs)}"
            )
        invocations[node_name] = (defs[def_name], invocation)
    for def_name, definition in defs.items():
        if not any(d is definition for d, _ in invocations.values()):
            invocations[def_name] = (definition, None)

    def ref(dep: Any, node_name: str, input_name: str) -> NodeOutputRef:
        if not isinstance(dep, DependencyDefinition):
            raise DefinitionError(
                f"graph {graph_name!r}: input {input_name!r} of {node_name!r} must be a "
                f"DependencyDefinition or MultiDependencyDefinition, got {dep!r}"
            )
        if dep.node not in invocations:
            raise DefinitionError(
                f"graph {graph_name!r}: input {input_name!r} of {node_name!r} depends on "
                f"{dep.node!r}, which is no node of the graph.{did_you_mean(dep.node, invocations)}"
            )
        return NodeOutputRef(dep.node, dep.output)

    nodes: dict[str, Node] = {}
    for key, inputs in dependencies.items():
        node_name = key.alias or key.name if isinstance(key, NodeInvocation) else str(key)
        definition, _ = invocations[node_name]
        wired: dict[str, Connection] = {}
        for input_name, dep in inputs.items():
            known = getattr(definition, "ins", None) or getattr(definition, "input_defs", {})
            if input_name not in known:
                raise DefinitionError(
                    f"graph {graph_name!r}: {node_name!r} has no input {input_name!r} "
                    f"(inputs: {sorted(known)})"
                )
            if isinstance(dep, MultiDependencyDefinition):
                wired[input_name] = tuple(ref(d, node_name, input_name) for d in dep.dependencies)
            else:
                wired[input_name] = ref(dep, node_name, input_name)
        nodes[node_name] = _node(node_name, definition, wired, invocations[node_name][1])
    for node_name, (definition, invocation) in invocations.items():
        if node_name not in nodes:
            nodes[node_name] = _node(node_name, definition, {}, invocation)
    return _topological(graph_name, nodes)


def _node(
    name: str, definition: Any, inputs: Mapping[str, Connection], inv: NodeInvocation | None
) -> Node:
    hooks = frozenset(inv.hook_defs or ()) if inv else frozenset()
    return Node(
        name,
        definition,
        inputs,
        tags=normalize_tags(inv.tags if inv else None),
        hook_defs=hooks,
        retry_policy=inv.retry_policy if inv else None,
    )


def _topological(graph_name: str, nodes: Mapping[str, Node]) -> dict[str, Node]:
    ordered: dict[str, Node] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise DefinitionError(
                f"graph {graph_name!r}: its dependencies form a cycle at {name!r}"
            )
        visiting.add(name)
        for connection in nodes[name].inputs.values():
            refs = connection if isinstance(connection, tuple) else (connection,)
            for r in refs:
                if isinstance(r, NodeOutputRef):
                    visit(r.node)
        visiting.discard(name)
        ordered[name] = nodes[name]

    for name in nodes:
        visit(name)
    return ordered
