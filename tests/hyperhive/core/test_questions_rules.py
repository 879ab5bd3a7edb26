"""The question rules as plain functions: who may ask, answer and cancel, and what they get."""

from __future__ import annotations

import pytest

from hyperhive import wire
from hyperhive.core.listener import Identity
from hyperhive.core.questions import (
    OPERATOR,
    answer_refusal,
    cancel_refusal,
    cancelled_answer,
    expiry_answer,
    validate_answer,
    validate_ask,
)
from hyperhive.errors import BadRequest, NotAllowed, UnknownAgent

OPERATOR_ID = Identity("operator", "operator")
MANAGER_ID = Identity("manager", "manager")
ALICE = Identity("agent", "alice")
BOB = Identity("agent", "bob")
CAROL = Identity("agent", "carol")


def _known(name: str) -> bool:
    return name in {"alice", "bob", "carol", "manager"}


def _question(target: str = OPERATOR, asker: str = "alice", **changes: object) -> wire.Question:
    fields: dict[str, object] = {
        "id": 7,
        "asker": asker,
        "target": target,
        "question": "ship it?",
        "options": (),
        "multi": False,
        "asked_at": 1000.0,
    }
    fields.update(changes)
    return wire.Question(**fields)  # type: ignore[arg-type]


def test_ask_goes_to_the_operator_by_default() -> None:
    assert validate_ask("alice", wire.Ask(question="ship it?"), _known) == OPERATOR
    assert validate_ask("alice", wire.Ask(question="q", to="operator"), _known) == OPERATOR


def test_ask_to_a_peer_or_the_manager() -> None:
    assert validate_ask("alice", wire.Ask(question="q", to="bob"), _known) == "bob"
    assert validate_ask("alice", wire.Ask(question="q", to="manager"), _known) == "manager"


def test_asking_yourself_is_refused() -> None:
    with pytest.raises(NotAllowed, match="cannot ask yourself"):
        validate_ask("alice", wire.Ask(question="q", to="alice"), _known)
    with pytest.raises(NotAllowed, match="cannot ask yourself"):
        validate_ask("manager", wire.Ask(question="q", to="manager"), _known)


def test_asking_nobody_is_refused() -> None:
    with pytest.raises(UnknownAgent, match="unknown agent 'zed'; nothing was asked"):
        validate_ask("alice", wire.Ask(question="q", to="zed"), _known)


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (wire.Ask(question="   "), "question is empty"),
        (wire.Ask(question="q", options=("a", " ")), "option is empty"),
        (wire.Ask(question="q", options=("a", "a")), "repeat"),
        (wire.Ask(question="q", multi=True), "multi needs options"),
        (wire.Ask(question="q", ttl_seconds=0), "ttl_seconds must be more than 0"),
        (wire.Ask(question="q", ttl_seconds=-5), "ttl_seconds"),
        (wire.Ask(question="q", ttl_seconds=float("inf")), "ttl_seconds"),
        (wire.Ask(question="q", ttl_seconds=31 * 86400), "30 days"),
        (wire.Ask(question="bad \udc80 text"), "not valid unicode"),
        (wire.Ask(question="q", options=tuple(str(i) for i in range(33))), "at most 32"),
    ],
)
def test_bad_asks_say_what_is_wrong(request_: wire.Ask, says: str) -> None:
    with pytest.raises(BadRequest, match=None) as caught:
        validate_ask("alice", request_, _known)
    assert says in str(caught.value)


def test_empty_answer_is_refused() -> None:
    with pytest.raises(BadRequest, match="answer is empty"):
        validate_answer(" \n")
    validate_answer("yes")


def test_operator_question_is_answered_only_by_the_operator() -> None:
    question = _question(OPERATOR)
    assert answer_refusal(question, OPERATOR_ID) is None
    for other in (MANAGER_ID, ALICE, BOB):
        refusal = answer_refusal(question, other)
        assert refusal == "question #7 was asked of the operator; only the operator can answer it"


def test_peer_question_is_answered_by_its_target_or_the_operator() -> None:
    question = _question("bob")
    assert answer_refusal(question, BOB) is None
    assert answer_refusal(question, OPERATOR_ID) is None
    for other in (ALICE, CAROL, MANAGER_ID):
        assert answer_refusal(question, other) == (
            "question #7 was asked of bob; only bob or the operator can answer it"
        )


def test_a_question_for_the_manager_is_answered_by_the_manager() -> None:
    question = _question("manager")
    assert answer_refusal(question, MANAGER_ID) is None
    assert answer_refusal(question, ALICE) is not None


def test_nobody_answers_twice() -> None:
    answered = _question("bob", answer="no", answerer="bob", answered_at=1001.0)
    assert answer_refusal(answered, OPERATOR_ID) == "question #7 is already answered (by bob)"
    assert answer_refusal(answered, BOB) == "question #7 is already answered (by bob)"


def test_only_the_asker_the_manager_or_the_operator_may_cancel() -> None:
    question = _question("bob", asker="alice")
    assert cancel_refusal(question, ALICE) is None
    assert cancel_refusal(question, MANAGER_ID) is None
    assert cancel_refusal(question, OPERATOR_ID) is None
    # The target cannot cancel what it was asked: it answers it.
    assert cancel_refusal(question, BOB) == (
        "question #7 was asked by alice; only alice or the manager can cancel it"
    )
    assert cancel_refusal(question, CAROL) is not None


def test_an_answered_question_cannot_be_cancelled() -> None:
    answered = _question(answer="yes", answerer="operator", answered_at=1001.0)
    assert "already answered" in (cancel_refusal(answered, ALICE) or "")


@pytest.mark.parametrize(
    ("ttl", "says"),
    [(600.0, "10 minutes"), (3600.0, "1 hour"), (2 * 86400.0, "2 days"), (90.5, "90.5 seconds")],
)
def test_expiry_answer_names_the_silent_side_and_the_ttl(ttl: float, says: str) -> None:
    text = expiry_answer(_question("bob", expires_at=1000.0 + ttl))
    assert text.startswith("[expired: no answer from bob within ")
    assert says in text


def test_cancelled_answer_names_who_cancelled() -> None:
    assert cancelled_answer("manager") == "[cancelled by manager]"
