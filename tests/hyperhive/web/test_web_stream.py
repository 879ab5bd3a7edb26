"""`/dashboard/stream` on a real daemon: hello, live frames, resume, a new boot, a slow client."""

from __future__ import annotations

import json
from typing import Any

import trio

from hyperhive import wire
from hyperhive.core.events import Subscriber
from hyperhive.web.ops import DashboardStats
from hyperhive.web.sse import FrameCache, concerns, event_stream

from .conftest import Web


class Stream:
    """One SSE response read frame by frame."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.status = 0

    @classmethod
    async def open(
        cls, web: Web, last_event_id: str | None = None, path: str = "/dashboard/stream"
    ) -> Stream:
        stream = await trio.open_tcp_stream("127.0.0.1", web.port)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n{extra}\r\n"
        await stream.send_all(request.encode())
        self = cls(stream)
        head = await self._until(b"\r\n\r\n")
        self.status = int(head.split()[1])
        return self

    async def _until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            assert chunk, "the stream ended"
            self._buffer += chunk
        part, _, self._buffer = self._buffer.partition(marker)
        return part

    async def frame(self) -> tuple[str, dict[str, Any]]:
        """The next data frame as (id, data); chunk-size lines and comments are skipped."""
        while True:
            raw = await self._until(b"\n\n")
            fields: dict[str, str] = {}
            for line in raw.split(b"\n"):
                key, sep, value = line.decode().partition(": ")
                if sep and key in ("id", "data"):
                    fields[key] = value
            if "data" in fields:
                return fields.get("id", ""), json.loads(fields["data"])

    async def aclose(self) -> None:
        await self._stream.aclose()


async def test_a_stream_says_hello_then_every_event_with_its_seq(web: Web) -> None:
    with trio.fail_after(10):
        stream = await Stream.open(web)
        assert stream.status == 200
        event_id, hello = await stream.frame()
        assert hello["kind"] == "hello"
        assert hello["resumed"] is False
        boot = hello["boot"]
        assert event_id == f"{boot}.{hello['seq']}"
        await web.hive.handles.messages.send("operator", "alice", "live one")
        while True:
            event_id, event = await stream.frame()
            if event["kind"] == "sent" and event["message"]["body"] == "live one":
                break
        assert event_id == f"{boot}.{event['seq']}"
        assert event["seq"] > hello["seq"]
        await stream.aclose()


async def test_a_reconnect_resumes_after_its_last_event_id(web: Web) -> None:
    with trio.fail_after(10):
        stream = await Stream.open(web)
        _, hello = await stream.frame()
        await stream.aclose()
        boot, seq = hello["boot"], hello["seq"]
        await web.hive.handles.messages.send("operator", "alice", "while away")
        resumed = await Stream.open(web, f"{boot}.{seq}")
        _, hello2 = await resumed.frame()
        assert hello2["resumed"] is True
        assert hello2["seq"] == seq
        bodies = []
        while "while away" not in bodies:
            _, event = await resumed.frame()
            assert event["seq"] > seq
            if event["kind"] == "sent":
                bodies.append(event["message"]["body"])
        await resumed.aclose()


async def test_a_last_event_id_from_another_daemon_is_not_resumed(web: Web) -> None:
    with trio.fail_after(10):
        stream = await Stream.open(web, "1234.5")
        _, hello = await stream.frame()
        assert hello["resumed"] is False
        assert hello["boot"] != "1234"
        await stream.aclose()


async def test_a_resume_older_than_the_history_gets_a_gap(web: Web) -> None:
    with trio.fail_after(10):
        stream = await Stream.open(web)
        _, hello = await stream.frame()
        await stream.aclose()
        # The hub remembers 1000 events; push the resume point out of them.
        await web.hive.handles.messages.send_many(
            "operator", [("alice", f"m{i}") for i in range(1100)]
        )
        resumed = await Stream.open(web, f"{hello['boot']}.{hello['seq']}")
        await resumed.frame()  # hello
        _, first = await resumed.frame()
        assert first["kind"] == "gap"
        assert first["first_seq"] == hello["seq"] + 1
        await resumed.aclose()


class _Ops:
    """Just enough of `DashboardOps` for `event_stream`, with a tiny subscriber queue."""

    boot = "b1"

    def __init__(self) -> None:
        self.subscriber = Subscriber(capacity=4)
        self.unsubscribed = False
        self.stats = DashboardStats()

    async def subscribe(self) -> Subscriber:
        return self.subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.unsubscribed = True

    async def history(self, limit: int) -> wire.HistoryReply:
        return wire.HistoryReply(seq=0, events=())


async def test_a_client_that_falls_behind_gets_one_gap_frame() -> None:
    ops = _Ops()
    body = event_stream(ops, None, FrameCache("b1"))  # type: ignore[arg-type]
    first = await body.__anext__()
    assert b'"kind":"hello"' in first
    for seq in range(1, 11):  # the client reads nothing meanwhile
        ops.subscriber.offer(wire.Event(seq, 1.0, wire.AgentRegistered(f"a{seq}")))
    chunk = await body.__anext__()
    frames = [f for f in chunk.split(b"\n\n") if f]
    assert len(frames) == 5
    assert frames[-1].startswith(b"id: b1.10\n")
    assert b'"first_seq":5,"last_seq":10' in frames[-1]
    await body.aclose()
    assert ops.unsubscribed


async def test_an_agents_inbox_stream_has_only_its_mail_and_resumes(web: Web) -> None:
    send = web.hive.handles.messages.send
    with trio.fail_after(10):
        stream = await Stream.open(web, path="/agent/alice/inbox/stream")
        assert stream.status == 200
        _, hello = await stream.frame()
        assert hello["kind"] == "hello"
        await send("alice", "operator", "from alice, not to her")
        await send("operator", "alice", "to alice")
        event_id, event = await stream.frame()
        assert (event["kind"], event["message"]["body"]) == ("sent", "to alice")
        assert event_id == f"{hello['boot']}.{event['seq']}"
        await stream.aclose()
        # Resumed after its last id: what it missed, still only alice's.
        await send("alice", "operator", "again not hers")
        await send("operator", "alice", "while away")
        resumed = await Stream.open(web, event_id, path="/agent/alice/inbox/stream")
        _, hello2 = await resumed.frame()
        assert hello2["resumed"] is True
        _, missed = await resumed.frame()
        assert (missed["kind"], missed["message"]["body"]) == ("sent", "while away")
        await resumed.aclose()
        unknown = await Stream.open(web, path="/agent/nobody/inbox/stream")
        assert unknown.status == 404
        await unknown.aclose()


def test_what_concerns_an_agents_inbox() -> None:
    def message(sender: str, recipient: str) -> wire.Message:
        return wire.Message(1, sender, recipient, "hi", 0.0)

    def question(asker: str, target: str) -> wire.Question:
        return wire.Question(1, asker, target, "?", (), False, 0.0)

    reminder = wire.Reminder(1, "alice", "check", 0.0, 1.0, "pending")
    assert concerns("alice", wire.MessageSent(message("bob", "alice")))
    assert not concerns("alice", wire.MessageSent(message("alice", "bob")))
    assert concerns("alice", wire.MessageDelivered(1, "alice", 1))
    assert not concerns("alice", wire.MessageDelivered(1, "bob", 1))
    assert concerns("alice", wire.MessageDeadLettered(1, "alice", 6))
    assert concerns("alice", wire.QuestionAdded(question("alice", "operator")))
    assert concerns("alice", wire.QuestionResolved(question("bob", "alice")))
    assert not concerns("alice", wire.QuestionAdded(question("bob", "operator")))
    assert concerns("alice", wire.ReminderFired(reminder))
    assert not concerns("bob", wire.ReminderSet(reminder))
    assert concerns("alice", wire.ReminderCancelled(1, "alice", "alice"))
    assert concerns("alice", wire.EventGap(3, 9))
    assert not concerns("alice", wire.AgentRegistered("alice"))
