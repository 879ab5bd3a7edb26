"""`python -m hyperhive.testing.scripted_api`: the scripted model API from the command line.

    python -m hyperhive.testing.scripted_api [--host H] [--port P] [--script S] [-- COMMAND ...]

Serves a `ModelAPI` (`hyperhive.testing.model_api`) on H:P (default 127.0.0.1, a free port).
Without a command it prints its base URL on stdout and serves until SIGINT or SIGTERM. With a
command it runs COMMAND with ``ANTHROPIC_BASE_URL`` pointing at itself (and a placeholder
``ANTHROPIC_API_KEY`` unless one is set), passes SIGINT and SIGTERM on to it, and exits with
its status: that is how a demo agent gets a model inside its own sandbox (`hyperhive.testing.demo`).

Scripts (``--script``):

- ``polite`` (default): the `ModelAPI` defaults (a summary for a compaction, "done." after a
  tool result, "ok." otherwise);
- ``demo``: the demo hive's behaviours (`hyperhive.testing.demo.demo_reply`) for the agent
  named by ``HYPERHIVE_AGENT`` (the harness's own variable); an agent whose name starts with
  ``guest`` gets no placeholder API key, so it starts logged out (the login flow's demo).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from functools import partial

import trio

from hyperhive.testing.demo import LOGGED_OUT_PREFIX, demo_reply
from hyperhive.testing.model_api import ModelAPI, open_model_api

__all__ = ["SCRIPTS", "main", "run"]

SCRIPTS = ("polite", "demo")


def _install(api: ModelAPI, script: str, name: str) -> None:
    if script == "demo":
        state = os.environ.get("HYPERHIVE_AGENT_STATE", "/state")
        api.on(lambda request: True, partial(demo_reply, name, state=state))


async def run(host: str, port: int, script: str, command: list[str]) -> int:
    """Serve the API; run `command` against it if given. Returns the exit status."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((host, port))
    listening.listen(64)
    async with open_model_api(listening) as api:
        _install(api, script, os.environ.get("HYPERHIVE_AGENT", "agent"))
        if not command:
            print(api.base_url, flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    return 0
        env = {**os.environ, "ANTHROPIC_BASE_URL": api.base_url}
        agent = os.environ.get("HYPERHIVE_AGENT", "")
        if not (script == "demo" and agent.startswith(LOGGED_OUT_PREFIX)):
            env.setdefault("ANTHROPIC_API_KEY", "scripted-not-a-key")
        process = await trio.lowlevel.open_process(command, env=env)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_forward_signals, process)
            status = await process.wait()
            nursery.cancel_scope.cancel()
        return status if status >= 0 else 128 - status


async def _forward_signals(process: trio.Process) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            process.send_signal(signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hyperhive.testing.scripted_api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", choices=SCRIPTS, default="polite")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sys.exit(trio.run(run, args.host, args.port, args.script, command))


if __name__ == "__main__":
    main()
