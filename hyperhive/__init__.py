"""hyperhive: a host daemon that runs a persistent swarm of Claude Code agents."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
