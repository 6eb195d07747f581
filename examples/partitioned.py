"""Partitioned jobs: each run handles one slice of the work, named by its partition key.

``regional_report`` has one partition per region (static partitions); ``daily_digest`` has one
per day since 2024-01-01 (daily partitions). The partitioned config turns the key into run
config, and ops also see the key as ``context.partition_key``.

Run it with ``python examples/partitioned.py`` or
``orchestrator job execute -f examples/partitioned.py -j regional_report --partition eu``.
"""

from datetime import datetime

from orchestrator import (
    Config,
    OpExecutionContext,
    RunConfig,
    daily_partitioned_config,
    job,
    op,
    static_partitioned_config,
)

REGIONS = ["us", "eu", "apac"]
CURRENCIES = {"us": "USD", "eu": "EUR", "apac": "JPY"}


class RegionConfig(Config):
    region: str
    currency: str


@static_partitioned_config(partition_keys=REGIONS)
def region_config(partition_key: str) -> RunConfig:
    return RunConfig(
        ops={
            "build_regional_report": RegionConfig(
                region=partition_key, currency=CURRENCIES[partition_key]
            )
        }
    )


@op
def build_regional_report(context: OpExecutionContext, config: RegionConfig) -> str:
    context.log.info(f"building the report of partition {context.partition_key}")
    return f"report for {config.region} in {config.currency}"


@job(config=region_config)
def regional_report() -> None:
    build_regional_report()


class DayConfig(Config):
    date: str


@daily_partitioned_config(start_date="2024-01-01")
def day_config(start: datetime, _end: datetime) -> dict:
    return {"ops": {"summarize_day": {"config": {"date": start.strftime("%Y-%m-%d")}}}}


@op
def summarize_day(context: OpExecutionContext, config: DayConfig) -> str:
    context.log.info(f"summarizing partition {context.partition_key}")
    return f"digest of {config.date}"


@job(config=day_config)
def daily_digest() -> None:
    summarize_day()


if __name__ == "__main__":
    for region in REGIONS:
        result = regional_report.execute_in_process(partition_key=region)
        print(f"{region}: {result.output_for_node('build_regional_report')}")
    result = daily_digest.execute_in_process(partition_key="2024-03-01")
    print(f"2024-03-01: {result.output_for_node('summarize_day')}")
