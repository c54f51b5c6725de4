"""Server-rendered SVG line charts (no JavaScript, no CDN), readable with no data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 36, 44
PALETTE = ("#2453d4", "#d97706", "#059669", "#dc2626", "#7c3aed")


@dataclass(frozen=True)
class Line:
    label: str
    values: list[float]


def nice_step(peak: float, ticks: int = 4) -> int:
    """A whole 1/2/5 × 10^k step so that `ticks` steps reach at least `peak` (counts are
    integers, so every axis label is too)."""
    wanted = max(peak / ticks, 1)
    exponent = math.floor(math.log10(wanted))
    for step in (1, 2, 5, 10):
        candidate = step * 10**exponent
        if candidate >= wanted:
            return int(candidate)
    return int(10 ** (exponent + 1))


def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def _tick_label(hour: datetime, span_hours: int) -> str:
    return hour.strftime("%H:%M") if span_hours <= 48 else hour.strftime("%a %d")


def line_chart(
    *, title: str, hours: list[datetime], lines: list[Line], y_label: str, chart_id: str
) -> SafeString:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(hours)
    peak = max((max(line.values) for line in lines if line.values), default=0)
    empty = n == 0 or peak == 0
    top = nice_step(peak) * 4

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" '
            'role="img" aria-labelledby="{}-title {}-desc" class="rollout-chart">'
            '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
            WIDTH,
            HEIGHT,
            chart_id,
            chart_id,
            chart_id,
            title,
            chart_id,
            "No data yet."
            if empty
            else "; ".join(f"{line.label}: {sum(line.values):g} in all" for line in lines),
        ),
        format_html(
            '<text x="{}" y="18" font-size="14" font-weight="600" fill="#1f2937">{}</text>',
            LEFT,
            title,
        ),
    ]
    # Horizontal grid and y-axis labels.
    for step in range(5):
        value = top * step / 4
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e5e7eb"/>'
                '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#4b5563">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _f(y(value)),
                _f(y(value)),
                LEFT - 6,
                _f(y(value) + 4),
                _number(value),
            )
        )
    parts.append(
        format_html(
            '<text transform="translate(14 {}) rotate(-90)" font-size="11" '
            'text-anchor="middle" fill="#4b5563">{}</text>',
            _f(TOP + plot_h / 2),
            y_label,
        )
    )
    # X-axis ticks: about six labels across the window.
    if n:
        every = max(1, math.ceil(n / 6))
        for i in range(0, n, every):
            parts.append(
                format_html(
                    '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#9ca3af"/>'
                    '<text x="{}" y="{}" font-size="11" text-anchor="middle" '
                    'fill="#4b5563">{}</text>',
                    _f(x(i)),
                    _f(x(i)),
                    TOP + plot_h,
                    TOP + plot_h + 4,
                    _f(x(i)),
                    TOP + plot_h + 16,
                    _tick_label(hours[i], n),
                )
            )
    parts.append(
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#6b7280"/>'
            '<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="#4b5563">'
            "Hour (UTC)</text>",
            LEFT,
            WIDTH - RIGHT,
            TOP + plot_h,
            TOP + plot_h,
            _f(LEFT + plot_w / 2),
            HEIGHT - 6,
        )
    )
    if empty:
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="15" text-anchor="middle" '
                'fill="#6b7280">No data yet</text>',
                _f(LEFT + plot_w / 2),
                _f(TOP + plot_h / 2),
            )
        )
    else:
        for number, line in enumerate(lines):
            color = PALETTE[number % len(PALETTE)]
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
            parts.append(
                format_html(
                    '<polyline fill="none" stroke="{}" stroke-width="2" points="{}">'
                    "<title>{}</title></polyline>",
                    color,
                    points,
                    line.label,
                )
            )
    # Legend along the top right.
    legend_x = WIDTH - RIGHT
    for number, line in reversed(list(enumerate(lines))):
        color = PALETTE[number % len(PALETTE)]
        width = 18 + 6.5 * len(line.label)
        legend_x -= width + 10
        parts.append(
            format_html(
                '<rect x="{}" y="10" width="12" height="12" fill="{}"/>'
                '<text x="{}" y="20" font-size="11" fill="#374151">{}</text>',
                _f(legend_x),
                color,
                _f(legend_x + 16),
                line.label,
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(parts))  # noqa: S308 (every part comes from format_html)
