"""Running the post-processors of the loaded packs after an investigation is ranked, and turning
their actions into notes on the investigation and messages in the outbox."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterable, Sequence

from casebook.executor.delivery.messages import Message
from casebook.executor.links import alert_links
from casebook.executor.narration.redaction import redact
from casebook.executor.record import InvestigationRecord
from casebook.sdk.postprocessor import (
    Annotate,
    CauseView,
    FindingView,
    InvestigationView,
    Notify,
    OpenTicket,
    PostprocessorOutcome,
    PostprocessorSpec,
    postprocessor_spec,
    run_postprocessor,
)

log = logging.getLogger("casebook.postprocessing")


def find_postprocessors(packs: Iterable[str]) -> list[PostprocessorSpec]:
    """The post-processors defined in the (already imported) modules of these packs."""
    found: dict[str, PostprocessorSpec] = {}
    names = list(packs)
    for module_name, module in sorted(sys.modules.items()):
        if module is None or not any(module_name == p or module_name.startswith(f"{p}.")
                                     for p in names):
            continue
        for _, value in inspect.getmembers(module):
            spec = postprocessor_spec(value)
            if spec is not None and spec.module == module_name:
                found.setdefault(spec.name, spec)
    return list(found.values())


def view_of(record: InvestigationRecord, report_url: str = "") -> InvestigationView:
    """The read-only view a post-processor receives."""
    narrative = record.narrative
    return InvestigationView(
        id=record.id,
        alert=record.alert,
        status=record.status,
        causes=tuple(CauseView(rank=c.rank, entity=c.entity, category=c.category, score=c.score,
                               finding_ids=tuple(c.finding_ids), title=c.title)
                     for c in record.causes),
        findings=tuple(FindingView(id=f.id, analyzer=f.analyzer, title=f.title,
                                   summary=f.summary, severity=f.severity,
                                   confidence=f.confidence, category=f.category,
                                   entities=tuple(f.entities), facts=dict(f.facts))
                       for f in record.findings),
        headline=narrative.headline if narrative else "",
        narrative=narrative.text if narrative else "",
        report_url=report_url,
    )


def postprocess(specs: Sequence[PostprocessorSpec], record: InvestigationRecord,
                report_url: str) -> tuple[list[str], list[tuple[str, Message]]]:
    """Run every post-processor: (notes for the investigation, (sink, message) to deliver)."""
    view = view_of(record, report_url)
    notes: list[str] = []
    messages: list[tuple[str, Message]] = []
    for spec in specs:
        outcome = run_postprocessor(spec, view)
        if outcome.status in ("error", "timeout"):
            log.warning("post-processor %s on %s: %s", spec.name, record.id, outcome.error)
            notes.append(redact(f"Post-processor {spec.name} {outcome.status}: {outcome.error}"))
            continue
        notes += _annotations(outcome)
        messages += _messages(outcome, record, report_url)
    return notes, messages


def _annotations(outcome: PostprocessorOutcome) -> list[str]:
    return [redact(f"{outcome.name}: {a.text}") for a in outcome.actions
            if isinstance(a, Annotate)]


def _messages(outcome: PostprocessorOutcome, record: InvestigationRecord,
              report_url: str) -> list[tuple[str, Message]]:
    out = []
    for number, action in enumerate(outcome.actions, start=1):
        if isinstance(action, Notify):
            kind, title = "notification", f"{record.alert.name}: {action.text}"
            markdown = f"{action.text}\n\n[The investigation]({report_url})\n"
            extra: dict[str, str] = {"text": redact(action.text)}
        elif isinstance(action, OpenTicket):
            kind, title = "ticket", action.title
            markdown = f"# {action.title}\n\n{action.body}\n\n[The investigation]({report_url})\n"
            extra = {"title": redact(action.title), "body": redact(action.body),
                     "text": redact(f"{action.title}\n{action.body}")}
        else:
            continue
        message = Message(
            kind=kind,
            key=f"{record.id}-{outcome.name}-{number}",
            title=redact(title),
            payload={"kind": kind, "investigation_id": record.id, "postprocessor": outcome.name,
                     "alert": record.alert.name, "report_url": report_url, **extra},
            markdown=redact(markdown),
            investigation_id=record.id,
            fingerprint=record.alert.fingerprint,
            severity=record.alert.labels.get("severity", "warning"),
            source=record.alert.service or record.alert.source,
            report_url=report_url,
            links=alert_links(record.alert),
        )
        out.append((action.sink, message))
    return out
