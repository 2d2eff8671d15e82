"""The deterministic narrator: offline, and every sentence comes from a finding's own words."""

from __future__ import annotations

from casebook.executor.record import (
    FindingRecord,
    InvestigationRecord,
    NarrativeRecord,
    SentenceRecord,
)


def narrate_deterministic(record: InvestigationRecord) -> NarrativeRecord:
    """Tell the chain of findings behind each cause, in the order a person would read it."""
    sentences: list[SentenceRecord] = []
    by_id = {f.id: f for f in record.findings}
    if not record.causes:
        sentences.append(SentenceRecord(
            text=f"No analyzer found anything notable for {record.alert.name}.", kind="headline"))
    else:
        top = record.causes[0]
        lead = by_id[top.finding_ids[0]]
        sentences.append(SentenceRecord(
            text=f"Probable cause: {top.category} on {top.entity.kind} {top.entity.name}: "
                 f"{lead.title}.",
            finding_ids=[lead.id], kind="headline"))
        told: set[str] = set()
        for cause in record.causes:
            for finding in _chain(cause.finding_ids[0], by_id):
                if finding.id in told:
                    continue
                told.add(finding.id)
                sentences.append(SentenceRecord(text=_sentence(finding), finding_ids=[finding.id]))
        for finding in record.findings:
            for mitigation in finding.mitigations[:1]:
                sentences.append(SentenceRecord(
                    text=f"Suggested: {mitigation.action}.", finding_ids=[finding.id],
                    kind="next_step"))
    text = " ".join(s.text for s in sentences)
    return NarrativeRecord(narrator="deterministic", text=text, sentences=sentences,
                           verified=True, headline=sentences[0].text)


def _chain(finding_id: str, by_id: dict[str, FindingRecord]) -> list[FindingRecord]:
    """The finding and those that led to it, earliest first."""
    ordered: list[FindingRecord] = []
    seen: set[str] = set()

    def walk(fid: str) -> None:
        if fid in seen or fid not in by_id:
            return
        seen.add(fid)
        for parent in by_id[fid].led_from:
            walk(parent)
        ordered.append(by_id[fid])

    walk(finding_id)
    return ordered


def _sentence(finding: FindingRecord) -> str:
    summary = finding.summary.rstrip(".")
    return f"{finding.title}: {summary}."
