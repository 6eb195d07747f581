"""Input and output declarations of ops and graphs: ``In``, ``Out``, ``Output`` and ``Nothing``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


class _NothingType:
    """Marker type for inputs/outputs that carry ordering only, no data (Dagster's ``Nothing``)."""

    def __repr__(self) -> str:
        return "Nothing"


Nothing: Any = _NothingType()

_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class In:
    """Declares an op input.

    Args:
        dagster_type: the expected Python type, ``Nothing`` for an order-only dependency, or None.
        description: shown in docs and the CLI.
        default_value: used when nothing else provides the input.
        metadata: free-form information.
        input_manager_key: the resource (an input manager or IO manager) that loads this
            input, instead of the upstream output's IO manager; with it an input needs no
            upstream op at all.
    """

    dagster_type: Any = None
    description: str | None = None
    default_value: Any = _NO_DEFAULT
    metadata: Mapping[str, Any] = field(default_factory=dict)
    input_manager_key: str | None = None

    @property
    def is_nothing(self) -> bool:
        return self.dagster_type is Nothing

    @property
    def has_default(self) -> bool:
        return self.default_value is not _NO_DEFAULT


@dataclass(frozen=True)
class Out:
    """Declares an op output.

    Args:
        dagster_type: the expected Python type, ``Nothing``, or None.
        description: shown in docs and the CLI.
        is_required: when False the op may skip the output; steps that need it are then skipped.
        io_manager_key: the resource key of the IO manager that stores this output.
        metadata: free-form information.
    """

    dagster_type: Any = None
    description: str | None = None
    is_required: bool = True
    io_manager_key: str = "io_manager"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_nothing(self) -> bool:
        return self.dagster_type is Nothing


@dataclass(frozen=True)
class DynamicOut(Out):
    """Declares a dynamic output: the op yields any number of ``DynamicOutput(value,
    mapping_key)``, and ops mapped over it (``.map(...)`` in a job body) run once per mapping
    key; ``.collect()`` gathers their results into one list. Arguments as :class:`Out`.
    """

    @property
    def is_dynamic(self) -> bool:
        return True


GraphOut = Out
GraphIn = In


def is_dynamic(out: Out) -> bool:
    """Whether ``out`` is a :class:`DynamicOut`."""
    return isinstance(out, DynamicOut)


T = TypeVar("T")


@dataclass(frozen=True)
class Output(Generic[T]):
    """A value an op returns or yields for one named output. As a return annotation,
    ``-> Output[int]`` declares the output's type (``int``).

    Args:
        value: the output's value.
        output_name: which output; defaults to ``result``.
        metadata: details recorded on the output event (plain JSON values or
            ``MetadataValue``s).
    """

    value: T
    output_name: str = "result"
    metadata: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_OUTPUT = "result"


@dataclass(frozen=True)
class DynamicOutput(Generic[T]):
    """One value of a dynamic output (:class:`DynamicOut`), yielded (or returned in a list) by
    its op; the ops mapped over the output run once per ``mapping_key``, as the steps
    ``op[mapping_key]``.

    Args:
        value: the value for this mapping key.
        mapping_key: names this value among its output's values: letters, digits and
            underscores, unique within the output.
        output_name: which output; defaults to ``result``.
        metadata: details recorded on the output event.
    """

    value: T
    mapping_key: str
    output_name: str = "result"
    metadata: Mapping[str, Any] = field(default_factory=dict)
