"""Container backends behind one Protocol: bwrap (default), process, nixos; the fake lives in
`hyperhive.testing.fake_containers`. See docs/containers.md."""

from __future__ import annotations

from hyperhive.containers.base import (
    AgentExited,
    AgentSpec,
    AgentState,
    AgentStatus,
    ContainerBackend,
    ExecResult,
)
from hyperhive.containers.settings import ContainerSettings, make_backend

__all__ = [
    "AgentExited",
    "AgentSpec",
    "AgentState",
    "AgentStatus",
    "ContainerBackend",
    "ContainerSettings",
    "ExecResult",
    "make_backend",
]
