"""`value`: an immutable attrs class made at less cost, for every wire type and the harness's
start-path values.

attrs writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__ne__`` and ``__hash__`` as
source and compiles it when the class is defined. With some two hundred wire types, that
compiling is most of what importing the wire costs, and every CLI command, the daemon and an
agent's harness pay it when they start (docs/performance.md); the harness's own settings and
options pay it at each container start. Such a class therefore has only its ``__init__``
generated; equality, hashing and ``repr`` are shared functions over its fields
that behave as attrs' own: equal when of the same class with equal fields (fields declared
``eq=False`` left out), hashed from the same fields, shown as ``Name(field=value, ...)``
(fields declared ``repr=False``, such as secrets, left out).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

__all__ = ["value"]

_C = TypeVar("_C", bound=type[Any])


def _value(cls: _C | None = None, **options: Any) -> Any:
    """``@value`` (or ``@value(...)`` with attrs options) in place of ``@attrs.frozen``."""

    def make(target: _C) -> _C:
        made: _C = attrs.frozen(target, repr=False, eq=False, **options)
        fields = attrs.fields(made)
        made.__wire_eq__ = staticmethod(_getter(tuple(f.name for f in fields if f.eq)))
        made.__wire_repr__ = tuple(f.name for f in fields if f.repr)
        for name, method in (("__eq__", _eq), ("__ne__", _ne), ("__hash__", _hash)):
            setattr(made, name, method)
        setattr(made, "__repr__", _repr)  # noqa: B010
        return made

    return make if cls is None else make(cls)


if TYPE_CHECKING:
    # To the type checker a wire type is what attrs.frozen makes (its plugin types __init__).
    from attrs import frozen as value
else:
    value = _value


def _getter(names: tuple[str, ...]) -> Any:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda obj: (get(obj),)
    return operator.attrgetter(*names)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    fields = self.__wire_eq__
    return fields(self) == fields(other)


def _ne(self: Any, other: Any) -> Any:
    result = _eq(self, other)
    return result if result is NotImplemented else not result


def _hash(self: Any) -> int:
    return hash((self.__class__, self.__wire_eq__(self)))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__wire_repr__)
    return f"{self.__class__.__qualname__}({shown})"
