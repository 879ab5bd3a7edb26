"""What a backend is told to run for one agent: its `AgentSpec`, from its record and config.

An agent whose config came through an approval runs its deploy (`AgentRecord.deploy`, an
approval id): ``agents/<name>/deploys/<id>/config`` is its ``/config``, ``.../tools`` its
``/tools``, and the ``agent.toml`` there (validated when it was deployed) gives the rest:

- ``env`` and the *values* of ``secrets``, resolved here, when the spec is built (the
  container is created or rebuilt), into the spec's environment and nowhere else: the bwrap
  backend hands it to bwrap as its environment, never as arguments;
- the approved sandbox settings (allowlist, binds, limits), which the operator's
  ``sandbox.json`` caps (`hyperhive.containers.sandbox.combine`).

The agent record's ``network`` flag is the config's ``network.enabled`` (the deploy sets it).
An agent without a deploy runs ``agents/<name>/config`` with the daemon's settings only, as
before approvals existed.

The manager also gets the config repos: ``configs/proposed`` read-write at ``/agents`` (each
agent's working repo is ``/agents/<name>/config``) and ``configs/applied`` read-only at
``/applied``.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Final

import attrs

from hyperhive import wire
from hyperhive.config_repo.agent_toml import AgentConfig, parse_agent_toml, to_sandbox_settings
from hyperhive.config_repo.applied import AGENT_TOML, MAX_AGENT_TOML
from hyperhive.config_repo.secrets import resolve_secrets
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.containers.base import AgentSpec
from hyperhive.containers.sandbox import Bind
from hyperhive.core.agent_files import read_capped
from hyperhive.core.registry import MANAGER
from hyperhive.errors import ConfigError, HyperhiveError

if TYPE_CHECKING:
    from pathlib import Path

    from hyperhive.config import StatePaths
    from hyperhive.containers.settings import ContainerSettings
    from hyperhive.core.registry import AgentRecord
    from hyperhive.offload import Offload

__all__ = ["MANAGER_AGENTS", "MANAGER_APPLIED", "SpecBuilder", "read_deployed_config"]

MANAGER_AGENTS: Final = PurePosixPath("/agents")
MANAGER_APPLIED: Final = PurePosixPath("/applied")


def read_deployed_config(config_dir: Path) -> AgentConfig:
    """The ``agent.toml`` of a deploy (blocking; a file the daemon exported).

    Raises:
        ConfigError: it is gone or no longer valid; the text says which.
    """
    try:
        raw = read_capped(config_dir, PurePosixPath(AGENT_TOML), MAX_AGENT_TOML)
    except (OSError, HyperhiveError) as exc:
        raise ConfigError(f"cannot read the deployed {AGENT_TOML} in {config_dir}: {exc}") from exc
    if raw is None:
        raise ConfigError(f"the deployed config {config_dir} has no {AGENT_TOML}; redeploy it")
    try:
        return parse_agent_toml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"the deployed {AGENT_TOML} in {config_dir} is not UTF-8") from None


class SpecBuilder:
    """Builds specs (see the module docstring); blocking reads go through `offload`."""

    def __init__(
        self,
        *,
        paths: StatePaths,
        settings: ContainerSettings,
        offload: Offload,
        operator_pronouns: str,
    ) -> None:
        self._paths = paths
        self._settings = settings
        self._offload = offload
        self._pronouns = operator_pronouns
        self._repos = RepoPaths(paths.configs_dir)

    def base(self, record: AgentRecord) -> AgentSpec:
        """The spec without the deploy: the record and the daemon's settings (no secrets)."""
        paths = self._paths
        name = record.name
        return AgentSpec(
            name=name,
            role=record.role,
            state_dir=paths.agent_state_dir(name),
            config_dir=paths.agent_config_dir(name),
            socket_dir=paths.container_socket_dir(name),
            log_path=paths.agent_log(name),
            argv=self._settings.agent_command,
            # The harness fills the operator's pronouns into the system prompt; whoami answers
            # from the daemon's own value, so the two must be the same one.
            env={**self._settings.env, wire.ENV_OPERATOR_PRONOUNS: self._pronouns},
            network=record.network,
            settings_file=paths.agent_dir(name) / "sandbox.json",
            binds=self._manager_binds() if name == MANAGER else (),
        )

    async def spec(self, record: AgentRecord) -> AgentSpec:
        """The whole spec, secrets resolved.

        Raises:
            ConfigError: the deploy's config is gone or broken, or a secret cannot be
                resolved (the text names the secret, never a value).
        """
        spec = self.base(record)
        if record.deploy is None:
            return spec
        deploy = self._paths.deploy_dir(record.name, record.deploy)
        config = await self._offload(read_deployed_config, deploy / "config")
        return await self.with_config(spec, config, deploy, secrets=True)

    async def with_config(
        self, spec: AgentSpec, config: AgentConfig, deploy: Path, *, secrets: bool
    ) -> AgentSpec:
        """`spec` running `config` from deploy directory `deploy` (`secrets`: resolve them)."""
        env = dict(spec.env)
        env.update({str(key): str(value) for key, value in config.env.items()})
        if secrets and config.secrets:
            environ = self._settings.secret_environ
            refs = {str(key): ref for key, ref in config.secrets.items()}
            resolved = await self._offload(
                lambda: resolve_secrets(
                    refs,
                    environ=os.environ if environ is None else environ,
                    file_roots=self._settings.secret_dirs,
                )
            )
            env.update(resolved.as_env())
        return attrs.evolve(
            spec,
            config_dir=deploy / "config",
            tools_dir=deploy / "tools",
            env=env,
            approved=to_sandbox_settings(config),
        )

    def _manager_binds(self) -> tuple[Bind, ...]:
        repos = self._repos
        return (
            Bind(repos.proposed_root, MANAGER_AGENTS, writable=True),
            Bind(repos.applied_root, MANAGER_APPLIED),
        )
