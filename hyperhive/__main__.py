"""`python -m hyperhive` is the `hyperhive` command.

`agent mcp` skips the CLI framework: Claude starts that server at the start of every process
and waits for it before its first model request (docs/turn-loop.md, "Warm turns").
"""

import sys

if sys.argv[1:3] == ["agent", "mcp"] and not {"-h", "--help"} & set(sys.argv[3:]):
    from hyperhive.agent.mcp_server import main as mcp_main

    sys.exit(mcp_main(sys.argv[3:]))

from hyperhive.cli import main

main()
