"""Retry policies for ops: ``RetryPolicy``, ``Backoff`` and ``Jitter``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

from orchestrator.errors import DefinitionError

_JITTER = random.Random()  # not the global generator: user code may seed and rely on it


class Backoff(Enum):
    """How the delay grows with each retry."""

    LINEAR = "LINEAR"  # delay * attempt
    EXPONENTIAL = "EXPONENTIAL"  # delay * (2 ** attempt - 1)


class Jitter(Enum):
    """Randomness added to the delay so retries of many steps do not land at once."""

    FULL = "FULL"  # uniform in [0, computed delay]
    PLUS_MINUS = "PLUS_MINUS"  # computed delay plus uniform in [-delay, +delay], at least 0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and after which delay a failed step is run again.

    Args:
        max_retries: retries after the first attempt (0 disables retrying).
        delay: base delay in seconds before a retry (None: retry at once).
        backoff: how the delay grows (``Backoff.LINEAR`` or ``Backoff.EXPONENTIAL``).
        jitter: randomness added to the delay (``Jitter.FULL`` or ``Jitter.PLUS_MINUS``).
    """

    max_retries: int = 1
    delay: float | None = None
    backoff: Backoff | None = None
    jitter: Jitter | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise DefinitionError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        if self.delay is not None and self.delay < 0:
            raise DefinitionError(f"RetryPolicy.delay must be >= 0 seconds, got {self.delay}")
        if (self.backoff or self.jitter) and self.delay is None:
            raise DefinitionError("RetryPolicy: backoff and jitter need a delay; set delay=...")

    def calculate_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        if not self.delay:
            return 0.0
        if self.backoff is Backoff.EXPONENTIAL:
            computed = self.delay * ((2**attempt) - 1)
        elif self.backoff is Backoff.LINEAR:
            computed = self.delay * attempt
        else:
            computed = self.delay
        rand = (rng or _JITTER).random()
        if self.jitter is Jitter.FULL:
            computed = rand * computed
        elif self.jitter is Jitter.PLUS_MINUS:
            computed = max(0.0, computed + (rand * 2 - 1) * self.delay)
        return computed

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_retries,
            "delay": self.delay,
            "backoff": self.backoff.value if self.backoff else None,
            "jitter": self.jitter.value if self.jitter else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(
            max_retries=data["max_retries"],
            delay=data.get("delay"),
            backoff=Backoff(data["backoff"]) if data.get("backoff") else None,
            jitter=Jitter(data["jitter"]) if data.get("jitter") else None,
        )
