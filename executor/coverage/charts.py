"""Inline SVG charts for the HTML coverage report: no scripts, no external assets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from casebook.executor.coverage.model import Day

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"

OUTCOME_COLORS = {
    "found": "#2f855a",
    "nothing": "#a0aec0",
    "skipped": "#e2e8f0",
    "error": "#e53e3e",
    "timeout": "#dd6b20",
}
COVERAGE_COLORS = {
    "with a finding": "#2f855a",
    "covered, nothing found": "#90cdf4",
    "not covered, nothing found": "#f56565",
}
NOT_COVERED = COVERAGE_COLORS["not covered, nothing found"]
CATEGORY_PALETTE = (
    "#805ad5",
    "#3182ce",
    "#d69e2e",
    "#38a169",
    "#e53e3e",
    "#dd6b20",
    "#319795",
    "#d53f8c",
    "#5a67d8",
    "#718096",
)


@dataclass(frozen=True)
class Segment:
    value: float
    color: str
    title: str


@dataclass(frozen=True)
class Bar:
    label: str
    segments: tuple[Segment, ...]
    note: str = ""


def category_color(category: str, categories: Sequence[str]) -> str:
    """A stable color per category, in the order the categories are listed."""
    index = list(categories).index(category) if category in categories else len(categories)
    return CATEGORY_PALETTE[index % len(CATEGORY_PALETTE)]


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    normalize: bool = False,
    label_width: int = 210,
    width: int = 1000,
    row: int = 26,
) -> str:
    """Horizontal (stacked) bars, one per row; `normalize` draws each bar as 100%."""
    note_width = 150
    plot = width - label_width - note_width
    biggest = max((sum(s.value for s in b.segments) for b in bars), default=0) or 1
    height = row * len(bars) + 8
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = 4 + i * row
        total = sum(s.value for s in bar.segments)
        scale = plot / (total if normalize and total else biggest)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
            f'fill="{INK}">{escape(_clip(bar.label, label_width // 7))}<title>{escape(bar.label)}'
            "</title></text>"
        )
        parts.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{plot}" height="{row - 8}" '
            f'fill="#f7f9fa"/>'
        )
        x = float(label_width)
        for segment in bar.segments:
            if segment.value <= 0:
                continue
            w = segment.value * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1.5):.1f}" '
                f'height="{row - 8}" fill="{segment.color}"><title>'
                f"{escape(segment.title)}</title></rect>"
            )
            x += w
        note_x = label_width + plot + 8
        parts.append(
            f'<text x="{note_x}" y="{y + row / 2 + 4:.1f}" fill="{MUTED}">{escape(bar.note)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def day_chart(days: Sequence[Day], *, width: int = 1000, height: int = 150) -> str:
    """Alerts per day as columns: the covered part dark, the uncovered part light red."""
    top, bottom, left = 14, 22, 34
    plot_h, plot_w = height - top - bottom, width - left - 8
    biggest = max((d.volume for d in days), default=0) or 1
    step = plot_w / max(len(days), 1)
    bar_w = max(min(step * 0.7, 60), 2)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" {FONT} font-size="11"><title>Alerts per day</title>'
    ]
    for tick in sorted({0, round(biggest / 2), biggest}):
        y = top + plot_h * (1 - tick / biggest)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="{MUTED}">{tick}</text>'
        )
    label_every = max(1, round(len(days) / 14))
    for i, day in enumerate(days):
        x = left + i * step + (step - bar_w) / 2
        covered_h = plot_h * day.covered / biggest
        total_h = plot_h * day.volume / biggest
        tip = (
            f"{day.day:%a %d %b}: {day.volume} alerts, {day.covered} covered, "
            f"{day.volume - day.covered} not covered"
        )
        parts.append(
            f"<g><title>{escape(tip)}</title>"
            f'<rect x="{x:.1f}" y="{top + plot_h - total_h:.1f}" width="{bar_w:.1f}" '
            f'height="{total_h - covered_h:.1f}" fill="{NOT_COVERED}"/>'
            f'<rect x="{x:.1f}" y="{top + plot_h - covered_h:.1f}" width="{bar_w:.1f}" '
            f'height="{covered_h:.1f}" fill="#3182ce"/></g>'
        )
        if day.volume:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - total_h - 3:.1f}" '
                f'text-anchor="middle" fill="{INK}">{day.volume}</text>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'fill="{MUTED}">{day.day:%a %d}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(items: dict[str, str]) -> str:
    """A one-line legend (HTML) for a chart's colors."""
    return (
        '<p class="legend">'
        + "".join(
            f'<span><i style="background:{color}"></i>{escape(name)}</span>'
            for name, color in items.items()
        )
        + "</p>"
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
