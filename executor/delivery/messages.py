"""What is sent: one message per investigation (or report, or post-processor action), written
once as the generic JSON summary and Markdown, then shaped for each sink type: the JSON as is
for webhooks, Block Kit for Slack, an Events API v2 event for PagerDuty, a file for Markdown."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from casebook.executor.config.schema import Sink
from casebook.executor.links import Link
from casebook.executor.narration.redaction import redact
from casebook.executor.record import InvestigationRecord
from casebook.executor.reports.outline import by_kind

TOP_CAUSES = 3
SLACK_TEXT_LIMIT = 2900  # Slack refuses section text over 3000 characters
PAGERDUTY_SUMMARY_LIMIT = 1024
SEVERITIES = {"critical": "critical", "page": "critical", "error": "error", "high": "error",
              "warning": "warning", "warn": "warning", "info": "info", "low": "info"}


@dataclass(frozen=True)
class Message:
    """One thing to deliver, before it is shaped for a sink."""

    kind: str  # investigation, coverage, notification, ticket
    key: str  # what the idempotency key is made from (the sink's name is added)
    title: str
    payload: dict[str, Any]
    markdown: str
    investigation_id: str | None = None
    fingerprint: str = ""
    severity: str = "warning"
    source: str = "casebook"
    report_url: str = ""
    links: list[Link] = field(default_factory=list)

    def idempotency_key(self, sink: str) -> str:
        return f"{self.key}:{sink}"


def investigation_message(
    record: InvestigationRecord,
    *,
    report_url: str,
    seen_before: list[dict[str, Any]],
    links: list[Link],
    markdown: str,
) -> Message:
    """The message about a finished investigation."""
    groups = by_kind(record.narrative)
    narrative = record.narrative
    alert = record.alert
    payload: dict[str, Any] = {
        "kind": "investigation",
        "id": record.id,
        "status": record.status,
        "alert": alert.model_dump(mode="json"),
        "causes": [c.model_dump(mode="json") for c in record.causes],
        "narrative": {
            "narrator": narrative.narrator if narrative else None,
            "headline": narrative.headline if narrative else "",
            "text": narrative.text if narrative else "",
            "next_steps": [s.text for s in groups["next_step"]],
            "verified": narrative.verified if narrative else None,
        },
        "findings": [
            {"id": f.id, "analyzer": f.analyzer, "title": f.title, "summary": f.summary,
             "category": f.category, "severity": f.severity, "confidence": f.confidence}
            for f in record.findings
        ],
        "report_url": report_url,
        "links": [link.as_json() for link in links],
        "seen_before": seen_before,
        "created_at": record.created_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }
    headline = (narrative.headline if narrative else "") or (
        f"{record.causes[0].category} on {record.causes[0].entity}" if record.causes
        else "no probable cause found")
    return Message(
        kind="investigation",
        key=record.id,
        title=f"{alert.name}: {headline}",
        payload=redacted(payload),
        markdown=redact(markdown),
        investigation_id=record.id,
        fingerprint=alert.fingerprint,
        severity=alert.labels.get("severity", "warning"),
        source=alert.service or alert.source,
        report_url=report_url,
        links=links,
    )


def redacted(value: Any) -> Any:
    """Every string of a JSON value through the redaction step."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def shaped(message: Message, sink: Sink) -> tuple[bytes, str, str]:
    """(body, content type, file name) of a message for one sink."""
    if sink.type == "markdown":
        return message.markdown.encode(), "text/markdown; charset=utf-8", _file_name(message)
    if sink.type == "slack":
        body: dict[str, Any] = slack_body(message)
    elif sink.type == "pagerduty":
        body = pagerduty_event(message, sink.routing_key or "")
    else:
        body = message.payload
    return json.dumps(body, separators=(",", ":")).encode(), "application/json", ""


def _file_name(message: Message) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", message.key).strip("-") + ".md"


# Slack


def slack_body(message: Message) -> dict[str, Any]:
    """Block Kit: headline, top causes with scores, next steps, seen before, links, report."""
    payload = message.payload
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(message.title, 150)}}
    ]
    if message.kind == "investigation":
        alert = payload["alert"]
        labels = " · ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items())
                            if k != "alertname")
        blocks.append(_context(f"{alert['status']} since {alert['starts_at'][:16]} UTC · "
                               f"{labels}"))
        causes = payload["causes"][:TOP_CAUSES]
        lines = [f"{c['rank']}. *{_escape(c['category'])}* on {c['entity']['kind']} "
                 f"`{_escape(c['entity']['name'])}` (score {c['score']:.2f})"
                 + (f": {_escape(c['title'])}" if c.get("title") else "") for c in causes]
        blocks.append(_section("*Probable causes*\n" + ("\n".join(lines) or
                                                        "No probable cause found.")))
        steps = payload["narrative"]["next_steps"]
        if steps:
            blocks.append(_section("*Next steps*\n" + "\n".join(
                f"• {_escape(s)}" for s in steps)))
        earlier = payload["seen_before"]
        if earlier:
            blocks.append(_section("*Seen before* (same alert, same top cause)\n" + "\n".join(
                f"• <{e['report_url']}|{e['created_at'][:10]}> {_escape(e['feedback'])}"
                for e in earlier[:5])))
    else:
        blocks.append(_section(_escape(payload.get("text") or message.markdown)))
    links = [link for link in message.links if link.url][:8]
    if links:
        blocks.append(_context(" · ".join(f"<{link.url}|{_escape(link.label)}>"
                                          for link in links)))
    if message.report_url:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open the report"},
            "url": message.report_url}]})
    return {"text": _cut(message.title, 300), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_TEXT_LIMIT)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, 2000)}]}


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# PagerDuty


def pagerduty_event(message: Message, routing_key: str) -> dict[str, Any]:
    """An Events API v2 trigger on the alert's dedup key: it joins the alert's incident."""
    payload = message.payload
    top = (payload.get("causes") or [None])[0]
    details: dict[str, Any] = {"casebook_kind": message.kind, "report_url": message.report_url}
    if message.kind == "investigation":
        details |= {
            "causes": [f"{c['rank']}. {c['category']} on {c['entity']['kind']} "
                       f"{c['entity']['name']} (score {c['score']:.2f})"
                       for c in payload["causes"][:TOP_CAUSES]],
            "next_steps": payload["narrative"]["next_steps"],
            "seen_before": len(payload["seen_before"]),
        }
    else:
        details["text"] = payload.get("text", "")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": message.fingerprint or message.key,
        "payload": {
            "summary": _cut(message.title, PAGERDUTY_SUMMARY_LIMIT),
            "source": message.source,
            "severity": SEVERITIES.get(message.severity.lower(), "warning"),
            "custom_details": details,
        },
        "client": "casebook",
        "links": [{"href": link.url, "text": link.label} for link in message.links],
    }
    if top:
        event["payload"]["component"] = f"{top['entity']['kind']}:{top['entity']['name']}"
        event["payload"]["class"] = top["category"]
    if message.report_url:
        event["client_url"] = message.report_url
        event["links"].insert(0, {"href": message.report_url, "text": "casebook report"})
    return event
