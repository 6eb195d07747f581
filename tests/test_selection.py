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

# start -> outer.first -> outer.inner.x -> outer.inner.y -> end
NESTED_OPS = ["start", "outer.first", "outer.inner.x", "outer.inner.y", "end"]
NESTED_UP = {
    "outer.first": {"start"},
    "outer.inner.x": {"outer.first"},
    "outer.inner.y": {"outer.inner.x"},
    "end": {"outer.inner.y"},
}


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


def test_graph_name_selects_all_ops_inside() -> None:
    def sel(*q: str) -> set[str]:
        return set(select_ops(NESTED_OPS, NESTED_UP, list(q)))

    assert sel("outer") == {"outer.first", "outer.inner.x", "outer.inner.y"}
    assert sel("outer.inner") == {"outer.inner.x", "outer.inner.y"}
    assert sel("outer.inner.x") == {"outer.inner.x"}
    assert sel("*outer.inner.x") == {"start", "outer.first", "outer.inner.x"}
    # Hops start from every op inside the graph: 'outer.first' is one hop above 'outer.inner.x'.
    assert sel("+outer.inner") == {"outer.first", "outer.inner.x", "outer.inner.y"}
    assert sel("outer.inner+") == {"outer.inner.x", "outer.inner.y", "end"}
    assert sel("+outer+") == set(NESTED_OPS)
    assert sel("outer*") == {"outer.first", "outer.inner.x", "outer.inner.y", "end"}


def test_graph_name_prefix_must_be_whole_segments() -> None:
    with pytest.raises(SelectionError, match="'out'"):
        select_ops(NESTED_OPS, NESTED_UP, ["out"])


# -- errors ------------------------------------------------------------------------------------


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(SelectionError) as info:
        seed("*retrun_one")
    message = str(info.value)
    assert message.startswith("Op selection \"*retrun_one\": no op or graph named 'retrun_one'")
    assert "Did you mean: 'return_one'" in message


def test_unknown_name_suggests_graph_names() -> None:
    with pytest.raises(SelectionError) as info:
        select_ops(NESTED_OPS, NESTED_UP, ["outer.iner"])
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


@settings(max_examples=300, deadline=None)
@given(data=st.data(), dag=dags())
def test_graph_clause_is_union_of_member_clauses(
    data: st.DataObject, dag: tuple[list[str], dict[str, set[str]]]
) -> None:
    # Given the DAG's nodes placed inside graphs g0..g2
    nodes, upstream = dag
    graph_of = {n: data.draw(st.sampled_from(["g0", "g1", "g2"])) for n in nodes}
    handle = {n: f"{graph_of[n]}.{n}" for n in nodes}
    ops = list(handle.values())
    up = {handle[c]: {handle[p] for p in ps} for c, ps in upstream.items()}
    graph = data.draw(st.sampled_from(sorted(set(graph_of.values()))))
    before, after = data.draw(HOPS), data.draw(HOPS)
    # When selecting the graph by name, Then it equals the union over the ops inside it
    members = [Clause(h, before, after) for h in ops if h.startswith(graph + ".")]
    expected = select_ops(ops, up, [render_clause(c) for c in members])
    assert select_ops(ops, up, [render_clause(Clause(graph, before, after))]) == expected


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z_][a-z0-9_]{0,8}){0,2}", fullmatch=True)


@given(clause=st.builds(Clause, name=NAMES, up=HOPS, down=HOPS))
def test_parse_render_round_trip(clause: Clause) -> None:
    assert parse_clause(render_clause(clause)) == clause
