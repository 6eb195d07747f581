"""Type checks of op inputs and outputs: plain Python types, and ``DagsterType`` with a check
function of its own (Dagster's names and signatures)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_origin

from orchestrator.errors import DefinitionError


@dataclass(frozen=True)
class TypeCheck:
    """The outcome of a type check function that says more than True/False.

    Args:
        success: whether the value passed.
        description: why (shown in the step's failure event when it did not).
        metadata: details recorded with the check.
    """

    success: bool
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class DagsterType:
    """A type with a check function, for values a Python type cannot describe.

    Args:
        type_check_fn: ``fn(context, value)`` returning a bool or a :class:`TypeCheck`;
            ``context`` is the running op's context (``log``, ``resources``).
        name: shown in errors and docs.
        description: what values of this type are.
        typing_type: the Python type static checkers see for it (informational).
        metadata: free-form information.

    Example:
        ``EvenInt = DagsterType(lambda _, v: isinstance(v, int) and v % 2 == 0, name="EvenInt")``
        then ``@op(out=Out(EvenInt))`` or ``ins={"n": In(EvenInt)}``.
    """

    def __init__(
        self,
        type_check_fn: Callable[[Any, Any], bool | TypeCheck],
        name: str | None = None,
        description: str | None = None,
        typing_type: Any = Any,
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
    ):
        if not callable(type_check_fn):
            raise DefinitionError(f"DagsterType {name!r}: type_check_fn must be callable")
        params = inspect.signature(type_check_fn).parameters
        if len(params) != 2:
            raise DefinitionError(
                f"DagsterType {name!r}: type_check_fn must take (context, value), it takes "
                f"{list(params)}"
            )
        self.type_check_fn = type_check_fn
        self.name: str = name or key or str(getattr(type_check_fn, "__name__", "DagsterType"))
        self.key = key or self.name
        self.display_name = self.name
        self.description = description
        self.typing_type = typing_type
        self.metadata = dict(metadata or {})

    def type_check(self, context: Any, value: Any) -> TypeCheck:
        outcome = self.type_check_fn(context, value)
        if isinstance(outcome, TypeCheck):
            return outcome
        if not isinstance(outcome, bool):
            raise DefinitionError(
                f"type check of {self.name} returned {outcome!r}; return a bool or TypeCheck"
            )
        return TypeCheck(outcome)

    def __repr__(self) -> str:
        return f"DagsterType({self.name})"


def type_name(expected: Any) -> str:
    if isinstance(expected, DagsterType):
        return expected.name
    return str(getattr(expected, "__name__", None) or repr(expected))


_REGISTERED: dict[type, DagsterType] = {}


def make_python_type_usable_as_dagster_type(python_type: type, dagster_type: DagsterType) -> None:
    """Annotations and ``In``/``Out`` types naming ``python_type`` are checked with
    ``dagster_type``."""
    _REGISTERED[python_type] = dagster_type


def usable_as_dagster_type(cls: type | None = None, *, name: str | None = None) -> Any:
    """Class decorator: the class, used as a type of inputs and outputs, is checked as a
    DagsterType of its name (instances of it pass)."""

    def wrap(c: type) -> type:
        _REGISTERED[c] = PythonObjectDagsterType(c, name=name or c.__name__)
        return c

    return wrap(cls) if cls is not None else wrap


def resolve_type(expected: Any) -> Any:
    """``expected``, or the DagsterType a Python type was registered to stand for."""
    if isinstance(expected, type) and expected in _REGISTERED:
        return _REGISTERED[expected]
    return expected


def check_type(expected: Any, value: Any, context: Any = None) -> TypeCheck:
    """Check ``value`` against an input's or output's declared type: None and ``Any`` accept
    everything, a ``DagsterType`` runs its check function, a class (or a generic such as
    ``list[int]``, by its origin) is an ``isinstance`` check."""
    expected = resolve_type(expected)
    if isinstance(expected, DagsterType):
        return expected.type_check(context, value)
    if expected is None or expected is Any:
        return TypeCheck(True)
    origin = get_origin(expected)
    cls = origin if inspect.isclass(origin) else expected
    if not inspect.isclass(cls):
        return TypeCheck(True)
    if isinstance(value, cls):
        return TypeCheck(True)
    return TypeCheck(False, f"expected {type_name(expected)}, got {type(value).__name__} {value!r}")


def check_dagster_type(dagster_type: Any, value: Any) -> TypeCheck:
    """Run a type's check outside any op (for tests): a ``TypeCheck``."""
    return check_type(dagster_type, value)


_BUILTIN_NAMES = {str: "String", int: "Int", float: "Float", bool: "Bool", type(None): "Nothing"}


def as_dagster_type(expected: Any) -> DagsterType:
    """The ``DagsterType`` view of a declared type (what ``op.input_defs[i].dagster_type``
    shows): a DagsterType as is; a Python type checked with ``isinstance`` and named as
    Dagster names it (``Int``, ``String``, ``[Any]`` for lists...); None as ``Any``."""
    if isinstance(expected, type) and expected in _REGISTERED:
        return _REGISTERED[expected]
    if isinstance(expected, DagsterType):
        return expected
    if expected is None or expected is Any:
        return DagsterType(lambda _c, _v: True, name="Any")
    origin = get_origin(expected) or expected
    name = _BUILTIN_NAMES.get(origin)
    if name is None:
        name = "[Any]" if origin is list else type_name(expected)
    return DagsterType(lambda _c, v: check_type(expected, v).success, name=name)


def PythonObjectDagsterType(
    python_type: type | tuple[type, ...],
    name: str | None = None,
    description: str | None = None,
) -> DagsterType:
    """A DagsterType that accepts instances of ``python_type`` (or of any type in a tuple)."""
    types = python_type if isinstance(python_type, tuple) else (python_type,)
    label = name or "_".join(t.__name__ for t in types)

    def check(_context: Any, value: Any) -> TypeCheck:
        if isinstance(value, types):
            return TypeCheck(True)
        expected = " or ".join(t.__name__ for t in types)
        return TypeCheck(False, f"expected {expected}, got {type(value).__name__}")

    return DagsterType(check, name=label, description=description, typing_type=types[0])
