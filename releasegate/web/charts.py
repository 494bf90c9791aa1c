"""Bar charts drawn on the server as SVG, so the dashboard needs no JavaScript and no chart library.

Colours come from classes (`s0`, `s1`, ...) styled in site.css: the Content-Security-Policy allows
no inline style. Every chart is `role="img"` with a title naming what it shows; the page puts the
table of its numbers beside it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 560
PLOT_HEIGHT = 150
LEFT = 44
TOP = 30  # room for the visible title above the plot
AXIS = 22  # category labels below the plot
LEGEND_ROW = 18
CHAR = 6.5  # the average width of an 11px label, to lay out the legend


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round top for the axis: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value * 10:
        step /= 10
    for factor in (1, 2, 5, 10):
        if factor * step >= value:
            return float(factor * step)
    return float(10 * step)


def _label(value: float) -> str:
    return f"{value:g}"


def bar_chart(
    *,
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    stacked: bool = False,
) -> SafeString:
    """Grouped (or stacked) vertical bars: one group per category, one bar per series."""
    plot_w = WIDTH - LEFT - 8
    plot_h = PLOT_HEIGHT
    totals = [
        sum(s.values[i] or 0 for s in series)
        if stacked
        else max((s.values[i] or 0 for s in series), default=0)
        for i in range(len(categories))
    ]
    top = _nice_max(max(totals, default=0))
    group_w = plot_w / max(len(categories), 1)
    bars_in_group = 1 if stacked else max(len(series), 1)
    bar_w = max(group_w * 0.8 / bars_in_group, 2)
    parts: list[SafeString] = []
    for tick in (0, top / 2, top):
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - 8,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 4,
                f"{y + 4:.1f}",
                _label(tick),
            )
        )
    for i, category in enumerate(categories):
        x0 = LEFT + group_w * i + group_w * 0.1
        base = float(TOP + plot_h)
        for j, s in enumerate(series):
            value = s.values[i] or 0
            h = plot_h * value / top
            x = x0 if stacked else x0 + bar_w * j
            y = base - h
            if value:
                parts.append(
                    format_html(
                        '<rect class="s{}" x="{}" y="{}" width="{}" height="{}">'
                        "<title>{}: {} {}{}</title></rect>",
                        j,
                        f"{x:.1f}",
                        f"{y:.1f}",
                        f"{bar_w:.1f}",
                        f"{h:.1f}",
                        category,
                        s.name,
                        _label(value),
                        f" {unit}" if unit else "",
                    )
                )
            if stacked:
                base = y
        parts.append(
            format_html(
                '<text class="cat" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{LEFT + group_w * (i + 0.5):.1f}",
                TOP + plot_h + 14,
                category,
            )
        )
    legend, rows = _legend(series, TOP + plot_h + AXIS)
    height = TOP + plot_h + AXIS + rows * LEGEND_ROW + 4
    return format_html(
        '<svg class="chart" id="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t">'
        '<title id="{}-t">{}</title><text class="heading" x="4" y="16">{}{}</text>{}{}</svg>',
        chart_id,
        WIDTH,
        height,
        chart_id,
        chart_id,
        title,
        title,
        f" ({unit})" if unit else "",
        SafeString("".join(parts)),
        legend,
    )


def _legend(series: Sequence[Series], top: int) -> tuple[SafeString, int]:
    """One swatch and name per series, wrapped onto as many rows as the width needs."""
    items: list[tuple[int, str, int, str, int, str]] = []
    x, row = float(LEFT), 0
    for j, s in enumerate(series):
        width = 14 + CHAR * len(s.name) + 18
        if x + width > WIDTH - 8 and x > LEFT:
            x, row = float(LEFT), row + 1
        y = top + row * LEGEND_ROW
        items.append((j, f"{x:.1f}", y, f"{x + 14:.1f}", y + 9, s.name))
        x += width
    markup = format_html_join(
        "",
        '<rect class="s{}" x="{}" y="{}" width="10" height="10"/>'
        '<text class="legend" x="{}" y="{}">{}</text>',
        items,
    )
    return markup, row + 1 if series else 0
