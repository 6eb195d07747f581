"""Op selection: turn query clauses such as ``*add_two+`` into a set of leaf op handles.

Pure logic over a job's structure, given as its leaf op handles plus the dependencies between
its **top-level** nodes; it knows nothing about definitions or plans. As in Dagster, a clause
names a top-level node (an op, or a graph invocation) and says how far to walk upstream and
downstream on the top-level dependency graph, where a graph is one node:

====================  ==========================================================
``name``              just the named node (a graph runs whole: every op inside it)
``*name``             plus all its ancestors
``name*``             plus all its descendants
``+name`` ``++name``  plus ancestors up to N hops, N = the number of ``+``
``name+`` ``name++``  plus descendants up to N hops
``+name*`` etc.       one prefix and one suffix combine freely
====================  ==========================================================

A dotted name (``outer.inner``, ``outer.inner.add``) selects that node inside its graph (all of
it if it is a graph). A query containing a dotted name is a list of such literal names:
``*`` and ``+`` do not combine with dotted names.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.errors import SelectionError, did_you_mean

__all__ = ["Clause", "parse_clause", "render_clause", "select_ops"]

# An optional prefix made only of '*' or only of '+', a name without '*', '+' or whitespace, and
# an optional suffix of the same kind. Mixed sides such as '*+name' fail because the name part
# may not contain '+'.
_CLAUSE_RE = re.compile(r"(?P<up>\*|\++)?(?P<name>[^*+\s]+)(?P<down>\*|\++)?")

_VALID_FORMS = (
    "valid forms are 'name', '*name', 'name*', '*name*', '+name', 'name++', '+name++', "
    "'*name+' ('*' = all ancestors or descendants, each '+' = one hop)"
)


@dataclass(frozen=True)
class Clause:
    """One parsed selection clause.

    Attributes:
        name: an op handle or a graph handle, dotted inside graphs.
        up: hops upstream to include; 0 for none, ``None`` for unlimited (``*``).
        down: hops downstream to include; 0 for none, ``None`` for unlimited (``*``).
    """

    name: str
    up: int | None
    down: int | None


def _hops(marks: str | None) -> int | None:
    """Translate a prefix or suffix ('', '*', '+++') into a hop limit."""
    if not marks:
        return 0
    return None if marks == "*" else len(marks)


def _marks(hops: int | None) -> str:
    """Inverse of :func:`_hops`: the prefix or suffix text for a hop limit."""
    return "*" if hops is None else "+" * hops


def parse_clause(text: str) -> Clause:
    """Parse one clause such as ``'*name'``, ``'+name++'`` or ``'outer.inner'``.

    Args:
        text: the clause; whitespace around it is ignored.

    Returns:
        The :class:`Clause` it denotes. The name is not checked against any job here.

    Raises:
        SelectionError: the clause is empty or malformed (e.g. ``'*+name'``, ``'a*b'``, ``'+'``);
            the message quotes the clause and lists the valid forms.
    """
    match = _CLAUSE_RE.fullmatch(text.strip())
    if match is None:
        raise SelectionError(f'Op selection "{text}": malformed clause; {_VALID_FORMS}.')
    return Clause(name=match["name"], up=_hops(match["up"]), down=_hops(match["down"]))


def render_clause(clause: Clause) -> str:
    """Return the text of ``clause``, so that ``parse_clause(render_clause(c)) == c``."""
    return f"{_marks(clause.up)}{clause.name}{_marks(clause.down)}"


def _walk(starts: Iterable[str], edges: Mapping[str, set[str]], limit: int | None) -> set[str]:
    """Return every node within ``limit`` hops of ``starts`` along ``edges`` (None = no limit).

    Breadth first, so each node is first met at its shortest distance from any start: a node
    reachable in one hop and in three is kept by a one-hop limit.
    """
    seen = set(starts)
    frontier = deque((node, 0) for node in seen)
    while frontier:
        node, dist = frontier.popleft()
        if limit is not None and dist >= limit:
            continue
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append((nxt, dist + 1))
    return seen


def select_ops(
    op_handles: Iterable[str],
    upstream: Mapping[str, Iterable[str]],
    queries: Sequence[str],
) -> frozenset[str]:
    """Select the leaf ops of a job that a list of clauses denotes.

    Args:
        op_handles: every leaf op handle of the job, dotted inside graphs
            (``'return_one'``, ``'outer.inner.add'``).
        upstream: ``upstream[n]`` is the set of **top-level** nodes (first segment of a handle)
            that top-level node ``n`` directly depends on; a node without an entry has no
            parents.
        queries: clauses such as ``['*add_two', 'multi_three+']``. The result is their union.
            An empty list selects every op: callers pass ``[]`` (or skip the call) when no
            selection was given, so "no selection" means "the whole job".

    Returns:
        The selected leaf op handles.

    Raises:
        SelectionError: a clause is malformed, names no node of this job (the message lists
            the closest names, and the dotted form of an op inside a graph), or combines
            ``*``/``+`` with a dotted name.
        TypeError: ``queries`` is a single string instead of a list of clauses.
    """
    if isinstance(queries, str):
        raise TypeError(f"queries must be a list of clauses, not the string {queries!r}")
    ops = frozenset(op_handles)
    if not queries:
        return ops
    clauses = [(text.strip(), parse_clause(text)) for text in queries]

    # every node at every depth (a graph is any proper dotted prefix) -> the ops below it
    members: dict[str, set[str]] = {op: {op} for op in ops}
    for op in ops:
        parts = op.split(".")
        for i in range(1, len(parts)):
            members.setdefault(".".join(parts[:i]), set()).add(op)

    if any("." in clause.name for _, clause in clauses):
        return frozenset(_literal_names(clauses, members))

    top = {name for name in members if "." not in name}
    parents: dict[str, set[str]] = {n: set(ps) & top for n, ps in upstream.items() if n in top}
    children: dict[str, set[str]] = {}
    for child, ps in parents.items():
        for parent in ps:
            children.setdefault(parent, set()).add(child)

    selected: set[str] = set()
    for text, clause in clauses:
        if clause.name not in top:
            raise SelectionError(_unknown(text, clause.name, members, top))
        nodes = _walk([clause.name], parents, clause.up) | _walk(
            [clause.name], children, clause.down
        )
        for node in nodes:
            selected |= members[node]
    return frozenset(selected)


def _literal_names(clauses: list[tuple[str, Clause]], members: Mapping[str, set[str]]) -> set[str]:
    """A list of literal names; where a graph and nodes inside it are both named, the inner
    names say what of that graph runs (as Dagster reads such a list)."""
    names = {clause.name for _, clause in clauses}
    selected: set[str] = set()
    for text, clause in clauses:
        if any(other.startswith(clause.name + ".") for other in names):
            continue
        if clause.up != 0 or clause.down != 0:
            raise SelectionError(
                f"Op selection \"{text}\": '*' and '+' do not combine with dotted names; a "
                "selection naming ops inside graphs (outer.inner) is a list of plain names. "
                "Select the graph by its top-level name to walk its dependencies."
            )
        if clause.name not in members:
            raise SelectionError(_unknown(text, clause.name, members, set(members)))
        selected |= members[clause.name]
    return selected


def _unknown(text: str, name: str, members: Mapping[str, set[str]], names: set[str]) -> str:
    message = f'Op selection "{text}": no op or graph named {name!r} in this job.'
    inner = sorted(m for m in members if "." in m and m.rsplit(".", 1)[1] == name)
    if inner and "." not in name:
        return (
            f"{message} It is inside a graph: select it as "
            f"{' or '.join(repr(m) for m in inner)} (dotted names select literally)."
        )
    return message + did_you_mean(name, names)
