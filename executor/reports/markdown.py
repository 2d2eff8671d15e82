"""The Markdown report: the same order as the HTML page, for tickets, chat and postmortem drafts."""

from __future__ import annotations

import json
from typing import Any

from casebook.executor.narration.redaction import redact
from casebook.executor.record import FindingRecord, InvestigationRecord, SentenceRecord
from casebook.executor.reports.context import (
    ReportContext,
    links_markdown,
    links_of,
    seen_before_markdown,
)
from casebook.executor.reports.outline import (
    Branch,
    by_kind,
    cause_ranks,
    failed_invocations,
    failure_reason,
    finding_tree,
    findings_in_order,
    narrator_line,
)
from casebook.sdk.models import Evidence

MAX_ROWS_SHOWN = 8
SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40


def render_markdown(record: InvestigationRecord, context: ReportContext | None = None) -> str:
    """The investigation as Markdown; every narrative sentence links to its findings; with
    `context`, earlier occurrences and templated links."""
    lines: list[str] = []
    alert = record.alert
    labels = " · ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    lines += [
        f"# {_text(alert.name)}",
        "",
        f"{alert.status} since {alert.starts_at:%Y-%m-%d %H:%M} UTC · {_text(labels)} · "
        f"window {record.window.start:%H:%M}–{record.window.end:%H:%M} UTC · "
        f"`{record.id}`",
        "",
        *links_markdown(links_of(record, context), alert.values),
    ]
    failure = failure_reason(record)
    if failure is not None:
        lines += [f"> **Investigation failed:** {_text(failure)}", ""]
    narrative = record.narrative
    if narrative is not None and narrative.fallback_reason:
        lines += [
            f"> **The deterministic narrator wrote this summary.** "
            f"{_text(narrative.fallback_reason)}",
            "",
        ]

    groups = by_kind(narrative)
    lines += ["## What happened", ""]
    if narrative is None:
        lines += ["No narrative was written for this investigation.", ""]
    else:
        lines += [f"**{_sentence(s)}**" for s in groups["headline"]] + [""]
        lines += [f"- {_sentence(s)}" for s in groups["fact"]]
        lines += ["", f"_{_text(narrator_line(narrative))}_", ""]

    lines += ["## Probable causes", ""]
    if record.causes:
        lines += ["| # | cause | on | score | findings |", "|---:|---|---|---:|---|"]
        lines += [
            f"| {c.rank} | **{c.category}** {_cell(c.title)} | {c.entity.kind} "
            f"`{_cell(c.entity.name)}` | {c.score:.2f} | {_links(c.finding_ids)} |"
            for c in record.causes
        ]
    else:
        lines.append(
            "No probable cause: every invocation failed (above)."
            if record.status == "failed"
            else "No probable cause: no analyzer found anything notable."
        )
    lines.append("")

    lines += seen_before_markdown(record, context)
    if groups["next_step"]:
        lines += ["## Next steps", ""]
        lines += [f"{i}. {_sentence(s)}" for i, s in enumerate(groups["next_step"], start=1)]
        lines += ["", "_Suggestions for a person; casebook never executes anything._", ""]
    if groups["hypothesis"]:
        lines += ["## Hypotheses (suggested by the findings, not established)", ""]
        lines += [f"- _{_sentence(s)}_" for s in groups["hypothesis"]] + [""]

    if record.findings:
        ranks = cause_ranks(record)
        lines += ["## Chain of findings", ""]
        for root in finding_tree(record):
            lines += _branch(root, 0, ranks)
        lines += ["", "## Findings and evidence", ""]
        for finding in findings_in_order(record):
            lines += _finding(finding)

    lines += ["## Invocations", ""]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(record.status_counts().items()))
    lines.append(f"{len(record.invocations)} invocations: {counts or 'none'}.")
    failed = failed_invocations(record)
    if failed:
        lines += ["", "| status | invocation | error |", "|---|---|---|"]
        lines += [
            f"| {i.status} | `{_cell(i.key)}` | {_cell(redact(_first_line(i.error or '')))} |"
            for i in failed[:30]
        ]
    lines += [f"- note: {_text(n)}" for n in record.notes]
    return "\n".join(lines).rstrip() + "\n"


def _branch(branch: Branch, depth: int, ranks: dict[str, int]) -> list[str]:
    f = branch.finding
    cause = f" — **cause #{ranks[f.id]}**" if f.id in ranks else ""
    lines = [f"{'  ' * depth}- [{f.id}](#{f.id}) {_text(f.title)} (`{f.analyzer}`){cause}"]
    for child in branch.children:
        lines += _branch(child, depth + 1, ranks)
    return lines


def _finding(f: FindingRecord) -> list[str]:
    lines = [
        f'### <a id="{f.id}"></a>{f.id} · {_text(f.title)}',
        "",
        f"**{f.severity}** · {f.category} · confidence {f.confidence:.0%} · `{f.analyzer}`"
        + (f" · owner {_text(f.owner)}" if f.owner else ""),
        "",
        _text(f.summary),
        "",
    ]
    if f.entities:
        lines.append("- about: " + ", ".join(f"{e.kind} `{_cell(e.name)}`" for e in f.entities))
    if f.onset:
        lines.append(f"- onset: {f.onset:%Y-%m-%d %H:%M:%S} UTC")
    if f.led_from:
        lines.append(f"- led from: {_links(f.led_from)}")
    if f.explains:
        lines.append(f"- explains: {_links(f.explains)}")
    for key, value in f.facts.items():
        lines.append(f"- {key}: {_text(_short(_plain(value)))}")
    if f.mitigations:
        lines += [""] + [f"**Suggested:** {_text(m.action)} ({m.risk} risk)" for m in f.mitigations]
    for number, evidence in enumerate(f.evidence, start=1):
        lines += ["", *_evidence(evidence, number)]
    return lines


def _evidence(e: Evidence, number: int) -> list[str]:
    lines = [f"**Evidence {number}{': ' + _text(e.note) if e.note else ''}**", ""]
    for name, points in e.series.items():
        if len(points) >= 2:
            lines.append(
                f"- `{_spark([v for _, v in points])}` {_text(name)}: "
                f"{_fmt(points[0][1])} → {_fmt(points[-1][1])} "
                f"({points[0][0]:%H:%M}–{points[-1][0]:%H:%M})"
            )
    if e.series:
        lines.append("")
    if e.rows and e.columns:
        lines += [
            "| " + " | ".join(_cell(c) for c in e.columns) + " |",
            "|" + "---|" * len(e.columns),
        ]
        lines += [
            "| " + " | ".join(_cell(_short(_plain(v), 120)) for v in row) + " |"
            for row in e.rows[:MAX_ROWS_SHOWN]
        ]
        if len(e.rows) > MAX_ROWS_SHOWN:
            lines.append(f"\n_{len(e.rows) - MAX_ROWS_SHOWN} more row(s) in the stored record._")
        lines.append("")
    if e.query:
        lines += [
            "<details><summary>Query that produced it</summary>",
            "",
            "```sql",
            e.query.strip().replace("```", "` ` `"),
            "```",
            "",
        ]
        if e.params:
            lines += [f"parameters: `{_cell(_short(_plain(e.params), 400))}`", ""]
        lines += ["</details>"]
    return [*lines, ""] if lines[-1] else lines


def _spark(values: list[float]) -> str:
    step = max(1, -(-len(values) // SPARK_WIDTH))
    sampled = values[::step]
    low, high = min(sampled), max(sampled)
    spread = (high - low) or 1.0
    return "".join(SPARKS[round((v - low) / spread * (len(SPARKS) - 1))] for v in sampled)


def _sentence(sentence: SentenceRecord) -> str:
    cites = " ".join(f"[{i}](#{i})" for i in sentence.finding_ids)
    return _text(sentence.text) + (f" {cites}" if cites else "")


def _links(ids: list[str]) -> str:
    return ", ".join(f"[{i}](#{i})" for i in ids)


def _text(text: str) -> str:
    """Telemetry text made inert: no raw HTML, no line breaks that would start new blocks."""
    return " ".join(str(text).replace("<", "&lt;").replace(">", "&gt;").split())


def _cell(text: Any) -> str:
    return _text(str(text)).replace("|", "\\|")


def _plain(value: Any) -> str:
    """A value as display text, secrets redacted: reports get forwarded to tickets and chat."""
    return redact(value if isinstance(value, str) else json.dumps(value, default=str))


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.3g}"
