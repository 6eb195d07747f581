"""The ``tag_concurrency_limits`` entry, shared by per-run and cross-run limits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

APPLY_PER_UNIQUE = "applyLimitPerUniqueValue"


class TagConcurrencyLimit(BaseModel):
    """``{key, value?, limit}``: at most ``limit`` steps whose tag ``key`` matches run at once.

    ``value`` absent: every step carrying the key counts against one limit.
    ``value`` a string: only steps with ``key=value`` count.
    ``value`` ``{"applyLimitPerUniqueValue": true}``: each distinct value gets its own limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str
    value: str | dict[str, bool] | None = None
    limit: int = Field(ge=0)

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) != {APPLY_PER_UNIQUE}:
            raise ValueError(
                f'value must be a string or {{"{APPLY_PER_UNIQUE}": true}}, got {value!r}'
            )
        return value

    @property
    def per_unique_value(self) -> bool:
        return isinstance(self.value, dict) and bool(self.value.get(APPLY_PER_UNIQUE))

    def bucket_for(self, tags: dict[str, str] | Any) -> str | None:
        """The counter this limit charges for a step with ``tags``, or None if it does not apply.

        Buckets look like ``database`` (key-wide), ``database=redshift`` (one value) or
        ``database=*redshift`` (per unique value: one counter per value seen).
        """
        if self.key not in tags:
            return None
        tag_value = tags[self.key]
        if self.per_unique_value:
            return f"{self.key}=*{tag_value}"
        if isinstance(self.value, str):
            return f"{self.key}={self.value}" if tag_value == self.value else None
        if isinstance(self.value, dict):  # {"applyLimitPerUniqueValue": false} is key-wide
            return self.key
        return self.key
