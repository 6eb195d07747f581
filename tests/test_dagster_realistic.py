"""A realistic Dagster op-job project in one file, as a team would write it for Dagster, with
only the import line changed: an orders pipeline with nested graphs, a config mapping, typed
inputs and outputs, resources (a configurable client and a generator resource with
teardown), hooks, a retry policy, partitions, metadata and expectations, and its own unit
tests with Dagster's testing helpers. Nothing here is orchestrator-specific."""

from collections.abc import Iterator

import pytest

from orchestrator import (
    AssetMaterialization,
    Backoff,
    Config,
    ConfigMapping,
    ConfigurableResource,
    DagsterType,
    Definitions,
    ExpectationResult,
    Failure,
    Field,
    HookContext,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    RetryPolicy,
    TypeCheck,
    build_op_context,
    build_resources,
    failure_hook,
    get_dagster_logger,
    graph,
    job,
    op,
    resource,
    static_partitioned_config,
    success_hook,
)

# -- types -------------------------------------------------------------------------------------


def _is_order_batch(_context, value):  # type: ignore[no-untyped-def]
    if not isinstance(value, list):
        return TypeCheck(
            False, description=f"expected a list of orders, got {type(value).__name__}"
        )
    bad = [o for o in value if not {"id", "amount"} <= set(o)]
    if bad:
        return TypeCheck(False, description=f"{len(bad)} orders lack id or amount")
    return TypeCheck(True, metadata={"orders": len(value)})


OrderBatch = DagsterType(_is_order_batch, name="OrderBatch", description="orders with id, amount")

# -- resources ---------------------------------------------------------------------------------

AUDIT: list[str] = []


class ShopClient(ConfigurableResource):
    region: str
    fail_first: int = 0

    def fetch(self, attempt: int) -> list[dict]:
        if attempt < self.fail_first:
            raise ConnectionError(f"shop API in {self.region} timed out")
        base = {"eu": 100, "us": 200}[self.region]
        return [{"id": i, "amount": base + i} for i in range(3)]


@resource(config_schema={"path": Field(str, default_value="/tmp/warehouse")})
def warehouse(init_context):  # type: ignore[no-untyped-def]
    tables: dict[str, list] = {}
    AUDIT.append(f"open {init_context.resource_config['path']}")
    yield tables
    AUDIT.append(f"close {init_context.resource_config['path']}")


# -- hooks -------------------------------------------------------------------------------------

NOTIFIED: list[str] = []


@success_hook
def note_success(context: HookContext) -> None:
    NOTIFIED.append(f"ok {context.op.name}")


@failure_hook
def page_on_failure(context: HookContext) -> None:
    NOTIFIED.append(f"failed {context.op.name}: {context.op_exception}")


# -- ops ---------------------------------------------------------------------------------------


class FetchConfig(Config):
    limit: int = 10


@op(
    out=Out(OrderBatch),
    retry_policy=RetryPolicy(max_retries=2, delay=0.01, backoff=Backoff.EXPONENTIAL),
)
def fetch_orders(context: OpExecutionContext, config: FetchConfig, shop: ShopClient) -> list:
    orders = shop.fetch(context.retry_number)[: config.limit]
    context.log.info(f"fetched {len(orders)} orders on attempt {context.retry_number + 1}")
    return orders


@op(ins={"orders": In(OrderBatch)}, config_schema={"min_amount": int})
def keep_large(context: OpExecutionContext, orders: list) -> list:
    kept = [o for o in orders if o["amount"] >= context.op_config["min_amount"]]
    get_dagster_logger().info(f"kept {len(kept)} of {len(orders)}")
    return kept


@op
def total(orders: list) -> Output[int]:
    amount = sum(o["amount"] for o in orders)
    return Output(amount, metadata={"orders": len(orders), "amount": MetadataValue.int(amount)})


@op(required_resource_keys={"warehouse"})
def store(context: OpExecutionContext, amount: int):  # type: ignore[no-untyped-def]
    context.resources.warehouse.setdefault("totals", []).append(amount)
    yield ExpectationResult(success=amount > 0, label="positive_total")
    yield AssetMaterialization(
        asset_key=["warehouse", "totals"],
        description="daily total stored",
        metadata={"amount": amount},
    )
    yield Output(amount)


@op
def refuse_empty(orders: list) -> list:
    if not orders:
        raise Failure(description="no orders left after filtering", metadata={"orders": 0})
    return orders


# -- graphs and jobs ---------------------------------------------------------------------------


@graph(
    config=ConfigMapping(
        config_fn=lambda cfg: {"keep_large": {"config": {"min_amount": cfg["threshold"]}}},
        config_schema={"threshold": int},
    )
)
def clean(orders):  # type: ignore[no-untyped-def]
    return refuse_empty(keep_large(orders))


@graph
def summarize(orders):  # type: ignore[no-untyped-def]
    return store(total(orders))


@static_partitioned_config(partition_keys=["eu", "us"])
def region_config(partition_key: str) -> dict:
    return {
        "ops": {"clean": {"config": {"threshold": 101}}},
        "resources": {"shop": {"config": {"region": partition_key}}},
    }


@job(
    resource_defs={"shop": ShopClient(region="eu"), "warehouse": warehouse},
    hooks={note_success, page_on_failure},
    config=region_config,
    tags={"team": "sales"},
)
def daily_orders() -> None:
    summarize(clean(fetch_orders()))


defs = Definitions(jobs=[daily_orders])

# -- the project's tests -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    AUDIT.clear()
    NOTIFIED.clear()
    yield


def test_a_partition_runs_end_to_end() -> None:
    result = defs.get_job_def("daily_orders").execute_in_process(partition_key="eu")
    assert result.success
    assert result.output_for_node("summarize") == 101 + 102
    assert result.dagster_run.tags["team"] == "sales"
    (materialization,) = result.asset_materializations_for_node("summarize")
    assert materialization.asset_key.to_user_string() == "warehouse/totals"
    (expectation,) = result.expectation_results_for_node("summarize.store")
    assert expectation.success
    (total_output,) = [
        e for e in result.events_for_node("summarize.total") if e.is_successful_output
    ]
    assert total_output.event_specific_data.metadata["orders"].value == 2
    assert AUDIT == ["open /tmp/warehouse", "close /tmp/warehouse"]
    assert "ok summarize.store" in NOTIFIED or "ok store" in NOTIFIED


def test_retries_ride_out_a_flaky_api() -> None:
    result = daily_orders.execute_in_process(
        partition_key="eu",
        run_config={
            "ops": {"clean": {"config": {"threshold": 0}}},
            "resources": {"shop": {"config": {"region": "eu", "fail_first": 2}}},
        },
    )
    assert result.success
    retries = [e for e in result.events_for_node("fetch_orders") if e.is_step_up_for_retry]
    assert len(retries) == 2


def test_a_failure_with_metadata_fails_the_run_and_pages() -> None:
    result = daily_orders.execute_in_process(
        run_config={
            "ops": {"clean": {"config": {"threshold": 10_000}}},
            "resources": {"shop": {"config": {"region": "eu"}}},
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "clean.refuse_empty"
    assert failure.event_specific_data.user_failure_data.description == (
        "no orders left after filtering"
    )
    assert any(n.startswith("failed refuse_empty") for n in NOTIFIED)
    ran = {e.step_key for e in result.get_step_success_events()}
    assert ran == {"fetch_orders", "clean.keep_large"}  # nothing downstream of the failure


def test_a_bad_batch_fails_its_type_check() -> None:
    @op(out=Out(OrderBatch))
    def broken_fetch() -> list:
        return [{"id": 1}]

    @job
    def broken() -> None:
        keep_large(broken_fetch())

    result = broken.execute_in_process(
        run_config={"ops": {"keep_large": {"config": {"min_amount": 0}}}}, raise_on_error=False
    )
    (failure,) = result.get_step_failure_events()
    error = failure.event_specific_data.error
    assert "OrderBatch" in error.message and "lack id or amount" in error.message


def test_ops_in_isolation() -> None:
    with build_op_context(op_config={"min_amount": 150}) as context:
        assert keep_large(context, [{"id": 1, "amount": 100}, {"id": 2, "amount": 200}]) == [
            {"id": 2, "amount": 200}
        ]
    assert ShopClient(region="us").fetch(attempt=0)[0] == {"id": 0, "amount": 200}
    assert total([{"id": 1, "amount": 5}]).value == 5
    with pytest.raises(Failure):
        refuse_empty([])


def test_resources_in_isolation() -> None:
    with build_resources({"warehouse": warehouse}) as resources:
        resources.warehouse["x"] = [1]
        assert AUDIT == ["open /tmp/warehouse"]
    assert AUDIT == ["open /tmp/warehouse", "close /tmp/warehouse"]


def test_op_selection_runs_part_of_the_job() -> None:
    result = daily_orders.execute_in_process(
        partition_key="eu",
        op_selection=["fetch_orders", "clean"],
    )
    assert {e.step_key for e in result.get_step_success_events()} == {
        "fetch_orders",
        "clean.keep_large",
        "clean.refuse_empty",
    }
