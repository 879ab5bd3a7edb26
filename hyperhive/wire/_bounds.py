"""Field bounds: the edge of the trust boundary, declared on each request field.

Every integer a request carries fits sqlite's signed 64 bits; each field's range is what the
field can mean, and every string and list has a length cap. A bound lives in the field's
metadata (``attrs.field(metadata=text(64))``) and is checked when a line is decoded, never when
code builds a value, so past `decode_request` code sees only values inside their bounds.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import attrs

from hyperhive.value import value

__all__ = [
    "ID",
    "INT64_MAX",
    "MAX_ANSWER_CHARS",
    "MAX_LIMIT",
    "MAX_LINE_BYTES",
    "MAX_NAME_CHARS",
    "MAX_NESTING",
    "MAX_OPTIONS",
    "MAX_OPTION_CHARS",
    "MAX_PATH_CHARS",
    "MAX_QUESTION_CHARS",
    "MAX_SECONDS",
    "PROTOCOL_VERSION",
    "STRICT",
    "Bound",
    "field_bounds",
    "number",
    "strict",
    "text",
]

PROTOCOL_VERSION: Final = 1
# One request line may carry a message body; 1 MiB is far above any sane chat message and far
# below what would let one client balloon the daemon's memory.
MAX_LINE_BYTES: Final = 1024 * 1024
# Deeper than any request needs (two levels: an object holding a list of strings); a line nested
# past this is refused before anything walks it.
MAX_NESTING: Final = 16
INT64_MAX: Final = 2**63 - 1
MAX_NAME_CHARS: Final = 64  # agent names are at most 11; a little room for a clear "unknown"
MAX_LIMIT: Final = 10_000  # list sizes a client may ask for (each handler caps further)
MAX_SECONDS: Final = 10 * 366 * 86400.0  # durations: the domain rules refuse far less
MAX_QUESTION_CHARS: Final = 16 * 1024
MAX_OPTION_CHARS: Final = 1024
MAX_OPTIONS: Final = 32
MAX_ANSWER_CHARS: Final = 64 * 1024
MAX_PATH_CHARS: Final = 4096
_BOUND: Final = "hyperhive.bound"
_C = TypeVar("_C", bound=type[Any])


@value
class Bound:
    """The range of one request field: numbers within ``[low, high]``; strings of at most
    ``chars`` characters (valid unicode); lists of at most ``items`` such strings."""

    low: float | None = None
    high: float | None = None
    chars: int | None = None
    items: int | None = None


def number(low: float, high: float) -> dict[str, Bound]:
    """Field metadata: a number from `low` to `high` inclusive."""
    return {_BOUND: Bound(low=low, high=high)}


def text(chars: int, *, items: int | None = None) -> dict[str, Bound]:
    """Field metadata: a string of at most `chars` characters (with `items`, a list of them)."""
    return {_BOUND: Bound(chars=chars, items=items)}


ID: Final = number(1, INT64_MAX)


def field_bounds(cls: type[Any]) -> dict[str, Bound]:
    """The declared bound of each bounded field of a request class (the fuzz test reads it)."""
    return {f.name: f.metadata[_BOUND] for f in attrs.fields(cls) if _BOUND in f.metadata}


# The classes whose decoding checks their field bounds: every command (`_table.command` marks
# it), the values a command holds, and what a harness writes or serves. Marked where each is
# declared, so the codec learns of a class only when its module is loaded (the harness starts
# without loading most of them; docs/performance.md).
STRICT: Final[set[type[Any]]] = set()


def strict(cls: _C) -> _C:
    """Decode `cls` as strictly as a request: each declared field bound checked (a decorator)."""
    STRICT.add(cls)
    return cls
