"""Hypothesis strategies and fixed examples for every wire type, derived from its declaration.

`strategy_for(cls)` builds a strategy from a class's attrs fields (requests stay inside their
declared bounds, `hyperhive.wire.field_bounds`); `example(cls)` builds one deterministic value
with every field set, which the golden fixture of each command pins
(``tests/hyperhive/golden/wire/commands/``). Neither names a command: a new command in the
table gets both for free.

Needs ``hypothesis`` (a dev dependency); nothing at run time imports this module.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from hyperhive import wire

__all__ = ["bounded", "example", "strategy_for"]

_SIMPLE: Final[dict[Any, st.SearchStrategy[Any]]] = {
    str: st.text(max_size=20),
    int: st.integers(min_value=-(2**53), max_value=2**53),
    float: st.floats(allow_nan=False, allow_infinity=False),
    bool: st.booleans(),
}


def strategy_for(kind: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A Hypothesis strategy for any wire type, built from its attrs fields."""
    if kind is Any:  # claude's own stream-json objects: any JSON value
        return st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg, depth) for arg in typing.get_args(kind)))
    if kind is type(None):
        return st.none()
    if origin is tuple:
        if depth > 3:
            return st.just(())
        item = typing.get_args(kind)[0]
        return st.lists(strategy_for(item, depth + 1), max_size=3).map(tuple)
    if origin is dict:
        key, value = typing.get_args(kind)
        return st.dictionaries(strategy_for(key, depth + 1), strategy_for(value, depth + 1))
    hints = typing.get_type_hints(kind)
    bounds = wire.field_bounds(kind)
    fields = {
        f.name: bounded(hints[f.name], bounds[f.name])
        if f.name in bounds
        else strategy_for(hints[f.name], depth + 1)
        for f in attrs.fields(kind)
    }
    return st.builds(kind, **fields)


def bounded(kind: Any, bound: wire.Bound) -> st.SearchStrategy[Any]:
    """Values of a request field inside its declared bound (None too, where it is optional)."""
    optional = type(None) in typing.get_args(kind)
    base = next((t for t in (int, float, str) if t is kind or t in typing.get_args(kind)), None)
    values: st.SearchStrategy[Any]
    if bound.low is not None and bound.high is not None:
        if base is int:
            values = st.integers(min_value=int(bound.low), max_value=int(bound.high))
        else:
            values = st.floats(min_value=bound.low, max_value=bound.high)
    elif bound.items is not None:
        item = st.text(max_size=min(20, bound.chars or 20))
        values = st.lists(item, max_size=min(3, bound.items)).map(tuple)
    else:
        values = st.text(max_size=min(20, bound.chars or 20))
    return st.one_of(st.none(), values) if optional else values


# Readable values for fields by name; any other string field holds its own name.
_WORDS: Final = {
    "name": "alice",
    "to": "bob",
    "sender": "alice",
    "recipient": "bob",
    "owner": "alice",
    "asker": "alice",
    "target": "bob",
    "agent": "alice",
    "body": "hi",
    "kind": "question",
    "question": "ship?",
    "answer": "yes",
    "message": "check ci",
    "at": "2030-06-01T09:00:00Z",
    "file_path": "/state/notes/ci.md",
    "commit_ref": "0123abc",
    "fetched_sha": "0123abc" + "0" * 33,
    "commit": "0123abc" + "0" * 33,
    "seed": "fedcba9" + "0" * 33,
    "main": "fedcba9" + "0" * 33,
    "base": "fedcba9" + "0" * 33,
    "status": "pending",
    "requested_at": "2030-06-01T09:00:00Z",
    "resolved_at": "2030-06-01T10:00:00Z",
    "path": "/agents/alice/config",
    "applied_path": "/applied/alice",
    "state": "running",
    "role": "agent",
}


def example(kind: Any, name: str = "value", depth: int = 0) -> Any:
    """One fixed value of a wire type with every field set (optional ones too), for goldens."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return example(args[0], name, depth)
    if kind is str:
        return _WORDS.get(name, name)
    if kind is bool:
        return True
    if kind is int:
        return 3
    if kind is float:
        return 1700000000.5 if name.endswith("_at") else 30.0
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if item is str:
            return ("yes", "no")
        return () if depth > 2 else (example(item, name, depth + 1),)
    if origin is dict:
        return {"handled": 3}
    hints = typing.get_type_hints(kind)
    bounds = wire.field_bounds(kind)
    values = {}
    for field in attrs.fields(kind):
        value = example(hints[field.name], field.name, depth + 1)
        bound = bounds.get(field.name)
        if bound is not None and bound.low is not None and bound.high is not None:
            value = type(value)(min(max(value, bound.low), bound.high))
        values[field.name] = value
    return kind(**values)
