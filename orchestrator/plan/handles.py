"""Flattening a graph into its leaf ops, each named by its node handle (``outer.inner.op``),
with every input traced back through graph boundaries to where its value comes from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definitions.graph import GraphDefinition, GraphInputRef, Node, NodeOutputRef
from orchestrator.definitions.hooks import HookDefinition
from orchestrator.definitions.op import OpDefinition
from orchestrator.definitions.retry import RetryPolicy


@dataclass(frozen=True)
class FromStep:
    """The value is output ``output`` of step ``step_key``."""

    step_key: str
    output: str


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
    return outputs[ref.node][ref.output]


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
