"""Tests for orchestrator.selection: clause parsing, graph names, hop limits, errors."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import SelectionError
from orchestrator.selection import Clause, parse_clause, render_clause, select_ops

# return_one -> add_two -> multi_three
SEED_OPS = ["return_one", "add_two", "multi_three"]
SEED_UP = {"add_two": {"return_one"}, "multi_three": {"add_two"}}

# top -> left, top -> right, left -> bottom, right -> bottom
DIAMOND_OPS = ["top", "left", "right", "bottom"]
DIAMOND_UP = {"left": {"top"}, "right": {"top"}, "bottom": {"left", "right"}}

# a -> b -> c -> d -> e -> f
CHAIN_OPS = ["a", "b", "c", "d", "e", "f"]
CHAIN_UP = {"b": {"a"}, "c": {"b"}, "d": {"c"}, "e": {"d"}, "f": {"e"}}

# start -> outer (first -> inner (x -> y)) -> end, and a second top-level graph "side" fed by
# start: the top-level DAG is start -> outer -> end, start -> side
NESTED_OPS = ["start", "outer.first", "outer.inner.x", "outer.inner.y", "end", "side.z"]
NESTED_UP = {"outer": {"start"}, "end": {"outer"}, "side": {"start"}}


def seed(*queries: str) -> set[str]:
    return set(select_ops(SEED_OPS, SEED_UP, list(queries)))


# -- clause forms on the seed example ----------------------------------------------------------


@pytest.mark.parametrize(
    ("queries", "expected"),
    [
        (["add_two"], {"add_two"}),
        (["*add_two"], {"return_one", "add_two"}),
        (["add_two*"], {"add_two", "multi_three"}),
        (["*add_two*"], {"return_one", "add_two", "multi_three"}),
        (["+add_two"], {"return_one", "add_two"}),
        (["add_two+"], {"add_two", "multi_three"}),
        (["+multi_three"], {"add_two", "multi_three"}),
        (["++multi_three"], {"return_one", "add_two", "multi_three"}),
        (["*multi_three"], {"return_one", "add_two", "multi_three"}),
        (["return_one+"], {"return_one", "add_two"}),
        (["return_one*"], {"return_one", "add_two", "multi_three"}),
        (["return_one", "multi_three"], {"return_one", "multi_three"}),
        (["return_one", "*add_two"], {"return_one", "add_two"}),
        (["  *add_two  "], {"return_one", "add_two"}),
    ],
)
def test_clause_forms_on_seed(queries: list[str], expected: set[str]) -> None:
    assert seed(*queries) == expected


def test_empty_queries_select_everything() -> None:
    assert select_ops(SEED_OPS, SEED_UP, []) == frozenset(SEED_OPS)


def test_result_is_frozenset() -> None:
    assert isinstance(select_ops(SEED_OPS, SEED_UP, ["add_two"]), frozenset)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name", Clause("name", 0, 0)),
        ("*name", Clause("name", None, 0)),
        ("name*", Clause("name", 0, None)),
        ("*name*", Clause("name", None, None)),
        ("+name", Clause("name", 1, 0)),
        ("++name", Clause("name", 2, 0)),
        ("name+", Clause("name", 0, 1)),
        ("name+++", Clause("name", 0, 3)),
        ("+name++", Clause("name", 1, 2)),
        ("*name++", Clause("name", None, 2)),
        ("++name*", Clause("name", 2, None)),
        ("  outer.inner.x+ ", Clause("outer.inner.x", 0, 1)),
    ],
)
def test_parse_clause(text: str, expected: Clause) -> None:
    assert parse_clause(text) == expected


# -- diamond, chain, nested graphs -------------------------------------------------------------


def test_diamond() -> None:
    def sel(*q: str) -> set[str]:
        return set(select_ops(DIAMOND_OPS, DIAMOND_UP, list(q)))

    assert sel("*bottom") == set(DIAMOND_OPS)
    assert sel("+bottom") == {"left", "right", "bottom"}
    assert sel("top+") == {"top", "left", "right"}
    assert sel("top++") == set(DIAMOND_OPS)
    assert sel("left*") == {"left", "bottom"}
    assert sel("*left") == {"top", "left"}
    assert sel("+left+") == {"top", "left", "bottom"}


def test_hop_limits_on_chain() -> None:
    def sel(*q: str) -> set[str]:
        return set(select_ops(CHAIN_OPS, CHAIN_UP, list(q)))

    assert sel("a+++") == {"a", "b", "c", "d"}
    assert sel("a*") == set(CHAIN_OPS)
    assert sel("++f") == {"d", "e", "f"}
    assert sel("+c++") == {"b", "c", "d", "e"}
    assert sel("*c+") == {"a", "b", "c", "d"}
    assert sel("++d*") == {"b", "c", "d", "e", "f"}
    assert sel("a+", "f") == {"a", "b", "f"}


def test_hops_count_shortest_distance() -> None:
    # Given a node reachable from 'a' both directly and through a 3-hop path
    ops = ["a", "b", "c", "d"]
    upstream = {"b": {"a"}, "c": {"b"}, "d": {"a", "c"}}
    # When selecting one hop downstream of 'a', Then 'd' is in (distance 1), 'c' is not
    assert select_ops(ops, upstream, ["a+"]) == {"a", "b", "d"}
    assert select_ops(ops, upstream, ["+d"]) == {"a", "c", "d"}


def test_hops_are_not_cut_short_by_a_longer_path_met_first() -> None:
    # Given x and y each reachable from 'a' in 2 hops and in 3, with a child one hop further;
    # symmetric, so a depth-first walk meets x or y first on its long path whichever way it goes
    ops = ["a", "p", "q", "p2", "q2", "x", "y", "x1", "y1"]
    upstream = {
        "p": {"a"},
        "q": {"a"},
        "p2": {"p"},
        "q2": {"q"},
        "x": {"p", "q2"},
        "y": {"q", "p2"},
        "x1": {"x"},
        "y1": {"y"},
    }
    # When walking 3 hops downstream, Then x1 and y1 (both at distance 3) are in
    assert select_ops(ops, upstream, ["a+++"]) == frozenset(ops)
    assert select_ops(ops, upstream, ["a++"]) == frozenset(ops) - {"x1", "y1"}


def nested(*q: str) -> set[str]:
    return set(select_ops(NESTED_OPS, NESTED_UP, list(q)))


OUTER = {"outer.first", "outer.inner.x", "outer.inner.y"}


def test_a_top_level_graph_is_one_node_and_runs_whole() -> None:
    assert nested("outer") == OUTER
    # hops count top-level nodes: one hop up from the graph is 'start', not 'outer.first'
    assert nested("+outer") == OUTER | {"start"}
    assert nested("outer+") == OUTER | {"end"}
    assert nested("*end") == {"start", "end"} | OUTER
    assert nested("start+") == {"start", "side.z"} | OUTER
    assert nested("+side") == {"start", "side.z"}


def test_dotted_names_select_literally_inside_graphs() -> None:
    assert nested("outer.inner") == {"outer.inner.x", "outer.inner.y"}
    # a graph named together with a node inside it: the inner name says what runs
    assert nested("outer", "outer.first") == {"outer.first"}
    assert nested("outer.inner.x") == {"outer.inner.x"}
    assert nested("outer.first", "end") == {"outer.first", "end"}


def test_stars_and_pluses_do_not_combine_with_dotted_names() -> None:
    for query in (["*outer.inner.x"], ["outer.inner+"], ["outer.first", "*end"]):
        with pytest.raises(SelectionError, match="do not combine with dotted names"):
            nested(*query)


def test_an_op_inside_a_graph_is_no_top_level_name() -> None:
    with pytest.raises(SelectionError) as info:
        nested("first")
    assert "'outer.first'" in str(info.value) and "inside a graph" in str(info.value)
    with pytest.raises(SelectionError, match="'out'"):
        nested("out")


# -- errors ------------------------------------------------------------------------------------


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(SelectionError) as info:
        seed("*retrun_one")
    message = str(info.value)
    assert message.startswith("Op selection \"*retrun_one\": no op or graph named 'retrun_one'")
    assert "Did you mean: 'return_one'" in message


def test_unknown_name_suggests_graph_names() -> None:
    with pytest.raises(SelectionError) as info:
        nested("outer.iner")
    assert "Did you mean: 'outer.inner'" in str(info.value)


def test_unknown_name_in_a_later_clause() -> None:
    with pytest.raises(SelectionError, match="nope"):
        seed("add_two", "nope+")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "*",
        "+",
        "**",
        "*+name",
        "+*name",
        "name+*",
        "name*+",
        "a*b",
        "a+b",
        "**a",
        "a**",
        "a b",
        "*+",
        "++",
    ],
)
def test_malformed_clauses(text: str) -> None:
    with pytest.raises(SelectionError) as info:
        parse_clause(text)
    message = str(info.value)
    assert f'"{text}"' in message
    assert "'+name++'" in message
    with pytest.raises(SelectionError):
        seed(text)


def test_single_string_query_is_rejected() -> None:
    with pytest.raises(TypeError):
        select_ops(SEED_OPS, SEED_UP, "add_two")


# -- property: select_ops against a brute-force reference --------------------------------------

HOPS = st.sampled_from([0, 1, 2, 3, None])


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, set[str]]]:
    """A random DAG on n0..nK with edges only from a lower to a higher index."""
    size = draw(st.integers(min_value=1, max_value=12))
    nodes = [f"n{i}" for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    upstream: dict[str, set[str]] = {}
    for i, j in edges:
        upstream.setdefault(nodes[j], set()).add(nodes[i])
    return nodes, upstream


def all_pairs_hops(
    nodes: list[str], upstream: Mapping[str, set[str]]
) -> dict[tuple[str, str], int]:
    """Floyd-Warshall: shortest hop count from u to v along parent -> child edges."""
    inf = len(nodes) + 1
    dist = {(u, v): 0 if u == v else inf for u in nodes for v in nodes}
    for child, parents in upstream.items():
        for parent in parents:
            dist[parent, child] = 1
    for k in nodes:
        for u in nodes:
            for v in nodes:
                dist[u, v] = min(dist[u, v], dist[u, k] + dist[k, v])
    return {pair: d for pair, d in dist.items() if d < inf}


def within(dist: int | None, limit: int | None) -> bool:
    return dist is not None and (limit is None or dist <= limit)


def reference(
    nodes: list[str], upstream: Mapping[str, set[str]], clauses: list[Clause]
) -> set[str]:
    hops = all_pairs_hops(nodes, upstream)
    return {
        node
        for c in clauses
        for node in nodes
        if within(hops.get((node, c.name)), c.up) or within(hops.get((c.name, node)), c.down)
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data(), dag=dags())
def test_select_ops_matches_brute_force(
    data: st.DataObject, dag: tuple[list[str], dict[str, set[str]]]
) -> None:
    nodes, upstream = dag
    clause = st.builds(Clause, name=st.sampled_from(nodes), up=HOPS, down=HOPS)
    clauses = data.draw(st.lists(clause, min_size=1, max_size=3))
    texts = [render_clause(c) for c in clauses]
    assert [parse_clause(t) for t in texts] == clauses
    assert select_ops(nodes, upstream, texts) == reference(nodes, upstream, clauses)


@st.composite
def nested_jobs(draw: st.DrawFn) -> tuple[list[str], dict[str, set[str]]]:
    """A random job: a DAG of top-level nodes, each an op or a graph invocation holding ops and
    graphs nested up to three deep; one graph may be invoked twice under aliases (``g``,
    ``g_2``), so the same inner names appear under two top-level handles."""
    nodes, upstream = draw(dags())
    handles: list[str] = []

    def inside(prefix: str, depth: int) -> None:
        count = draw(st.integers(min_value=1, max_value=3))
        for k in range(count):
            if depth < 3 and draw(st.booleans()):
                inside(f"{prefix}.sub{k}", depth + 1)
            else:
                handles.append(f"{prefix}.op{k}")

    aliased = draw(st.sampled_from(nodes))
    for node in nodes:
        if node == aliased and len(nodes) > 1:
            continue
        if draw(st.booleans()):
            handles.append(node)
        else:
            inside(node, 1)
    if len(nodes) > 1:  # the aliased invocation copies another graph's inner structure
        template = next((n for n in nodes if n != aliased), nodes[0])
        inner = [h.split(".", 1)[1] for h in handles if h.startswith(template + ".")]
        handles += [f"{aliased}.{rest}" for rest in inner] or [aliased]
    return handles, upstream


def nested_reference(
    handles: list[str], upstream: Mapping[str, set[str]], queries: list[str]
) -> set[str]:
    """Dagster's documented rules, written out directly: clauses walk the top-level DAG (hop
    counts by Floyd-Warshall) and a selected top-level node brings every op under it; a query
    with a dotted name is a list of literal names."""
    if any("." in parse_clause(q).name for q in queries):
        # a name with a more specific name inside it in the list gives way to it
        literal = [q for q in queries if not any(o.startswith(q + ".") for o in queries)]
        return {h for q in literal for h in handles if h == q or h.startswith(q + ".")}
    top = sorted({h.split(".")[0] for h in handles})
    hops = all_pairs_hops(top, {c: p for c, p in upstream.items() if c in top})
    chosen = set()
    for q in queries:
        c = parse_clause(q)
        chosen |= {
            n
            for n in top
            if within(hops.get((n, c.name)), c.up) or within(hops.get((c.name, n)), c.down)
        }
    return {h for h in handles if h.split(".")[0] in chosen}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), job=nested_jobs())
def test_nested_selection_matches_the_reference(
    data: st.DataObject, job: tuple[list[str], dict[str, set[str]]]
) -> None:
    handles, upstream = job
    top = sorted({h.split(".")[0] for h in handles})
    if data.draw(st.booleans()):
        clause = st.builds(Clause, name=st.sampled_from(top), up=HOPS, down=HOPS)
        queries = [render_clause(c) for c in data.draw(st.lists(clause, min_size=1, max_size=3))]
    else:
        prefixes = sorted(
            {".".join(h.split(".")[:i]) for h in handles for i in range(1, h.count(".") + 2)}
        )
        queries = data.draw(st.lists(st.sampled_from(prefixes), min_size=1, max_size=3))
        if not any("." in q for q in queries):
            queries = [*queries, *(p for p in prefixes if "." in p)][:4] or queries
    assert select_ops(handles, upstream, queries) == nested_reference(handles, upstream, queries)


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}", fullmatch=True)


@given(clause=st.builds(Clause, name=NAMES, up=HOPS, down=HOPS))
def test_parse_render_round_trip(clause: Clause) -> None:
    assert parse_clause(render_clause(clause)) == clause
