"""The in-container agent harness (`hyperhive agent serve` / `hyperhive agent mcp`).

- `harness`     the turn loop: wait for work, run a turn, ack it if it went well
- `runtime`     the turn-runner seam, and `CommandRuntime` (any command reading stdin)
- `claude`      the Claude Code runtime: a warm process per agent, replaced when it must be
- `claude_process` one running claude: its pumps, its turns, its watchdog
- `stream`      the pure stream-json parser and per-turn tracker
- `wake`        the pure wake-prompt builder
- `events`      the events bus: sqlite history + live feed
- `turn_stats`  one sqlite row per turn
- `tools`       the agent's MCP tools, declared once, and one call on the agent socket
- `mcp_server`  those tools as a stdio MCP server (standard library only at start-up)
- `serve_cli`   `agent serve`'s command line, parsed without a framework
- `login`       Claude's auth probe, stored credentials, the credential-file watch
- `prompts`     the role prompts shipped in `prompts/`

docs/turn-loop.md describes the loop, the flags and the failure handling.
"""
