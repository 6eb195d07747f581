"""No-op jobs on the celery executor for bench_celery.py (loaded by the workers by module);
the same ops and shapes as bench_jobs.py."""

from __future__ import annotations

from bench_jobs import chain_body, fan_body

from orchestrator import celery_executor, job

chain20 = job(name="chain20", executor_def=celery_executor)(chain_body)
fan50 = job(name="fan50", executor_def=celery_executor)(fan_body)
