"""`python -m hyperhive` is the `hyperhive` command.

`agent mcp` and `agent serve` skip the CLI framework (its import is a large share of their
start-up): Claude starts the MCP server at the start of every process and waits for it before
its first model request, and every container start runs the harness (docs/turn-loop.md).
"""

import sys

if sys.argv[1:3] == ["agent", "mcp"] and not {"-h", "--help"} & set(sys.argv[3:]):
    from hyperhive.agent.mcp_relay import main as mcp_main

    sys.exit(mcp_main(sys.argv[3:]))
if sys.argv[1:3] == ["agent", "serve"]:
    import gc

    # Starting the harness allocates a great many objects and hardly any garbage: the cyclic
    # collector would only rescan them (3% of the start-up). It is back on from the ready line
    # (`hyperhive.agent.serve`).
    gc.disable()
    from hyperhive.agent.serve_cli import main as serve_main

    sys.exit(serve_main(sys.argv[3:]))

from hyperhive.quick import main

main()
