"""Run every benchmark in turn (`just bench`, `./bootstrap bench`); each prints its own figures.

The last line of each benchmark is its summary; docs/performance.md records them.
"""

from __future__ import annotations

import sys

from bench import broker


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench`; extra arguments go to the broker benchmark."""
    return broker.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
