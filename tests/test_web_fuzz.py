"""A fuzz pass over the HTTP API's OpenAPI schema (schemathesis): requests built from the
schema, valid and invalid, against a real server process, never get a 5xx."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given

from tests.web_support import WebStack

# Endpoints left out: streams that stay open while runs go on (their error paths are covered
# by tests/test_web_api.py).
STREAMING = ("/api/stream/runs", "/api/runs/{run_id}/events/stream")
EXAMPLES_PER_OPERATION = 40


@pytest.mark.timeout(600)
def test_no_request_built_from_the_schema_gets_a_server_error(web_stack: WebStack) -> None:
    schema = schemathesis.openapi.from_url(f"{web_stack.url}/openapi.json")
    failures: list[str] = []
    calls: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMING:
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=web_stack.url, timeout=30)
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )
            if response.status_code >= 400:
                assert "message" in response.json(), (case.method, case.path, response.text)

        call()
    assert operations >= 10 and len(calls) >= operations * 5
    print(f"{operations} operations, {len(calls)} requests, statuses {sorted(set(calls))}")
    assert not failures, "\n".join(failures[:20])
