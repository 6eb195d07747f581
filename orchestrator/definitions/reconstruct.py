"""Job pointers: how a job is found again in another process, container or machine.

A pointer names a code location (an importable module, or a file *relative to the working
directory*) and where the job is in it: a module attribute holding the job, a ``Definitions``
attribute plus the job's name, or a factory function called with JSON arguments. It never holds
an absolute path of the launching machine, so the same pointer resolves in a container or on
another host started in the same project directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from orchestrator.errors import CodeLocationError, ReconstructionError

if TYPE_CHECKING:
    from orchestrator.definitions.definitions import Definitions

_file_modules: dict[str, str] = {}  # module name given to a loaded file -> its relative path
_lock = threading.RLock()


@dataclass(frozen=True)
class CodeLocation:
    """An importable module name, or a Python file relative to the working directory."""

    module: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.module is None) == (self.file is None):
            raise CodeLocationError("a code location is a module or a file, exactly one")
        if self.file is not None:
            # One spelling per file ("./a/../b.py" is "b.py"), so workers and pointers agree.
            normal = relative_file(self.file) if os.path.isabs(self.file) else self.file
            object.__setattr__(self, "file", Path(os.path.normpath(normal)).as_posix())

    def to_dict(self) -> dict[str, str]:
        return {"module": self.module} if self.module else {"file": str(self.file)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeLocation:
        return cls(module=data.get("module"), file=data.get("file"))

    def __str__(self) -> str:
        return f"module {self.module}" if self.module else f"file {self.file}"

    def load(self) -> ModuleType:
        """Import the module or file (once per process).

        Raises:
            CodeLocationError: it cannot be found or raises on import.
        """
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)  # like `python -m`: modules of the project dir import
        if self.module:
            try:
                return importlib.import_module(self.module)
            except ImportError as exc:
                raise CodeLocationError(
                    f"cannot import module {self.module!r} from working directory {cwd}: {exc}"
                ) from exc
            except Exception as exc:
                raise CodeLocationError(
                    f"importing module {self.module!r} raised {type(exc).__name__}: {exc}"
                ) from exc
        return load_file(str(self.file))


def relative_file(path: str) -> str:
    """``path`` relative to the working directory, with forward slashes."""
    return Path(os.path.relpath(os.path.abspath(path), os.getcwd())).as_posix()


def _module_name_for(rel: str) -> str:
    stem = rel.removesuffix(".py").replace("\\", "/")
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"__orchestrator_file__.{safe}"


def load_file(path: str) -> ModuleType:
    """Import a Python file as a module (once per process) and remember where it came from."""
    rel = relative_file(path)
    name = _module_name_for(rel)
    with _lock:
        if name in sys.modules:
            return sys.modules[name]
        if not os.path.isfile(rel):
            raise CodeLocationError(
                f"no such file: {rel} (relative to working directory {os.getcwd()})"
            )
        spec = importlib.util.spec_from_file_location(name, rel)
        if spec is None or spec.loader is None:
            raise CodeLocationError(f"cannot load {rel} as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        _file_modules[name] = rel
        parent = str(Path(rel).parent.resolve())
        if parent not in sys.path:
            sys.path.append(parent)  # sibling modules of the file import, as with `python f.py`
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise CodeLocationError(
                f"loading file {rel} raised {type(exc).__name__}: {exc}"
            ) from exc
        return module


def location_of_module(module_name: str) -> CodeLocation:
    """The code location a module was loaded from.

    Raises:
        ReconstructionError: the module is ``__main__`` without a file (REPL, notebook).
    """
    if module_name in _file_modules:
        return CodeLocation(file=_file_modules[module_name])
    if module_name == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if not main_file:
            raise ReconstructionError(
                "the job is defined in an interactive session (REPL or notebook) and cannot be "
                "found again in another process. Move it into a module or file and import it, "
                "or use build_reconstructable_job(module, function, ...)."
            )
        return CodeLocation(file=relative_file(main_file))
    return CodeLocation(module=module_name)


@dataclass(frozen=True)
class JobPointer:
    """Where a job can be rebuilt from (JSON-serializable).

    Attributes:
        location: the module or file.
        attribute: module attribute holding a job, a ``Definitions``, or a factory.
        job_name: the job's name (picks a job out of a ``Definitions``; checked otherwise).
        call: call ``attribute`` with ``args``/``kwargs`` to get the job.
        op_selection: the subset to take of the loaded job.
    """

    location: CodeLocation
    attribute: str
    job_name: str | None = None
    call: bool = False
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    op_selection: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location.to_dict(),
            "attribute": self.attribute,
            "job_name": self.job_name,
            "call": self.call,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "op_selection": list(self.op_selection) if self.op_selection else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobPointer:
        sel = data.get("op_selection")
        return cls(
            location=CodeLocation.from_dict(data["location"]),
            attribute=data["attribute"],
            job_name=data.get("job_name"),
            call=bool(data.get("call")),
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            op_selection=tuple(sel) if sel else None,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def load(self) -> Any:
        """Import the code location and return the job (subset if the pointer says so).

        Raises:
            CodeLocationError, ReconstructionError: the location or job cannot be found.
        """
        from orchestrator.definitions.definitions import Definitions
        from orchestrator.definitions.job import JobDefinition

        module = self.location.load()
        if not hasattr(module, self.attribute):
            raise ReconstructionError(
                f"{self.location} has no attribute {self.attribute!r} (the job pointer is stale "
                "or the worker runs other code)"
            )
        target = getattr(module, self.attribute)
        if self.call:
            target = target(*self.args, **self.kwargs)
        if isinstance(target, Definitions):
            if self.job_name is None:
                raise ReconstructionError("a pointer to Definitions must name the job")
            target = target.get_job_def(self.job_name)
        if not isinstance(target, JobDefinition):
            raise ReconstructionError(
                f"{self.location} attribute {self.attribute!r} gave {type(target).__name__}, "
                "not a job"
            )
        if self.job_name is not None and target.name != self.job_name:
            raise ReconstructionError(
                f"{self.location} attribute {self.attribute!r} holds job {target.name!r}, "
                f"expected {self.job_name!r}"
            )
        if self.op_selection:
            target = target.get_subset(list(self.op_selection))
        target._reconstruct_pointer = ReconstructableJob(self)
        return target


class ReconstructableJob:
    """A job plus the pointer that rebuilds it elsewhere; what ``execute_job`` and the
    multiprocess and Celery executors need."""

    def __init__(self, pointer: JobPointer, job: Any = None):
        self.pointer = pointer
        self._job = job

    @property
    def job_name(self) -> str:
        return str(self.get_definition().name)

    def get_definition(self) -> Any:
        """The job (loaded through the pointer on first use)."""
        if self._job is None:
            self._job = self.pointer.load()
        return self._job

    def get_subset(self, op_selection: Sequence[str] | None) -> ReconstructableJob:
        pointer = replace(self.pointer, op_selection=tuple(op_selection) if op_selection else None)
        return ReconstructableJob(pointer)

    def to_dict(self) -> dict[str, Any]:
        return self.pointer.to_dict()

    def __repr__(self) -> str:
        return f"ReconstructableJob({self.pointer.to_json()})"


def _check_function(fn: Any) -> None:
    name = getattr(fn, "__name__", "")
    qualname = getattr(fn, "__qualname__", name)
    if name == "<lambda>":
        raise ReconstructionError(
            "reconstructable() got a lambda, which cannot be found again in another process. "
            "Define the job (or a function returning it) with `def` at module level, or use "
            "build_reconstructable_job(module, function, args, kwargs)."
        )
    if "<locals>" in qualname or qualname != name:
        raise ReconstructionError(
            f"reconstructable() got {qualname!r}, defined inside another function or class; "
            "only module-level functions can be found again in another process. Move it to "
            "module level, or use build_reconstructable_job(module, function, args, kwargs)."
        )


def reconstructable(target: Any) -> ReconstructableJob:
    """Make a job loadable in other processes.

    Args:
        target: a ``@job`` at module level, a module-level job attribute (e.g. made with
            ``to_job``), a job from ``get_job_def`` of a module-level ``Definitions``, or a
            module-level function returning a job.

    Raises:
        ReconstructionError: lambdas, nested functions, REPL/notebook definitions and jobs
            that are not module attributes; the message says what to do instead.
    """
    from orchestrator.definitions.definitions import Definitions
    from orchestrator.definitions.job import JobDefinition

    if isinstance(target, ReconstructableJob):
        return target
    if isinstance(target, JobDefinition):
        existing = target._reconstruct_pointer
        if isinstance(existing, ReconstructableJob):
            recon = existing.get_subset(target.op_selection)
            recon._job = target
            return recon
        base = target._subset_of or target
        definitions = getattr(base, "_from_definitions", None)
        if isinstance(definitions, Definitions):
            return _job_of_definitions(target, definitions)
        module_name = (target._defined_in or ("", ""))[0]
        module = sys.modules.get(module_name)
        if module is None:
            raise ReconstructionError(
                f"job {target.name!r} was not defined at module level, so it cannot be found "
                "again in another process. Define it at module level, or pass a module-level "
                "function returning it to reconstructable()."
            )
        location = location_of_module(module_name)
        for attr, value in vars(module).items():
            if value is base:
                pointer = JobPointer(
                    location, attr, job_name=target.name, op_selection=_sel(target)
                )
                return ReconstructableJob(pointer, target)
        for attr, value in vars(module).items():
            if isinstance(value, Definitions) and any(
                j is base or j._subset_of is base or base._subset_of is j
                for j in value._jobs.values()
            ):
                pointer = JobPointer(
                    location, attr, job_name=target.name, op_selection=_sel(target)
                )
                return ReconstructableJob(pointer, target)
        raise ReconstructionError(
            f"job {target.name!r} is not a module-level attribute of {location} (was it made "
            "inside a function?). Assign it at module level, or pass a module-level function "
            "returning it to reconstructable(), or use build_reconstructable_job(...)."
        )
    if callable(target):
        _check_function(target)
        location = location_of_module(target.__module__)
        return ReconstructableJob(JobPointer(location, target.__name__, call=True))
    raise ReconstructionError(f"reconstructable() needs a job or a function, got {target!r}")


def _job_of_definitions(target: Any, definitions: Definitions) -> ReconstructableJob:
    """Point at the module attribute holding ``definitions`` and the job's name, so the job is
    rebuilt with the resources, executor and loggers the ``Definitions`` gives it.

    Raises:
        ReconstructionError: the ``Definitions`` is not a module-level attribute.
    """
    module_name = definitions._defined_in_module
    module = sys.modules.get(module_name)
    for attr, value in vars(module).items() if module is not None else ():
        if value is definitions:
            pointer = JobPointer(
                location_of_module(module_name),
                attr,
                job_name=target.name,
                op_selection=_sel(target),
            )
            return ReconstructableJob(pointer, target)
    raise ReconstructionError(
        f"job {target.name!r} comes from a Definitions that is not a module-level attribute "
        f"of {module_name or 'any module'!r} (was it made inside a function?), so it cannot be "
        "found again in another process. Assign the Definitions at module level, or pass a "
        "module-level function returning the job to reconstructable()."
    )


def _sel(job: Any) -> tuple[str, ...] | None:
    return tuple(job.op_selection) if job.op_selection else None


def build_reconstructable_job(
    reconstructor_module_name: str,
    reconstructor_function_name: str,
    reconstructable_args: Sequence[Any] | None = None,
    reconstructable_kwargs: Mapping[str, Any] | None = None,
) -> ReconstructableJob:
    """A reconstructable job built by calling ``module.function(*args, **kwargs)``.

    Raises:
        ReconstructionError: args or kwargs are not JSON-serializable.
    """
    args = tuple(reconstructable_args or ())
    kwargs = dict(reconstructable_kwargs or {})
    try:
        json.dumps([list(args), kwargs])
    except TypeError as exc:
        raise ReconstructionError(
            f"build_reconstructable_job: arguments must be JSON-serializable ({exc})"
        ) from exc
    location = location_of_module(reconstructor_module_name)
    return ReconstructableJob(
        JobPointer(location, reconstructor_function_name, call=True, args=args, kwargs=kwargs)
    )


_job_cache: dict[str, Any] = {}


def load_job(pointer: JobPointer | Mapping[str, Any]) -> Any:
    """Load (and cache per process) the job a pointer names: what workers call."""
    if not isinstance(pointer, JobPointer):
        pointer = JobPointer.from_dict(pointer)
    key = pointer.to_json()
    with _lock:
        if key not in _job_cache:
            _job_cache[key] = pointer.load()
        return _job_cache[key]
