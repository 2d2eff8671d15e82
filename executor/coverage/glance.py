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
    """What to do about analyzers, grouped by the team that owns them."""
    todo: list[tuple[str, str]] = []  # (owner, line)
    for analyzer in report.unreliable[:SHOWN]:
        bad = analyzer.error + analyzer.timeout
        kinds = ", ".join(
            plural(n, word)
            for n, word in ((analyzer.error, "error"), (analyzer.timeout, "timeout"))
            if n
        )
        todo.append((report.owner_of(analyzer.name),
                     f"Fix {analyzer.name}: {bad} of {analyzer.ran_invocations} invocations "
                     f"failed ({analyzer.failure_share * 100:.0f}%: {kinds})"))
    for analyzer in (a for a in report.analyzers if a.disliked):
        todo.append((report.owner_of(analyzer.name),
                     f"Rework {analyzer.name}: {analyzer.not_helpful} not helpful against "
                     f"{analyzer.helpful} helpful"))
    for analyzer in report.missing_data:
        todo.append((report.owner_of(analyzer.name),
                     f"Could not run {analyzer.name} {plural(analyzer.missing_data, 'time')}: "
                     f"{analyzer.missing_reason or 'declared data'} missing (send that "
                     "telemetry, or fix its reads=)"))
    to_fix = {a.name for a in report.unreliable}
    for title, names in (
        ("Never applied (delete, or fix their matchers)", list(report.never_applied)),
        ("Applied but always skipped", [a.name for a in report.always_skipped]),
        ("Ran but never found anything",
         [a.name for a in report.never_found if a.name not in to_fix]),
    ):
        by_owner: dict[str, list[str]] = {}
        for name in names:
            by_owner.setdefault(report.owner_of(name), []).append(name)
        for owner, owned in by_owner.items():
            todo.append((owner, f"{title}: {_names(owned)}"))
    if not todo:
        return ("None: every analyzer applied, found something and rarely failed.",)
    owners = sorted({owner for owner, _ in todo}, key=lambda o: (o == "no owner", o))
    if owners == ["no owner"]:
        return tuple(line for _, line in todo)
    return tuple(f"{owner}: {line}" for owner in owners for o, line in todo if o == owner)


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
