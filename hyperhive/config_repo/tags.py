"""The tag state machine of an applied repo, as plain functions (no git here).

Each approval ``<id>`` walks through tags on one commit of the agent's applied repo::

    proposal/<id> ──approve──▶ approved/<id> ──▶ building/<id> ──▶ deployed/<id>
         │                          │                  │                 │
         └──deny──▶ denied/<id>     └──────────────────┴──▶ failed/<id> ◀┘ (rolled back)

``denied/`` (the operator's reason) and ``failed/`` (the error) are annotated tags; the others
are lightweight. Applied ``main`` moves only when ``deployed/<id>`` is set, and only forward
(a rollback rewinds it to an earlier ``deployed/`` commit). A tag, once set, is never moved or
deleted, so the tags of an id are a history: ``current_stage`` reads where it stands.

`validate_commit_ref` is the one rule for what a proposal may name: 7 to 40 hex digits, so a
proposal always pins an immutable commit, never a branch or tag that can move.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Final

from hyperhive.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = [
    "ANNOTATED",
    "MAX_ANNOTATION",
    "Stage",
    "annotation",
    "current_stage",
    "parse_tag",
    "tag_name",
    "transition_refusal",
    "validate_commit_ref",
]

_HEX_REF: Final = re.compile(r"[0-9a-fA-F]{7,40}")
_TAG: Final = re.compile(r"(proposal|approved|building|deployed|failed|denied)/([1-9][0-9]{0,17})")
MAX_ANNOTATION: Final = 8000
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Stage(enum.Enum):
    """One tag prefix, in the order an approval normally walks through them."""

    PROPOSAL = "proposal"
    APPROVED = "approved"
    BUILDING = "building"
    DEPLOYED = "deployed"
    FAILED = "failed"
    DENIED = "denied"


ANNOTATED: Final = frozenset({Stage.FAILED, Stage.DENIED})
_FINAL: Final = frozenset({Stage.FAILED, Stage.DENIED})
# What an id must already carry for each next tag.
_REQUIRES: Final[dict[Stage, frozenset[Stage]]] = {
    Stage.PROPOSAL: frozenset(),
    Stage.APPROVED: frozenset({Stage.PROPOSAL}),
    Stage.DENIED: frozenset({Stage.PROPOSAL}),
    Stage.BUILDING: frozenset({Stage.PROPOSAL, Stage.APPROVED}),
    Stage.DEPLOYED: frozenset({Stage.PROPOSAL, Stage.APPROVED, Stage.BUILDING}),
    Stage.FAILED: frozenset({Stage.PROPOSAL, Stage.APPROVED}),
}
# Tags an id must not carry yet for each next tag (besides the tag itself and the final ones).
_BLOCKED_BY: Final[dict[Stage, frozenset[Stage]]] = {
    Stage.PROPOSAL: frozenset(Stage),
    Stage.APPROVED: frozenset(),
    Stage.DENIED: frozenset({Stage.APPROVED}),
    Stage.BUILDING: frozenset(),
    Stage.DEPLOYED: frozenset(),
    Stage.FAILED: frozenset(),
}


def tag_name(stage: Stage, id: int) -> str:
    """``proposal/7`` and so on: the tag's name under ``refs/tags/``."""
    if id < 1:
        raise ValueError(f"approval ids start at 1, not {id}")
    return f"{stage.value}/{id}"


def parse_tag(name: str) -> tuple[Stage, int] | None:
    """The stage and id of a tag name, or None for a tag that is not one of ours."""
    match = _TAG.fullmatch(name)
    if match is None:
        return None
    return Stage(match[1]), int(match[2])


def current_stage(have: Collection[Stage]) -> Stage | None:
    """Where an id stands, from the tags it carries (None: no tags at all)."""
    for stage in (Stage.DENIED, Stage.FAILED, Stage.DEPLOYED, Stage.BUILDING, Stage.APPROVED):
        if stage in have:
            return stage
    return Stage.PROPOSAL if Stage.PROPOSAL in have else None


def transition_refusal(have: Collection[Stage], to: Stage) -> str | None:
    """Why an id carrying ``have`` cannot be tagged ``to`` next, or None when it can."""
    present = frozenset(have)
    if to in present:
        return f"it is already tagged {to.value}/"
    ended = present & _FINAL
    if ended:
        return f"it has ended ({next(iter(ended)).value}/)"
    blockers = present & _BLOCKED_BY[to]
    if blockers:
        return f"it is already tagged {_names(blockers)}"
    missing = _REQUIRES[to] - present
    if missing:
        return f"it is not tagged {_names(missing)} yet"
    return None


def validate_commit_ref(ref: str) -> str:
    """``ref`` in lowercase if it is 7 to 40 hex digits.

    Raises:
        BadRequest: anything else (a branch or tag name could move after the operator looked).
    """
    if not _HEX_REF.fullmatch(ref):
        raise BadRequest(
            f"commit_ref must be a commit sha, 7 to 40 hex digits (got {ref[:60]!r}); a branch "
            "or tag name is refused so that a proposal pins one immutable commit. Use "
            "`git rev-parse HEAD` in the proposed repo"
        )
    return ref.lower()


def annotation(text: str, limit: int = MAX_ANNOTATION) -> str:
    """``text`` made fit for a tag message: no control characters but newline and tab, at most
    ``limit`` characters (cut with a marker), never empty."""
    cleaned = _CONTROL.sub("?", text).strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 14].rstrip() + "\n[... cut]"
    return cleaned or "(no reason given)"


def _names(stages: frozenset[Stage]) -> str:
    order = list(Stage)
    return ", ".join(f"{stage.value}/" for stage in sorted(stages, key=order.index))
