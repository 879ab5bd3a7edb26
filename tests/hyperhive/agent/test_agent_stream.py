"""The stream-json parser and turn tracker, on real captures of Claude Code's output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperhive.agent.outcome import Outcome
from hyperhive.agent.stream import (
    ApiRetry,
    AssistantBlock,
    Compacted,
    ControlResponse,
    Init,
    Other,
    PermissionDenied,
    RateLimit,
    Result,
    StreamEvent,
    ToolProgress,
    ToolResult,
    TurnTracker,
    classify,
    decode,
    parse_line,
)

FIXTURES = Path(__file__).parent / "fixtures" / "stream"
ALL = sorted(FIXTURES.glob("*.jsonl"))


def _events(name: str) -> list[StreamEvent]:
    lines = (FIXTURES / name).read_bytes().splitlines()
    return [event for line in lines for obj in parse_line(line) for event in decode(obj)]


def _track(name: str) -> TurnTracker:
    tracker = TurnTracker()
    for event in _events(name):
        tracker.observe(event)
    return tracker


def test_there_are_fixtures() -> None:
    assert len(ALL) == 14


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_line_of_every_fixture_decodes_to_a_known_event(path: Path) -> None:
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        objects = parse_line(line)
        assert len(objects) == 1, f"line {number}"
        events = decode(objects[0])
        assert events, f"line {number}"
        for event in events:
            # Every top-level type the CLI printed is understood, except raw API deltas
            # (stream_event) and system subtypes the harness has no use for.
            if isinstance(event, Other):
                assert (event.type, event.subtype) in {
                    ("stream_event", None),
                    ("system", "thinking_tokens"),
                    ("user", None),
                }, f"line {number}: {event}"


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("01_plain_text.jsonl", Outcome.OK),
        ("02_mcp_tool_call_trio_server.jsonl", Outcome.OK),
        ("03_permission_denied.jsonl", Outcome.OK),
        ("04_thinking_partial_messages.jsonl", Outcome.OK),
        ("05_http429_apikey_retries.jsonl", Outcome.RATE_LIMITED),
        ("06_http529_overloaded.jsonl", Outcome.FAILED),
        ("07_prompt_too_long_single_turn.jsonl", Outcome.PROMPT_TOO_LONG),
        ("08_streamjson_input_multiturn_manual_compact.jsonl", Outcome.OK),
        ("09_prompt_too_long_auto_compact_retry.jsonl", Outcome.OK),
        ("10_oauth_rate_limit_event_allowed.jsonl", Outcome.OK),
        ("11_oauth_subscription_limit_429.jsonl", Outcome.RATE_LIMITED),
        ("12_mcp_tool_timeout.jsonl", Outcome.OK),
        ("13_long_mcp_tool_200s_tool_progress.jsonl", Outcome.OK),
        ("16_interrupt_control_request.jsonl", Outcome.INTERRUPTED),
    ],
)
def test_each_capture_is_classified_as_the_harness_must_treat_it(
    name: str, outcome: Outcome
) -> None:
    assert _track(name).outcome() is outcome


def test_a_tool_call_turn_counts_the_tool_once_and_reads_context_from_the_last_inference() -> None:
    tracker = _track("02_mcp_tool_call_trio_server.jsonl")
    assert tracker.tool_calls == {"mcp__hive__whoami": 1}
    assert tracker.session_id == "748bc0be-953b-4fe6-8eec-3b856ec82dd9"
    assert tracker.mcp_servers == {"hive": "connected"}
    assert tracker.model == "claude-opus-5-5"
    assert tracker.context_window == 1_000_000
    # Usage is the result's sum over both inferences, not the per-block snapshots.
    assert tracker.usage.input_tokens == 511
    assert tracker.usage.cache_creation_tokens == 100
    assert tracker.usage.output_tokens == 24
    assert tracker.cost_usd == pytest.approx(0.003024)
    # The context is the last inference's prompt, which is larger than the first's.
    blocks = [
        e for e in _events("02_mcp_tool_call_trio_server.jsonl") if isinstance(e, AssistantBlock)
    ]
    assert tracker.ctx_tokens == blocks[-1].usage.prompt
    assert tracker.ctx_tokens > blocks[0].usage.prompt


def test_cost_over_several_results_in_one_process_is_not_double_counted() -> None:
    tracker = _track("08_streamjson_input_multiturn_manual_compact.jsonl")
    assert len(tracker.results) == 5
    # total_cost_usd is cumulative per process; the per-result costs add up to the last one.
    assert tracker.cost_usd == pytest.approx(tracker.results[-1].total_cost_usd)
    assert tracker.compactions == 1


def test_compaction_events_are_seen() -> None:
    events = _events("09_prompt_too_long_auto_compact_retry.jsonl")
    boundaries = [e for e in events if isinstance(e, Compacted)]
    assert boundaries  # the CLI compacted on its own (twice in this capture)
    assert all(b.trigger == "auto" and b.pre_tokens > 0 for b in boundaries)
    assert _track("09_prompt_too_long_auto_compact_retry.jsonl").compactions == len(boundaries)


def test_a_subscription_limit_reports_when_it_resets() -> None:
    tracker = _track("11_oauth_subscription_limit_429.jsonl")
    assert tracker.rate_limit_rejected
    assert tracker.resets_at == 1795292965
    limit = next(
        e for e in _events("11_oauth_subscription_limit_429.jsonl") if isinstance(e, RateLimit)
    )
    assert limit.limit_type == "five_hour"


def test_an_allowed_rate_limit_event_is_not_a_limit() -> None:
    tracker = _track("10_oauth_rate_limit_event_allowed.jsonl")
    assert not tracker.rate_limit_rejected
    assert tracker.resets_at is None


def test_api_key_429_retries_are_visible() -> None:
    retries = [e for e in _events("05_http429_apikey_retries.jsonl") if isinstance(e, ApiRetry)]
    assert [(r.attempt, r.error_status, r.error) for r in retries] == [
        (1, 429, "rate_limit"),
        (2, 429, "rate_limit"),
    ]
    result = _track("05_http429_apikey_retries.jsonl").last_result
    assert result is not None
    assert result.is_error
    assert result.subtype == "success"  # is_error is the truth, not subtype


def test_synthetic_error_messages_do_not_count_as_context_or_text() -> None:
    tracker = _track("07_prompt_too_long_single_turn.jsonl")
    assert tracker.ctx_tokens is None
    assert tracker.assistant_text == []


def test_permission_denials_tool_timeouts_progress_and_interrupts_are_decoded() -> None:
    denied = [e for e in _events("03_permission_denied.jsonl") if isinstance(e, PermissionDenied)]
    assert [d.tool_name for d in denied] == ["mcp__hive__send"]
    results = [e for e in _events("12_mcp_tool_timeout.jsonl") if isinstance(e, ToolResult)]
    assert results[0].is_error
    assert "timed out" in results[0].text
    progress = [
        e
        for e in _events("13_long_mcp_tool_200s_tool_progress.jsonl")
        if isinstance(e, ToolProgress)
    ]
    assert len(progress) == 6
    assert progress[0].tool_name == "mcp__hive__slow"
    control = [
        e for e in _events("16_interrupt_control_request.jsonl") if isinstance(e, ControlResponse)
    ]
    assert control == [ControlResponse("req_1", "success")]


def test_init_repeats_per_turn_and_is_not_a_restart() -> None:
    inits = [
        e
        for e in _events("08_streamjson_input_multiturn_manual_compact.jsonl")
        if isinstance(e, Init)
    ]
    assert len(inits) >= 4
    assert len({i.session_id for i in inits}) == 1


def test_noise_blank_lines_and_non_objects_are_dropped() -> None:
    assert parse_line(b"") == []
    assert parse_line(b"   \n") == []
    assert parse_line(b"Warning: something on stdout") == []
    assert parse_line(b"[1, 2]") == []
    assert parse_line(b"\xff\xfe garbage") == []


def test_a_rate_limit_event_spliced_into_another_line_is_recovered() -> None:
    # anthropics/claude-code#49640: the event is written in the middle of another line.
    event = '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":42}}'
    torn = '{"type":"assistant","message":{"content":[{"type":"text","te' + event + 'xt":"hi"}]}}'
    objects = parse_line(torn)
    assert [o["type"] for o in objects] == ["rate_limit_event"]
    (limit,) = decode(objects[0])
    assert limit == RateLimit("rejected", 42.0, None)


def test_fields_of_the_wrong_shape_read_as_empty() -> None:
    weird = {
        "type": "result",
        "is_error": "yes",
        "usage": [],
        "total_cost_usd": "lots",
        "errors": "boom",
        "modelUsage": 5,
    }
    (result,) = decode(weird)
    assert isinstance(result, Result)
    assert not result.is_error
    assert result.total_cost_usd == 0.0
    assert result.errors == ()
    assert decode({"type": "brand_new_event"}) == [Other("brand_new_event", None)]
    assert decode({"type": "assistant", "message": {"content": "not a list"}}) == []


def test_no_result_at_all_is_a_failure_and_a_missing_session_is_recognised() -> None:
    assert classify(None) is Outcome.FAILED
    gone = json.loads(
        '{"type":"result","subtype":"error_during_execution","is_error":true,'
        '"errors":["No conversation found with session ID: abc"]}'
    )
    (result,) = decode(gone)
    assert isinstance(result, Result)
    assert classify(result) is Outcome.NO_SESSION


# -- never raises (issue 9): hostile numbers, depth, bytes --------------------------------------


def _fold(line: bytes | str) -> TurnTracker:
    """What the harness does with one stdout line; plus everything it then reads off the tracker."""
    tracker = TurnTracker()
    for obj in parse_line(line):
        json.dumps(obj, default=str)  # the events bus stores it
        for event in decode(obj):
            tracker.observe(event)
    tracker.outcome()
    for count in (*_usage_counts(tracker), tracker.ctx_tokens or 0, tracker.context_window or 0):
        assert -(2**63) < count < 2**63  # fits a sqlite INTEGER
    assert math.isfinite(tracker.cost_usd)
    assert tracker.resets_at is None or math.isfinite(tracker.resets_at)
    return tracker


def _usage_counts(tracker: TurnTracker) -> tuple[int, ...]:
    usage = tracker.usage
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_creation_tokens,
    )


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "1e308"]
)
def test_a_result_with_absurd_numbers_is_read_not_raised(number: str) -> None:
    line = (
        '{"type":"result","subtype":"success","is_error":false,"session_id":"s",'
        f'"total_cost_usd":{number},"num_turns":{number},"duration_ms":{number},'
        f'"api_error_status":{number},"usage":{{"input_tokens":{number},"output_tokens":1}},'
        f'"model_usage_since_last_result":{{"m":{{"inputTokens":{number},"costUSD":{number},'
        f'"contextWindow":{number}}}}}}}'
    )
    tracker = _fold(line)
    assert tracker.outcome() is Outcome.OK
    assert tracker.cost_usd in (0.0, 1e308) or math.isfinite(tracker.cost_usd)
    rate = (
        '{"type":"rate_limit_event","rate_limit_info":'
        f'{{"status":"rejected","resetsAt":{number}}}}}'
    )
    assert _fold(rate).rate_limit_rejected
    block = (
        '{"type":"assistant","message":{"id":"m","model":"x","content":[{"type":"text",'
        f'"text":"hi"}}],"usage":{{"input_tokens":{number}}}}}}}'
    )
    _fold(block)


def test_deep_nesting_huge_digits_and_torn_lines_are_dropped_not_raised() -> None:
    assert parse_line("[" * 100_000) == []
    assert parse_line('{"type":"x","a":' + "[" * 100_000) == []
    assert parse_line('{"type":"x","n":' + "9" * 5000 + "}") == []
    assert parse_line(b"\xff\xfe" + b'{"type":"user"}') == [{"type": "user"}]
    many = '{"type":' * 200_000  # salvage is bounded: returns quickly with nothing
    assert parse_line(many) == []


_KEYS = st.sampled_from(
    [
        "type", "subtype", "message", "content", "usage", "result", "is_error", "session_id",
        "total_cost_usd", "model_usage_since_last_result", "modelUsage", "rate_limit_info",
        "resetsAt", "status", "input_tokens", "inputTokens", "costUSD", "contextWindow",
        "compact_metadata", "pre_tokens", "mcp_servers", "tools", "name", "id", "input",
        "text", "model", "error", "api_error_status", "terminal_reason", "errors",
        "parent_tool_use_id", "tool_use_id", "response", "request_id", "elapsed_time_seconds",
    ]
)  # fmt: skip
_TYPES = st.sampled_from(
    ["system", "assistant", "user", "result", "rate_limit_event", "tool_progress",
     "control_response", "stream_event", "init", "compact_boundary", "status", "api_retry",
     "permission_denied", "tool_use", "text", "tool_result", "rejected"]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | _TYPES
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_KEYS | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=40,
)
_EVENT = st.fixed_dictionaries({"type": _TYPES}, optional={"subtype": _TYPES}).flatmap(
    lambda head: st.dictionaries(_KEYS, _JSON, max_size=8).map(lambda rest: {**rest, **head})
)
_FIXTURE_LINES = [line for path in ALL for line in path.read_bytes().splitlines()]


@settings(max_examples=200)
@given(_EVENT)
def test_any_event_shaped_object_never_raises(obj: dict[str, object]) -> None:
    _fold(json.dumps(obj))  # NaN and Infinity come out as the bare words the CLI could print


@settings(max_examples=200)
@given(st.binary(max_size=2000) | st.text(max_size=2000))
def test_any_line_never_raises(line: bytes | str) -> None:
    _fold(line)


@settings(max_examples=200)
@given(st.sampled_from(_FIXTURE_LINES), st.integers(0, 4000), st.binary(max_size=40))
def test_a_real_line_cut_or_spliced_anywhere_never_raises(
    line: bytes, at: int, splice: bytes
) -> None:
    _fold(line[:at] + splice + line[at:])
    _fold(line[:at])
