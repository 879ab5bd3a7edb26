"""The host <-> harness contract: what the daemon and an agent's harness agree on.

The daemon starts each agent's harness (`hyperhive agent serve`) with these environment
variables and reads the sentinel files the harness writes into the agent's state directory.
Both sides name them from here, so neither can drift from the other.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEPLOYED_SHA",
    "ENV_AGENT",
    "ENV_CONFIG",
    "ENV_OPERATOR_PRONOUNS",
    "ENV_ROLE",
    "ENV_SOCKET",
    "ENV_STATE",
    "ENV_WEB_PORT",
    "MODEL_FILE",
    "NEEDS_LOGIN",
    "RATE_LIMITED",
    "SOCKET_NAME",
]

# -- environment (set by the container backend, read by `hyperhive.agent.settings`) ----------
ENV_AGENT: Final = "HYPERHIVE_AGENT"  # the agent's name
ENV_ROLE: Final = "HYPERHIVE_ROLE"  # agent | manager
ENV_SOCKET: Final = "HYPERHIVE_SOCKET"  # the agent's hive.sock: its identity
ENV_STATE: Final = "HYPERHIVE_AGENT_STATE"  # its state directory (read-write)
ENV_CONFIG: Final = "HYPERHIVE_CONFIG_DIR"  # its config directory (read-only)
ENV_WEB_PORT: Final = "HYPERHIVE_WEB_PORT"  # the port of its page
ENV_OPERATOR_PRONOUNS: Final = "HYPERHIVE_OPERATOR_PRONOUNS"  # as whoami answers them

# The agent's socket file, in the socket directory bound into its container.
SOCKET_NAME: Final = "hive.sock"

# -- sentinels (written by the harness in the state directory, read by the daemon's view) -----
NEEDS_LOGIN: Final = "hyperhive-needs-login"  # present while claude has no credentials
RATE_LIMITED: Final = "hyperhive-rate-limited"  # present while it waits out a rate limit
MODEL_FILE: Final = "hyperhive-model"  # the model chosen on the agent's page
# Written by the config flow in the agent's host directory when it deploys a commit.
DEPLOYED_SHA: Final = "deployed-sha"
