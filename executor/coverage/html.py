"""The coverage report as one self-contained HTML page with inline SVG charts."""

from __future__ import annotations

from html import escape

from casebook.executor.coverage.charts import (
    COVERAGE_COLORS,
    NOT_COVERED,
    OUTCOME_COLORS,
    Bar,
    Segment,
    bar_chart,
    category_color,
    day_chart,
    legend,
)
from casebook.executor.coverage.glance import at_a_glance
from casebook.executor.coverage.model import (
    DEFINITIONS,
    CoverageReport,
    format_ms,
    format_share,
    format_value,
    plural,
)

CHART_ROWS = 15

STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f8;color:#1f2933;font:14px/1.5 system-ui,-apple-system,
 'Segoe UI',sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.sub{color:#616e7c;margin:0 0 18px}
section{background:#fff;border:1px solid #e4e7eb;border-radius:10px;padding:20px 22px;
 margin:0 0 18px}
.note{background:#fffbea;border:1px solid #f7d070;border-radius:8px;padding:10px 14px;
 margin:0 0 14px}
.glance{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;background:none;border:0;
 padding:0}
.answer{background:#fff;border:1px solid #e4e7eb;border-top:5px solid;border-radius:10px;
 padding:14px 16px}
.answer h2{font-size:15px}
.answer ul{margin:0;padding-left:18px}.answer li{margin:0 0 6px}
.write{border-top-color:#3182ce}.fix{border-top-color:#dd6b20}.broke{border-top-color:#e53e3e}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
.figure{border:1px solid #e4e7eb;border-radius:8px;padding:10px 12px}
.figure .value{font-size:24px;font-weight:650}.figure .label{color:#3e4c59;font-size:13px}
.figure .change{font-size:12px;color:#616e7c}
.good{color:#2f855a!important}.bad{color:#c53030!important}
table{border-collapse:collapse;width:100%;margin:10px 0 4px;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid #edf0f2;text-align:left;vertical-align:top}
th{color:#52606d;font-weight:600;background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{max-width:100%;height:auto;display:block;margin:6px 0}
.legend{margin:2px 0 10px;color:#52606d;font-size:12px}
.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.tag{font-size:11px;color:#616e7c;background:#eef1f4;border-radius:4px;padding:1px 5px;
 margin-left:4px}
.lists{display:grid;grid-template-columns:repeat(2,1fr);gap:6px 24px;margin-top:10px}
.lists p{margin:0}
code{background:#eef1f4;border-radius:4px;padding:0 4px;font-size:12px;white-space:nowrap}
td:first-child{white-space:nowrap}
details summary{cursor:pointer;font-weight:600}
dl{margin:10px 0 0}dt{font-weight:600}dd{margin:0 0 8px 0;color:#3e4c59}
"""


def render_html(report: CoverageReport) -> str:
    """The whole report as a self-contained HTML page."""
    title = f"Analyzer coverage, {report.period.label}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">Results database <code>{escape(report.database)}</code>: '
        f"{plural(report.investigations, 'alert')} investigated; compared with "
        f"{escape(report.period.previous().label)} ({report.previous_investigations}).</p>",
    ]
    body += [f'<p class="note">{escape(note)}</p>' for note in report.notes]
    if report.empty:
        body.append(
            '<section id="empty"><h2>Nothing to report for this period</h2>'
            "<p>No investigations were stored between these dates.</p></section>"
        )
    else:
        body += [
            _glance(report),
            _figures(report),
            _alerts(report),
            _uncovered(report),
            _analyzers(report),
            _causes(report),
            _feedback(report),
            _narration(report),
            _definitions(),
        ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        + "\n".join(body)
        + "</main></body></html>\n"
    )


def _glance(report: CoverageReport) -> str:
    cards = []
    for answer, kind in zip(at_a_glance(report), ("write", "fix", "broke"), strict=True):
        items = "".join(f"<li>{escape(line)}</li>" for line in answer.lines)
        cards.append(
            f'<div class="answer {kind}"><h2>{escape(answer.question)}</h2><ul>{items}</ul></div>'
        )
    return f'<section class="glance" id="glance">{"".join(cards)}</section>'


def _figures(report: CoverageReport) -> str:
    cards = []
    for f in report.figures:
        previous = "" if f.previous is None else f" (was {format_value(f.previous, f.kind)})"
        cards.append(
            f'<div class="figure"><div class="value">{escape(f.text)}</div>'
            f'<div class="label">{escape(f.label)}</div>'
            f'<div class="change {f.tone}">{escape(f.change)}{escape(previous)}</div>'
            "</div>"
        )
    return (
        '<section id="figures"><h2>Headline figures, week over week</h2>'
        f'<div class="figures">{"".join(cards)}</div></section>'
    )


def _alerts(report: CoverageReport) -> str:
    bars = [
        Bar(
            a.name,
            (
                Segment(
                    a.with_finding,
                    COVERAGE_COLORS["with a finding"],
                    f"{a.with_finding} with a finding",
                ),
                Segment(
                    a.covered_without_finding,
                    COVERAGE_COLORS["covered, nothing found"],
                    f"{a.covered_without_finding} covered, nothing found",
                ),
                Segment(
                    a.volume - a.with_finding - a.covered_without_finding,
                    NOT_COVERED,
                    f"{a.volume - a.with_finding - a.covered_without_finding} not covered, "
                    "nothing found",
                ),
            ),
            note=f"{a.volume} ({format_share(a.covered, a.volume)} covered)",
        )
        for a in report.alerts[:CHART_ROWS]
    ]
    rows = "".join(
        f"<tr><td>{escape(a.name)}</td><td class=n>{a.volume}</td>"
        f"<td class=n>{a.volume - a.previous_volume:+d}</td>"
        f"<td class=n>{format_share(a.covered, a.volume)}</td>"
        f"<td class=n>{format_share(a.with_finding, a.volume)}</td>"
        f"<td class=n>{format_ms(a.median_first_finding_ms)}</td></tr>"
        for a in report.alerts
    )
    return (
        '<section id="alerts"><h2>Alerts</h2>'
        + day_chart(report.days)
        + legend({"covered": "#3182ce", "not covered": NOT_COVERED})
        + bar_chart(bars, title="Firings per alert name, by coverage")
        + legend(COVERAGE_COLORS)
        + "<table><tr><th>Alert</th><th class=n>Firings</th><th class=n>Change</th>"
        "<th class=n>Covered</th><th class=n>With a finding</th>"
        "<th class=n>Median time to first finding</th></tr>" + rows + "</table></section>"
    )


def _uncovered(report: CoverageReport) -> str:
    out = ['<section id="uncovered"><h2>Alerts no analyzer covers</h2>']
    if not report.uncovered:
        out.append("<p>Every alert of the period had an analyzer written for it run.</p>")
    else:
        out.append(
            "<p>Ranked by firings: where to write the next analyzer.</p><table><tr>"
            "<th>Alert</th><th class=n>Uncovered firings</th><th class=n>Of</th>"
            "<th>Labels</th><th>Why no analyzer ran</th></tr>"
        )
        out += [
            f"<tr><td>{escape(u.name)}</td><td class=n>{u.uncovered}</td>"
            f"<td class=n>{u.volume}</td><td>{escape(', '.join(u.label_keys) or '-')}</td>"
            f"<td>{escape(u.reason)}</td></tr>"
            for u in report.uncovered
        ]
        out.append("</table>")
    if report.unexplained:
        names = ", ".join(
            f"{escape(a.name)} ({plural(a.volume, 'firing')})" for a in report.unexplained
        )
        out.append(f"<p><b>Covered, but no analyzer found anything:</b> {names}.</p>")
    return "".join(out) + "</section>"


def _analyzers(report: CoverageReport) -> str:
    bars = [
        Bar(
            a.name,
            tuple(
                Segment(getattr(a, status), color, f"{getattr(a, status)} {status}")
                for status, color in OUTCOME_COLORS.items()
            ),
            note=plural(a.invocations, "invocation"),
        )
        for a in report.analyzers
    ]
    rows = []
    for a in report.analyzers:
        tags = ('<span class="tag">any alert</span>' if a.catch_all else "") + (
            "" if a.registered else '<span class="tag">not loaded</span>'
        )
        cells = [
            a.applicable,
            a.ran,
            a.found_in,
            a.found,
            a.nothing,
            a.skipped,
            _flag(a.error, a.unreliable),
            _flag(a.timeout, a.unreliable),
            format_ms(a.p50_ms),
            format_ms(a.p95_ms),
            a.helpful,
            _flag(a.not_helpful, a.disliked),
        ]
        rows.append(
            f"<tr><td>{escape(a.name)}{tags}</td>"
            + "".join(f"<td class=n>{c}</td>" for c in cells)
            + "</tr>"
        )
    headers = (
        "Applied",
        "Ran",
        "Found in",
        "found",
        "nothing",
        "skipped",
        "error",
        "timeout",
        "p50",
        "p95",
        "Helpful",
        "Not helpful",
    )
    lists = [
        ("Never applied", list(report.never_applied), "none"),
        ("Applied but always skipped", [a.name for a in report.always_skipped], "none"),
        ("Could not run: data missing",
         [f"{a.name} ({a.missing_reason} missing)" for a in report.missing_data], "none"),
        ("Never found anything", [a.name for a in report.never_found], "none"),
        (
            "High error or timeout rates",
            [
                f"{a.name} ({a.failure_share * 100:.0f}% of "
                f"{plural(a.ran_invocations, 'invocation')})"
                for a in report.unreliable
            ],
            "none",
        ),
    ]
    return (
        '<section id="analyzers"><h2>Analyzers</h2>'
        + bar_chart(bars, title="Invocation outcomes per analyzer", normalize=True)
        + legend(OUTCOME_COLORS)
        + "<table><tr><th>Analyzer</th>"
        + "".join(f"<th class=n>{h}</th>" for h in headers)
        + "</tr>"
        + "".join(rows)
        + '</table><div class="lists">'
        + "".join(
            f"<p><b>{escape(t)}:</b> {escape(', '.join(n) or none)}</p>" for t, n, none in lists
        )
        + "</div></section>"
    )


def _flag(value: int, bad: bool) -> str:
    return f'<b class="bad">{value}</b>' if bad and value else str(value)


def _causes(report: CoverageReport) -> str:
    out = ['<section id="causes"><h2>Top causes</h2>']
    causes = [c for c in report.causes if c.top][:10]
    if not report.causes:
        return "".join(out) + (
            "<p>No investigation of this period ranked a probable cause.</p></section>"
        )
    names = [c for c, _ in report.categories]
    bars = [
        Bar(
            f"{c.category} · {c.entity}",
            (
                Segment(
                    c.top,
                    category_color(c.category, names),
                    f"top cause of {plural(c.top, 'alert')}",
                ),
            ),
            note=f"{plural(c.top, 'alert')}",
        )
        for c in causes
    ]
    if bars:
        out.append(
            bar_chart(bars, title="Top causes, by alerts where they ranked first", label_width=300)
        )
    out.append(
        "<table><tr><th class=n>#</th><th>Category</th><th>Entity</th>"
        "<th class=n>Ranked first</th><th class=n>In top 3</th><th>Alerts</th></tr>"
    )
    out += [
        f"<tr><td class=n>{i}</td><td>{escape(c.category)}</td><td>{escape(c.entity)}</td>"
        f"<td class=n>{c.top}</td><td class=n>{c.top3}</td>"
        f"<td>{escape(', '.join(c.alerts))}</td></tr>"
        for i, c in enumerate(report.causes[:10], start=1)
    ]
    out.append("</table>")
    if report.categories:
        out.append(
            "<p><b>By category (ranked first):</b> "
            + escape(", ".join(f"{category} {count}" for category, count in report.categories))
            + "</p>"
        )
    return "".join(out) + "</section>"


def _feedback(report: CoverageReport) -> str:
    fb = report.feedback
    out = ['<section id="feedback"><h2>Feedback</h2>']
    if not fb.total:
        out.append(
            "<p>No feedback this period: <code>casebook feedback INVESTIGATION_ID "
            "--helpful</code> or the buttons on an investigation page record it.</p>"
        )
        return "".join(out) + "</section>"
    out.append(
        f"<p>{fb.helpful} helpful, {fb.not_helpful} not helpful "
        f"({fb.on_findings} on single findings).</p>"
    )
    if fb.comments:
        out.append("<table><tr><th>Verdict</th><th>Alert</th><th>About</th><th>Comment</th></tr>")
        for c in fb.comments[:10]:
            about = f"{c.finding_id} ({c.analyzer})" if c.finding_id else "the investigation"
            verdict = (
                '<span class="good">helpful</span>'
                if c.helpful
                else '<span class="bad">not helpful</span>'
            )
            out.append(
                f"<tr><td>{verdict}</td><td>{escape(c.alert_name)} "
                f"<code>{escape(c.investigation_id)}</code></td><td>{escape(about)}</td>"
                f"<td>{escape(c.comment)}</td></tr>"
            )
        out.append("</table>")
    return "".join(out) + "</section>"


def _narration(report: CoverageReport) -> str:
    out = ['<section id="narration"><h2>Narration spend</h2>']
    total = sum(n.narratives for n in report.narration)
    if not total:
        out.append("<p>No narratives were stored for this period.</p>")
    elif not report.claude_used:
        out.append(
            f"<p>{plural(total, 'narrative')} came from the deterministic narrator: "
            "no Claude tokens spent.</p>"
        )
    else:
        out.append(
            "<table><tr><th>Narrator</th><th>Model</th><th class=n>Narratives</th>"
            "<th class=n>Tokens in</th><th class=n>Tokens out</th><th class=n>Cost</th>"
            "<th class=n>Fallbacks</th></tr>"
        )
        out += [
            f"<tr><td>{escape(n.narrator)}</td><td>{escape(n.model or '-')}</td>"
            f"<td class=n>{n.narratives}</td><td class=n>{n.tokens_in:,}</td>"
            f"<td class=n>{n.tokens_out:,}</td><td class=n>${n.cost_usd:,.2f}</td>"
            f"<td class=n>{n.fallbacks}</td></tr>"
            for n in report.narration
        ]
        out.append("</table>")
    return "".join(out) + "</section>"


def _definitions() -> str:
    items = "".join(
        f"<dt>{escape(term)}</dt><dd>{escape(meaning)}</dd>" for term, meaning in DEFINITIONS
    )
    return (
        f'<section id="definitions"><details><summary>How these figures are counted'
        f"</summary><dl>{items}</dl></details></section>"
    )
