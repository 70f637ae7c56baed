"""Read-only deep copies of run state, for templates and expressions to read and never change.

A manifest's templates see other tasks' outputs. Were they the engine's own objects, a template could change
them (``{{ tasks.m.output.append('FORGED') }}``), and every later reader (the run's result, the store, the
terminal) would see the forgery. `freeze` copies a value into types that have no mutating method at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from types import MappingProxyType
from typing import Any


def freeze(value: Any) -> Any:
    """A deep copy of `value` that cannot be changed.

    Lists become tuples, mappings read-only mappings, sets frozensets; text, numbers and other objects (frozen
    dataclasses such as a `Skipped` marker, say) are kept as they are.
    """
    if isinstance(value, str | bytes | int | float | complex | bool | type(None)):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, Set):
        return frozenset(freeze(item) for item in value)
    return value


__all__ = ["freeze"]
