"""Prometheus metrics at ``/metrics``, read from Redis when scraped (so every server process
reports the same cluster-wide figures), plus a histogram of step durations observed by this
server from the runs that end while it runs.

Metrics:
    orchestrator_runs{status}                       runs stored per status
    orchestrator_steps_running                      step attempts a worker runs now
    orchestrator_steps_waiting_for_slot             steps waiting for a cross-run slot
    orchestrator_concurrency_slots_held{limit}      slots held per limit bucket
    orchestrator_concurrency_waiters{limit}         steps waiting per limit bucket
    orchestrator_concurrency_limit{limit}           the limit of each bucket
    orchestrator_queue_depth{queue}                 messages waiting per Celery queue
    orchestrator_workers_live                       workers with a live heartbeat
    orchestrator_step_duration_seconds              step durations (histogram)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.views.steps import step_summaries
from orchestrator.web.state import WebState

log = logging.getLogger("orchestrator.web")

STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class ClusterCollector(Collector):
    """Gauges read from Redis (and the broker) at scrape time."""

    def __init__(self, state: WebState):
        self.state = state

    def collect(self) -> Iterator[Any]:
        state = self.state
        runs = GaugeMetricFamily("orchestrator_runs", "Runs stored, by status", labels=["status"])
        for status, count in state.instance.count_runs_by_status().items():
            runs.add_metric([status.value], count)
        yield runs
        from orchestrator.web.api_ops import workers_view

        view = workers_view(state)
        yield GaugeMetricFamily(
            "orchestrator_steps_running", "Step attempts a worker runs now", value=view["running"]
        )
        yield GaugeMetricFamily(
            "orchestrator_workers_live",
            "Workers with a live heartbeat",
            value=len(view["workers"]),
        )
        depth = GaugeMetricFamily(
            "orchestrator_queue_depth", "Messages waiting per Celery queue", labels=["queue"]
        )
        for queue in view["queues"]:
            if queue["depth"] is not None:
                depth.add_metric([queue["name"]], queue["depth"])
        yield depth
        held = GaugeMetricFamily(
            "orchestrator_concurrency_slots_held", "Slots held per limit bucket", labels=["limit"]
        )
        waiters = GaugeMetricFamily(
            "orchestrator_concurrency_waiters", "Steps waiting per limit bucket", labels=["limit"]
        )
        limits = GaugeMetricFamily(
            "orchestrator_concurrency_limit", "The limit of each bucket", labels=["limit"]
        )
        waiting_steps: set[str] = set()
        for limit_state in state.limiter.snapshot():
            for bucket in limit_state.buckets:
                held.add_metric([bucket.bucket], len(bucket.holders))
                waiters.add_metric([bucket.bucket], len(bucket.waiters))
                if bucket.limit is not None:
                    limits.add_metric([bucket.bucket], bucket.limit)
                waiting_steps.update(w.lease_id for w in bucket.waiters)
        yield held
        yield waiters
        yield limits
        yield GaugeMetricFamily(
            "orchestrator_steps_waiting_for_slot",
            "Steps waiting for a cross-run concurrency slot",
            value=len(waiting_steps),
        )


class Metrics:
    """The server's registry: cluster gauges and the step duration histogram."""

    def __init__(self, state: WebState):
        self.registry = CollectorRegistry()
        self.registry.register(ClusterCollector(state))
        self.step_duration = Histogram(
            "orchestrator_step_duration_seconds",
            "Duration of steps that finished (first start to success or failure), by outcome",
            ["outcome"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.state = state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe_run(self, run_id: str) -> None:
        """Add the steps of an ended run to the histogram."""
        for step in step_summaries(self.state.instance.all_events(run_id)):
            if step.duration_ms is not None:
                outcome = "failure" if step.error else "success"
                self.step_duration.labels(outcome).observe(step.duration_ms / 1000)

    def start(self) -> None:
        """Follow the runs feed in a daemon thread and observe each run that ends."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._follow, name="orchestrator-web-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        instance = self.state.instance
        cursor = "$"
        while not self._stop.is_set():
            try:
                cursor, changes = instance.wait_for_run_changes(cursor, timeout=2.0)
                for change in changes:
                    if change.get("ended"):
                        self.observe_run(change["run_id"])
            except Exception:  # Redis away: try again (the histogram just misses runs)
                log.debug("metrics feed read failed", exc_info=True)
                self._stop.wait(1.0)
