"""One self-contained HTML page per investigation: no scripts, no external assets, opens offline.

Top to bottom in the order a person paged at night needs it: the alert, what happened (the
narrative's headline and facts, each sentence linked to its findings, beside the key chart), the
ranked causes, next steps and hypotheses, the chain of findings, then every finding with its
evidence and the query that produced it, and last what did not run.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import escape
from typing import Any

from casebook.executor.narration.redaction import redact
from casebook.executor.record import FindingRecord, InvestigationRecord, SentenceRecord
from casebook.executor.reports.chart import line_chart
from casebook.executor.reports.context import (
    LINK_STYLE,
    ReportContext,
    deliveries_html,
    links_html,
    links_of,
    seen_before_html,
    values_html,
)
from casebook.executor.reports.html_style import STYLE
from casebook.executor.reports.outline import (
    Branch,
    by_kind,
    cause_ranks,
    failed_invocations,
    failure_reason,
    finding_tree,
    findings_in_order,
    key_evidence,
    narrator_line,
)
from casebook.sdk.models import Evidence

MAX_ROWS_SHOWN = 8
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:?00)?")
MAX_CELL = 200


def render_html(record: InvestigationRecord, feedback_url: str | None = None,
                context: ReportContext | None = None) -> str:
    """The investigation as one HTML page; with `feedback_url`, helpful/not-helpful forms;
    with `context`, earlier occurrences, link templates and deliveries."""
    alert = record.alert
    title = f"{alert.name}: {record.narrative.headline if record.narrative else record.id}"
    body = [
        _alert(record, context),
        _banner(record),
        _story(record),
        _causes(record),
        seen_before_html(record, context),
        _steps(record),
        _chain(record),
        _findings(record, feedback_url),
        _runs(record),
        deliveries_html(context),
        _investigation_feedback(record, feedback_url),
        f"<footer>casebook · {escape(record.id)} · generated "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC</footer>",
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}{LINK_STYLE}</style></head><body><main>"
        + "".join(part for part in body if part)
        + "</main></body></html>"
    )


def _alert(record: InvestigationRecord, context: ReportContext | None = None) -> str:
    alert = record.alert
    chips = "".join(
        f'<span class="chip"><b>{escape(k)}</b> {escape(v)}</span>'
        for k, v in sorted(alert.labels.items())
        if k != "alertname"
    ) + values_html(alert.values)
    counts = record.status_counts()
    ran = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    return (
        f'<header class="alert"><span class="dot {escape(alert.status)}"></span><div>'
        f"<h1>{escape(alert.name)}</h1>"
        + (f'<p class="sub">{escape(summary)}</p>' if summary else "")
        + f'<p class="sub">{escape(alert.status)} since {alert.starts_at:%Y-%m-%d %H:%M} UTC · '
        f"window {record.window.start:%H:%M}–{record.window.end:%H:%M} UTC · "
        f"{len(record.invocations)} invocations ({escape(ran or 'none')}) · "
        f"{escape(record.id)}</p>"
        f'<div class="chips">{chips}</div>{links_html(links_of(record, context))}</div></header>'
    )


def _banner(record: InvestigationRecord) -> str:
    failure = failure_reason(record)
    failed = (
        f'<div class="banner failed" role="alert"><b>Investigation failed:</b> '
        f"{escape(failure)}</div>"
        if failure is not None
        else ""
    )
    narrative = record.narrative
    if narrative is None or not narrative.fallback_reason:
        return failed
    return failed + (
        f'<div class="banner" role="note"><b>The deterministic narrator wrote this '
        f"summary.</b> {escape(narrative.fallback_reason)}</div>"
    )


def _story(record: InvestigationRecord) -> str:
    narrative = record.narrative
    groups = by_kind(narrative)
    if narrative is None:
        text = '<p class="headline">No narrative was written for this investigation.</p>'
    else:
        headline = "".join(_sentence(s) for s in groups["headline"]) or escape(narrative.headline)
        facts = "".join(f"<li>{_sentence(s)}</li>" for s in groups["fact"])
        text = (
            f'<p class="headline">{headline}</p>'
            + (f'<ul class="facts">{facts}</ul>' if facts else "")
            + f'<p class="narrator">{escape(narrator_line(narrative))}</p>'
        )
    chart = ""
    key = key_evidence(record)
    if key is not None:
        finding, evidence = key
        chart = (
            f"<div>{line_chart(evidence.series, marker=finding.onset, title=evidence.note)}"
            f'<p class="note">{escape(evidence.note or "key series")} · from '
            f'<a href="#{escape(finding.id)}">{escape(finding.id)}</a></p></div>'
        )
    layout = "story with-chart" if chart else "story"
    return (
        f'<section class="card" aria-labelledby="what"><h2 id="what">What happened</h2>'
        f'<div class="{layout}"><div>{text}</div>{chart}</div></section>'
    )


def _causes(record: InvestigationRecord) -> str:
    if not record.causes:
        why = (
            "every invocation failed (above)"
            if record.status == "failed"
            else "no analyzer found anything notable"
        )
        return (
            f'<section class="card"><h2>Probable causes</h2><p>No probable cause: {why}.</p>'
            "</section>"
        )
    by_id = {f.id: f for f in record.findings}
    items = []
    for cause in record.causes:
        lead = by_id.get(cause.finding_ids[0]) if cause.finding_ids else None
        title = cause.title or (lead.title if lead else "")
        items.append(
            f'<li class="cause{" top" if cause.rank == 1 else ""}">'
            f'<span class="rank">#{cause.rank}</span><b>{escape(cause.category.upper())}</b> '
            f'<span class="meta">on {escape(cause.entity.kind)} {escape(cause.entity.name)}</span>'
            f'<div class="what">{escape(title)}</div>'
            f'<div class="bar" title="score {cause.score:.2f}"><span style="width:'
            f'{max(2, min(100, cause.score * 100)):.0f}%"></span></div>'
            f'<div class="meta">score {cause.score:.2f} · supported by {_links(cause.finding_ids)}'
            "</div></li>"
        )
    together = (
        '<p class="note">Ranked by score; contributing causes may stand together.</p>'
        if len(record.causes) > 1
        else ""
    )
    return (
        f'<section class="card"><h2>Probable causes</h2>'
        f'<ol class="causes">{"".join(items)}</ol>{together}</section>'
    )


def _steps(record: InvestigationRecord) -> str:
    groups = by_kind(record.narrative)
    blocks = []
    if groups["next_step"]:
        steps = "".join(f"<li>{_sentence(s)}</li>" for s in groups["next_step"])
        blocks.append(
            f'<section class="card"><h2>Next steps</h2><ol class="steps">{steps}</ol>'
            '<p class="note">Suggestions for a person; casebook never executes '
            "anything.</p></section>"
        )
    if groups["hypothesis"]:
        items = "".join(f"<li>{_sentence(s)}</li>" for s in groups["hypothesis"])
        blocks.append(
            f'<section class="card"><h2>Hypotheses</h2><ul class="hyp">{items}</ul>'
            '<p class="note">Suggested by the cited findings, not established by '
            "them.</p></section>"
        )
    return f'<div class="two">{"".join(blocks)}</div>' if blocks else ""


def _chain(record: InvestigationRecord) -> str:
    if not record.findings:
        return ""
    ranks = cause_ranks(record)

    def item(branch: Branch) -> str:
        f = branch.finding
        tag = f'<span class="tag cause">cause #{ranks[f.id]}</span>' if f.id in ranks else ""
        kids = "".join(item(child) for child in branch.children)
        return (
            f'<li><a href="#{escape(f.id)}"><b>{escape(f.id)}</b></a> {escape(f.title)}'
            f'<span class="tag">{escape(f.analyzer)}</span>{tag}'
            + (f"<ul>{kids}</ul>" if kids else "")
            + "</li>"
        )

    tree = "".join(item(root) for root in finding_tree(record))
    return (
        f'<section class="card"><h2>Chain of findings</h2><ul class="tree">{tree}</ul>'
        '<p class="note">Each finding sits under the finding whose follow-up found it.</p>'
        "</section>"
    )


def _findings(record: InvestigationRecord, feedback_url: str | None) -> str:
    if not record.findings:
        return ""
    cards = "".join(_finding(record, f, feedback_url) for f in findings_in_order(record))
    return f"<h2>Findings and evidence</h2>{cards}"


def _finding(record: InvestigationRecord, f: FindingRecord, feedback_url: str | None) -> str:
    meta: list[tuple[str, str]] = []
    if f.entities:
        meta.append(
            ("about", ", ".join(f"{escape(e.kind)} <b>{escape(e.name)}</b>" for e in f.entities))
        )
    if f.onset:
        meta.append(("onset", f"{f.onset:%Y-%m-%d %H:%M:%S} UTC"))
    if f.led_from:
        meta.append(("led from", _links(f.led_from)))
    if f.explains:
        meta.append(("explains", _links(f.explains)))
    for key, value in f.facts.items():
        meta.append((escape(key), escape(_short(_plain(value)))))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta)
    mitigations = "".join(
        f'<p class="mitigation"><b>Suggested:</b> {escape(m.action)}'
        f'{" — " + escape(m.detail) if m.detail else ""} <span class="tag">{escape(m.risk)} '
        "risk</span></p>"
        for m in f.mitigations
    )
    evidence = "".join(_evidence(f, e, i) for i, e in enumerate(f.evidence, start=1))
    return (
        f'<article class="card finding" id="{escape(f.id)}"><div class="head">'
        f'<span class="fid">{escape(f.id)}</span><h3>{escape(f.title)}</h3>'
        f'<span class="sev sev-{escape(f.severity)}">{escape(f.severity)}</span>'
        f'<span class="tag">{escape(f.category)}</span>'
        f'<span class="tag">confidence {f.confidence:.0%}</span>'
        f'<span class="tag">{escape(f.analyzer)}</span>'
        + (f'<span class="tag owner">owner {escape(f.owner)}</span>' if f.owner else "")
        + '</div>'
        f'<p>{escape(f.summary)}</p><dl class="kv">{dl}</dl>{mitigations}{evidence}'
        f"{_feedback_form(record, feedback_url, f.id)}</article>"
    )


def _evidence(finding: FindingRecord, e: Evidence, number: int) -> str:
    chart = line_chart(e.series, marker=finding.onset, title=e.note) if e.series else ""
    table = ""
    if e.rows:
        head = "".join(f"<th>{escape(c)}</th>" for c in e.columns)
        rows = "".join(
            "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in e.rows[:MAX_ROWS_SHOWN]
        )
        more = (
            f'<p class="note">{len(e.rows) - MAX_ROWS_SHOWN} more row(s) in the stored '
            "record (--json).</p>"
            if len(e.rows) > MAX_ROWS_SHOWN
            else ""
        )
        table = f'<div class="scroll"><table><tr>{head}</tr>{rows}</table></div>{more}'
        if chart:
            table = f"<details><summary>Rows ({len(e.rows)})</summary>{table}</details>"
    query = ""
    if e.query:
        params = (
            f'<p class="params">parameters: {escape(_short(_plain(e.params), 600))}</p>'
            if e.params
            else ""
        )
        query = (
            f"<details><summary>Query that produced it</summary>"
            f"<pre><code>{escape(e.query.strip())}</code></pre>{params}</details>"
        )
    label = escape(e.note) if e.note else f"Evidence {number}"
    return f'<div class="evidence"><h4>{label}</h4>{chart}{table}{query}</div>'


def _runs(record: InvestigationRecord) -> str:
    counts = "".join(
        f'<span class="st-{escape(s)}">{n} {escape(s)}</span>'
        for s, n in sorted(record.status_counts().items())
    )
    failed = failed_invocations(record)
    rows = "".join(
        f"<tr><td>{escape(i.status)}</td><td>{escape(i.key)}</td>"
        f'<td class="text">{escape(_short(redact((i.error or "").strip()), 400))}</td></tr>'
        for i in failed[:30]
    )
    failures = (
        f"<details><summary>{len(failed)} invocation(s) did not finish (everything else "
        f'completed)</summary><div class="scroll"><table><tr><th>status</th>'
        f"<th>invocation</th><th>error</th></tr>{rows}</table></div></details>"
        if failed
        else ""
    )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in record.notes)
    return (
        f'<section class="card"><h2>Invocations</h2><div class="counts">{counts}</div>'
        f"{failures}{notes}</section>"
    )


# Feedback: the intake service passes `feedback_url`; each form posts investigation_id,
# finding_id (empty for the whole investigation) and helpful=true|false to it.
def _feedback_form(
    record: InvestigationRecord, feedback_url: str | None, finding_id: str = ""
) -> str:
    if not feedback_url:
        return ""
    return (
        f'<form class="feedback" method="post" action="{escape(feedback_url)}">'
        f'<input type="hidden" name="investigation_id" value="{escape(record.id)}">'
        f'<input type="hidden" name="finding_id" value="{escape(finding_id)}">'
        '<button name="helpful" value="true">Helpful</button>'
        '<button name="helpful" value="false">Not helpful</button></form>'
    )


def _investigation_feedback(record: InvestigationRecord, feedback_url: str | None) -> str:
    if not feedback_url:
        return ""
    return (
        f'<section class="card"><h2>Was this investigation helpful?</h2>'
        f"{_feedback_form(record, feedback_url)}</section>"
    )


def _sentence(sentence: SentenceRecord) -> str:
    return f"{escape(sentence.text)}{_cites(sentence.finding_ids)}"


def _cites(ids: list[str]) -> str:
    if not ids:
        return ""
    links = "".join(
        f'<a href="#{escape(i)}" title="finding {escape(i)}">{escape(i)}</a>' for i in ids
    )
    return f'<span class="cites">{links}</span>'


def _links(ids: list[str]) -> str:
    return ", ".join(f'<a href="#{escape(i)}">{escape(i)}</a>' for i in ids)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{escape(str(value))}</td>"
    if isinstance(value, int | float):
        return f'<td class="num">{_number(value)}</td>'
    text = _plain(value)
    if ISO_MOMENT.fullmatch(text):
        return f"<td>{escape(text[:10])} {escape(text[11:19])}</td>"
    return f'<td class="text">{escape(_short(text, MAX_CELL))}</td>'


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.4f}".rstrip("0") if abs(value) < 1000 else f"{value:,.1f}"


def _plain(value: Any) -> str:
    """A value as display text, secrets redacted: reports get forwarded to tickets and chat."""
    return redact(value if isinstance(value, str) else json.dumps(value, default=str))


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
