"""Run every benchmark in turn and print each one's summary line."""

from __future__ import annotations

import sys


def main() -> int:
    """Entry point for `python -m bench`."""
    print("no benchmarks yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
