"""Finding jobs in a code location (a Python file or an importable module).

This is what the command line uses to turn ``-f FILE`` / ``-m MODULE`` and ``-j JOB`` into a job
and the :class:`JobPointer` that finds the same job again in another process. A location that
holds module-level ``Definitions`` offers their jobs; otherwise it offers every module-level
``JobDefinition``.
"""

from __future__ import annotations

from types import ModuleType

from orchestrator.definitions.definitions import Definitions
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.reconstruct import CodeLocation, JobPointer, location_of_module
from orchestrator.errors import CodeLocationError, DefinitionError, did_you_mean

LocatedJob = tuple[JobDefinition, JobPointer]


def load_location(file: str | None, module: str | None) -> ModuleType:
    """Import the code location named by exactly one of ``file`` and ``module``.

    Args:
        file: a Python file (made relative to the working directory).
        module: an importable module name (the working directory is on the import path).

    Returns:
        The imported module (imported once per process).

    Raises:
        CodeLocationError: both or neither are given, or the location cannot be imported.
    """
    if (file is None) == (module is None):
        raise CodeLocationError("name a code location: a file or a module, exactly one")
    return CodeLocation(file=file, module=module).load()


def jobs_in_module(module: ModuleType) -> dict[str, LocatedJob]:
    """The jobs a loaded code location offers, by name, each with its pointer.

    Module-level ``Definitions`` objects take precedence: when there are any, their jobs (with
    the definitions' resources, executor and loggers applied) are the location's jobs. Otherwise
    every module-level ``JobDefinition`` is.

    Raises:
        DefinitionError: two different jobs of the location share a name.
    """
    location = location_of_module(module.__name__)
    attributes = vars(module)
    found: dict[str, LocatedJob] = {}
    owner: dict[str, str] = {}  # job name -> attribute it was found under

    def add(name: str, attr: str, job: JobDefinition) -> None:
        if name in found:
            if found[name][0] is job:
                return  # one job bound to two module attributes
            raise DefinitionError(
                f"{location}: two jobs are named {name!r} (attributes {owner[name]!r} and "
                f"{attr!r}); job names must be unique in a code location"
            )
        owner[name] = attr
        found[name] = (job, JobPointer(location, attr, job_name=name))

    definitions = {a: v for a, v in attributes.items() if isinstance(v, Definitions)}
    if definitions:
        for attr, defs in definitions.items():
            for name in defs.job_names:
                add(name, attr, defs.get_job_def(name))
        return found
    for attr, value in attributes.items():
        if isinstance(value, JobDefinition):
            add(value.name, attr, value)
    return found


def find_job(file: str | None, module: str | None, job_name: str | None) -> LocatedJob:
    """Load a code location and pick one job from it.

    Args:
        file: a Python file, or None.
        module: an importable module name, or None.
        job_name: the job to pick; may be None when the location holds exactly one job.

    Returns:
        The job and the pointer that rebuilds it (relative file path or module name).

    Raises:
        CodeLocationError: the location cannot be loaded, holds no jobs, holds several and
            ``job_name`` is None (the message lists them), or holds no job of that name (the
            message lists the closest names).
        DefinitionError: two jobs of the location share a name.
    """
    loaded = load_location(file, module)
    jobs = jobs_in_module(loaded)
    where = location_of_module(loaded.__name__)
    if not jobs:
        raise CodeLocationError(
            f"{where} defines no jobs (no module-level Definitions or JobDefinition)"
        )
    if job_name is None:
        if len(jobs) == 1:
            return next(iter(jobs.values()))
        raise CodeLocationError(
            f"{where} defines several jobs; name one of them (-j/--job): {', '.join(jobs)}"
        )
    if job_name not in jobs:
        raise CodeLocationError(
            f"{where} has no job named {job_name!r} (jobs: {', '.join(jobs)})."
            f"{did_you_mean(job_name, jobs)}"
        )
    return jobs[job_name]
