"""An op-job file written the way Dagster's documentation writes them.

Nothing here is specific to orchestrator: replace ``from orchestrator import`` with
``from dagster import`` and the file runs unchanged under Dagster. tests/test_dagster_compat.py
runs it as a script and checks what it prints.
"""

from orchestrator import (
    Config,
    ConfigurableResource,
    Definitions,
    Field,
    HookContext,
    In,
    Nothing,
    Out,
    Output,
    ResourceDefinition,
    RetryPolicy,
    RunConfig,
    config_mapping,
    graph,
    job,
    op,
    static_partitioned_config,
    success_hook,
)

# -- the simplest job: return_five -> add_one ----------------------------------------------


@op
def return_five():
    return 5


@op
def add_one(arg):
    return arg + 1


@job
def do_stuff():
    add_one(return_five())


# -- op selection: return_one -> add_two -> multi_three ------------------------------------


@op
def return_one():
    return 1


@op
def add_two(i: int):
    return i + 2


@op
def multi_three(i: int):
    return i * 3


@job
def my_job():
    multi_three(add_two(return_one()))


# -- one graph, two jobs with different resources ------------------------------------------


class Server(ConfigurableResource):
    def ping_server(self):
        return "pong"


@op
def interact_with_server(server: Server):
    return server.ping_server()


@graph
def do_stuff_graph():
    interact_with_server()


prod_server = ResourceDefinition.mock_resource()
local_server = ResourceDefinition.hardcoded_resource(Server())

prod_job = do_stuff_graph.to_job(resource_defs={"server": prod_server}, name="do_stuff_prod")
local_job = do_stuff_graph.to_job(resource_defs={"server": local_server}, name="do_stuff_local")


# -- hardcoded default config and config mapping -------------------------------------------


class DoSomethingConfig(Config):
    config_param: str


@op
def do_something(context, config: DoSomethingConfig) -> str:
    context.log.info("config_param: " + config.config_param)
    return config.config_param


default_config = RunConfig(ops={"do_something": DoSomethingConfig(config_param="stuff")})


@job(config=default_config)
def do_it_all_with_default_config():
    do_something()


class SimplifiedConfig(Config):
    simplified_param: str


@config_mapping
def simplified_config(val: SimplifiedConfig) -> RunConfig:
    return RunConfig(ops={"do_something": DoSomethingConfig(config_param=val.simplified_param)})


@job(config=simplified_config)
def do_it_all_with_simplified_config():
    do_something()


# -- dict config schema, several outputs, aliases, Nothing, tags, hooks, retries -----------

hook_calls = []


@success_hook
def record_success(context: HookContext):
    hook_calls.append(context.op.name)


@op(config_schema={"numbers": Field([int], default_value=[1, 2, 3, 4])})
def read_numbers(context):
    return context.op_config["numbers"]


@op(out={"evens": Out(), "odds": Out()})
def split(numbers):
    yield Output([n for n in numbers if n % 2 == 0], output_name="evens")
    yield Output([n for n in numbers if n % 2 == 1], output_name="odds")


@op(tags={"kind": "sum"}, retry_policy=RetryPolicy(max_retries=2))
def total(values):
    return sum(values)


@op(ins={"after": In(Nothing)})
def announce():
    return "done"


@op
def difference(evens, odds):
    return evens - odds


@job(tags={"team": "numbers"}, hooks={record_success})
def numbers_job():
    evens, odds = split(read_numbers())
    even_total = total.alias("total_evens")(evens)
    odd_total = total.alias("total_odds")(odds)
    announce(after=difference(even_total, odd_total))


# -- a failing op ----------------------------------------------------------------------------


@op
def explode():
    raise ValueError("boom")


@job
def failing_job():
    explode()


# -- static partitions -----------------------------------------------------------------------


@static_partitioned_config(partition_keys=["us", "eu"])
def region_config(partition_key: str):
    return {"ops": {"process_region": {"config": {"region": partition_key}}}}


@op(config_schema={"region": str})
def process_region(context):
    return f"{context.op_config['region']}/{context.partition_key}"


@job(config=region_config)
def regions_job():
    process_region()


defs = Definitions(
    jobs=[
        do_stuff,
        my_job,
        prod_job,
        local_job,
        do_it_all_with_default_config,
        do_it_all_with_simplified_config,
        numbers_job,
        failing_job,
        regions_job,
    ]
)


if __name__ == "__main__":
    result = do_stuff.execute_in_process()
    assert result.success
    print("do_stuff add_one:", result.output_for_node("add_one"))

    result = my_job.execute_in_process(op_selection=["*add_two"])
    assert result.success
    print("my_job *add_two add_two:", result.output_for_node("add_two"))
    result = my_job.execute_in_process(
        op_selection=["add_two+"],
        raise_on_error=True,
        run_config={"ops": {"add_two": {"inputs": {"i": 5}}}},
    )
    print("my_job add_two+ multi_three:", result.output_for_node("multi_three"))

    result = local_job.execute_in_process()
    print("do_stuff_local:", result.output_for_node("interact_with_server"))
    result = prod_job.execute_in_process()
    print("do_stuff_prod succeeded:", result.success)

    result = do_it_all_with_default_config.execute_in_process()
    print("default config:", result.output_for_node("do_something"))
    result = do_it_all_with_simplified_config.execute_in_process(
        run_config={"simplified_param": "stuff"}
    )
    print("config mapping:", result.output_for_node("do_something"))

    result = numbers_job.execute_in_process(
        run_config={"ops": {"read_numbers": {"config": {"numbers": [1, 2, 3, 4, 6]}}}}
    )
    print("numbers evens:", result.output_for_node("split", "evens"))
    print("numbers difference:", result.output_for_node("difference"))
    print("numbers announce:", result.output_for_node("announce"))
    print("hooks ran for:", sorted(set(hook_calls)))

    result = failing_job.execute_in_process(raise_on_error=False)
    print("failing_job success:", result.success)
    try:
        failing_job.execute_in_process()
    except Exception as exc:  # the op's own error comes back
        print("failing_job raised:", type(exc).__name__, "boom" in str(exc))

    result = regions_job.execute_in_process(partition_key="eu")
    print("regions eu:", result.output_for_node("process_region"))

    names = ["do_stuff", "my_job", "do_stuff_prod", "do_stuff_local", "regions_job"]
    print("jobs:", [defs.get_job_def(name).name for name in names])
    print("done")
