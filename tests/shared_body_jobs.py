"""A job made here by applying @job to a function defined in another module."""

from __future__ import annotations

from orchestrator import job
from tests.mp_jobs import chain_body

shared = job(name="shared_body_job")(chain_body)
