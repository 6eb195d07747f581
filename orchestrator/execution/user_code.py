"""The user-code boundary: exceptions from ops, resources, hooks and config functions are wrapped
in ``UserCodeError`` with the original kept as ``__cause__``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.errors import Failure, OrchestratorError, RetryRequested, UserCodeError


@contextmanager
def user_code_boundary(what: str) -> Iterator[None]:
    """Run a block of user code; wrap what it raises, except the framework's own signals.

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
