"""Tag tables: a wire tag per class, declared once with the class (``@EVENTS.tag("sent")``).

A table maps stable tag strings to classes and back, so renaming a Python class never changes
the wire, and no list of classes has to be kept beside the classes themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["TagTable"]

_C = TypeVar("_C", bound=type[Any])


class TagTable(Mapping[str, type[Any]]):
    """``tag -> class``, filled by the `tag` decorator as the classes are defined."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._classes: dict[str, type[Any]] = {}
        self._tags: dict[type[Any], str] = {}

    def tag(self, tag: str) -> Callable[[_C], _C]:
        """Register the decorated class under `tag` (put it above ``@value``)."""

        def register(cls: _C) -> _C:
            if tag in self._classes:
                raise ValueError(f"{self.what} tag {tag!r} is taken by {self._classes[tag]}")
            self._classes[tag] = cls
            self._tags[cls] = tag
            return cls

        return register

    def tag_of(self, cls: type[Any]) -> str:
        """The tag of a registered class (KeyError for any other)."""
        return self._tags[cls]

    def get_tag(self, cls: type[Any]) -> str | None:
        return self._tags.get(cls)

    def __getitem__(self, tag: str) -> type[Any]:
        return self._classes[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)
