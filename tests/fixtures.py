"""Module-level test jobs: a code location that tests, subprocesses and workers load by reference
(``tests.fixtures``), like rq's ``tests/fixtures.py``. Only module-level definitions here."""

from __future__ import annotations

from orchestrator import (
    Config,
    Definitions,
    Field,
    In,
    Nothing,
    Out,
    Output,
    ResourceDefinition,
    RetryPolicy,
    graph,
    in_process_executor,
    job,
    op,
)

# -- the seeds' simple jobs --------------------------------------------------------------------


@op
def return_five() -> int:
    return 5


@op
def add_one(arg: int) -> int:
    return arg + 1


@job
def do_stuff():
    add_one(return_five())


@op
def return_one() -> int:
    return 1


@op
def add_two(i: int) -> int:
    return i + 2


@op
def multi_three(i: int) -> int:
    return i * 3


@job
def my_job():
    multi_three(add_two(return_one()))


# -- a graph made into a module-level job with to_job ------------------------------------------


@graph
def chain_graph():
    return add_one(add_one(return_five()))


chain_job = chain_graph.to_job(name="chain_job", tags={"team": "data"})


# -- a job with nesting, config, fan-in, Nothing deps, tags and a retry policy -----------------


class ScaleConfig(Config):
    factor: int = 2


@op
def op_a() -> int:
    return 1


@op
def op_b() -> int:
    return 2


@op
def op_c(values: list) -> int:
    return sum(values)


@op(
    config_schema={"offset": Field(int, default_value=10), "label": str},
    tags={"orchestrator/queue": "heavy", "orchestrator/priority": "3"},
    retry_policy=RetryPolicy(max_retries=2, delay=0.5),
)
def offset(context, x: int) -> int:
    return x + context.op_config["offset"]


@op
def scale(x: int, config: ScaleConfig) -> int:
    return x * config.factor


@op(ins={"after": In(Nothing)})
def cleanup() -> str:
    return "clean"


@op(out={"low": Out(), "high": Out()})
def split(x: int):
    return x - 1, x + 1


@graph
def inner(x):
    return scale(offset(x))


@graph
def outer(x):
    low, high = split(inner(x))
    return op_c([low, high])


@graph
def plan_graph():
    total = op_c([op_a(), op_b()])
    result = outer(total)
    cleanup(after=result)


plan_job = plan_graph.to_job(
    name="plan_job",
    config={
        "ops": {
            "outer": {"ops": {"inner": {"ops": {"offset": {"config": {"label": "x"}}}}}},
        }
    },
    run_tags={"orchestrator/priority": "1"},
)


# -- factories for reconstructable(fn) and build_reconstructable_job -----------------------------


def make_chain_job():
    return chain_graph.to_job(name="factory_chain_job")


def make_sized_job(size: int, name: str = "sized_job"):
    @graph(name=f"{name}_graph")
    def sized():
        value = return_one()
        for _ in range(size):
            value = add_one(value)
        return value

    return sized.to_job(name=name)


# -- retries decided by the attempt number (no shared state across processes) ------------------


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky(context) -> int:
    if context.retry_number < 2:
        raise ValueError(f"attempt {context.retry_number + 1} fails")
    return context.retry_number


@job
def flaky_job():
    flaky()


@op
def emit_pair():
    yield Output(3, "result")


@job
def yield_job():
    add_one(emit_pair())


defs = Definitions(jobs=[do_stuff, my_job, chain_job])


@job(executor_def=in_process_executor)
def flaky_in_process_job():
    flaky()


# -- a code location whose Definitions give a job its resources --------------------------------


@op(required_resource_keys={"server"})
def ping_server(context) -> str:
    return context.resources.server


@job
def server_job():
    ping_server()


located = Definitions(
    jobs=[server_job],
    resources={"server": ResourceDefinition.hardcoded_resource("shared")},
    executor=in_process_executor,
)
