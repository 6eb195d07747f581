"""Partitions: named slices of a job's work, and config that depends on the slice.

A :class:`PartitionsDefinition` lists the partition keys a job accepts. A
:class:`PartitionedConfig` turns one of those keys into run config and run tags. Names and
behaviour follow Dagster's ``StaticPartitionsDefinition``, ``DailyPartitionsDefinition``,
``static_partitioned_config`` and ``daily_partitioned_config``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.errors import DefinitionError, PartitionError, UserCodeError, did_you_mean

__all__ = [
    "PARTITION_TAG",
    "DailyPartitionsDefinition",
    "PartitionedConfig",
    "PartitionsDefinition",
    "RunConfigLike",
    "StaticPartitionsDefinition",
    "TimeWindow",
    "daily_partitioned_config",
    "static_partitioned_config",
]

PARTITION_TAG = "orchestrator/partition"

DEFAULT_DATE_FORMAT = "%Y-%m-%d"
_ONE_DAY = timedelta(days=1)


class _SupportsToDict(Protocol):
    def to_dict(self) -> Mapping[str, Any]: ...


#: What a run config function may return: a mapping, or an object with ``to_dict()``.
RunConfigLike = Mapping[str, Any] | _SupportsToDict


class PartitionsDefinition(ABC):
    """The set of partition keys a job accepts."""

    @abstractmethod
    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        """Return every partition key that exists at ``current_time`` (default: now), in order."""

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        """Return whether ``key`` is one of the partition keys at ``current_time``."""
        return key in self.get_partition_keys(current_time)

    def validate_key(self, key: str, current_time: datetime | None = None) -> None:
        """Check that ``key`` is a partition key at ``current_time`` (default: now).

        Raises:
            PartitionError: naming the key and the closest valid keys.
        """
        if self.has_partition_key(key, current_time):
            return
        keys = self.get_partition_keys(current_time)
        hint = did_you_mean(key, keys) if keys else " It has no partitions yet."
        raise PartitionError(f"Unknown partition key {key!r} for {self!r}.{hint}")


class StaticPartitionsDefinition(PartitionsDefinition):
    """A fixed, ordered list of partition keys.

    Args:
        partition_keys: the keys, e.g. ``["us", "eu"]``.

    Raises:
        DefinitionError: a key appears twice.
    """

    def __init__(self, partition_keys: Sequence[str]):
        keys = list(partition_keys)
        duplicates = sorted(k for k, n in Counter(keys).items() if n > 1)
        if duplicates:
            raise DefinitionError(f"Duplicate partition keys: {duplicates!r}.")
        self._keys = keys
        self._key_set = frozenset(keys)

    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        return list(self._keys)

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        return key in self._key_set

    def __repr__(self) -> str:
        return f"StaticPartitionsDefinition({self._keys!r})"


class TimeWindow(NamedTuple):
    """A half-open interval ``[start, end)`` of timezone-aware datetimes."""

    start: datetime
    end: datetime


class DailyPartitionsDefinition(PartitionsDefinition):
    """One partition per day, keyed by the day's start formatted with ``fmt``.

    A day's window runs from ``hour_offset:minute_offset`` local time to the same time the next
    day. Only complete windows exist (those ending at or before the current time), plus
    ``end_offset`` more (negative drops some). Naive datetimes are read in ``timezone``.

    Args:
        start_date: first day, as a datetime or a string in ``fmt`` (or ISO 8601). The first
            partition is the first window starting at or after it.
        end_date: optional exclusive bound: no window ends after it.
        minute_offset: minute of the hour at which each window starts (0-59).
        hour_offset: hour of the day at which each window starts (0-23).
        timezone: IANA name of the timezone the days are counted in; default UTC.
        fmt: ``strftime`` format of the keys; default ``%Y-%m-%d``.
        end_offset: number of extra partitions after the last complete one.

    Raises:
        DefinitionError: bad offsets, unknown timezone, unparsable dates, a ``fmt`` that does
            not identify a day, or an ``end_date`` before ``start_date``.
    """

    def __init__(
        self,
        start_date: datetime | str,
        end_date: datetime | str | None = None,
        minute_offset: int = 0,
        hour_offset: int = 0,
        timezone: str | None = "UTC",
        fmt: str | None = DEFAULT_DATE_FORMAT,
        end_offset: int = 0,
    ):
        if not 0 <= minute_offset <= 59 or not 0 <= hour_offset <= 23:
            raise DefinitionError(
                f"Need 0 <= minute_offset <= 59 and 0 <= hour_offset <= 23, "
                f"got minute_offset={minute_offset}, hour_offset={hour_offset}."
            )
        try:
            self.timezone = ZoneInfo(timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise DefinitionError(f"Unknown timezone {timezone!r}.") from exc
        self.fmt = fmt or DEFAULT_DATE_FORMAT
        self.minute_offset = minute_offset
        self.hour_offset = hour_offset
        self.end_offset = end_offset
        self.start = self._parse_bound(start_date, "start_date")
        self.end = None if end_date is None else self._parse_bound(end_date, "end_date")
        if self.end is not None and self.end < self.start:
            raise DefinitionError(f"end_date {end_date!r} is before start_date {start_date!r}.")
        # First window starting at or after `start`; later days are counted from it.
        first = self.start.date()
        self._first_day = first if self._window_start(first) >= self.start else first + _ONE_DAY
        for day in (self._first_day, self._first_day + _ONE_DAY):
            if self._day_for_key(self._key_for_day(day)) != day:
                raise DefinitionError(f"fmt {self.fmt!r} does not give each day its own key.")

    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        stop = self._stop_day(current_time)
        count = max((stop - self._first_day).days, 0)
        return [self._key_for_day(self._first_day + timedelta(days=i)) for i in range(count)]

    def has_partition_key(self, key: str, current_time: datetime | None = None) -> bool:
        day = self._day_for_key(key)
        return day is not None and self._first_day <= day < self._stop_day(current_time)

    def time_window_for_partition_key(self, key: str) -> TimeWindow:
        """Return the window ``[start, end)`` of ``key``, as datetimes in ``timezone``.

        Only the key's format is checked, not whether the partition exists yet.

        Raises:
            PartitionError: ``key`` is not a day's key in ``fmt``.
        """
        day = self._day_for_key(key)
        if day is None:
            raise PartitionError(
                f"Partition key {key!r} is not a day in format {self.fmt!r}"
                f" (e.g. {self._key_for_day(self._first_day)!r})."
            )
        return TimeWindow(self._window_start(day), self._window_start(day + _ONE_DAY))

    def _parse_bound(self, value: datetime | str, name: str) -> datetime:
        if isinstance(value, datetime):
            return self._localize(value)
        for parse in (lambda s: datetime.strptime(s, self.fmt), datetime.fromisoformat):
            try:
                return self._localize(parse(value))
            except ValueError:
                continue
        raise DefinitionError(f"{name} {value!r} matches neither {self.fmt!r} nor ISO 8601.")

    def _localize(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=self.timezone)
        return value.astimezone(self.timezone)

    def _window_start(self, day: date) -> datetime:
        local = datetime.combine(day, time(self.hour_offset, self.minute_offset), self.timezone)
        # Round-trip through UTC so a wall time skipped by a DST jump becomes a real instant.
        return local.astimezone(UTC).astimezone(self.timezone)

    def _day_containing(self, moment: datetime) -> date:
        day = moment.date()
        return day if self._window_start(day) <= moment else day - _ONE_DAY

    def _stop_day(self, current_time: datetime | None) -> date:
        """Exclusive bound on partition days: the current (incomplete) day plus end_offset."""
        now = self._localize(current_time or datetime.now(UTC))
        stop = self._day_containing(now) + timedelta(days=self.end_offset)
        if self.end is not None:
            # A window for `day` ends at the start of `day + 1`, which must be <= end.
            stop = min(stop, self._day_containing(self.end))
        return stop

    def _key_for_day(self, day: date) -> str:
        return self._window_start(day).strftime(self.fmt)

    def _day_for_key(self, key: str) -> date | None:
        try:
            day = datetime.strptime(key, self.fmt).date()
        except ValueError:
            return None
        # Reject keys strptime tolerates but we would never produce, like "2024-1-1".
        return day if self._key_for_day(day) == key else None

    def __repr__(self) -> str:
        return (
            f"DailyPartitionsDefinition(start_date={self.start.isoformat()!r}, "
            f"timezone={self.timezone.key!r}, fmt={self.fmt!r})"
        )


class PartitionedConfig:
    """Run config and tags computed from a partition key.

    Args:
        partitions_def: the partitions the config is defined for.
        run_config_for_partition_key_fn: returns the run config for a key; may return an object
            with a ``to_dict()`` method (such as a ``RunConfig``).
        tags_for_partition_key_fn: optionally returns extra run tags for a key.
    """

    def __init__(
        self,
        partitions_def: PartitionsDefinition,
        run_config_for_partition_key_fn: Callable[[str], RunConfigLike],
        tags_for_partition_key_fn: Callable[[str], Mapping[str, str]] | None = None,
        decorated_fn: Callable[..., RunConfigLike] | None = None,
    ):
        self._partitions_def = partitions_def
        self._run_config_fn = run_config_for_partition_key_fn
        self._tags_fn = tags_for_partition_key_fn
        self._decorated_fn = decorated_fn or run_config_for_partition_key_fn

    def __call__(self, *args: Any, **kwargs: Any) -> RunConfigLike:
        """The decorated function itself (``my_config("2024-01-01")``, or ``(start, end)``
        for a time-window config), as in Dagster."""
        return self._decorated_fn(*args, **kwargs)

    def get_partition_keys(self, current_time: datetime | None = None) -> list[str]:
        """The keys of ``partitions_def``."""
        return self._partitions_def.get_partition_keys(current_time)

    @property
    def partitions_def(self) -> PartitionsDefinition:
        """The partitions this config is defined for."""
        return self._partitions_def

    def get_run_config_for_partition_key(self, partition_key: str) -> dict[str, Any]:
        """Return the run config for ``partition_key``.

        Raises:
            PartitionError: the key is not a partition of ``partitions_def``.
            UserCodeError: the user function raised (the original is ``__cause__``).
            DefinitionError: the user function returned something that is not a mapping.
        """
        self._partitions_def.validate_key(partition_key)
        config = self._call_user_fn(self._run_config_fn, partition_key, "run config")
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if not isinstance(config, Mapping):
            raise DefinitionError(
                f"The run config function for partition {partition_key!r} returned "
                f"{type(config).__name__}, expected a mapping."
            )
        return dict(config)

    def get_tags_for_partition_key(self, partition_key: str) -> dict[str, str]:
        """Return the run tags for ``partition_key``: the user's tags plus ``PARTITION_TAG``
        (which wins over a user tag of the same name).

        Raises:
            PartitionError: the key is not a partition of ``partitions_def``.
            UserCodeError: the user tags function raised (the original is ``__cause__``).
        """
        self._partitions_def.validate_key(partition_key)
        tags: dict[str, str] = {}
        if self._tags_fn is not None:
            tags.update(self._call_user_fn(self._tags_fn, partition_key, "tags"))
        tags[PARTITION_TAG] = partition_key
        return tags

    @staticmethod
    def _call_user_fn(fn: Callable[[str], Any], partition_key: str, what: str) -> Any:
        try:
            return fn(partition_key)
        except Exception as exc:
            message = f"Error computing {what} for partition {partition_key!r}: {exc!r}"
            raise UserCodeError(message, exc) from exc


def static_partitioned_config(
    partition_keys: Sequence[str],
    tags_for_partition_fn: Callable[[str], Mapping[str, str]] | None = None,
) -> Callable[[Callable[[str], RunConfigLike]], PartitionedConfig]:
    """Decorate ``fn(partition_key) -> run config`` into a static :class:`PartitionedConfig`.

    Args:
        partition_keys: the partition keys.
        tags_for_partition_fn: optionally returns extra run tags for a key.

    Returns:
        A decorator returning a :class:`PartitionedConfig`.

    Raises:
        DefinitionError: duplicate partition keys.
    """
    partitions_def = StaticPartitionsDefinition(partition_keys)

    def decorator(fn: Callable[[str], RunConfigLike]) -> PartitionedConfig:
        return PartitionedConfig(partitions_def, fn, tags_for_partition_fn)

    return decorator


def daily_partitioned_config(
    start_date: datetime | str,
    minute_offset: int = 0,
    hour_offset: int = 0,
    timezone: str | None = None,
    fmt: str | None = None,
    end_offset: int = 0,
    tags_for_partition_fn: Callable[[datetime, datetime], Mapping[str, str]] | None = None,
) -> Callable[[Callable[[datetime, datetime], RunConfigLike]], PartitionedConfig]:
    """Decorate ``fn(start, end) -> run config`` into a daily :class:`PartitionedConfig`.

    The function (and ``tags_for_partition_fn``) receives the partition's window start and end.
    The other arguments are those of :class:`DailyPartitionsDefinition`.

    Returns:
        A decorator returning a :class:`PartitionedConfig`.

    Raises:
        DefinitionError: as :class:`DailyPartitionsDefinition`.
    """
    partitions_def = DailyPartitionsDefinition(
        start_date=start_date,
        minute_offset=minute_offset,
        hour_offset=hour_offset,
        timezone=timezone,
        fmt=fmt,
        end_offset=end_offset,
    )

    def decorator(fn: Callable[[datetime, datetime], RunConfigLike]) -> PartitionedConfig:
        def config_for_key(key: str) -> RunConfigLike:
            return fn(*partitions_def.time_window_for_partition_key(key))

        def tags_for_key(key: str) -> Mapping[str, str]:
            assert tags_for_partition_fn is not None
            return tags_for_partition_fn(*partitions_def.time_window_for_partition_key(key))

        tags_fn = tags_for_key if tags_for_partition_fn is not None else None
        return PartitionedConfig(partitions_def, config_for_key, tags_fn, decorated_fn=fn)

    return decorator
