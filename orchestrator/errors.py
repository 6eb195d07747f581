"""The one error tree of the project.

Every error the framework raises derives from :class:`OrchestratorError`. Errors that come from
user code (ops, resources, hooks, config mappings) are wrapped in :class:`UserCodeError` with the
original exception kept as ``__cause__``. ``Failure`` and ``RetryRequested`` are raised *by* user
code to steer the framework and are therefore not wrapped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any


class OrchestratorError(Exception):
    """Base class of every error raised by the framework."""


# -- definitions -------------------------------------------------------------------------------


class DefinitionError(OrchestratorError):
    """An op, graph, job or resource was defined in a way that cannot work."""


class ReconstructionError(OrchestratorError):
    """A job cannot be turned into a pointer, or a pointer cannot be loaded back into a job."""


class CodeLocationError(OrchestratorError):
    """A module or file given as a code location cannot be loaded, or holds no such job."""


# -- run-time input ----------------------------------------------------------------------------


class InvalidInputError(OrchestratorError):
    """Bad input given at launch time (config, selection, resources, inputs)."""


class ConfigError(InvalidInputError):
    """Run config failed validation. ``problems`` lists (path, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]], *, heading: str = "Invalid run config"):
        self.problems = list(problems)
        lines = [f"{heading}:"] + [f"  {path}: {msg}" for path, msg in self.problems]
        super().__init__("\n".join(lines))


class SelectionError(InvalidInputError):
    """An op selection query names an op that does not exist or is malformed."""


class MissingInputError(InvalidInputError):
    """A step input has no source: its upstream op is not selected and nothing else provides it."""


class ResourceNotFoundError(InvalidInputError, AttributeError):
    """An op or hook requires a resource key that the job does not provide.

    Also an ``AttributeError`` (as Dagster's), so ``hasattr(context.resources, "x")`` works."""


class MissingResourceError(ResourceNotFoundError, DefinitionError):
    """A job's op, hook or resource requires a resource key the job does not provide: both a
    missing resource and a definition that cannot run (Dagster raises
    ``DagsterInvalidDefinitionError`` here)."""


class PartitionError(InvalidInputError):
    """An unknown partition key, or a partition given to a job that has no partitions."""


class OutputStorageError(OrchestratorError):
    """An IO manager could not store or load a step output."""


# -- execution ---------------------------------------------------------------------------------


class UserCodeError(OrchestratorError):
    """An exception raised by user code: the original is ``__cause__`` (and ``user_exception``)."""

    def __init__(self, message: str, user_exception: BaseException):
        super().__init__(message)
        self.user_exception = user_exception


class StepError(OrchestratorError):
    """A step broke a rule the framework checks: an input or output failed its type check, a
    required output was not produced, an op returned or yielded something it did not declare,
    an input value did not reach the step's process."""


class TypeCheckError(StepError):
    """A step input or output failed its type check (its Python type or ``DagsterType``)."""


class InvariantViolationError(InvalidInputError):
    """A request the framework cannot satisfy in the current state, e.g. asking a run's result
    for an output that was never produced."""


class InvalidInvocationError(DefinitionError):
    """An op or resource called directly (outside a job) with arguments it cannot take."""


class RunFailedError(OrchestratorError):
    """Raised by execute functions with ``raise_on_error=True`` when the run failed for a reason
    other than an op's own exception (which is re-raised as is)."""


class Failure(Exception):
    """Raised by an op to fail its step with a description and metadata.

    Args:
        description: why the step failed; shown in the step failure event.
        metadata: JSON-serializable details attached to the failure event.
        allow_retries: when False, the op's retry policy is not applied to this failure.
    """

    def __init__(
        self,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_retries: bool = True,
    ):
        super().__init__(description)
        self.description = description
        self.metadata = dict(metadata or {})
        self.allow_retries = allow_retries


class RetryRequested(Exception):
    """Raised by an op to ask for its step to be run again.

    Args:
        max_retries: how many retries this request allows in total.
        seconds_to_wait: delay before the next attempt.
    """

    def __init__(self, max_retries: int = 1, seconds_to_wait: float | None = None):
        super().__init__(f"Retry requested (max_retries={max_retries})")
        self.max_retries = max_retries
        self.seconds_to_wait = seconds_to_wait


# -- Dagster's names -------------------------------------------------------------------------
# The same classes under the names Dagster code catches, so ``except DagsterInvalidConfigError``
# catches what Dagster would raise there.

DagsterError = OrchestratorError
DagsterInvalidDefinitionError = DefinitionError
DagsterInvalidConfigError = ConfigError
DagsterInvariantViolationError = InvariantViolationError
DagsterUnknownResourceError = ResourceNotFoundError
DagsterTypeCheckDidNotPass = TypeCheckError
DagsterExecutionStepExecutionError = UserCodeError
DagsterInvalidInvocationError = InvalidInvocationError
DagsterInvalidSubsetError = SelectionError


def closest_names(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates closest to ``name``, best first (for 'did you mean')."""
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.4)
    if close:
        return close
    # Fall back to names sharing the last path segment, then to the first few names.
    tail = name.rsplit(".", 1)[-1]
    same_tail = [c for c in pool if c.rsplit(".", 1)[-1] == tail]
    return (same_tail or pool)[:n]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Format a 'did you mean' suffix, or an empty string when there are no candidates."""
    close = closest_names(name, candidates)
    if not close:
        return ""
    return " Did you mean: " + ", ".join(repr(c) for c in close) + "?"


# -- the user-code boundary --------------------------------------------------------------------


@contextmanager
def user_code_boundary(what: str) -> Iterator[None]:
    """Run a block of user code (an op, resource, hook or config function); wrap what it
    raises in :class:`UserCodeError`, except the framework's own signals.

    Args:
        what: describes the user code for the message, e.g. ``op 'add_one'``.

    Raises:
        UserCodeError: wrapping any other exception raised inside the block.
    """
    try:
        yield
    except (Failure, RetryRequested, OrchestratorError):
        raise
    except Exception as exc:
        raise UserCodeError(f"Error in {what}: {type(exc).__name__}: {exc}", exc) from exc
