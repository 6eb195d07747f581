"""Metadata and the events an op logs about what it did: ``MetadataValue``,
``AssetMaterialization``, ``AssetObservation`` and ``ExpectationResult`` (Dagster's names).

Materializations and observations are recorded as events of the run; there is no asset graph.
Metadata travels in events as JSON: a plain value stays as it is, a ``MetadataValue`` keeps its
kind beside it so that readers get the same ``MetadataValue`` back.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import DefinitionError


@dataclass(frozen=True)
class MetadataValue:
    """A metadata entry with a kind (``text``, ``url``, ``path``, ``json``, ``md``, ``int``,
    ``float``, ``bool``, ``null``, ``timestamp``); build with the static methods:
    ``MetadataValue.url("https://...")``. ``value`` is the plain value."""

    kind: str
    value: Any

    @staticmethod
    def text(text: str) -> MetadataValue:
        return MetadataValue("text", str(text))

    @staticmethod
    def url(url: str) -> MetadataValue:
        return MetadataValue("url", str(url))

    @staticmethod
    def path(path: Any) -> MetadataValue:
        return MetadataValue("path", str(path))

    @staticmethod
    def json(data: Any) -> MetadataValue:
        return MetadataValue("json", data)

    @staticmethod
    def md(markdown: str) -> MetadataValue:
        return MetadataValue("md", str(markdown))

    @staticmethod
    def int(value: int) -> MetadataValue:
        return MetadataValue("int", value)

    @staticmethod
    def float(value: builtins.float) -> MetadataValue:
        return MetadataValue("float", value)

    @staticmethod
    def bool(value: builtins.bool) -> MetadataValue:
        return MetadataValue("bool", value)

    @staticmethod
    def null() -> MetadataValue:
        return MetadataValue("null", None)

    @staticmethod
    def timestamp(seconds: builtins.float) -> MetadataValue:
        """Seconds since the epoch."""
        return MetadataValue("timestamp", seconds)

    @property
    def text_value(self) -> str:
        return str(self.value)


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return "json"


def as_metadata_value(value: Any) -> MetadataValue:
    return value if isinstance(value, MetadataValue) else MetadataValue(_kind_of(value), value)


def metadata_to_json(metadata: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain values, kinds of the entries given as ``MetadataValue``) for an event."""
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if isinstance(value, MetadataValue):
            values[key], kinds[key] = value.value, value.kind
        else:
            values[key] = value
    return values, kinds


def metadata_from_json(
    values: Mapping[str, Any] | None, kinds: Mapping[str, str] | None
) -> dict[str, MetadataValue]:
    kinds = kinds or {}
    return {
        key: MetadataValue(kinds[key], value) if key in kinds else as_metadata_value(value)
        for key, value in (values or {}).items()
    }


class AssetKey:
    """The name of an asset: a path of strings (``AssetKey(["warehouse", "orders"])``); equal
    keys hash alike."""

    def __init__(self, path: str | Sequence[str]):
        parts = [path] if isinstance(path, str) else list(path)
        if not parts or not all(isinstance(p, str) and p for p in parts):
            raise DefinitionError(f"AssetKey needs non-empty strings, got {path!r}")
        self.path: list[str] = parts

    def to_user_string(self) -> str:
        return "/".join(self.path)

    def to_string(self) -> str:
        return self.to_user_string()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetKey) and other.path == self.path

    def __hash__(self) -> int:
        return hash(tuple(self.path))

    def __repr__(self) -> str:
        return f"AssetKey({self.path!r})"


def _asset_key(value: Any) -> AssetKey:
    return value if isinstance(value, AssetKey) else AssetKey(value)


@dataclass(frozen=True)
class AssetMaterialization:
    """An op says it wrote an asset (a table, a file): recorded as an
    ``ASSET_MATERIALIZATION`` event of the step, with its metadata."""

    asset_key: AssetKey
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    partition: str | None = None

    def __init__(
        self,
        asset_key: Any,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        partition: str | None = None,
    ):
        object.__setattr__(self, "asset_key", _asset_key(asset_key))
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "metadata", dict(metadata or {}))
        object.__setattr__(self, "partition", partition)

    @property
    def label(self) -> str:
        return self.asset_key.to_user_string()


class AssetObservation(AssetMaterialization):
    """An op records what it saw of an asset without writing it: an ``ASSET_OBSERVATION``
    event."""


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of a data quality check an op ran: a ``STEP_EXPECTATION_RESULT`` event (a
    failed expectation does not fail the step)."""

    success: bool
    label: str | None = None
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


LoggedEvent = AssetMaterialization | ExpectationResult
