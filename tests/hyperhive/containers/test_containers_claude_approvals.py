"""Issue 12 end to end: the manager's model changes alice's config, the operator approves it
with the CLI, and alice comes back running it. Everything is real but the model.

The manager and alice both run the real harness and the real `claude` binary inside the bwrap
wall, against the scripted model API in a network namespace of this test's own (as in
test_containers_claude_wall.py). The manager's script: `request_init_config(alice)`, then one
Bash call that writes alice's `agent.toml` (an env value and an extra MCP server, a tiny stdio
server shipped in the same repo) and commits it, then `request_apply_commit` with the sha the
commit printed. The operator approves with `hyperhive approve`. Alice's script, once asked:
one Bash call that prints the env value; the request claude makes after it must carry that
output and list the extra server's tool, which claude only sees if it started that server
inside alice's sandbox.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from hyperhive import wire
from hyperhive.config_repo.seed import RepoPaths
from hyperhive.testing import open_test_hive, run_cli
from hyperhive.testing.model_api import ApiRequest, OffScript, Reply, Text, ToolCall
from hyperhive.testing.walled_claude import (
    open_walled_api,
    until,
    walled_claude_problem,
    walled_claude_settings,
)

if TYPE_CHECKING:
    from hyperhive.testing import TestHive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(walled_claude_problem() is not None, reason=str(walled_claude_problem())),
]
GREETING = "hello from the approved config"
# A stdio MCP server with one tool, `note`: what the manager ships in alice's repo.
NOTES_SERVER = """\
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method, result = msg.get("method"), None
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "notes", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": "note", "description": "Keep a note.",
                             "inputSchema": {"type": "object", "properties": {}}}]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "noted"}]}
    reply = {"jsonrpc": "2.0", "id": msg["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": "no such method"}
    else:
        reply["result"] = result
    print(json.dumps(reply), flush=True)
"""
AGENT_TOML = f"""\
[env]
GREETING = "{GREETING}"

[mcp_servers.notes]
command = "{sys.executable}"
args = ["-S", "/config/notes_server.py"]
"""
SHA = re.compile(r"\b[0-9a-f]{40}\b")


def _commit_command() -> str:
    """The manager's one Bash call: write alice's config, commit it, print the sha."""
    return (
        "cd /agents/alice/config && "
        f"cat > agent.toml <<'EOF'\n{AGENT_TOML}EOF\n"
        f"cat > notes_server.py <<'EOF'\n{NOTES_SERVER}EOF\n"
        "git add agent.toml notes_server.py && "
        "git commit -q -m 'greet people; keep notes' && git rev-parse HEAD"
    )


def _is(agent: str, request: ApiRequest) -> bool:
    return f"You are {agent}" in request.system_text


def _manager(request: ApiRequest) -> Reply | None:
    """The manager's script: one step per request, chosen by the tool result it carries.

    A result the next step cannot follow ends the test at once (`OffScript`), saying what the
    manager was told: nothing else would come, and the test would sit to its time limit.
    """
    results = request.tool_results
    if not results:  # a wake: the operator's request, or news after it (nothing to do)
        if "give alice a greeting" in request.last_user_text:
            return ToolCall("mcp__hive__request_init_config", {"name": "alice"})
        return None
    (result,) = results
    told, found = result.text, SHA.search(result.text)
    if not result.is_error:
        if result.name == "mcp__hive__request_init_config" and "alice is ready" in told:
            return ToolCall("Bash", {"command": _commit_command(), "description": "commit"})
        if result.name == "Bash" and found:
            arguments = {"agent": "alice", "commit_ref": found[0], "description": "greet; notes"}
            return ToolCall("mcp__hive__request_apply_commit", arguments)
        if result.name == "mcp__hive__request_apply_commit" and "waits for the operator" in told:
            return None
    raise OffScript(f"the manager's {result.name} call answered: {told}")


def _alice(request: ApiRequest) -> Reply | None:
    results = request.tool_results
    if not results:
        if "show me your greeting" in request.last_user_text:
            return ToolCall("Bash", {"command": 'echo "greeting=$GREETING"', "description": "env"})
        return None
    (result,) = results
    if result.is_error or result.name != "Bash":
        raise OffScript(f"alice's {result.name} call answered: {result.text}")
    return None


def _script(request: ApiRequest) -> Reply:
    for agent, script in (("manager", _manager), ("alice", _alice)):
        if _is(agent, request):
            reply = script(request)
            if reply is not None:
                return reply
    return Text("done.")


async def _pending(hive: TestHive) -> wire.Approval:
    async with hive.operator() as operator:

        async def fetched() -> wire.Approval | None:
            approvals = (await operator.call(wire.ListPending(all=True))).approvals
            if not approvals:
                return None
            (approval,) = approvals
            assert approval.status == "pending", approval  # a failed import says why
            # A row is listed as soon as it is stored, before its commit is fetched.
            return approval if approval.fetched_sha is not None else None

        return await until(hive, fetched)


async def _until_deployed(hive: TestHive, id: int) -> None:
    async with hive.operator() as operator:

        async def deployed() -> bool | None:
            config = await operator.call(wire.ShowConfig(name="alice"))
            stages = {t.stage for t in config.tags if t.id == id}
            assert "failed" not in stages, config
            return True if "deployed" in stages and config.deploy == id else None

        await until(hive, deployed)


def _tags_at(applied: Path, commit: str) -> set[str]:
    done = subprocess.run(
        ["git", "--git-dir", str(applied), "tag", "--points-at", commit],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(done.stdout.split())


async def test_the_managers_model_changes_a_config_and_the_operator_approves_it(
    short_tmp: Path,
) -> None:
    with trio.fail_after(280):
        async with open_walled_api() as api:
            api.on(lambda request: True, _script)
            settings = walled_claude_settings(api, ensure_manager=True)
            async with open_test_hive(short_tmp / "hive", containers=settings) as hive:
                await hive.handles.agents.spawn("alice")
                async with hive.operator() as operator:
                    await operator.call(wire.Send(to="manager", body="give alice a greeting"))
                pending = await _pending(hive)
                assert (pending.agent, pending.kind, pending.status) == (
                    "alice", "apply_commit", "pending",
                )  # fmt: skip
                sha = pending.fetched_sha
                assert sha is not None
                approved = await trio.to_thread.run_sync(
                    lambda: run_cli(hive.paths.root, "approve", str(pending.id))
                )
                assert approved.returncode == 0, approved.stderr
                await _until_deployed(hive, pending.id)

                async with hive.operator() as operator:
                    await operator.call(wire.Send(to="alice", body="show me your greeting"))
                with trio.fail_after(120):
                    after = await api.wait_for(
                        lambda r: _is("alice", r) and f"greeting={GREETING}" in r.last_user_text
                    )
                view = await hive.handles.agents.view("alice")
                applied = RepoPaths(hive.paths.configs_dir).applied("alice")
                main = await trio.to_thread.run_sync(
                    lambda: subprocess.run(
                        ["git", "--git-dir", str(applied), "rev-parse", "main"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.strip()
                )
                tags = await trio.to_thread.run_sync(_tags_at, applied, sha)

    # The manager's model did it with its own tools, and heard back what they did.
    told = "\n".join(r.last_user_text for r in api.requests if _is("manager", r))
    assert "the config repo of alice is ready at /agents/alice/config" in told
    assert f"waits for the operator as approval #{pending.id}" in told
    # Alice runs the new config: the env value reached her shell, the extra server her claude.
    assert "mcp__notes__note" in after.tool_names
    assert (view.state, view.deployed_sha) == ("running", sha)
    # The applied repo records the whole way, and main is the deployed commit.
    id = pending.id
    assert tags == {f"proposal/{id}", f"approved/{id}", f"building/{id}", f"deployed/{id}"}
    assert main == sha
    assert f"approved #{id} (apply_commit of alice)" in approved.stdout
