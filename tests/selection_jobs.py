"""A job with nested graphs for the op selection tests (a code location: loaded by module name).

start -> outer (first -> inner (x -> y)) -> end
start -> side (z)
"""

from __future__ import annotations

from orchestrator import graph, job, op


@op
def start() -> int:
    return 1


@op
def first(n: int) -> int:
    return n + 1


@op
def x(n: int) -> int:
    return n + 2


@op
def y(n: int) -> int:
    return n + 3


@op
def z(n: int) -> int:
    return n * 10


@op
def end(n: int) -> int:
    return n * 2


@graph
def inner(n: int) -> int:
    return y(x(n))


@graph
def outer(number: int) -> int:
    return inner(first(number))


@graph
def side(n: int) -> int:
    return z(n)


@job
def etl() -> None:
    value = start()
    end(outer(value))
    side(value)
