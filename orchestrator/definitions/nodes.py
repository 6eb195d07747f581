"""Flattening a graph into its leaf ops, each named by its node handle (``outer.inner.op``),
with every input traced back through graph boundaries to where its value comes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.definitions.graph import GraphDefinition, GraphInputRef, Node, NodeOutputRef
from orchestrator.definitions.hooks import HookDefinition
from orchestrator.definitions.op import OpDefinition
from orchestrator.definitions.retry import RetryPolicy


@dataclass(frozen=True)
class FromStep:
    """The value is output ``output`` of step ``step_key``; ``mode`` as in
    :class:`~orchestrator.definitions.graph.NodeOutputRef` (``map``, ``collect`` or ``""``)."""

    step_key: str
    output: str
    mode: str = ""


@dataclass(frozen=True)
class FromJobInput:
    """The value is a top-level input of the job's graph (``input_values`` / run config)."""

    name: str


@dataclass(frozen=True)
class FanIn:
    """The value is a list gathered from several sources."""

    sources: tuple[FromStep | FromJobInput, ...]


Source = FromStep | FromJobInput | FanIn | None  # None: not connected in the graph


@dataclass(frozen=True)
class OpNode:
    """A leaf op of a job, after flattening all graph nesting."""

    handle: str
    op_def: OpDefinition
    inputs: Mapping[str, Source]
    tags: Mapping[str, str] = field(default_factory=dict)
    hook_defs: frozenset[HookDefinition] = frozenset()
    retry_policy: RetryPolicy | None = None
    # input name -> the graph inputs it is mapped from, innermost first: (graph handle, input)
    via: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # the dynamic outputs (op handle, output) the op is mapped over, outermost first: it runs
    # once per mapping key of each, as steps ``handle[k1][k2]``; () for an op that is not
    mapped_over: tuple[tuple[str, str], ...] = ()

    @property
    def upstream_steps(self) -> set[str]:
        """Handles of the ops this one reads outputs from."""
        out: set[str] = set()
        for source in self.inputs.values():
            for s in _leaves(source):
                if isinstance(s, FromStep):
                    out.add(s.step_key)
        return out


def _leaves(source: Source) -> tuple[Any, ...]:
    if source is None:
        return ()
    if isinstance(source, FanIn):
        return source.sources
    return (source,)


def _resolve(
    ref: Any, outputs: Mapping[str, Mapping[str, Source]], env: Mapping[str, Source]
) -> Source:
    if isinstance(ref, tuple):
        parts: list[FromStep | FromJobInput] = []
        for r in ref:
            parts.extend(_leaves(_resolve(r, outputs, env)))
        return FanIn(tuple(parts))
    if isinstance(ref, GraphInputRef):
        return env.get(ref.name)
    assert isinstance(ref, NodeOutputRef)
    found = outputs[ref.node][ref.output]
    if ref.mode and isinstance(found, FromStep):
        return FromStep(found.step_key, found.output, ref.mode)
    return found


def flatten_graph(
    graph: GraphDefinition,
    prefix: str = "",
    env: Mapping[str, Source] | None = None,
    tags: Mapping[str, str] | None = None,
    hooks: frozenset[HookDefinition] = frozenset(),
    retry_policy: RetryPolicy | None = None,
    env_via: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
) -> tuple[list[OpNode], dict[str, Source]]:
    """Flatten ``graph``; returns its leaf ops (in a topological order) and, for each of its
    outputs, the source it maps to.

    ``env`` maps the graph's input names to their sources in the enclosing scope; at the top
    level each graph input is a job input. Tags, hooks and retry policy set on a graph
    invocation apply to every op inside it (an inner setting wins).
    """
    if env is None:
        env = {name: FromJobInput(name) for name in graph.input_defs}
    ops: list[OpNode] = []
    outputs: dict[str, dict[str, Source]] = {}
    node: Node
    for node in graph.nodes.values():
        handle = f"{prefix}{node.name}"
        node_env = {k: _resolve(v, outputs, env) for k, v in node.inputs.items()}
        node_via = {
            k: (env_via or {}).get(v.name, ())
            for k, v in node.inputs.items()
            if isinstance(v, GraphInputRef)
        }
        node_tags = {**(tags or {}), **node.tags}
        node_hooks = hooks | node.hook_defs
        definition = node.definition
        if isinstance(definition, GraphDefinition):
            inner_ops, inner_outputs = flatten_graph(
                definition,
                prefix=f"{handle}.",
                env=node_env,
                tags={**definition.tags, **node_tags},
                hooks=node_hooks,
                retry_policy=node.retry_policy or retry_policy,
                env_via={k: ((handle, k), *node_via.get(k, ())) for k in node.inputs},
            )
            ops.extend(inner_ops)
            outputs[node.name] = inner_outputs
        else:
            op_inputs = {name: node_env.get(name) for name in definition.ins}
            ops.append(
                OpNode(
                    handle=handle,
                    op_def=definition,
                    inputs=op_inputs,
                    tags={**definition.tags, **node_tags},
                    hook_defs=node_hooks,
                    retry_policy=node.retry_policy or definition.retry_policy or retry_policy,
                    via={k: v for k, v in node_via.items() if v},
                )
            )
            outputs[node.name] = {o: FromStep(handle, o) for o in definition.outs}
    graph_outputs = {
        name: _resolve(ref, outputs, env) for name, ref in graph.output_mappings.items()
    }
    return ops, graph_outputs


def resolve_output(graph: GraphDefinition, node_path: str, output: str) -> tuple[str, str]:
    """The (op handle, output) that output ``output`` of node ``node_path`` maps to; for a graph
    node its output mapping is followed down to an op.

    Raises:
        KeyError: no such node or output.
    """
    scope, prefix = graph, ""
    parts = node_path.split(".")
    for i, part in enumerate(parts):
        node = scope.nodes[part]
        handle = f"{prefix}{part}"
        if isinstance(node.definition, OpDefinition):
            if i != len(parts) - 1:
                raise KeyError(node_path)
            return handle, output
        scope, prefix = node.definition, f"{handle}."
    ref = scope.output_mappings[output]
    if not isinstance(ref, NodeOutputRef):
        raise KeyError(f"{node_path}.{output} passes a graph input through")
    return resolve_output(graph, f"{prefix}{ref.node}", ref.output)


def map_dynamic(ops: list[OpNode]) -> list[OpNode]:
    """Give each op the dynamic outputs it is mapped over (``OpNode.mapped_over``), checking
    that dynamic outputs are only mapped or collected and that an op's inputs agree.

    An input contributes the mapping of its source op; a ``map`` input adds the dynamic output
    it maps over, a ``collect`` input removes the innermost one. The op is mapped over the
    longest contribution; every other must be a prefix of it (an op mapped over ``emit``
    may take an unmapped value, but not one mapped over another dynamic output).

    Raises:
        DefinitionError: a dynamic output is passed on as it is, or inputs disagree.
    """
    from orchestrator.definitions.io import is_dynamic
    from orchestrator.errors import DefinitionError

    done: dict[str, OpNode] = {}
    out: list[OpNode] = []
    for node in ops:
        contributions: list[tuple[str, tuple[tuple[str, str], ...]]] = []
        for name, source in node.inputs.items():
            for part in _leaves(source):
                if not isinstance(part, FromStep) or part.step_key not in done:
                    continue
                up = done[part.step_key]
                dynamic = is_dynamic(up.op_def.outs[part.output])
                where = f"input {name!r} of op {node.handle!r}"
                if part.mode == "map":
                    contributions.append((name, (*up.mapped_over, (up.handle, part.output))))
                elif part.mode == "collect":
                    if dynamic:
                        contributions.append((name, up.mapped_over))
                    elif up.mapped_over:
                        contributions.append((name, up.mapped_over[:-1]))
                    else:
                        raise DefinitionError(
                            f"{where} collects output {part.output!r} of {up.handle!r}, which "
                            "is neither dynamic nor mapped"
                        )
                elif dynamic:
                    raise DefinitionError(
                        f"{where} receives the dynamic output {part.output!r} of "
                        f"{up.handle!r} as it is; use .map(op) or .collect()"
                    )
                else:
                    contributions.append((name, up.mapped_over))
        mapped: tuple[tuple[str, str], ...] = max(
            (c for _, c in contributions), key=len, default=()
        )
        for name, contribution in contributions:
            if mapped[: len(contribution)] != contribution:
                raise DefinitionError(
                    f"op {node.handle!r}: input {name!r} is mapped over "
                    f"{_dims(contribution)} but another input over {_dims(mapped)}; an op "
                    "can only be mapped over one dynamic output (collect the other first)"
                )
        node = replace(node, mapped_over=mapped)
        done[node.handle] = node
        out.append(node)
    return out


def _dims(dims: tuple[tuple[str, str], ...]) -> str:
    return " then ".join(f"{h}.{o}" for h, o in dims) or "nothing"
