"""`hyperhive top`: the operator's live terminal, agents first.

One row per agent (state, what its harness says it is doing, model, flags), the operator's
open questions, pending approvals, and the message flow or one agent's log; keys send, answer,
approve or deny, and follow a log. Built on rich's `Live` over the daemon's event feed: the
view is a pure model (`model`: state and keys), a drawing of it (`screen`), and a thin I/O
shell (`shell`); `keys` decodes terminal input, `approvals` speaks the approval verbs.
"""

from __future__ import annotations

from hyperhive.top.model import TopModel
from hyperhive.top.shell import run_top

__all__ = ["TopModel", "run_top"]
