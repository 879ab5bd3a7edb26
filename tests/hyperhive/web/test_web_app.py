"""The dashboard's routes over a real daemon (fake containers), through real TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hyperhive import wire
from hyperhive.errors import ConfigError, Conflict, NotFound
from hyperhive.web import ApprovalView, Bind, bind_dashboard, dashboard_child
from hyperhive.web.security import CSP

from .conftest import Web, http, open_web


async def test_state_is_one_snapshot_with_its_seq(web: Web) -> None:
    reply = await web.get("/api/state")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    state = reply.json()["state"]
    assert [c["name"] for c in state["containers"]] == ["alice"]
    assert state["containers"][0]["state"] == "running"
    assert state["seq"] >= 1  # alice's registration at least
    assert state["agents"] == ["alice"]


async def test_every_response_carries_the_csp(web: Web) -> None:
    for path in ("/", "/api/state", "/assets/dashboard.js", "/nope"):
        reply = await web.get(path)
        assert reply.headers["content-security-policy"] == CSP, path
        assert reply.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP


async def test_the_shell_and_its_assets_are_served_and_nothing_else(web: Web) -> None:
    page = await web.get("/")
    assert page.status == 200
    assert b"/assets/dashboard.js" in page.body
    assert (await web.get("/assets/vendor/purify.min.js")).status == 200
    assert (await web.get("/assets/../app.py")).status == 404
    assert (await web.get("/assets/%2e%2e/app.py")).status == 404


async def test_a_foreign_host_header_is_refused(web: Web) -> None:
    for host in (f"evil.example:{web.port}", "127.0.0.1:1", "attacker.test"):
        reply = await web.get("/api/state", headers={"Host": host})
        assert reply.status == 403, host
        assert "Host" in reply.json()["error"]
    ok = await web.get("/api/state", headers={"Host": f"localhost:{web.port}"})
    assert ok.status == 200


async def test_a_cross_origin_post_is_refused_and_changes_nothing(web: Web) -> None:
    hi = {"to": "alice", "body": "x"}
    refused = [
        await web.post("/op-send", hi, headers={"Sec-Fetch-Site": "cross-site"}),
        await web.post("/op-send", hi, headers={"Sec-Fetch-Site": "same-site"}),
        await web.post(
            "/op-send", hi, same_origin=False, headers={"Origin": "http://evil.example"}
        ),
        await web.post("/op-send", hi, same_origin=False),
        await web.post("/kill/alice", same_origin=False, headers={"Origin": "null"}),
    ]
    assert [r.status for r in refused] == [403] * 5
    messages = await web.hive.handles.messages.recent(10)
    assert [m.body for m in messages if m.recipient == "alice"] == []
    assert (await web.hive.handles.agents.view("alice")).state == "running"
    origin_only = await web.post(
        "/op-send", {"to": "alice", "body": "x"}, same_origin=False, headers={"Origin": web.origin}
    )
    assert origin_only.status == 200


async def test_op_send_stores_as_the_operator(web: Web) -> None:
    reply = await web.post("/op-send", {"to": "alice", "body": "hi **there**"})
    assert reply.status == 200
    message = reply.json()["message"]
    assert (message["from"], message["to"], message["body"]) == (
        "operator",
        "alice",
        "hi **there**",
    )
    bad = await web.post("/op-send", {"to": "nobody", "body": "x"})
    assert bad.status == 404
    assert "nobody" in bad.json()["error"]
    empty = await web.post("/op-send", {"to": "alice", "body": 5})
    assert empty.status == 400


async def test_a_form_post_is_refused(web: Web) -> None:
    reply = await web.request(
        "POST", "/op-send", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 400
    assert "application/json" in reply.json()["error"]


async def test_answer_and_cancel_questions_through_the_question_desk(web: Web) -> None:
    hive = web.hive.handles
    first = await hive.questions.ask("alice", wire.Ask(question="colour?", options=("red", "blue")))
    second = await hive.questions.ask("alice", wire.Ask(question="size?"))
    state = (await web.get("/api/state")).json()["state"]
    assert [q["id"] for q in state["questions"]] == [first.id, second.id]
    answered = await web.post(f"/answer-question/{first.id}", {"answer": "blue"})
    assert answered.json()["question"]["answer"] == "blue"
    again = await web.post(f"/answer-question/{first.id}", {"answer": "red"})
    assert again.status in (403, 404, 409)
    assert "already" in again.json()["error"]
    assert (await web.post(f"/cancel-question/{second.id}")).status == 200
    assert (await hive.questions.operator_questions(answered=False, limit=10)) == []
    inbox = [m for m in await hive.messages.recent(50) if m.recipient == "alice"]
    assert any('"answer":"blue"' in m.body for m in inbox)


async def test_lifecycle_actions_are_the_lifecycle_s(web: Web) -> None:
    stopped = await web.post("/stop/alice")
    assert stopped.json()["container"]["state"] == "stopped"
    assert stopped.json()["container"]["wanted"] == "stopped"
    started = await web.post("/start/alice")
    assert started.json()["container"]["state"] == "running"
    assert (await web.post("/kill/alice")).json()["container"]["state"] == "stopped"
    assert (await web.post("/explode/alice")).status == 404
    assert (await web.post("/start/bob")).status == 404
    assert (await web.post("/destroy/alice")).status == 200
    tombstones = (await web.get("/api/state")).json()["state"]["tombstones"]
    assert [t["name"] for t in tombstones] == ["alice"]
    assert (await web.post("/purge-tombstone/alice")).status == 200
    assert (await web.get("/api/state")).json()["state"]["tombstones"] == []


async def test_dead_letters_replay_and_drop(web: Web) -> None:
    messages = web.hive.handles.messages
    await messages.send("operator", "alice", "one")
    await messages.send("operator", "alice", "two")
    # Delivered and never acked, six times over: past the redeliveries, both are dead letters.
    for _ in range(6):
        await messages.recv("alice", max=32)
        await messages.requeue_inflight("alice")
    letters = (await web.get("/api/state")).json()["state"]["dead_letters"]
    assert len(letters) == 2
    replayed = await web.post(f"/dead-letter/{letters[0]['id']}/replay")
    assert replayed.status == 200
    assert (await web.post(f"/dead-letter/{letters[1]['id']}/drop")).status == 200
    assert (await web.post(f"/dead-letter/{letters[1]['id']}/drop")).status == 400
    assert (await web.get("/api/state")).json()["state"]["dead_letters"] == []


async def test_logs_are_the_backend_s(web: Web) -> None:
    reply = await web.get("/logs/alice?lines=5")
    assert reply.status == 200
    assert reply.json()["name"] == "alice"
    assert (await web.get("/logs/nobody")).status == 404


class Desk:
    """An `ApprovalDesk` that records what the routes asked of it."""

    def __init__(self) -> None:
        self.view = ApprovalView(
            id=7,
            agent="alice",
            kind="apply_commit",
            status="pending",
            description="more memory",
            commit_ref="a" * 40,
            requested_at=1.0,
            diff="--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
            capabilities=("+ memory 8 GiB",),
        )
        self.calls: list[tuple[str, int, str]] = []

    async def open(self) -> list[ApprovalView]:
        return [self.view] if self.view.status == "pending" else []

    async def detail(self, id: int) -> ApprovalView:
        if id != self.view.id:
            raise NotFound(f"no approval {id}")
        return self.view

    async def approve(self, id: int) -> ApprovalView:
        return self._decide("approve", id, "", "approved")

    async def deny(self, id: int, reason: str) -> ApprovalView:
        return self._decide("deny", id, reason, "denied")

    def _decide(self, verb: str, id: int, reason: str, status: str) -> ApprovalView:
        if id != self.view.id:
            raise NotFound(f"no approval {id}")
        if self.view.status != "pending":
            raise Conflict(f"approval {id} is {self.view.status}")
        import attrs

        self.calls.append((verb, id, reason))
        self.view = attrs.evolve(self.view, status=status, note=reason or None)
        return self.view


async def test_approve_and_deny_call_the_desk(short_tmp: Path) -> None:
    desk = Desk()
    with trio.fail_after(30):
        async with open_web(short_tmp / "hive", approvals=desk) as web:
            state = (await web.get("/api/state")).json()["state"]
            assert state["approvals"][0]["capabilities"] == ["+ memory 8 GiB"]
            assert (await web.post("/deny/7", {"reason": "  "})).status == 400
            assert desk.calls == []
            denied = await web.post("/deny/7", {"reason": "too much memory"})
            assert denied.json()["approval"]["note"] == "too much memory"
            assert desk.calls == [("deny", 7, "too much memory")]
            assert (await web.post("/approve/7")).status == 409
            assert (await web.post("/approve/8")).status == 404


async def test_the_hives_own_desk_names_an_unknown_approval(web: Web) -> None:
    assert (await web.get("/api/state")).json()["state"]["approvals"] == []
    for reply in (
        await web.post("/approve/1"),
        await web.post("/deny/1", {"reason": "no"}),
        await web.get("/api/approvals/1"),
    ):
        assert reply.status == 404
        assert "there is no approval 1" in reply.json()["error"]


async def test_a_token_guards_every_request(short_tmp: Path) -> None:
    token = "t0ken-for-the-operator-only"
    with trio.fail_after(30):
        async with open_web(short_tmp / "hive", token=token) as web:
            assert (await web.get("/api/state")).status == 401
            assert (await web.get("/")).status == 303
            assert (await web.get("/login")).status == 200
            assert (await web.post("/login", {"token": "wrong-token-wrong-token"})).status == 403
            login = await web.post("/login", {"token": token})
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            session = cookie.split(";")[0]
            assert (await web.get("/api/state", headers={"Cookie": session})).status == 200
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await web.get("/api/state", headers=bearer)).status == 200


def test_a_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="token"):
        dashboard_child(Bind("0.0.0.0", 7000))
    with pytest.raises(ConfigError, match="16 characters"):
        dashboard_child(Bind("0.0.0.0", 7000), token="short")
    dashboard_child(Bind("0.0.0.0", 7000), token="a-long-enough-operator-token")
    dashboard_child(Bind("127.0.0.1", 7000))


def test_a_busy_port_is_a_clear_error_after_retries() -> None:
    holder = bind_dashboard(Bind("127.0.0.1", 0))
    try:
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port} is in use.*--dashboard"):
            bind_dashboard(Bind("127.0.0.1", port), retries=2, delay=0.01)
    finally:
        holder.close()
    again = bind_dashboard(Bind("127.0.0.1", port), retries=0)  # SO_REUSEADDR: free at once
    again.close()


async def test_serve_reports_a_busy_dashboard_port_and_exits(short_tmp: Path) -> None:
    from hyperhive.testing import run_cli

    holder = bind_dashboard(Bind("127.0.0.1", 0))
    try:
        port = holder.getsockname()[1]
        result = await trio.to_thread.run_sync(
            lambda: run_cli(
                short_tmp,
                "serve",
                "--backend",
                "none",
                "--dashboard",
                f"127.0.0.1:{port}",
                timeout=60,
            )
        )
    finally:
        holder.close()
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "Traceback" not in result.stderr


async def test_http_without_host_is_refused(web: Web) -> None:
    reply = await http(web.port, "GET", "/api/state", {"Connection": "close"}, b"")
    assert reply.status in (400, 403)


async def test_file_preview_reads_the_agent_s_state_safely(web: Web) -> None:
    state = web.hive.paths.agent_state_dir("alice")
    (state / "notes").mkdir(parents=True, exist_ok=True)
    (state / "notes" / "plan.md").write_text("# plan\n<script>x</script>\n")
    (state / "notes" / "secret.md").symlink_to("/etc/shadow")
    ok = await web.get("/api/file?agent=alice&path=/state/notes/plan.md")
    assert ok.status == 200
    assert ok.json()["text"] == "# plan\n<script>x</script>\n"
    assert ok.json()["path"] == "/state/notes/plan.md"
    relative = await web.get("/api/file?agent=alice&path=notes/plan.md")
    assert relative.json()["size"] == len("# plan\n<script>x</script>\n")
    refused = [
        await web.get("/api/file?agent=alice&path=/state/notes/secret.md"),
        await web.get("/api/file?agent=alice&path=/state/../../etc/passwd"),
        await web.get("/api/file?agent=alice&path=/etc/passwd"),
        await web.get("/api/file?agent=alice&path=/state/notes/missing.md"),
        await web.get("/api/file?agent=nobody&path=/state/x.md"),
    ]
    assert [r.status for r in refused] == [400, 400, 400, 404, 404]
    assert "root:" not in b"".join(r.body for r in refused).decode()
