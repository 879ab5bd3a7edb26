"""Wake prompts and recv output: what Claude reads."""

from __future__ import annotations

from hyperhive import wire
from hyperhive.agent.wake import (
    REDELIVERED_BANNER,
    RETRIED_BANNER,
    build_wake_prompt,
    format_recv,
    render_body,
    wake_reason,
)


def _delivery(id: int, sender: str, body: str, *, redelivered: bool = False) -> wire.Delivery:
    return wire.Delivery(id, sender, "alice", body, 1.0, 2 if redelivered else 1, redelivered)


def test_messages_appear_oldest_first_with_their_sender() -> None:
    prompt = build_wake_prompt([_delivery(1, "bob", "first"), _delivery(2, "operator", "second")])
    assert prompt.startswith("You have 2 new message(s), oldest first.")
    assert "from: bob\n\nfirst" in prompt
    assert "from: operator\n\nsecond" in prompt
    assert prompt.index("first") < prompt.index("second")
    assert "recv(max" not in prompt
    assert REDELIVERED_BANNER not in prompt


def test_redelivered_and_retried_messages_carry_their_banners() -> None:
    prompt = build_wake_prompt(
        [_delivery(1, "bob", "old", redelivered=True), _delivery(2, "bob", "again")],
        retried_ids=frozenset({2}),
    )
    old, again = prompt.split("\n\n---\n\n")[1:3]
    assert old.startswith(REDELIVERED_BANNER + "\nfrom: bob")
    assert RETRIED_BANNER not in old
    assert again.startswith(RETRIED_BANNER + "\nfrom: bob")


def test_a_full_batch_points_at_recv_for_the_rest() -> None:
    prompt = build_wake_prompt([_delivery(1, "bob", "x")], more_waiting=True, recv_max=32)
    assert "call recv(max: 32)" in prompt


def test_helper_events_from_the_hive_are_rendered_readably() -> None:
    asked = wire.encode_helper_event(wire.QuestionAsked(7, "bob", "deploy now?", ("yes", "no")))
    text = render_body("hive", asked)
    assert "bob asks you question #7" in text
    assert "deploy now?" in text
    assert "yes | no" in text
    assert "answer(id: 7" in text
    assert "{" not in text  # no raw JSON left
    answered = wire.encode_helper_event(wire.QuestionAnswered(3, "lunch?", "pizza", "operator"))
    assert "answered by operator" in render_body("hive", answered)
    assert "answer: pizza" in render_body("hive", answered)
    due = wire.encode_helper_event(wire.ReminderDue(4, "check the build", "/state/r.md"))
    assert "reminder #4 is due" in render_body("hive", due)
    assert "/state/r.md" in render_body("hive", due)


def test_unknown_helper_events_still_show_their_fields_and_garbage_shows_raw() -> None:
    future = '{"event":"container_crash","name":"bob","exit_code":137,"log":"a\\nb"}'
    text = render_body("hive", future)
    assert text.startswith("hive event: container crash")
    assert "- name: bob" in text
    assert "- exit_code: 137" in text
    assert "  a\n  b" in text
    raw = render_body("hive", "not json {")
    assert raw.endswith("not json {")
    assert "not understood" in raw
    # The same body from anyone else is shown as written.
    assert render_body("bob", future) == future


def test_recv_output_for_none_one_and_many() -> None:
    assert format_recv([]) == "(empty)"
    assert format_recv([_delivery(1, "bob", "hi")]) == "from: bob\n\nhi"
    many = format_recv([_delivery(1, "bob", "a", redelivered=True), _delivery(2, "carol", "b")])
    assert many.startswith("popped 2 message(s)")
    assert REDELIVERED_BANNER in many
    assert many.count("\n---\n") == 2


def test_wake_reason_for_turn_stats() -> None:
    assert wake_reason([_delivery(1, "bob", "x")]) == "inbox"
    assert wake_reason([_delivery(1, "hive", "{}")]) == "helper"
    assert wake_reason([_delivery(1, "bob", "x", redelivered=True)]) == "redelivered"
    assert wake_reason([_delivery(1, "bob", "x")], retried=True) == "retry"
