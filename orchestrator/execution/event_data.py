"""Events for what an op logs (materializations, observations, expectation results), and
``Event.event_specific_data``: the typed view Dagster code reads off an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.definitions.metadata import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    ExpectationResult,
    MetadataValue,
    metadata_from_json,
    metadata_to_json,
)
from orchestrator.errors import StepError
from orchestrator.execution.events import ErrorInfo, Event, EventType, make_event


def metadata_fields(metadata: Any) -> dict[str, Any]:
    """Event data for a metadata mapping: ``metadata`` (plain JSON values) and, for entries
    given as ``MetadataValue``, ``metadata_kinds``."""
    values, kinds = metadata_to_json(metadata)
    return {"metadata": values or None, "metadata_kinds": kinds or None}


def logged_event(run_id: str, step_key: str | None, attempt: int | None, item: Any) -> Event:
    """The event of something an op logs with ``context.log_event`` (or yields)."""
    if isinstance(item, AssetMaterialization):
        observed = isinstance(item, AssetObservation)
        kind = EventType.ASSET_OBSERVATION if observed else EventType.ASSET_MATERIALIZATION
        verb = "Observed" if observed else "Materialized"
        return make_event(
            kind,
            run_id,
            f"{verb} asset {item.label!r}" + (f": {item.description}" if item.description else ""),
            step_key=step_key,
            attempt=attempt,
            asset_key=list(item.asset_key.path),
            description=item.description,
            partition=item.partition,
            **metadata_fields(item.metadata),
        )
    if isinstance(item, ExpectationResult):
        outcome = "passed" if item.success else "failed"
        return make_event(
            EventType.STEP_EXPECTATION_RESULT,
            run_id,
            f"Expectation {item.label or ''!r} {outcome}"
            + (f": {item.description}" if item.description else ""),
            step_key=step_key,
            attempt=attempt,
            success=item.success,
            label=item.label,
            description=item.description,
            **metadata_fields(item.metadata),
        )
    raise StepError(
        f"cannot log {item!r}: log_event takes AssetMaterialization, AssetObservation or "
        "ExpectationResult"
    )


@dataclass(frozen=True)
class StepOutputData:
    output_name: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class UserFailureData:
    description: str | None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFailureData:
    error: ErrorInfo | None
    user_failure_data: UserFailureData | None


@dataclass(frozen=True)
class StepMaterializationData:
    materialization: AssetMaterialization


@dataclass(frozen=True)
class AssetObservationData:
    asset_observation: AssetObservation


@dataclass(frozen=True)
class StepExpectationResultData:
    expectation_result: ExpectationResult


def _metadata(event: Event) -> dict[str, MetadataValue]:
    return metadata_from_json(event.data.get("metadata"), event.data.get("metadata_kinds"))


def specific_data(event: Event) -> Any:
    kind, data = event.event_type_value, event.data
    if kind == EventType.STEP_OUTPUT.value:
        return StepOutputData(data.get("output_name", "result"), _metadata(event))
    if kind == EventType.STEP_FAILURE.value:
        user = None
        if data.get("user_failure"):
            user = UserFailureData(data.get("description"), _metadata(event))
        return StepFailureData(event.error, user)
    if kind in (EventType.ASSET_MATERIALIZATION.value, EventType.ASSET_OBSERVATION.value):
        observed = kind == EventType.ASSET_OBSERVATION.value
        cls = AssetObservation if observed else AssetMaterialization
        asset = cls(
            AssetKey(data["asset_key"]),
            data.get("description"),
            _metadata(event),
            data.get("partition"),
        )
        if observed:
            return AssetObservationData(asset)  # type: ignore[arg-type]
        return StepMaterializationData(asset)
    if kind == EventType.STEP_EXPECTATION_RESULT.value:
        return StepExpectationResultData(
            ExpectationResult(
                bool(data.get("success")),
                data.get("label"),
                data.get("description"),
                _metadata(event),
            )
        )
    return None
