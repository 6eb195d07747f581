"""``Definitions``: the jobs (and shared resources, executor, loggers) of a code location."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.definitions.graph import GraphDefinition
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.loggers import LoggerDefinition
from orchestrator.errors import CodeLocationError, DefinitionError, did_you_mean

if TYPE_CHECKING:
    from orchestrator.definitions.executor import ExecutorDefinition


class Definitions:
    """Everything a code location offers to the CLI, the workers and the coordinator.

    Args:
        jobs: the jobs.
        resources: resources given to every job that does not define the same key itself.
        executor: executor of jobs that do not specify one.
        loggers: loggers of jobs that do not specify their own.

    Raises:
        DefinitionError: two jobs share a name.
    """

    def __init__(
        self,
        jobs: Iterable[JobDefinition] | None = None,
        resources: Mapping[str, Any] | None = None,
        executor: ExecutorDefinition | None = None,
        loggers: Mapping[str, LoggerDefinition] | None = None,
    ):
        self.resources = dict(resources or {})
        self.executor = executor
        self.loggers = dict(loggers) if loggers else None
        self._jobs: dict[str, JobDefinition] = {}
        for job in jobs or ():
            if isinstance(job, GraphDefinition):
                job = job.to_job()  # as Dagster does: a graph given as a job runs as one
            if not isinstance(job, JobDefinition):
                raise DefinitionError(f"Definitions(jobs=...) takes JobDefinitions, got {job!r}")
            if job.name in self._jobs:
                raise DefinitionError(f"Definitions: two jobs are named {job.name!r}")
            self._jobs[job.name] = job
        self._resolved: dict[str, JobDefinition] = {}
        # where reconstructable() looks for the module attribute holding this object
        self._defined_in_module: str = sys._getframe(1).f_globals.get("__name__", "")

    def __call__(self) -> Definitions:
        """These definitions: what calling an ``@definitions`` function gives in Dagster."""
        return self

    @property
    def job_names(self) -> list[str]:
        return list(self._jobs)

    def has_job(self, name: str) -> bool:
        return name in self._jobs

    def get_job_def(self, name: str) -> JobDefinition:
        """The job named ``name`` with this location's resources, executor and loggers applied.

        Raises:
            CodeLocationError: no such job (the message lists the closest names).
        """
        if name not in self._resolved:
            if name not in self._jobs:
                raise CodeLocationError(
                    f"no job named {name!r} in these definitions (jobs: "
                    f"{', '.join(self._jobs) or 'none'}).{did_you_mean(name, self._jobs)}"
                )
            job = self._jobs[name]
            if self.resources:
                job = job.with_top_level_resources(self.resources)
            if self.executor is not None and not job.has_specified_executor:
                job = job.with_executor_def(self.executor)
            if self.loggers is not None and not job.has_specified_loggers:
                job = job.with_logger_defs(self.loggers)
            if job is not self._jobs[name]:
                # a derived job is no module attribute: reconstructable() points at this object
                job._from_definitions = self  # type: ignore[attr-defined]
            self._resolved[name] = job
        return self._resolved[name]

    def get_all_job_defs(self) -> list[JobDefinition]:
        return [self.get_job_def(n) for n in self._jobs]


class RepositoryDefinition(Definitions):
    """What ``@repository`` makes: Dagster's older container of jobs, loaded like
    :class:`Definitions`, with its name and Dagster's accessors."""

    def __init__(self, name: str, jobs: Iterable[JobDefinition], description: str | None = None):
        super().__init__(jobs=jobs)
        self.name = name
        self.description = description

    def get_job(self, name: str) -> JobDefinition:
        return self.get_job_def(name)

    def get_all_jobs(self) -> list[JobDefinition]:
        return self.get_all_job_defs()


def _defined_in(obj: Definitions, fn: Callable[..., Any]) -> Definitions:
    obj._defined_in_module = fn.__module__  # reconstructable() finds it under the function's name
    return obj


def repository(
    fn: Callable[[], Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Decorator: a function returning a list of jobs (or a dict ``{"jobs": {name: job}}``)
    becomes a :class:`RepositoryDefinition` named after it; code locations load its jobs."""

    def wrap(f: Callable[[], Any]) -> RepositoryDefinition:
        returned = f()
        if isinstance(returned, Mapping):
            jobs = list((returned.get("jobs") or {}).values())
            unknown = set(returned) - {"jobs"}
            if unknown:
                raise DefinitionError(
                    f"@repository {f.__name__!r}: only 'jobs' is supported in the returned "
                    f"dict (got {sorted(unknown)}); schedules, sensors and assets are not"
                )
        elif isinstance(returned, Iterable):
            jobs = list(returned)
        else:
            raise DefinitionError(
                f"@repository {f.__name__!r} must return a list of jobs, got {returned!r}"
            )
        repo = RepositoryDefinition(name or f.__name__, jobs, description or f.__doc__)
        _defined_in(repo, f)
        return repo

    return wrap(fn) if fn is not None else wrap


def definitions(fn: Callable[[], Definitions]) -> Definitions:
    """Decorator: a function returning :class:`Definitions` stands for them (Dagster's
    ``@definitions``); the function runs once, when its module is loaded."""
    returned = fn()
    if not isinstance(returned, Definitions):
        raise DefinitionError(f"@definitions {fn.__name__!r} must return Definitions(...)")
    return _defined_in(returned, fn)
