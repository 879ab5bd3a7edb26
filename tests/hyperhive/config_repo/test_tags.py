"""The tag state machine as plain functions: which next tag is legal from which tags."""

from __future__ import annotations

import pytest

from hyperhive.config_repo.tags import (
    Stage,
    annotation,
    current_stage,
    parse_tag,
    tag_name,
    transition_refusal,
    validate_commit_ref,
)
from hyperhive.errors import BadRequest

P, A, B, D, F, X = (
    Stage.PROPOSAL, Stage.APPROVED, Stage.BUILDING, Stage.DEPLOYED, Stage.FAILED, Stage.DENIED
)  # fmt: skip

LEGAL = [
    ((), P),
    ((P,), A),
    ((P,), X),
    ((P, A), B),
    ((P, A), F),
    ((P, A, B), D),
    ((P, A, B), F),
    ((P, A, B, D), F),  # rolled back
]
ILLEGAL = [
    ((), A, "not tagged proposal/ yet"),
    ((), X, "not tagged proposal/ yet"),
    ((P,), P, "already tagged proposal/"),
    ((P,), B, "not tagged approved/ yet"),
    ((P,), D, "not tagged approved/, building/ yet"),
    ((P,), F, "not tagged approved/ yet"),
    ((P, A), X, "already tagged approved/"),
    ((P, A), D, "not tagged building/ yet"),
    ((P, X), A, "it has ended (denied/)"),
    ((P, A, B, F), D, "it has ended (failed/)"),
    ((P, A, B, D, F), F, "already tagged failed/"),
    ((P, A, B, D), D, "already tagged deployed/"),
]


@pytest.mark.parametrize(("have", "to"), LEGAL)
def test_legal_steps(have: tuple[Stage, ...], to: Stage) -> None:
    assert transition_refusal(have, to) is None


@pytest.mark.parametrize(("have", "to", "why"), ILLEGAL)
def test_illegal_steps_say_why(have: tuple[Stage, ...], to: Stage, why: str) -> None:
    refusal = transition_refusal(have, to)
    assert refusal is not None
    assert why in refusal


def test_every_stage_but_proposal_is_refused_on_an_empty_id() -> None:
    assert [s for s in Stage if transition_refusal((), s) is None] == [P]


@pytest.mark.parametrize(
    ("have", "stage"),
    [((), None), ((P,), P), ((P, A), A), ((P, A, B), B), ((P, A, B, D), D),
     ((P, A, B, D, F), F), ((P, X), X), ((P, A, F), F)],
)  # fmt: skip
def test_current_stage(have: tuple[Stage, ...], stage: Stage | None) -> None:
    assert current_stage(have) is stage


def test_tag_names_round_trip() -> None:
    for stage in Stage:
        assert parse_tag(tag_name(stage, 42)) == (stage, 42)
    for foreign in ("v1.0", "proposal/", "proposal/0", "proposal/01", "deployed/x", "x/1",
                    "proposal/1/extra", "Proposal/1"):  # fmt: skip
        assert parse_tag(foreign) is None
    with pytest.raises(ValueError, match="start at 1"):
        tag_name(P, 0)


@pytest.mark.parametrize("ref", ["abcdef0", "ABCDEF0123", "0" * 40, "deadbeef"])
def test_a_hex_ref_is_accepted_lowercased(ref: str) -> None:
    assert validate_commit_ref(ref) == ref.lower()


@pytest.mark.parametrize(
    "ref", ["", "abc", "abcdef", "main", "HEAD", "refs/heads/main", "v1.2.3", "a" * 41,
            "abcdefg", "abcdef0~1", "abcdef0^{commit}", " abcdef0", "abcdef0\n"],
)  # fmt: skip
def test_anything_else_is_refused(ref: str) -> None:
    with pytest.raises(BadRequest, match="branch or tag name is refused"):
        validate_commit_ref(ref)


def test_annotations_are_clean_bounded_and_never_empty() -> None:
    assert annotation("  build failed:\n\tstep 2\x1b[2J\x00 ") == "build failed:\n\tstep 2?[2J?"
    assert annotation("   ") == "(no reason given)"
    long = annotation("x" * 10_000, limit=100)
    assert len(long) <= 100
    assert long.endswith("[... cut]")
