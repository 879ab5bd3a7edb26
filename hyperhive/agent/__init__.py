"""The in-container agent harness (`hyperhive agent serve` / `hyperhive agent mcp`).

- `harness`     the turn loop: wait for work, run a turn, ack it if it went well
- `runtime`     the turn-runner seam, and `CommandRuntime` (any command reading stdin)
- `claude`      the Claude Code runtime (stream-json in and out, compaction, interrupt)
- `stream`      the pure stream-json parser and per-turn tracker
- `wake`        the pure wake-prompt builder
- `events`      the events bus: sqlite history + live feed
- `turn_stats`  one sqlite row per turn
- `mcp_server`  the agent's tools as a stdio MCP server, forwarded to the agent socket
- `login`       Claude's auth probe and stored credentials
- `prompts`     the role prompts shipped in `prompts/`

docs/turn-loop.md describes the loop, the flags and the failure handling.
"""
