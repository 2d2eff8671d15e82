"""The coverage report as Markdown (for a wiki page, a ticket or a chat message)."""

from __future__ import annotations

from casebook.executor.coverage.glance import at_a_glance
from casebook.executor.coverage.model import (
    DEFINITIONS,
    CoverageReport,
    format_ms,
    format_share,
    format_value,
    plural,
)


def render_markdown(report: CoverageReport) -> str:
    """The whole report as a Markdown document."""
    out: list[str] = [f"# Analyzer coverage, {report.period.label}", ""]
    out.append(
        f"Results database `{report.database}`: "
        f"{plural(report.investigations, 'alert')} investigated; compared with "
        f"{report.period.previous().label} ({report.previous_investigations})."
    )
    out.append("")
    out += [f"> {note}" for note in report.notes]
    if report.notes:
        out.append("")
    if report.empty:
        out += ["Nothing to report for this period.", ""]
        return "\n".join(out)
    out += _glance(report) + _figures(report) + _alerts(report) + _uncovered(report)
    out += _analyzers(report) + _causes(report) + _feedback(report) + _narration(report)
    out += ["## How these figures are counted", ""]
    out += [f"- **{term}**: {meaning}" for term, meaning in DEFINITIONS]
    out.append("")
    return "\n".join(out)


def _glance(report: CoverageReport) -> list[str]:
    out = ["## At a glance", ""]
    for answer in at_a_glance(report):
        out.append(f"**{answer.question}**")
        out.append("")
        out += [f"- {line}" for line in answer.lines]
        out.append("")
    return out


def _figures(report: CoverageReport) -> list[str]:
    out = [
        "## Headline figures",
        "",
        "| Figure | This period | Previous | Change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for figure in report.figures:
        previous = "-" if figure.previous is None else format_value(figure.previous, figure.kind)
        out.append(f"| {figure.label} | {figure.text} | {previous} | {figure.change} |")
    return [*out, ""]


def _alerts(report: CoverageReport) -> list[str]:
    out = [
        "## Alerts",
        "",
        "| Alert | Firings | Change | Covered | With a finding | Median time to first finding |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for a in report.alerts:
        change = a.volume - a.previous_volume
        out.append(
            f"| {a.name} | {a.volume} | {change:+d} | {format_share(a.covered, a.volume)}"
            f" | {format_share(a.with_finding, a.volume)} | "
            f"{format_ms(a.median_first_finding_ms)} |"
        )
    return [*out, ""]


def _uncovered(report: CoverageReport) -> list[str]:
    out = ["## Alerts no analyzer covers", ""]
    if not report.uncovered:
        out += ["Every alert of the period had an analyzer written for it run.", ""]
    else:
        out += [
            "Ranked by firings: where to write the next analyzer.",
            "",
            "| Alert | Uncovered firings | Of | Labels | Why no analyzer ran |",
            "| --- | ---: | ---: | --- | --- |",
        ]
        out += [
            f"| {u.name} | {u.uncovered} | {u.volume} | {', '.join(u.label_keys) or '-'} | "
            f"{_cell(u.reason)} |"
            for u in report.uncovered
        ]
        out.append("")
    if report.unexplained:
        out += ["Covered, but no analyzer found anything:", ""]
        out += [f"- {a.name} ({plural(a.volume, 'firing')})" for a in report.unexplained]
        out.append("")
    return out


def _analyzers(report: CoverageReport) -> list[str]:
    out = [
        "## Analyzers",
        "",
        "| Analyzer | Applied | Ran | Found in | found | nothing | skipped | error | timeout "
        "| p50 | p95 | Helpful | Not helpful |",
        "| --- |" + " ---: |" * 12,
    ]
    for a in report.analyzers:
        name = a.name + (" (any alert)" if a.catch_all else "")
        name += "" if a.registered else " (not loaded)"
        out.append(
            f"| {name} | {a.applicable} | {a.ran} | {a.found_in} | {a.found} | "
            f"{a.nothing} | {a.skipped} | {a.error} | {a.timeout} | {format_ms(a.p50_ms)}"
            f" | {format_ms(a.p95_ms)} | {a.helpful} | {a.not_helpful} |"
        )
    out.append("")
    out += _name_list(
        "Never applied", list(report.never_applied), "every analyzer applied to at least one alert"
    )
    out += _name_list("Applied but always skipped", [a.name for a in report.always_skipped], "none")
    out += _name_list(
        "Could not run: data missing",
        [f"{a.name} ({a.missing_reason} missing)" for a in report.missing_data],
        "none",
    )
    out += _name_list(
        "Never found anything",
        [a.name for a in report.never_found],
        "every analyzer that ran found something",
    )
    out += _name_list(
        "High error or timeout rates",
        [
            f"{a.name} ({a.failure_share * 100:.0f}% of {plural(a.ran_invocations, 'invocation')})"
            for a in report.unreliable
        ],
        "none",
    )
    return out


def _name_list(title: str, names: list[str], none: str) -> list[str]:
    body = ", ".join(names) if names else none
    return [f"**{title}:** {body}.", ""]


def _causes(report: CoverageReport) -> list[str]:
    out = ["## Top causes", ""]
    if not report.causes:
        return [*out, "No investigation of this period ranked a probable cause.", ""]
    out += [
        "| # | Category | Entity | Ranked first | In top 3 | Alerts |",
        "| ---: | --- | --- | ---: | ---: | --- |",
    ]
    out += [
        f"| {i} | {c.category} | {c.entity} | {c.top} | {c.top3} | {', '.join(c.alerts)} |"
        for i, c in enumerate(report.causes[:10], start=1)
    ]
    out.append("")
    if report.categories:
        out += [
            "By category (ranked first): "
            + ", ".join(f"{category} {count}" for category, count in report.categories)
            + ".",
            "",
        ]
    return out


def _feedback(report: CoverageReport) -> list[str]:
    fb = report.feedback
    out = ["## Feedback", ""]
    if not fb.total:
        return [
            *out,
            "No feedback this period: `casebook feedback INVESTIGATION_ID --helpful` "
            "or the buttons on an investigation page record it.",
            "",
        ]
    out += [
        f"{fb.helpful} helpful, {fb.not_helpful} not helpful "
        f"({fb.on_findings} on single findings).",
        "",
    ]
    for c in fb.comments[:10]:
        about = f"{c.finding_id} ({c.analyzer})" if c.finding_id else "the investigation"
        verdict = "helpful" if c.helpful else "not helpful"
        out.append(
            f'- {verdict}, {c.alert_name} {c.investigation_id}, {about}: "{_cell(c.comment)}"'
        )
    return [*out, ""]


def _narration(report: CoverageReport) -> list[str]:
    out = ["## Narration spend", ""]
    total = sum(n.narratives for n in report.narration)
    if not total:
        return [*out, "No narratives were stored for this period.", ""]
    if not report.claude_used:
        return [
            *out,
            f"{plural(total, 'narrative')} came from the deterministic narrator: "
            "no Claude tokens spent.",
            "",
        ]
    out += [
        "| Narrator | Model | Narratives | Tokens in | Tokens out | Cost | Fallbacks |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    out += [
        f"| {n.narrator} | {n.model or '-'} | {n.narratives} | {n.tokens_in:,} | "
        f"{n.tokens_out:,} | ${n.cost_usd:,.2f} | {n.fallbacks} |"
        for n in report.narration
    ]
    return [*out, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
