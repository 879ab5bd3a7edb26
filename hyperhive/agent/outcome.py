"""How a turn ended: the one word the turn loop decides on (retry, wait, compact, log in).

Its own module, so the harness's turn loop knows it without loading the stream-json parser
(`hyperhive.agent.stream`, which classifies a turn's result into one) at start-up
(docs/performance.md).
"""

from __future__ import annotations

import enum

__all__ = ["Outcome"]


class Outcome(enum.Enum):
    """How a turn ended, as far as the harness's decisions go."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"  # 429 or a subscription limit: wait, then retry
    PROMPT_TOO_LONG = "prompt_too_long"  # compact (or start afresh), then retry
    NEEDS_LOGIN = "needs_login"  # authentication failed: no turns until someone logs in
    INTERRUPTED = "interrupted"  # cancelled on request
    NO_SESSION = "no_session"  # --resume named a session the CLI does not have
    FAILED = "failed"  # anything else: API errors after retries, a crash, no result at all
