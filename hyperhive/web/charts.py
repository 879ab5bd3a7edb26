"""Server-rendered SVG bar charts for the agent's stats page: no chart library, no script.

`bar_chart` draws one series of numbers as bars with a title, a y-axis maximum and a few
x labels. Every string in it is XML-escaped and every number formatted by this module, so the
picture holds nothing the agent wrote but escaped text. The page shows it as an ``<img>``,
where a browser runs no script in an SVG at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["bar_chart", "short_number"]

WIDTH: Final = 640
HEIGHT: Final = 180
_LEFT: Final = 56
_TOP: Final = 24
_BOTTOM: Final = 22
_COLOURS: Final = ("#89b4fa", "#a6e3a1", "#fab387", "#cba6f7", "#94e2d5")


def short_number(value: float) -> str:
    """1234 -> 1.2k, 0.0123 -> 0.012: what fits beside an axis."""
    if value == 0:
        return "0"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: str = "",
    colour: int = 0,
) -> str:
    """An SVG document: `values` as bars, `labels` under some of them (first, middle, last)."""
    count = max(1, len(values))
    top = max([v for v in values if v > 0] or [1.0])
    plot_w, plot_h = WIDTH - _LEFT - 8, HEIGHT - _TOP - _BOTTOM
    step = plot_w / count
    fill = _COLOURS[colour % len(_COLOURS)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#181825"/>',
        f'<text x="{_LEFT}" y="15" fill="#cdd6f4" font-size="13">{escape(title)}</text>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 8}" fill="#9399b2" text-anchor="end">'
        f"{escape(short_number(top) + unit)}</text>",
        f'<text x="{_LEFT - 4}" y="{_TOP + plot_h}" fill="#9399b2" text-anchor="end">0</text>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH - 8}" y2="{_TOP + plot_h}" '
        'stroke="#585b70"/>',
    ]
    for index, value in enumerate(values):
        height = 0.0 if value <= 0 else max(1.0, plot_h * value / top)
        x = _LEFT + index * step + step * 0.1
        y = _TOP + plot_h - height
        label = labels[index] if index < len(labels) else ""
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(1.0, step * 0.8):.1f}" '
            f'height="{height:.1f}" fill="{fill}"><title>{escape(label)}: '
            f"{escape(short_number(value) + unit)}</title></rect>"
        )
    shown = sorted({0, (len(labels) - 1) // 2, len(labels) - 1}) if labels else []
    for index in shown:
        x = _LEFT + index * step + step / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" fill="#9399b2" text-anchor="middle">'
            f"{escape(labels[index])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
