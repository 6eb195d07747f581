"""What the web application serves from: the shared instance, the limiter, the registries of
live processes, and the jobs of its code locations."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.loading import jobs_in_module
from orchestrator.definitions.reconstruct import CodeLocation, JobPointer
from orchestrator.distributed.workers import ProcessRegistry, WorkerRegistry
from orchestrator.settings import Settings
from orchestrator.storage.redis import RedisInstance


@dataclass(frozen=True)
class CatalogJob:
    """One job the UI can launch: where it comes from and how workers rebuild it."""

    location: str
    name: str
    job: JobDefinition
    pointer: JobPointer


class UnknownJob(LookupError):
    """No loaded code location has a job of this name (or the name is ambiguous)."""


class Catalog:
    """The jobs of the code locations, loaded once (a location that fails to load is reported
    with its error instead of taking the server down)."""

    def __init__(self, locations: Sequence[CodeLocation]):
        self.locations = list(locations)
        self._lock = threading.Lock()
        self._jobs: list[CatalogJob] | None = None
        self.errors: dict[str, str] = {}

    def jobs(self) -> list[CatalogJob]:
        with self._lock:
            if self._jobs is None:
                found: list[CatalogJob] = []
                for location in self.locations:
                    try:
                        located = jobs_in_module(location.load())
                    except Exception as exc:  # CodeLocationError, or its code raised: shown
                        self.errors[str(location)] = f"{type(exc).__name__}: {exc}"
                        continue
                    for name, (job, pointer) in located.items():
                        found.append(CatalogJob(str(location), name, job, pointer))
                self._jobs = found
            return self._jobs

    def find(self, name: str, location: str | None = None) -> CatalogJob:
        matches = [
            j
            for j in self.jobs()
            if j.name == name and (location is None or j.location == location)
        ]
        if not matches:
            names = sorted({j.name for j in self.jobs()})
            raise UnknownJob(
                f"no job {name!r}"
                + (f" in {location}" if location else "")
                + f"; jobs: {', '.join(names) or 'none (no code location loaded)'}"
            )
        if len(matches) > 1:
            raise UnknownJob(
                f"job {name!r} is in several code locations "
                f"({', '.join(j.location for j in matches)}); give location"
            )
        return matches[0]


@dataclass
class WebState:
    """Everything a request handler reads; one per app.

    Attributes:
        instance: the shared Redis instance (runs, events, limits).
        catalog: jobs of the code locations the server was started with.
        settings: deployment settings (lease time, broker, token).
        token: the API token (empty: none asked).
    """

    instance: RedisInstance
    catalog: Catalog
    settings: Settings
    token: str = ""

    @cached_property
    def limiter(self) -> RedisLimiter:
        return RedisLimiter(self.instance.client, self.instance.keys, self.settings.lease_seconds)

    @cached_property
    def workers(self) -> WorkerRegistry:
        return WorkerRegistry(self.instance.client, self.instance.keys, self.settings.lease_seconds)

    @cached_property
    def coordinators(self) -> ProcessRegistry:
        return ProcessRegistry(
            self.instance.client, self.instance.keys, self.settings.lease_seconds, "coordinator"
        )

    @property
    def client(self) -> Any:
        return self.instance.client
