"""Showing text that came from agents exactly as written (light: the CLI's quick path uses it).

Most of what the operator is shown came from agents (message bodies, questions, names in
errors, logs), so nothing is ever parsed as rich markup, and every control character but newline
and tab is shown as an escape: an agent's escape sequence must not retitle, clear or recolour
the operator's terminal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["literal", "visible"]

# C0 controls but newline and tab, DEL, C1 controls, and the bidi and other format controls
# that can make text read differently than it is.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape (``\x1b``)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(text: str | None, style: str = "") -> Text:
    """A cell that shows `text` exactly as written (no markup), controls made visible."""
    from rich.text import Text

    return Text(visible(text or ""), style=style)
