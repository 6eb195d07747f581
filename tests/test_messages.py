"""The step message workers receive, the one constructor of synthetic step failures, and the
one home of attempt ids; and a real worker refusing a message of a version it does not read."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.distributed.celery_app import STEP_TASK, create_app
from orchestrator.distributed.messages import (
    MESSAGE_VERSION,
    MessageVersionError,
    StepMessage,
)
from orchestrator.events import (
    ErrorInfo,
    EventType,
    attempt_id_for,
    parse_attempt_id,
    step_failure,
)
from orchestrator.settings import Settings
from orchestrator.storage.redis import RedisInstance
from tests.celery_support import Cluster
from tests.waiting import wait_until


def _message(**changes: object) -> StepMessage:
    fields: dict[str, object] = {
        "run_id": "r1",
        "step_key": "process[a]",
        "attempt": 2,
        "attempt_id": attempt_id_for("r1", "process[a]", 2),
        "pointer": {"location": {"module": "tests.celery_jobs"}, "attribute": "chain"},
        "lease_token": 7,
        "plan": "digest",
        "run_tags": {"team": "data"},
        "has_input_values": True,
        "step": {"key": "process[a]"},
    }
    fields.update(changes)
    return StepMessage(**fields)  # type: ignore[arg-type]


def test_a_message_survives_its_round_trip_and_names_its_version() -> None:
    message = _message()
    data = message.to_dict()
    assert data["version"] == MESSAGE_VERSION
    assert StepMessage.from_dict(data) == message


def test_a_message_without_a_version_is_the_first_format() -> None:
    data = _message().to_dict()
    del data["version"]
    assert StepMessage.from_dict(data).version == 1


def test_a_message_of_another_version_is_refused_saying_what_to_do() -> None:
    data = {**_message().to_dict(), "version": MESSAGE_VERSION + 1}
    with pytest.raises(MessageVersionError) as raised:
        StepMessage.from_dict(data)
    text = str(raised.value)
    assert f"version {MESSAGE_VERSION + 1}" in text and f"version {MESSAGE_VERSION}" in text
    assert "same orchestrator release" in text


def test_attempt_ids_round_trip_even_with_colons_in_step_keys() -> None:
    attempt_id = attempt_id_for("run-1", "graph.op:x[a]", 3)
    assert parse_attempt_id(attempt_id) == ("run-1", "graph.op:x[a]", 3)
    for bad in ("", "run-1", "run-1:step", "run-1:step:x", ":step:1"):
        with pytest.raises(ValueError, match="not an attempt id"):
            parse_attempt_id(bad)


@pytest.mark.parametrize(
    ("error", "cls_name", "has_stack"),
    [("StepProcessDied", "StepProcessDied", False), (ErrorInfo("E", "m", "s"), "E", True)],
)
def test_a_synthetic_failure_carries_its_error(
    error: object, cls_name: str, has_stack: bool
) -> None:
    event = step_failure("r1", "s", 1, "it died", error=error, exit_code=-9)  # type: ignore[arg-type]
    assert event.event_type_value == EventType.STEP_FAILURE.value
    assert (event.step_key, event.attempt, event.message) == ("s", 1, "it died")
    assert event.data["exit_code"] == -9
    assert event.error is not None and event.error.cls_name == cls_name
    assert bool(event.error.stack) is has_stack


def test_a_synthetic_failure_from_an_exception_keeps_its_traceback_and_cause() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        event = step_failure("r1", "s", 1, "could not start", error=exc)
    assert event.error is not None and event.error.cls_name == "RuntimeError"
    assert "outer" in event.error.stack
    assert event.error.cause is not None and event.error.cause.cls_name == "KeyError"


def test_a_real_worker_fails_an_attempt_whose_message_it_cannot_read(
    cluster_env: Cluster,
) -> None:
    # Given a step message from a newer release (version one above what workers read)
    run_id = f"future-{uuid.uuid4().hex[:8]}"
    attempt_id = attempt_id_for(run_id, "add_one", 1)
    data = {**_message(run_id=run_id, attempt_id=attempt_id, step_key="add_one").to_dict()}
    data["version"] = MESSAGE_VERSION + 1
    # When it reaches a worker through the broker
    settings = Settings()
    app = create_app(settings)
    app.send_task(STEP_TASK, args=[data], queue="orchestrator", task_id=attempt_id)
    # Then the worker ends the attempt with a failure that says why, instead of running it
    instance = RedisInstance.from_url(settings.resolved_redis_url(), settings.key_prefix)
    events = wait_until("the refusal", lambda: instance.all_events(run_id))
    (failure,) = events
    assert failure.event_type_value == EventType.STEP_FAILURE.value
    assert (failure.step_key, failure.attempt) == ("add_one", 1)
    assert "refuses step 'add_one'" in failure.message
    assert f"version {MESSAGE_VERSION + 1}" in failure.message
    assert failure.error is not None and failure.error.cls_name == "MessageVersionError"
