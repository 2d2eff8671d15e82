"""The three answers the report leads with: what to write next, what to fix, what broke."""

from __future__ import annotations

from dataclasses import dataclass

from casebook.executor.coverage.model import CoverageReport, plural

SHOWN = 3


@dataclass(frozen=True)
class Answer:
    """One question and its answer as short lines of plain text."""

    question: str
    lines: tuple[str, ...]


def at_a_glance(report: CoverageReport) -> tuple[Answer, ...]:
    """Which alerts need analyzers, which analyzers need work, what broke most."""
    return (
        Answer("Which alerts should we write analyzers for next?", _write_next(report)),
        Answer("Which analyzers should we fix or delete?", _fix_or_delete(report)),
        Answer("What broke most this period?", _broke(report)),
    )


def _write_next(report: CoverageReport) -> tuple[str, ...]:
    lines = []
    for alert in report.uncovered[:SHOWN]:
        share = "none" if alert.uncovered == alert.volume else f"{alert.uncovered}"
        labels = f"; labels: {', '.join(alert.label_keys)}" if alert.label_keys else ""
        lines.append(
            f"{alert.name}: {plural(alert.volume, 'firing')}, {share} covered by an "
            f"analyzer written for it{labels}"
        )
    for alert in report.unexplained[:SHOWN]:
        lines.append(
            f"{alert.name}: {plural(alert.volume, 'firing')}, analyzers ran but "
            "never found anything"
        )
    if not lines:
        lines.append(
            "None: every alert had an analyzer written for it, and each alert name "
            "got at least one finding."
        )
    return tuple(lines)


def _fix_or_delete(report: CoverageReport) -> tuple[str, ...]:
    lines = []
    for analyzer in report.unreliable[:SHOWN]:
        bad = analyzer.error + analyzer.timeout
        kinds = ", ".join(
            plural(n, word)
            for n, word in ((analyzer.error, "error"), (analyzer.timeout, "timeout"))
            if n
        )
        lines.append(
            f"Fix {analyzer.name}: {bad} of {analyzer.ran_invocations} invocations "
            f"failed ({analyzer.failure_share * 100:.0f}%: {kinds})"
        )
    for analyzer in (a for a in report.analyzers if a.disliked):
        lines.append(
            f"Rework {analyzer.name}: {analyzer.not_helpful} not helpful against "
            f"{analyzer.helpful} helpful"
        )
    if report.never_applied:
        lines.append(
            f"Never applied (delete, or fix their matchers): {_names(report.never_applied)}"
        )
    always_skipped = [a.name for a in report.always_skipped]
    if always_skipped:
        lines.append(f"Applied but always skipped: {_names(always_skipped)}")
    to_fix = {a.name for a in report.unreliable}
    never_found = [a.name for a in report.never_found if a.name not in to_fix]
    if never_found:
        lines.append(f"Ran but never found anything: {_names(never_found)}")
    if not lines:
        lines.append("None: every analyzer applied, found something and rarely failed.")
    return tuple(lines)


def _broke(report: CoverageReport) -> tuple[str, ...]:
    lines = [
        f"{cause.category} on {cause.entity}: top cause of "
        f"{plural(cause.top, 'alert')} ({_names(cause.alerts, 3)})"
        for cause in report.causes[:SHOWN]
        if cause.top
    ]
    if not lines:
        lines.append("Nothing: no investigation of this period ranked a probable cause.")
    return tuple(lines)


def _names(names: list[str] | tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
