"""Bytes from the terminal to key names (pure).

`KeyDecoder.feed` takes whatever one ``read`` returned and gives back the keys in it: a
printable character as itself (``"a"``, ``"é"``), the rest by name (``"up"``, ``"pagedown"``,
``"enter"``, ``"escape"``, ``"ctrl-u"`` ...). UTF-8 split across reads is joined; an escape
sequence it does not know is dropped whole rather than typed as text. A lone ESC is ``escape``
when it ends a read (a terminal writes a whole sequence at once).
"""

from __future__ import annotations

import codecs
from typing import Final

__all__ = ["KeyDecoder"]

_CSI: Final = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
    "Z": "backtab",
    "1~": "home",
    "7~": "home",
    "4~": "end",
    "8~": "end",
    "3~": "delete",
    "5~": "pageup",
    "6~": "pagedown",
}
_SS3: Final = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}
_CONTROL: Final = {
    "\r": "enter",
    "\n": "enter",
    "\t": "tab",
    "\x7f": "backspace",
    "\x08": "backspace",
    "\x15": "ctrl-u",
    "\x03": "ctrl-c",
    "\x04": "ctrl-d",
    "\x0c": "ctrl-l",
}


class KeyDecoder:
    """Turns terminal input into key names; keeps an unfinished sequence for the next read."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._utf8.decode(data)
        self._pending = ""
        keys: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char != "\x1b":
                name = _CONTROL.get(char)
                if name is not None:
                    keys.append(name)
                elif char.isprintable():
                    keys.append(char)
                i += 1
                continue
            end, key = _escape(text, i)
            if end is None:  # an unfinished sequence: wait for the rest
                self._pending = text[i:]
                break
            if key is not None:
                keys.append(key)
            i = end
        if self._pending == "\x1b":  # a read that ends in a lone ESC: the Escape key
            self._pending = ""
            keys.append("escape")
        return keys


def _escape(text: str, start: int) -> tuple[int | None, str | None]:
    """(where the sequence at `start` ends, its key) — (None, None) while it is incomplete."""
    if start + 1 >= len(text):
        return None, None
    kind = text[start + 1]
    if kind == "[":
        j = start + 2
        while j < len(text) and not 0x40 <= ord(text[j]) <= 0x7E:
            j += 1
        if j >= len(text):
            return None, None
        return j + 1, _CSI.get(text[start + 2 : j + 1])
    if kind == "O":
        if start + 2 >= len(text):
            return None, None
        return start + 3, _SS3.get(text[start + 2])
    if kind == "\x1b":
        return start + 1, "escape"
    return start + 2, None  # Alt+key: not a key this view uses
