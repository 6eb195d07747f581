"""The HTTP API over HTTP, against real processes: ``orchestrator ui``, a run coordinator and
a Celery worker on the embedded Valkey (``tests.web_support``)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.concurrency.redis import RedisLimiter
from tests.waiting import wait_until
from tests.web_support import WEB_TOKEN, WebStack, launch, wait_step_state

GREET_YAML = "ops:\n  make_greeting:\n    config:\n      name: web\n"


def finished(http: httpx.Client, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        detail = http.get(f"/api/runs/{run_id}").json()
        return detail if detail["run"]["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_until(f"run {run_id} to end", done)  # type: ignore[no-any-return]


def test_health_jobs_and_openapi(web_stack: WebStack) -> None:
    with web_stack.http() as http:
        assert http.get("/api/health").json()["status"] == "ok"
        jobs = {j["name"]: j for j in http.get("/api/jobs").json()["jobs"]}
        assert {"greet", "hold", "flaky", "regional", "on_celery"} <= set(jobs)
        greet = jobs["greet"]
        assert [o["handle"] for o in greet["ops"]] == ["make_greeting", "shout"]
        assert greet["ops"][1]["upstream"] == ["make_greeting"]
        config = greet["config_schema"]["properties"]["ops"]["properties"]["make_greeting"]
        assert config["properties"]["config"]["required"] == ["name"]
        assert jobs["regional"]["partitions"] == ["eu", "us", "apac"]
        schema = http.get("/openapi.json").json()
        assert "/api/runs" in schema["paths"] and "/api/concurrency" in schema["paths"]
        metrics = http.get("/metrics").text
        assert "orchestrator_runs{" in metrics and "orchestrator_workers_live" in metrics


def test_launch_show_events_and_metrics(web_stack: WebStack) -> None:
    with web_stack.http() as http:
        run_id = launch(http, "greet", run_config_yaml=GREET_YAML, tags={"team": "web"})
        detail = finished(http, run_id)
        assert detail["run"]["status"] == "SUCCESS"
        assert detail["run"]["tags"]["team"] == "web"
        steps = {s["step_key"]: s for s in detail["steps"]}
        assert steps["shout"]["state"] == "succeeded" and steps["shout"]["attempts"] == 1
        kinds = [seg["kind"] for seg in steps["shout"]["timeline"]]
        assert kinds[-1] == "running" and steps["shout"]["timeline"][-1]["outcome"] == "success"
        everything = http.get(f"/api/runs/{run_id}/events").json()
        ids = [e["id"] for e in everything["events"]]
        assert everything["has_more"] is False and len(ids) >= 6
        types = [e["type"] for e in everything["events"]]
        assert types[:3] == ["RUN_ENQUEUED", "RUN_STARTING", "RUN_START"]
        page = http.get(f"/api/runs/{run_id}/events", params={"after": ids[2], "limit": 2}).json()
        assert [e["id"] for e in page["events"]] == ids[3:5]
        assert page["cursor"] == ids[4] and page["has_more"] is True
        bad = http.get(f"/api/runs/{run_id}/events", params={"after": "nope"})
        assert bad.status_code == 422 and "cursor" in bad.json()["message"]
        assert http.get("/api/runs/nope").status_code == 404
        metrics = http.get("/metrics").text
        assert 'orchestrator_runs{status="SUCCESS"}' in metrics


def test_config_errors_name_their_paths_and_lines(web_stack: WebStack) -> None:
    with web_stack.http() as http:
        bad = "ops:\n  make_greeting:\n    config:\n      times: many\n"
        response = http.post("/api/runs", json={"job": "greet", "run_config_yaml": bad})
        assert response.status_code == 422
        paths = {e["path"] for e in response.json()["errors"]}
        assert "ops.make_greeting.config.name" in paths
        assert "ops.make_greeting.config.times" in paths
        check = http.post("/api/jobs/greet/check", json={"run_config_yaml": bad}).json()
        assert check["valid"] is False
        lines = {e["path"]: e["line"] for e in check["errors"]}
        assert lines["ops.make_greeting.config.times"] == 4
        assert http.post("/api/jobs/greet/check", json={"run_config_yaml": GREET_YAML}).json()[
            "valid"
        ]
        yaml_error = http.post("/api/jobs/greet/check", json={"run_config_yaml": "ops: [\n"})
        assert yaml_error.json()["valid"] is False
        scaffold = http.post("/api/jobs/greet/scaffold", json={}).json()
        assert scaffold["run_config"] == {"ops": {"make_greeting": {"config": {"name": ""}}}}
        unknown_job = http.post("/api/runs", json={"job": "nope"})
        assert unknown_job.status_code == 404 and "greet" in unknown_job.json()["message"]
        unknown_op = http.post(
            "/api/runs",
            json={"job": "greet", "run_config_yaml": GREET_YAML, "op_selection": ["nope"]},
        )
        assert unknown_op.status_code == 422 and "nope" in unknown_op.json()["message"]
        partition = http.post("/api/runs", json={"job": "regional", "partition_key": "mars"})
        assert partition.status_code == 422
        missing = http.post("/api/runs", json={})
        assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "body.job"
        preview = http.post("/api/jobs/greet/check", json={"op_selection": ["shout"]}).json()
        assert preview["selected_ops"] == ["shout"]


def test_idempotency_key_launches_one_run(web_stack: WebStack) -> None:
    key = f"nightly-{uuid.uuid4().hex[:6]}"
    body = {"job": "greet", "run_config_yaml": GREET_YAML, "idempotency_key": key}
    with web_stack.http() as http:
        first = http.post("/api/runs", json=body)
        second = http.post("/api/runs", json=body)
        assert first.status_code == 201 and second.status_code == 200
        assert first.json()["run_id"] == second.json()["run_id"]
        assert second.json()["created"] is False
        runs = http.get("/api/runs", params={"tag": []}).json()["runs"]
        assert sum(r["run_id"] == first.json()["run_id"] for r in runs) == 1
        other = http.post("/api/runs", json={**body, "tags": {"other": "request"}})
        assert other.status_code == 409 and first.json()["run_id"] in other.json()["message"]
        bad = {"job": "greet", "run_config_yaml": "ops: {}", "idempotency_key": key + "-bad"}
        assert http.post("/api/runs", json=bad).status_code == 422
        good = {**bad, "run_config_yaml": GREET_YAML}
        assert http.post("/api/runs", json=good).status_code == 201  # the failed one kept none


def test_list_filters_counts_and_paging(web_stack: WebStack) -> None:
    marker = uuid.uuid4().hex[:8]
    with web_stack.http() as http:
        ids = [
            launch(http, "greet", run_config_yaml=GREET_YAML, tags={"batch": marker, "i": str(i)})
            for i in range(5)
        ]
        for run_id in ids:
            finished(http, run_id)
        failing = launch(
            http,
            "flaky",
            run_config={"ops": {"second": {"config": {"marker": "/nonexistent"}}}},
            tags={"batch": marker},
        )
        finished(http, failing)
        tagged = http.get("/api/runs", params={"tag": f"batch={marker}"}).json()
        assert [r["run_id"] for r in tagged["runs"]] == [failing, *reversed(ids)]
        pages: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"tag": f"batch={marker}", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/api/runs", params=params).json()
            pages += [r["run_id"] for r in page["runs"]]
            cursor = page["cursor"]
            if cursor is None:
                break
        assert pages == [failing, *reversed(ids)]
        by_status = http.get(
            "/api/runs", params={"tag": f"batch={marker}", "status": "FAILURE"}
        ).json()
        assert [r["run_id"] for r in by_status["runs"]] == [failing]
        assert by_status["counts"]["FAILURE"] >= 1
        by_job = http.get("/api/runs", params={"job": "flaky", "tag": f"batch={marker}"}).json()
        assert [r["run_id"] for r in by_job["runs"]] == [failing]
        assert http.get("/api/runs", params={"status": "BOGUS"}).status_code == 422
        assert http.get("/api/runs", params={"tag": "novalue"}).status_code == 422
        assert http.get("/api/runs", params={"cursor": "garbage"}).status_code == 422


def test_cancel_and_reexecute(web_stack: WebStack, tmp_path: Path) -> None:
    release = tmp_path / "release"
    with web_stack.http() as http:
        held = launch(
            http,
            "hold",
            run_config={"ops": {"hold_slot": {"config": {"release_file": str(release)}}}},
        )
        wait_step_state(http, held, "hold_slot", "running")
        response = http.post(f"/api/runs/{held}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] in ("CANCELING", "CANCELED")
        assert finished(http, held)["run"]["status"] == "CANCELED"
        assert http.post("/api/runs/nope/cancel").status_code == 404

        marker = tmp_path / "marker"
        failing = launch(
            http, "flaky", run_config={"ops": {"second": {"config": {"marker": str(marker)}}}}
        )
        assert finished(http, failing)["run"]["status"] == "FAILURE"
        marker.write_text("ok")
        again = http.post(f"/api/runs/{failing}/reexecute", json={"strategy": "from_failure"})
        assert again.status_code == 201, again.text
        child = finished(http, again.json()["run_id"])
        assert child["run"]["status"] == "SUCCESS"
        assert child["parent_run_id"] == failing
        assert {s["step_key"] for s in child["steps"] if s["state"] == "succeeded"} == {
            "second",
            "third",
        }
        assert again.json()["run_id"] in http.get(f"/api/runs/{failing}").json()["child_run_ids"]
        orphan = http.post(  # 'second' stored no output in the failed run: 'third' has no input
            f"/api/runs/{failing}/reexecute",
            json={"strategy": "selected", "step_selection": ["third"]},
        )
        assert orphan.status_code == 422 and "second" in orphan.json()["message"]
        selected = http.post(
            f"/api/runs/{child['run']['run_id']}/reexecute",
            json={"strategy": "selected", "step_selection": ["third"]},
        )
        assert selected.status_code == 201
        rerun = finished(http, selected.json()["run_id"])
        assert rerun["run"]["status"] == "SUCCESS"
        assert [s["step_key"] for s in rerun["steps"]] == ["third"]
        nothing = http.post(f"/api/runs/{failing}/reexecute", json={"strategy": "selected"})
        assert nothing.status_code == 422


def test_reexecution_from_failure_of_a_fan_in_reads_the_stored_parts(
    web_stack: WebStack, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    config = {"ops": {"part_b": {"config": {"marker": str(marker)}}}}
    with web_stack.http() as http:
        failed = launch(http, "fan_in", run_config=config)
        assert finished(http, failed)["run"]["status"] == "FAILURE"
        marker.write_text("ok")
        again = http.post(f"/api/runs/{failed}/reexecute", json={"strategy": "from_failure"})
        assert again.status_code == 201, again.text
        child = finished(http, again.json()["run_id"])
        assert child["run"]["status"] == "SUCCESS"  # gather got [1, 2, 3], in order
        ran = {s["step_key"] for s in child["steps"] if s["state"] == "succeeded"}
        assert ran == {"part_b", "gather"}


def _sse(
    http: httpx.Client,
    path: str,
    headers: dict[str, str],
    stop_after: int | None,
    until: Any = None,
):
    """Read an SSE stream: a list of (event name, id, data) until it ends, ``stop_after``
    messages were read or ``until(data)`` is true (the connection is then dropped)."""
    out: list[tuple[str, str | None, Any]] = []
    name, ident, data = "message", None, []
    with http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    out.append((name, ident, json.loads("\n".join(data))))
                    if stop_after is not None and len(out) >= stop_after:
                        return out
                    if until is not None and until(out[-1][2]):
                        return out
                name, ident, data = "message", None, []
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)
    return out


def test_sse_resumes_without_duplicates_or_gaps(web_stack: WebStack, tmp_path: Path) -> None:
    release = tmp_path / "release"
    with web_stack.http() as http:
        run_id = launch(
            http,
            "hold",
            run_config={"ops": {"hold_slot": {"config": {"release_file": str(release)}}}},
        )
        path = f"/api/runs/{run_id}/events/stream"
        first = _sse(http, path, {}, stop_after=3)  # then the connection drops
        assert [n for n, _, _ in first] == ["event"] * 3
        release.write_text("go")  # the run goes on while no one listens
        last_id = first[-1][1]
        assert last_id is not None
        rest = _sse(http, path, {"Last-Event-ID": last_id}, stop_after=None)
        assert rest[-1][0] == "end" and rest[-1][2]["status"] == "SUCCESS"
        streamed = [i for _, i, _ in first + rest[:-1]]
        stored = [e["id"] for e in http.get(f"/api/runs/{run_id}/events").json()["events"]]
        assert streamed == stored  # every event once, in order
        assert all(d["id"] == i for _, i, d in first + rest[:-1])


def test_runs_feed_pushes_each_status_change(web_stack: WebStack) -> None:
    with web_stack.http() as http:
        run_id = launch(http, "greet", run_config_yaml=GREET_YAML)
        finished(http, run_id)
        changes = _sse(
            http,
            "/api/stream/runs",
            {"Last-Event-ID": "0-0"},
            stop_after=None,
            until=lambda d: d["run_id"] == run_id and d["ended"],
        )
        mine = [d for name, _, d in changes if name == "run" and d["run_id"] == run_id]
        statuses = [d["status"] for d in mine]
        order = ["QUEUED", "STARTING", "STARTED", "SUCCESS"]
        assert statuses[0] == "QUEUED" and statuses[-1] == "SUCCESS"
        assert statuses == sorted(statuses, key=order.index)  # forward only, no repeats
        assert len(set(statuses)) == len(statuses)
        assert all(d["job_name"] == "greet" for d in mine)
        ids = [i for _, i, _ in changes]
        assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in str(i).split("-")))
        histogram = wait_until(
            "the metrics to count finished steps",
            lambda: [
                line
                for line in http.get("/metrics").text.splitlines()
                if line.startswith('orchestrator_step_duration_seconds_count{outcome="success"}')
            ],
        )
        assert float(histogram[0].split()[-1]) >= 2


def test_concurrency_endpoints_and_wait_reason(web_stack: WebStack, tmp_path: Path) -> None:
    release = tmp_path / "release"
    config = {"ops": {"hold_slot": {"config": {"release_file": str(release)}}}}
    with web_stack.http() as http:
        put = http.put("/api/concurrency/limits/web_test_db", json={"limit": 1, "value": "main"})
        assert put.status_code == 200 and put.json()["spec"] == "web_test_db=main"
        assert http.put("/api/concurrency/limits/x", json={"limit": -1}).status_code == 422
        # processes cache limit definitions for limits_ttl seconds (documented): let it lapse
        time.sleep(RedisLimiter(web_stack.client, web_stack.keys).limits_ttl + 0.5)
        holder = launch(http, "hold", run_config=config)
        wait_step_state(http, holder, "hold_slot", "running")
        waiter = launch(http, "hold", run_config=config)

        def waiting() -> dict[str, Any] | None:
            steps = http.get(f"/api/runs/{waiter}").json()["steps"]
            step = next(s for s in steps if s["step_key"] == "hold_slot")
            return step if step["wait"] else None

        step = wait_until("the second run's step to wait for the slot", waiting)
        assert step["state"] == "waiting for slot"
        limit = step["wait"]["limits"][0]
        assert limit["bucket"] == "web_test_db=main" and limit["limit"] == 1
        assert limit["position"] == 1 and limit["holders"][0]["run_id"] == holder
        view = http.get("/api/concurrency").json()["limits"]
        card = next(lim for lim in view if lim["spec"] == "web_test_db=main")
        bucket = card["buckets"][0]
        assert [h["run_id"] for h in bucket["holders"]] == [holder]
        assert [w["run_id"] for w in bucket["waiters"]] == [waiter]
        assert bucket["holders"][0]["run_ended"] is False
        metrics = http.get("/metrics").text
        assert 'orchestrator_concurrency_slots_held{limit="web_test_db=main"} 1.0' in metrics
        assert 'orchestrator_concurrency_waiters{limit="web_test_db=main"} 1.0' in metrics
        assert "orchestrator_steps_waiting_for_slot 1.0" in metrics
        release.write_text("go")
        assert finished(http, holder)["run"]["status"] == "SUCCESS"
        assert finished(http, waiter)["run"]["status"] == "SUCCESS"
        assert http.post("/api/concurrency/free", json={"run_id": holder}).json()["freed"] == 0
        assert http.post("/api/concurrency/free", json={}).status_code == 422
        assert http.post("/api/concurrency/free", json={"lease_id": "nope"}).status_code == 404
        deleted = http.delete("/api/concurrency/limits/web_test_db", params={"value": "main"})
        assert deleted.status_code == 200
        again = http.delete("/api/concurrency/limits/web_test_db", params={"value": "main"})
        assert again.status_code == 404


def test_workers_and_celery_runs(web_stack: WebStack) -> None:
    with web_stack.http() as http:
        view = wait_until(
            "the worker to register",
            lambda: (v := http.get("/api/workers").json())["workers"] and v,
        )
        worker = view["workers"][0]
        assert "orchestrator" in worker["queues"]
        queue = next(q for q in view["queues"] if q["name"] == "orchestrator")
        assert worker["id"] in queue["consumers"] and queue["no_consumer"] is False
        assert view["coordinators"]
        metrics = http.get("/metrics").text
        assert f"orchestrator_workers_live {float(len(view['workers']))}" in metrics
        assert (
            f'orchestrator_queue_depth{{queue="orchestrator"}} {float(queue["depth"])}' in metrics
        )
        assert f"orchestrator_steps_running {float(view['running'])}" in metrics
        run_id = launch(http, "on_celery")
        detail = finished(http, run_id)
        assert detail["run"]["status"] == "SUCCESS"
        assert detail["steps"][0]["worker"]


def test_token_is_required_when_set(web_token_server: WebStack) -> None:
    with web_token_server.http() as anonymous:
        assert anonymous.get("/api/health").status_code == 200
        for path in ("/api/runs", "/api/jobs", "/metrics", "/openapi.json", "/api/concurrency"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert "token" in response.json()["message"]
        page = anonymous.get("/runs")
        assert page.status_code == 401 and 'data-testid="login-form"' in page.text
        wrong = anonymous.get("/api/runs", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        logged = anonymous.get("/runs", params={"token": WEB_TOKEN}, follow_redirects=False)
        assert logged.status_code == 303 and logged.headers["location"] == "/runs"
        cookie = logged.cookies.get("orchestrator_token")
        assert cookie == WEB_TOKEN and "httponly" in logged.headers["set-cookie"].lower()
    with web_token_server.http(WEB_TOKEN) as http:
        assert http.get("/api/runs").status_code == 200
    with httpx.Client(base_url=web_token_server.url, follow_redirects=True) as browser:
        form = browser.post("/login", data={"token": WEB_TOKEN, "next": "/concurrency"})
        assert form.status_code == 200 and str(form.url).endswith("/concurrency")
        assert browser.get("/api/runs").status_code == 200  # the cookie now
        bad = browser.post("/login", data={"token": "nope", "next": "/"})
        assert bad.status_code == 401


def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "ui",
            "-m",
            "tests.web_jobs",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "ORCHESTRATOR_API_TOKEN": ""},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2
    assert "ORCHESTRATOR_API_TOKEN" in result.stderr and "--insecure-no-token" in result.stderr


@pytest.mark.parametrize("path", ["/", "/runs", "/concurrency", "/workers", "/runs/abc"])
def test_pages_are_served(web_stack: WebStack, path: str) -> None:
    with web_stack.http() as http:
        page = http.get(path)
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert http.get("/static/app.js").status_code == 200


def test_a_slot_held_by_an_ended_run_is_flagged(web_stack: WebStack) -> None:
    from orchestrator.concurrency.config import TagConcurrencyLimit

    with web_stack.http() as http:
        run_id = launch(http, "greet", run_config_yaml=GREET_YAML)
        finished(http, run_id)
        limiter = RedisLimiter(web_stack.client, web_stack.keys)
        limiter.set_limit(TagConcurrencyLimit(key="leak_test", limit=1))
        lease_id = f"{run_id}:make_greeting:9"  # a lease its run never released
        assert limiter.acquire(lease_id, run_id, "make_greeting", 9, {"leak_test": "x"})
        try:
            view = http.get("/api/concurrency").json()["limits"]
            card = next(lim for lim in view if lim["spec"] == "leak_test")
            (holder,) = card["buckets"][0]["holders"]
            assert holder["lease_id"] == lease_id and holder["run_ended"] is True
            freed = http.post("/api/concurrency/free", json={"lease_id": lease_id})
            assert freed.json() == {"freed": 1}
        finally:
            http.delete("/api/concurrency/limits/leak_test")
