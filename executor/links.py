"""Links out of an investigation: what the alert carried (runbook, the rule that fired, Grafana's
dashboard, panel and silence pages) and what its findings name (traces, services), through the
URL templates of the configuration's `links:` section."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from casebook.executor.record import InvestigationRecord
from casebook.sdk.models import Alert

MAX_TRACES = 5
SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$", re.I)
# Annotation names Prometheus rules and Grafana use for a runbook.
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "runbookURL", "runbook_link")


@dataclass(frozen=True)
class Link:
    """One link: what it is (`kind`), what people read (`label`) and where it goes."""

    kind: str
    label: str
    url: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "url": self.url}


def alert_links(alert: Alert) -> list[Link]:
    """The links an alert arrived with; only http(s) URLs, so a page never carries a script link."""
    candidates = [
        ("runbook", "Runbook", next((alert.annotations[k] for k in RUNBOOK_ANNOTATIONS
                                      if alert.annotations.get(k)), "")),
        ("generator", "Alert rule (source)", alert.generator_url),
        ("dashboard", "Dashboard", alert.dashboard_url),
        ("panel", "Panel", alert.panel_url),
        ("silence", "Silence this alert", alert.silence_url),
    ]
    return [Link(kind, label, url.strip()) for kind, label, url in candidates
            if url and SAFE_URL.match(url.strip())]


def investigation_links(record: InvestigationRecord,
                        templates: Mapping[str, str] | None = None) -> list[Link]:
    """The alert's links, then one per service of the causes and per trace the findings name."""
    links = alert_links(record.alert)
    templates = templates or {}
    seen: set[tuple[str, str]] = set()
    named: list[tuple[str, str]] = []
    for cause in record.causes:
        named.append((cause.entity.kind, cause.entity.name))
    for finding in record.findings:
        named += [(e.kind, e.name) for e in finding.entities]
    named += [("trace", t) for t in trace_ids(record)]
    for kind, name in named:
        template = templates.get(kind)
        if template is None or (kind, name) in seen:
            continue
        seen.add((kind, name))
        url = fill(template, kind, name)
        if SAFE_URL.match(url):
            label = f"Trace {name}" if kind == "trace" else f"{kind} {name}"
            links.append(Link(kind, label, url))
    return links


def fill(template: str, kind: str, name: str) -> str:
    """A template with the entity filled in, URL-quoted: {name}, {kind}, {<kind>}, {trace_id}."""
    value = quote(name, safe="")
    fields = {"name": value, "kind": quote(kind, safe=""), kind: value}
    if kind == "trace":
        fields["trace_id"] = value
    return template.format_map(_Blank(fields))


class _Blank(dict):
    def __missing__(self, key: str) -> str:  # a placeholder for another kind stays empty
        return ""


def trace_ids(record: InvestigationRecord) -> list[str]:
    """Trace ids the findings name: trace entities, `trace_id` facts, trace_id evidence columns."""
    found: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and value and value not in found:
            found.append(value)

    for finding in record.findings:
        for entity in finding.entities:
            if entity.kind == "trace":
                add(entity.name)
        for key, value in finding.facts.items():
            if "trace_id" in key:
                for item in value if isinstance(value, list) else [value]:
                    add(item)
        for evidence in finding.evidence:
            if "trace_id" in evidence.columns:
                column = evidence.columns.index("trace_id")
                for row in evidence.rows[:MAX_TRACES]:
                    add(row[column] if column < len(row) else None)
    return found[:MAX_TRACES]
