"""Run the benchmarks (`just bench`, `./bootstrap bench`); each prints its own figures.

    python -m bench [ARGS]                         the broker benchmark (ARGS go to it), then
                                                   turn, sse, cli
    python -m bench broker|turn|sse|cli|soak ARGS  one of them (`soak`: ten minutes, `just soak`)

The last line of each benchmark is its summary; docs/performance.md records them.
"""

from __future__ import annotations

import sys

from bench import broker, cli, soak, sse, turn

BENCHMARKS = {
    "broker": broker.main,
    "turn": turn.main,
    "sse": sse.main,
    "cli": cli.main,
    "soak": soak.main,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench`."""
    args = argv if argv is not None else sys.argv[1:]
    if args and args[0] in BENCHMARKS:
        return BENCHMARKS[args[0]](args[1:])
    return broker.main(args) or turn.main([]) or sse.main([]) or cli.main([])


if __name__ == "__main__":
    sys.exit(main())
