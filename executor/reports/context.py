"""What a report shows around the investigation itself: links out (runbook, alert rule,
dashboards, traces), earlier investigations with the same alert and top cause ("seen before"),
and where the results were delivered. Each report format renders these with the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from casebook.executor.links import Link, alert_links, investigation_links
from casebook.executor.record import InvestigationRecord

SEEN_BEFORE_DAYS = 30


@dataclass(frozen=True)
class ReportContext:
    """The surroundings of one investigation; None for `seen_before` means "not looked up"."""

    links: list[Link] = field(default_factory=list)
    seen_before: list[dict[str, Any]] | None = None
    seen_before_days: float = SEEN_BEFORE_DAYS
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def links_of(record: InvestigationRecord, context: ReportContext | None) -> list[Link]:
    return context.links if context is not None else alert_links(record.alert)


def context_for(record: InvestigationRecord, *, results=None, templates=None, outbox=None,
                days: float = SEEN_BEFORE_DAYS) -> ReportContext:
    """The context from whatever is at hand: the results store, link templates, the outbox."""
    return ReportContext(
        links=investigation_links(record, templates),
        seen_before=results.seen_before(record, days=days) if results is not None else None,
        seen_before_days=days,
        deliveries=outbox.log_for(record.id) if outbox is not None else [],
    )


# HTML


def values_html(values: dict[str, float]) -> str:
    """The values the alert rule evaluated (Grafana's `values`), as chips."""
    return "".join(f'<span class="chip value"><b>{escape(k)}</b> = {v:g}</span>'
                   for k, v in sorted(values.items()))


def links_html(links: list[Link]) -> str:
    if not links:
        return ""
    items = "".join(
        f'<a class="link link-{escape(link.kind)}" href="{escape(link.url)}" '
        f'rel="noopener noreferrer">{escape(link.label)}</a>'
        for link in links
    )
    return f'<nav class="links" aria-label="links">{items}</nav>'


def seen_before_html(record: InvestigationRecord, context: ReportContext | None) -> str:
    if context is None or context.seen_before is None:
        return ""
    days = f"{context.seen_before_days:g}"
    if not context.seen_before:
        text = (f"Not seen before: no investigation of {escape(record.alert.name)} in the "
                f"{days} days before this one had the same top cause.")
        return (f'<section class="card seen-before" id="seen-before"><h2>Seen before</h2>'
                f"<p>{text}</p></section>")
    top = record.causes[0]
    rows = "".join(
        f'<tr><td><a href="{escape(e["report_url"])}">{escape(e["created_at"][:16].replace("T", " "))}'
        f' UTC</a></td><td>{escape(e["status"] or "")}</td><td>{escape(e["feedback"])}</td>'
        f'<td class="text">{escape(e["id"])}</td></tr>'
        for e in context.seen_before
    )
    return (
        f'<section class="card seen-before" id="seen-before"><h2>Seen before</h2>'
        f"<p>{len(context.seen_before)} earlier investigation(s) of "
        f"{escape(record.alert.name)} in the last {days} days had the same top cause: "
        f"{escape(top.category)} on {escape(top.entity.kind)} <b>{escape(top.entity.name)}</b>."
        f'</p><div class="scroll"><table><tr><th>when</th><th>status</th><th>feedback</th>'
        f"<th>investigation</th></tr>{rows}</table></div></section>"
    )


def deliveries_html(context: ReportContext | None) -> str:
    if context is None or not context.deliveries:
        return ""
    rows = "".join(
        f'<tr><td>{escape(d["sink"])}</td><td>{escape(d["kind"])}</td>'
        f'<td class="delivery-{escape(d["state"])}">{escape(d["state"])}</td>'
        f'<td class="num">{d["attempts"]}</td>'
        f'<td>{escape((d["delivered_at"] or d["next_attempt_at"] or "")[:19].replace("T", " "))}'
        f'</td><td class="text">{escape(d["last_error"] or "")}</td></tr>'
        for d in context.deliveries
    )
    return (
        f'<section class="card deliveries" id="deliveries"><h2>Deliveries</h2>'
        f'<div class="scroll"><table><tr><th>sink</th><th>message</th><th>state</th>'
        f"<th>attempts</th><th>delivered / next try (UTC)</th><th>last error</th></tr>{rows}"
        f"</table></div></section>"
    )


LINK_STYLE = (
    ".links{display:flex;flex-wrap:wrap;gap:8px;margin-top:10px}"
    ".links a{font-size:13px;border:1px solid #c7d2fe;background:#eef2ff;border-radius:6px;"
    "padding:2px 10px}.delivery-failed{color:#b91c1c}.delivery-delivered{color:#15803d}"
)


# Markdown and terminal


def links_markdown(links: list[Link], values: dict[str, float] | None = None) -> list[str]:
    lines = []
    if values:
        lines += ["Values: " + ", ".join(f"{k} = {v:g}" for k, v in sorted(values.items())), ""]
    if links:
        lines += ["Links: " + " · ".join(f"[{link.label}]({link.url})" for link in links), ""]
    return lines


def seen_before_markdown(record: InvestigationRecord, context: ReportContext | None) -> list[str]:
    if context is None or context.seen_before is None:
        return []
    days = f"{context.seen_before_days:g}"
    if not context.seen_before:
        return ["## Seen before", "", f"Not seen before: no investigation of {record.alert.name} "
                f"in the {days} days before this one had the same top cause.", ""]
    lines = ["## Seen before", "", f"{len(context.seen_before)} earlier investigation(s) of "
             f"{record.alert.name} in the last {days} days had the same top cause:", ""]
    lines += [f"- [{e['created_at'][:16].replace('T', ' ')} UTC]({e['report_url']}) "
              f"`{e['id']}` · {e['status']} · {e['feedback']}" for e in context.seen_before]
    return [*lines, ""]


def context_lines(record: InvestigationRecord, context: ReportContext | None) -> list[str]:
    """Plain lines for the terminal report."""
    lines = [f"{link.label}: {link.url}" for link in links_of(record, context)]
    if context is not None and context.seen_before is not None:
        if context.seen_before:
            lines.append(f"Seen before ({len(context.seen_before)} in "
                         f"{context.seen_before_days:g} days, same top cause): " + ", ".join(
                             f"{e['created_at'][:10]} {e['id']} ({e['feedback']})"
                             for e in context.seen_before))
        else:
            lines.append("Not seen before in the last "
                         f"{context.seen_before_days:g} days with this top cause.")
    return lines
