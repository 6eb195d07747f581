"""Unit tests of partitions definitions and partitioned config."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.definitions.partitions import (
    PARTITION_TAG,
    DailyPartitionsDefinition,
    PartitionedConfig,
    StaticPartitionsDefinition,
    TimeWindow,
    daily_partitioned_config,
    static_partitioned_config,
)
from orchestrator.errors import DefinitionError, PartitionError, UserCodeError

NOW = datetime(2024, 1, 4, 10, 0, tzinfo=UTC)


# -- static ------------------------------------------------------------------------------------


def test_static_keys_keep_their_order() -> None:
    partitions = StaticPartitionsDefinition(["us", "eu", "apac"])

    assert partitions.get_partition_keys() == ["us", "eu", "apac"]
    assert partitions.has_partition_key("eu")
    assert not partitions.has_partition_key("mars")


def test_unknown_static_key_names_the_key_and_suggests_a_close_one() -> None:
    partitions = StaticPartitionsDefinition(["us", "eu", "apac"])

    with pytest.raises(PartitionError) as info:
        partitions.validate_key("apc")

    assert "'apc'" in str(info.value)
    assert "Did you mean" in str(info.value)
    assert "'apac'" in str(info.value)


def test_duplicate_static_keys_are_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="'a'"):
        StaticPartitionsDefinition(["a", "b", "a"])


# -- daily -------------------------------------------------------------------------------------


def test_daily_keys_are_the_complete_days_before_now() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01")

    assert partitions.get_partition_keys(current_time=NOW) == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]
    assert partitions.has_partition_key("2024-01-03", current_time=NOW)
    assert not partitions.has_partition_key("2024-01-04", current_time=NOW)
    assert not partitions.has_partition_key("2023-12-31", current_time=NOW)


def test_daily_day_ending_exactly_now_is_complete() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01")
    midnight = datetime(2024, 1, 3, tzinfo=UTC)

    assert partitions.get_partition_keys(current_time=midnight) == ["2024-01-01", "2024-01-02"]


def test_daily_end_offset_adds_the_current_day() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)

    assert partitions.get_partition_keys(current_time=NOW)[-1] == "2024-01-04"
    assert partitions.has_partition_key("2024-01-04", current_time=NOW)


def test_daily_end_date_is_exclusive_and_caps_the_keys() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03")

    assert partitions.get_partition_keys(current_time=NOW) == ["2024-01-01", "2024-01-02"]


def test_daily_start_in_the_future_has_no_keys() -> None:
    partitions = DailyPartitionsDefinition(start_date="2030-01-01")

    assert partitions.get_partition_keys(current_time=NOW) == []
    with pytest.raises(PartitionError, match="no partitions"):
        partitions.validate_key("2030-01-01", current_time=NOW)


def test_daily_rejects_keys_in_another_spelling() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01")

    assert not partitions.has_partition_key("2024-1-2", current_time=NOW)
    with pytest.raises(PartitionError) as info:
        partitions.validate_key("2024-1-2", current_time=NOW)
    assert "'2024-1-2'" in str(info.value)
    assert "Did you mean" in str(info.value)


def test_daily_time_window_for_key() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01")

    window = partitions.time_window_for_partition_key("2024-01-02")

    assert window == TimeWindow(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
    with pytest.raises(PartitionError, match="not a day"):
        partitions.time_window_for_partition_key("yesterday")


def test_daily_hour_offset_shifts_the_windows() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01", hour_offset=6)

    # Given 05:00 on Jan 3, the window that started at 06:00 on Jan 2 is still open.
    now = datetime(2024, 1, 3, 5, 0, tzinfo=UTC)

    assert partitions.get_partition_keys(current_time=now) == ["2024-01-01"]
    assert partitions.time_window_for_partition_key("2024-01-01").start.hour == 6


def test_daily_days_are_counted_in_the_timezone_across_dst() -> None:
    new_york = ZoneInfo("America/New_York")
    partitions = DailyPartitionsDefinition(start_date="2024-03-09", timezone="America/New_York")

    # Given 03:00 UTC on Mar 12, it is still Mar 11 in New York, so Mar 11 is not complete.
    before_midnight = datetime(2024, 3, 12, 3, tzinfo=UTC)
    assert partitions.get_partition_keys(before_midnight) == ["2024-03-09", "2024-03-10"]
    # At 04:00 UTC it is midnight in New York (EDT, UTC-4) and Mar 11 is complete.
    at_midnight = datetime(2024, 3, 12, 4, tzinfo=UTC)
    assert partitions.get_partition_keys(at_midnight)[-1] == "2024-03-11"

    # Mar 10 is the day clocks spring forward: its window lasts 23 hours.
    start, end = partitions.time_window_for_partition_key("2024-03-10")
    assert start == datetime(2024, 3, 10, tzinfo=new_york)
    assert end == datetime(2024, 3, 11, tzinfo=new_york)
    # (Subtract in UTC: same-zone subtraction in Python ignores the offset change.)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    assert start.utcoffset() == timedelta(hours=-5)


def test_daily_naive_times_are_read_in_the_timezone() -> None:
    partitions = DailyPartitionsDefinition(start_date=datetime(2024, 1, 1), timezone="Asia/Tokyo")

    keys = partitions.get_partition_keys(current_time=datetime(2024, 1, 3, 0, 30))

    assert keys == ["2024-01-01", "2024-01-02"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timezone": "Not/AZone"},
        {"hour_offset": 24},
        {"minute_offset": -1},
        {"fmt": "%Y-%m"},
        {"end_date": "2023-01-01"},
    ],
)
def test_daily_bad_definitions_are_definition_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        DailyPartitionsDefinition(start_date="2024-01-01", **kwargs)


def test_daily_bad_start_date_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="start_date"):
        DailyPartitionsDefinition(start_date="first of January")


# -- partitioned config ------------------------------------------------------------------------


def test_static_partitioned_config_builds_config_for_a_key() -> None:
    @static_partitioned_config(["us", "eu"])
    def region_config(partition_key: str) -> Mapping[str, Any]:
        return {"ops": {"load": {"config": {"region": partition_key}}}}

    assert isinstance(region_config, PartitionedConfig)
    assert region_config.partitions_def.get_partition_keys() == ["us", "eu"]
    assert region_config.get_run_config_for_partition_key("eu") == {
        "ops": {"load": {"config": {"region": "eu"}}}
    }


def test_daily_partitioned_config_receives_the_window() -> None:
    received: list[tuple[datetime, datetime]] = []

    @daily_partitioned_config(start_date="2024-01-01")
    def day_config(start: datetime, end: datetime) -> Mapping[str, Any]:
        received.append((start, end))
        return {"ops": {"load": {"config": {"date": start.strftime("%Y-%m-%d")}}}}

    config = day_config.get_run_config_for_partition_key("2024-01-02")

    assert config == {"ops": {"load": {"config": {"date": "2024-01-02"}}}}
    assert received == [(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))]


def test_unknown_partition_key_for_run_config_is_a_partition_error() -> None:
    @static_partitioned_config(["us", "eu"])
    def region_config(partition_key: str) -> Mapping[str, Any]:
        raise AssertionError("must not be called for an unknown key")

    @daily_partitioned_config(start_date="2024-01-01")
    def day_config(start: datetime, end: datetime) -> Mapping[str, Any]:
        raise AssertionError("must not be called for an unknown key")

    with pytest.raises(PartitionError, match="'asia'"):
        region_config.get_run_config_for_partition_key("asia")
    with pytest.raises(PartitionError, match="'2999-01-01'"):
        day_config.get_run_config_for_partition_key("2999-01-01")


def test_run_config_objects_with_to_dict_are_converted() -> None:
    class RunConfigLike:
        def to_dict(self) -> dict[str, Any]:
            return {"ops": {}}

    config = PartitionedConfig(StaticPartitionsDefinition(["a"]), lambda key: RunConfigLike())

    assert config.get_run_config_for_partition_key("a") == {"ops": {}}


def test_user_function_errors_are_wrapped() -> None:
    def broken(partition_key: str) -> Mapping[str, Any]:
        raise KeyError(partition_key)

    config = PartitionedConfig(StaticPartitionsDefinition(["a"]), broken)

    with pytest.raises(UserCodeError) as info:
        config.get_run_config_for_partition_key("a")
    assert isinstance(info.value.__cause__, KeyError)


def test_tags_include_the_partition_key() -> None:
    @static_partitioned_config(["us", "eu"], tags_for_partition_fn=lambda key: {"team": key})
    def region_config(partition_key: str) -> Mapping[str, Any]:
        return {}

    @daily_partitioned_config(
        start_date="2024-01-01", tags_for_partition_fn=lambda start, end: {"day": str(start.day)}
    )
    def day_config(start: datetime, end: datetime) -> Mapping[str, Any]:
        return {}

    assert region_config.get_tags_for_partition_key("eu") == {PARTITION_TAG: "eu", "team": "eu"}
    day_tags = day_config.get_tags_for_partition_key("2024-01-02")
    assert day_tags[PARTITION_TAG] == "2024-01-02"
    assert day_tags == {PARTITION_TAG: "2024-01-02", "day": "2"}
