"""The wire format: golden lines pin it, Hypothesis round-trips every type, bad input is named."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from hyperhive import wire
from hyperhive.errors import BadRequest, LineTooLong, RemoteError
from hyperhive.testing.wire_strategies import example, strategy_for

GOLDEN = Path(__file__).parent / "golden" / "wire"
REGENERATE = os.environ.get("HYPERHIVE_REGEN_GOLDEN") == "1"

REQUEST_TYPES = sorted((c.request for c in wire.COMMANDS.values()), key=lambda c: c.__name__)
# Every reply type is some command's: the table names them all.
PAYLOAD_TYPES = sorted({c.reply for c in wire.COMMANDS.values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", REQUEST_TYPES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_every_request_round_trips(cls: type[Any], data: st.DataObject) -> None:
    request = data.draw(strategy_for(cls))
    line = wire.encode_request(request)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert wire.decode_request(line) == request


@pytest.mark.parametrize("cls", PAYLOAD_TYPES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_every_response_round_trips(cls: type[Any], data: st.DataObject) -> None:
    payload = data.draw(strategy_for(cls))
    line = wire.encode_response(payload)
    envelope = json.loads(line)
    assert (envelope["version"], envelope["ok"], envelope["error"]) == (1, True, None)
    assert wire.decode_response(line, cls) == payload


@given(event=strategy_for(wire.Event))
def test_every_event_round_trips(event: wire.Event) -> None:
    assert wire.decode_event(wire.encode_event(event)) == event


@given(event=strategy_for(wire.HelperEvent))
def test_every_helper_event_round_trips(event: wire.HelperEvent) -> None:
    body = wire.encode_helper_event(event)
    assert "\n" not in body
    assert wire.decode_helper_event(body) == event


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("hello", "not valid JSON"),
        ('{"event":"party"}', "unknown helper event 'party'"),
        ('{"id":1}', "unknown helper event None"),
        ('{"event":"reminder_due","id":"1","message":"m"}', "expected int @ .id"),
    ],
)
def test_malformed_helper_events_become_readable_errors(body: str, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as caught:
        wire.decode_helper_event(body)
    assert says in str(caught.value)


def test_a_string_is_not_a_list_of_options() -> None:
    with pytest.raises(BadRequest, match=r"expected tuple @ \.options"):
        wire.decode_request(b'{"cmd":"ask","question":"q","options":"ab"}')


_CONTAINER = wire.ContainerView(
    name="alice",
    role="agent",
    state="running",
    wanted="running",
    network=True,
    model="claude-sonnet-4-5",
)
_QUESTION = wire.Question(
    3, "alice", "bob", "ship?", ("yes", "no"), False, 1700000000.0, expires_at=1700000600.0
)
GOLDEN_CASES: dict[str, bytes] = {
    "request_send": wire.encode_request(wire.Send(to="bob", body="hi")),
    "request_recv": wire.encode_request(wire.Recv(wait_seconds=30.0, max=8)),
    "request_status": wire.encode_request(wire.GetStatus()),
    "response_error": wire.encode_error("unknown agent 'bob'"),
    "response_messages": wire.encode_response(
        wire.Messages((wire.Delivery(7, "alice", "bob", "hi", 1700000000.5, 2, True),))
    ),
    "response_status": wire.encode_response(
        wire.StatusReply(
            pid=42,
            state_dir="/var/lib/hyperhive",
            uptime_seconds=3.5,
            tree=wire.ActorInfo(
                "root",
                "supervisor",
                "running",
                0,
                strategy="one_for_one",
                children=(wire.ActorInfo("broker", "actor", "running", 1, "boom", 0, 64),),
            ),
        )
    ),
    "event_sent": wire.encode_event(
        wire.Event(3, 1700000000.0, wire.MessageSent(wire.Message(1, "a", "b", "x", 1.0)))
    ),
    "event_gap": wire.encode_event(wire.Event(9, 1700000001.0, wire.EventGap(5, 9))),
    "request_spawn": wire.encode_request(wire.Spawn(name="alice", network=False)),
    "request_destroy": wire.encode_request(wire.Destroy(name="alice", purge=True)),
    "response_containers": wire.encode_response(wire.Containers((_CONTAINER,))),
    "event_container_state_changed": wire.encode_event(
        wire.Event(4, 1700000002.0, wire.ContainerStateChanged(_CONTAINER))
    ),
    "event_limit_hit": wire.encode_event(
        wire.Event(6, 1700000004.0, wire.LimitHit("bob", "inbox_messages", "inbox full"))
    ),
    "event_container_crashed": wire.encode_event(
        wire.Event(5, 1700000003.0, wire.ContainerCrashed("alice", 137, "killed by SIGKILL"))
    ),
    "request_ask": wire.encode_request(
        wire.Ask(question="ship?", options=("yes", "no"), multi=False, ttl_seconds=600.0, to="bob")
    ),
    "request_remind": wire.encode_request(
        wire.Remind(message="check ci", delay_seconds=3600.0, file_path="/state/notes/ci.md")
    ),
    "request_cancel_loose_end": wire.encode_request(wire.CancelLooseEnd(kind="question", id=3)),
    "response_whoami": wire.encode_response(
        wire.WhoamiReply("alice", "agent", "she/her", "0.1.0", 2)
    ),
    "response_loose_ends": wire.encode_response(
        wire.LooseEnds(
            questions=(_QUESTION,),
            reminders=(
                wire.Reminder(
                    id=4,
                    owner="alice",
                    message="check ci",
                    created_at=1700000000.0,
                    due_at=1700003600.0,
                    state="failed",
                    file_path="/state/notes/ci.md",
                    fired_at=1700003600.0,
                    failure="could not write /state/notes/ci.md",
                ),
            ),
        )
    ),
    "event_question_resolved": wire.encode_event(
        wire.Event(
            6,
            1700000004.0,
            wire.QuestionResolved(
                attrs.evolve(_QUESTION, answer="yes", answerer="bob", answered_at=1700000004.0)
            ),
        )
    ),
    "helper_question_asked": (
        wire.encode_helper_event(wire.QuestionAsked(3, "alice", "ship?", ("yes", "no"), False))
        + "\n"
    ).encode(),
    "helper_question_answered": (
        wire.encode_helper_event(wire.QuestionAnswered(3, "ship?", "yes", "ttl-watchdog")) + "\n"
    ).encode(),
    "helper_reminder_due": (
        wire.encode_helper_event(
            wire.ReminderDue(
                4, "reminder #4: its message (8 bytes) is in /state/x.md", "/state/x.md"
            )
        )
        + "\n"
    ).encode(),
    "helper_container_crash": (
        wire.encode_helper_event(wire.ContainerCrash("alice", 3, "Traceback ...")) + "\n"
    ).encode(),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_lines_pin_the_format(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(GOLDEN_CASES[name])
    assert GOLDEN_CASES[name] == path.read_bytes()


@pytest.mark.parametrize("cmd", sorted(wire.COMMANDS))
def test_every_command_has_a_golden_request_and_reply(cmd: str) -> None:
    """One fixture per command, derived from the table: a request line and its answer line."""
    entry = wire.COMMANDS[cmd]
    request, reply = example(entry.request), example(entry.reply)
    lines = wire.encode_request(request) + wire.encode_response(reply)
    path = GOLDEN / "commands" / f"{cmd}.jsonl"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lines)
    assert lines == path.read_bytes(), f"{path} changed; review it and regenerate"
    request_line, reply_line = lines.splitlines()
    assert wire.decode_request(request_line) == request
    assert wire.decode_reply(reply_line, request) == reply


def test_no_golden_fixture_outlives_its_command() -> None:
    fixtures = {path.stem for path in (GOLDEN / "commands").glob("*.jsonl")}
    assert fixtures == set(wire.COMMANDS)


def test_the_unions_match_their_tag_tables() -> None:
    """The typing unions of events are the classes their tables register, no more, no less."""
    assert set(typing.get_args(wire.EventPayload)) == set(wire.EVENTS.values())
    assert set(typing.get_args(wire.HelperEvent)) == set(wire.HELPER_EVENTS.values())
    assert set(typing.get_args(wire.LiveEventPayload)) == set(wire.LIVE_EVENTS.values())


@given(payload=strategy_for(wire.LiveEventPayload))
def test_every_live_event_has_its_tag_and_plain_json_data(payload: wire.LiveEventPayload) -> None:
    kind, data = wire.encode_live_event(payload)
    assert wire.LIVE_EVENTS[kind] is type(payload)
    assert json.loads(json.dumps(data)) == data


def test_every_command_is_exported_and_knows_its_reply() -> None:
    for cmd, entry in wire.COMMANDS.items():
        assert entry.request.__name__ in wire.__all__
        assert getattr(wire, entry.request.__name__) is entry.request
        assert wire.command_of(entry.request).key == cmd
        assert wire.reply_type(example(entry.request)) is entry.reply
    assert "attrs" not in wire.__all__


def test_golden_request_in_the_originals_shape() -> None:
    assert json.loads((GOLDEN / "request_send.json").read_bytes()) == {
        "cmd": "send",
        "to": "bob",
        "body": "hi",
    }


@given(message_id=st.integers(min_value=0, max_value=2**63))
def test_the_fast_send_answer_is_the_generic_one(message_id: int) -> None:
    assert wire.encode_sent(message_id) == wire.encode_response(wire.Sent(message_id))


def test_unknown_keys_are_tolerated_both_ways() -> None:
    request = wire.decode_request(b'{"cmd":"send","to":"bob","body":"hi","urgent":true}')
    assert request == wire.Send(to="bob", body="hi")
    reply = wire.decode_response(b'{"version":2,"ok":true,"error":null,"id":3,"new":1}', wire.Sent)
    assert reply == wire.Sent(id=3)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"{nope", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1,2]", "expected a JSON object"),
        (b'{"to":"bob"}', 'missing "cmd"'),
        (b'{"cmd":"fly"}', "unknown cmd 'fly'"),
        (b'{"cmd":"send","to":5,"body":"x"}', "expected str @ .to"),
        (b'{"cmd":"send","to":"bob"}', "required field missing @ .body"),
        (b'{"cmd":"recv","max":"8"}', "expected int @ .max"),
        (b'{"cmd":"recv","max":true}', "expected int @ .max"),
        (b'{"cmd":"recv","wait_seconds":"soon"}', "@ .wait_seconds"),
        (b'{"cmd":"recv","wait_seconds":NaN}', "@ .wait_seconds"),
        (b'{"cmd":"recv","wait_seconds":Infinity}', "@ .wait_seconds"),
    ],
)
def test_malformed_requests_become_readable_errors(line: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as caught:
        wire.decode_request(line)
    assert says in str(caught.value)


def test_error_response_raises_the_daemons_sentence() -> None:
    with pytest.raises(RemoteError, match="unknown agent 'bob'"):
        wire.decode_response(wire.encode_error("unknown agent 'bob'"), wire.Sent)


async def _reader_over(chunks: list[bytes], max_bytes: int) -> wire.LineReader:
    send, receive = trio.testing.memory_stream_one_way_pair()
    for chunk in chunks:
        await send.send_all(chunk)
    await send.aclose()
    return wire.LineReader(receive, max_bytes=max_bytes)


async def test_line_reader_splits_lines_across_chunks() -> None:
    reader = await _reader_over([b'{"a":', b"1}\n{", b'"b":2}\n', b"tail"], max_bytes=100)
    assert [await reader.read_line() for _ in range(4)] == [
        b'{"a":1}',
        b'{"b":2}',
        b"tail",
        None,
    ]


async def test_oversized_line_is_skipped_and_the_next_line_still_reads() -> None:
    huge = b"x" * (10 * 1024 * 1024)
    reader = await _reader_over([huge[:3_000_000], huge[3_000_000:] + b"\nok\n"], max_bytes=1024)
    with pytest.raises(LineTooLong, match="1024 bytes"):
        await reader.read_line()
    assert await reader.read_line() == b"ok"
    assert await reader.read_line() is None


def test_wire_values_compare_hash_and_show_as_attrs_classes_do() -> None:
    """Wire types get equality, hashing and repr from `hyperhive.value`, not attrs."""
    sent, same, other = wire.Sent(3), wire.Sent(3), wire.Sent(4)
    assert sent == same
    assert not sent != same  # noqa: SIM202  (__ne__ is ours too)
    assert sent != other
    assert hash(sent) == hash(same)
    assert len({sent, same, other}) == 2
    assert sent != wire.Acked(3)  # another class with the same fields is not equal
    assert repr(wire.Send(to="bob", body="hi")) == "Send(to='bob', body='hi')"
    assert repr(wire.AckTurn()) == "AckTurn()"
    assert attrs.evolve(sent, id=5) == wire.Sent(5)
    match wire.Recv(wait_seconds=1.0, max=2):
        case wire.Recv(wait_seconds=wait, max=count):
            assert (wait, count) == (1.0, 2)


def test_a_credential_never_shows_in_a_login_requests_repr() -> None:
    login = wire.Login(variables=("ANTHROPIC_API_KEY=sk-secret",), agents=("alice",))
    assert "sk-secret" not in repr(login)
    assert repr(login) == "Login(agents=('alice',))"
