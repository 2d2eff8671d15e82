"""Small inline SVG line charts of evidence series: no scripts, no external assets.

Two series with different scales (a cache hit ratio against requests per minute) get an axis
each, so the moment one falls and the other climbs is visible at a glance.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from casebook.sdk.models import utc

COLORS = ("#2563eb", "#dc2626", "#059669", "#9333ea")
WIDTH, HEIGHT = 520, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 44, 16, 26


def line_chart(
    series: dict[str, list[tuple[datetime, float]]],
    *,
    marker: datetime | None = None,
    marker_label: str = "onset",
    title: str = "",
) -> str:
    """An SVG chart of up to four series against time; an empty string when there is nothing."""
    named = [
        (name, [(utc(t), float(v)) for t, v in points if v == v])
        for name, points in list(series.items())[:4]
    ]
    named = [(name, points) for name, points in named if len(points) >= 2]
    if not named:
        return ""
    times = [t for _, points in named for t, _ in points]
    start, end = min(times), max(times)
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    # Two series share an axis only when their ranges are alike; otherwise the second gets its own.
    scales = [_range([v for _, v in points]) for _, points in named]
    separate = len(named) == 2 and not _alike(scales[0], scales[1])
    if not separate:
        shared = _range([v for _, points in named for _, v in points])
        scales = [shared] * len(named)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title or ", ".join(n for n, _ in named))}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="#fbfcfd" stroke="#e4e7eb"/>'
    )
    for i, (low, high) in enumerate(scales[: 2 if separate else 1]):
        side_x, anchor = (LEFT - 6, "end") if i == 0 else (WIDTH - RIGHT + 6, "start")
        color = COLORS[i] if separate else "#52606d"
        for frac in (0.0, 0.5, 1.0):
            y = TOP + plot_h * (1 - frac)
            if i == 0:
                parts.append(
                    f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                    'stroke="#eef1f4"/>'
                )
            parts.append(
                f'<text x="{side_x}" y="{y + 4:.1f}" text-anchor="{anchor}" '
                f'fill="{color}" font-size="11">{_tick(low + (high - low) * frac)}</text>'
            )
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        moment = start + (end - start) * frac
        parts.append(
            f'<text x="{x(moment):.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
            f'fill="#616e7c" font-size="11">{moment:%H:%M}</text>'
        )
    if marker is not None and start <= utc(marker) <= end:
        mx = x(utc(marker))
        parts.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
            'stroke="#f59e0b" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        # Keep the label inside the plot: to the left of the line when the line is far right.
        right_half = mx > LEFT + plot_w * 0.6
        parts.append(
            f'<text x="{mx - 5 if right_half else mx + 5:.1f}" y="{TOP + plot_h - 8}" '
            f'text-anchor="{"end" if right_half else "start"}" fill="#b45309" '
            f'font-size="11">{escape(marker_label)} {utc(marker):%H:%M}</text>'
        )
    for i, ((_, points), (low, high)) in enumerate(zip(named, scales, strict=True)):
        spread = (high - low) or 1.0
        path = " ".join(
            f"{'M' if j == 0 else 'L'}{x(t):.1f},{TOP + plot_h * (1 - (v - low) / spread):.1f}"
            for j, (t, v) in enumerate(points)
        )
        parts.append(
            f'<path d="{path}" fill="none" stroke="{COLORS[i]}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLORS[i]}"></i>{escape(name)}'
        f"{' (right axis)' if separate and i == 1 else ''}</span>"
        for i, (name, _) in enumerate(named)
    )
    return f'<figure class="figure">{"".join(parts)}<figcaption>{legend}</figcaption></figure>'


def _range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low >= 0 and low < (high - low) * 0.6:
        low = 0.0  # counts and ratios read best from zero
    if high == low:
        high = low + 1.0
    return low, high


def _alike(a: tuple[float, float], b: tuple[float, float]) -> bool:
    big = max(a[1], b[1]) or 1.0
    small = min(a[1], b[1]) or 1e-9
    return big / small < 5


def _tick(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"
