"""A small SVG chart writer for the console: line charts over time and horizontal bars, drawn on the server.

Every chart is one self-contained `<svg>` element (no script, no external stylesheet) with `role="img"`, a
`<title>` and `data-points` (how many data points it draws), so a page needs nothing else to show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]  # (x: unix time, y)


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:,.1f}"


def _time_label(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    start: float,
    end: float,
    width: int = 640,
    height: int = 220,
    y_label: str = "",
    bars: bool = False,
) -> str:
    """A time chart of one or more series between `start` and `end` (unix times); `bars` draws columns."""
    left, right, top, bottom = 48, 12, 28, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(end - start, 1.0)
    values = [y for s in series for _, y in s.points]
    peak = _nice_max(max(values, default=0.0))
    if all(y == int(y) for y in values):
        peak = max(peak, 4.0)  # counts: whole-number ticks
    count = sum(len(s.points) for s in series)

    def x_of(x: float) -> float:
        return left + (x - start) / span * plot_w

    def y_of(y: float) -> float:
        return top + plot_h - (y / peak) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-points="{count}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for step in range(5):
        value = peak * step / 4
        y = y_of(value)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_number(value)}</text>')
    for step in range(5):
        x = start + span * step / 4
        anchor = "start" if step == 0 else ("end" if step == 4 else "middle")
        out.append(
            f'<text x="{x_of(x):.1f}" y="{height - 10}" font-size="10" text-anchor="{anchor}">'
            f"{_time_label(x, span)}</text>"
        )
    if y_label:
        out.append(
            f'<text x="12" y="{top + plot_h / 2:.1f}" font-size="10" text-anchor="middle" '
            f'transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#9e9e9e"/>'
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#9e9e9e"/>'
    )
    for number, item in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        name = escape(item.name)
        if bars:
            slot = plot_w / max(len(item.points), 1)
            bar_w = max(slot * 0.7 / len(series), 1.0)
            for x, y in item.points:
                bx = x_of(x) + number * bar_w
                out.append(
                    f'<rect class="bar" x="{bx:.1f}" y="{y_of(y):.1f}" width="{bar_w:.1f}" '
                    f'height="{top + plot_h - y_of(y):.1f}" fill="{colour}"><title>{name}: {_number(y)} '
                    f"({_time_label(x, span)})</title></rect>"
                )
        elif item.points:
            path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in item.points)
            out.append(
                f'<polyline class="series" data-series="{name}" fill="none" stroke="{colour}" '
                f'stroke-width="2" points="{path}"/>'
            )
        legend_x = width - right - 130 * (len(series) - number)
        out.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="17" font-size="11">{name}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_meter(used: float, limit: float, *, title: str, width: int = 480, height: int = 44) -> str:
    """One horizontal bar: `used` of `limit` (red from 80 %)."""
    share = min(max(used / limit, 0.0), 1.0) if limit > 0 else 0.0
    colour = "#c62828" if share >= 0.8 else "#2e7d32"
    label = f"{_number(used)} of {_number(limit)} ({share * 100:.1f} %)"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart meter" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-points="1"><title>{escape(title)}: {label}</title>'
        f'<rect x="0" y="4" width="{width}" height="20" rx="4" fill="#eeeeee"/>'
        f'<rect class="bar" x="0" y="4" width="{max(share * width, 2.0 if used > 0 else 0.0):.1f}" height="20" rx="4" '
        f'fill="{colour}"/>'
        f'<text x="0" y="40" font-size="12">{escape(label)}</text></svg>'
    )


def horizontal_bars(items: Sequence[tuple[str, float]], *, title: str, width: int = 560) -> str:
    """One bar per (label, value), longest first as given."""
    row = 22
    label_w = max(120, min(320, 7 * max((len(label) for label, _ in items), default=0) + 12))
    width = max(width, label_w + 200)
    height = 24 + row * max(len(items), 1)
    peak = max((v for _, v in items), default=0.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-points="{len(items)}"><title>{escape(title)}</title>'
    ]
    for number, (label, value) in enumerate(items):
        y = 12 + number * row
        bar = (width - label_w - 60) * value / peak
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" font-size="11" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{bar:.1f}" height="16" fill="{PALETTE[0]}"/>')
        out.append(f'<text x="{label_w + bar + 4:.1f}" y="{y + 13}" font-size="11">{_number(value)}</text>')
    out.append("</svg>")
    return "".join(out)
