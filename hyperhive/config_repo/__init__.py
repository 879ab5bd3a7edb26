"""Agent config repos: the git plumbing, the ``agent.toml`` format and what a change grants.

    git.py            the git CLI with a clean environment, bounded output, a timeout
    objects.py        copying a hostile proposed repo's object files, and nothing else
    applied.py        the daemon-owned applied repo: import, tags, main, reads, diff, export
    tags.py           the tag state machine (pure)
    seed.py           the repo layout and seeding a new agent's pair from template/
    agent_toml.py     agent.toml into a validated `AgentConfig`
    secrets.py        resolving secret references when an agent starts
    capabilities.py   the capability diff between two configs (pure)

docs/approvals.md describes the flow, docs/config.md the format.
"""
