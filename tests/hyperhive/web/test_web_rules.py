"""The dashboard's pure parts: request checks, SSE framing and resume, the log follower."""

from __future__ import annotations

import pytest

from hyperhive import wire
from hyperhive.errors import ConfigError
from hyperhive.web.logs import new_lines
from hyperhive.web.security import (
    Bind,
    check_bind,
    host_allowed,
    is_loopback,
    parse_bind,
    same_origin_refusal,
    token_matches,
)
from hyperhive.web.sse import FrameCache, parse_last_event_id, resume_frames

LOOP = Bind("127.0.0.1", 7000)


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:7000") == LOOP
    assert parse_bind("[::1]:7001") == Bind("::1", 7001)
    assert str(Bind("::1", 7001)) == "[::1]:7001"
    for bad in ("7000", "localhost", ":7000", "h:99999", "h:x"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            parse_bind(bad)


def test_only_loopback_binds_without_a_token() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.5")
    check_bind(LOOP, None)
    for host in ("0.0.0.0", "::", "192.168.1.5"):
        with pytest.raises(ConfigError, match="operator token"):
            check_bind(Bind(host, 7000), None)
        check_bind(Bind(host, 7000), "x" * 16)


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("127.0.0.1:7000", True),
        ("localhost:7000", True),
        ("LOCALHOST:7000", True),
        ("[::1]:7000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:7001", False),
        ("evil.example:7000", False),
        ("localhost.evil.example:7000", False),
        ("", False),
        (None, False),
    ],
)
def test_host_header_must_name_the_bind(header: str | None, allowed: bool) -> None:
    assert host_allowed(header, LOOP) is allowed


def test_a_wildcard_bind_accepts_addresses_and_named_hosts_only() -> None:
    bind = Bind("0.0.0.0", 7000)
    assert host_allowed("192.168.1.5:7000", bind)
    assert not host_allowed("rebind.evil.example:7000", bind)
    assert host_allowed("hive.lan:7000", bind, ("hive.lan",))


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("GET", {"sec-fetch-site": "cross-site"}, False),
        ("POST", {"sec-fetch-site": "same-origin"}, False),
        ("POST", {"sec-fetch-site": "same-site"}, True),
        ("POST", {"sec-fetch-site": "cross-site"}, True),
        ("POST", {"sec-fetch-site": "none"}, True),
        ("POST", {"origin": "http://127.0.0.1:7000"}, False),
        ("POST", {"origin": "http://evil.example"}, True),
        ("POST", {"origin": "null"}, True),
        ("POST", {}, True),
        ("DELETE", {}, True),
    ],
)
def test_state_changes_must_be_same_origin(
    method: str, headers: dict[str, str], refused: bool
) -> None:
    assert (same_origin_refusal(method, headers, "127.0.0.1:7000") is not None) is refused


def test_token_comparison() -> None:
    assert token_matches(None, None)
    assert token_matches("secret-secret-secret", "secret-secret-secret")
    assert not token_matches("secret-secret-secret", "secret")
    assert not token_matches("secret-secret-secret", None)


def test_last_event_id_counts_only_from_the_same_boot() -> None:
    assert parse_last_event_id("b1.42", "b1") == 42
    assert parse_last_event_id("b0.42", "b1") is None
    for junk in (None, "", "b1", "b1.", "b1.x", "b1.-3", "b1." + "9" * 40):
        assert parse_last_event_id(junk, "b1") is None


def _events(*seqs: int) -> tuple[wire.Event, ...]:
    return tuple(wire.Event(seq, 1.0, wire.AgentRegistered(f"a{seq}")) for seq in seqs)


def test_a_fresh_stream_starts_after_the_current_seq() -> None:
    hello, replay = resume_frames("b1", None, wire.HistoryReply(seq=9, events=_events(8, 9)))
    assert hello.startswith(b"id: b1.9\n")
    assert b'"resumed":false' in hello
    assert replay == []


def test_a_resumed_stream_replays_what_it_missed() -> None:
    history = wire.HistoryReply(seq=9, events=_events(7, 8, 9))
    hello, replay = resume_frames("b1", 7, history)
    assert b'"resumed":true' in hello
    assert [e.seq for e in replay] == [8, 9]
    assert resume_frames("b1", 9, history)[1] == []


def test_a_resume_past_the_history_gets_a_gap_first() -> None:
    _hello, replay = resume_frames("b1", 3, wire.HistoryReply(seq=9, events=_events(7, 8, 9)))
    assert replay[0].payload == wire.EventGap(4, 6)
    assert replay[0].seq == 6
    assert [e.seq for e in replay[1:]] == [7, 8, 9]


def test_frames_are_encoded_once_and_gaps_never_cached() -> None:
    cache = FrameCache("b1", size=2)
    (event,) = _events(5)
    first = cache.encode(event)
    assert first is cache.encode(event)
    assert first.startswith(b"id: b1.5\ndata: {")
    assert first.endswith(b"}\n\n")
    assert b"\n" not in first[len(b"id: b1.5\ndata: ") : -2]
    gap = wire.Event(5, 1.0, wire.EventGap(3, 5))
    assert b'"kind":"gap"' in cache.encode(gap)
    assert cache.encode(event) is first


def test_log_follow_sends_only_new_lines() -> None:
    assert new_lines([], ["a", "b"]) == (["a", "b"], False)
    assert new_lines(["a", "b"], ["a", "b"]) == ([], False)
    assert new_lines(["a", "b"], ["b", "c", "d"]) == (["c", "d"], False)
    assert new_lines(["a", "b"], ["x", "y"]) == (["x", "y"], True)
