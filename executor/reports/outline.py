"""What every report shows and in which order, whatever its format."""

from __future__ import annotations

from dataclasses import dataclass, field

from casebook.executor.record import (
    FindingRecord,
    InvestigationRecord,
    NarrativeRecord,
    SentenceRecord,
)
from casebook.sdk.models import Evidence

FAILED = ("error", "timeout", "crashed", "oom")


@dataclass
class Branch:
    """A finding and the findings it led to (its follow-ups), for the chain of findings."""

    finding: FindingRecord
    children: list[Branch] = field(default_factory=list)


def finding_tree(record: InvestigationRecord) -> list[Branch]:
    """Findings as a forest: each under the first finding that led to it."""
    by_id = {f.id: f for f in record.findings}
    branches = {f.id: Branch(f) for f in record.findings}
    roots: list[Branch] = []
    for finding in record.findings:
        parents = [p for p in finding.led_from if p in by_id and p != finding.id]
        if parents and not _descends(parents[0], finding.id, by_id):
            branches[parents[0]].children.append(branches[finding.id])
        else:
            roots.append(branches[finding.id])
    return roots


def cause_ranks(record: InvestigationRecord) -> dict[str, int]:
    """The best cause rank each finding supports."""
    ranks: dict[str, int] = {}
    for cause in record.causes:
        for fid in cause.finding_ids:
            ranks.setdefault(fid, cause.rank)
    return ranks


def findings_in_order(record: InvestigationRecord) -> list[FindingRecord]:
    """Findings behind the top causes first, then the rest as they were found."""
    ranks = cause_ranks(record)
    return sorted(record.findings, key=lambda f: ranks.get(f.id, len(record.causes) + 1))


def key_evidence(record: InvestigationRecord) -> tuple[FindingRecord, Evidence] | None:
    """The evidence series worth a chart at the top: the top causes' first, two series preferred."""
    ranks = cause_ranks(record)
    ordered = sorted(record.findings, key=lambda f: (ranks.get(f.id, 99), -f.confidence))
    charted = [(f, e) for f in ordered for e in f.evidence if _plottable(e)]
    if not charted:
        return None
    top_rank = ranks.get(charted[0][0].id, 99)
    for finding, evidence in charted:
        if ranks.get(finding.id, 99) == top_rank and len(evidence.series) >= 2:
            return finding, evidence
    return charted[0]


def by_kind(narrative: NarrativeRecord | None) -> dict[str, list[SentenceRecord]]:
    """A narrative's sentences grouped as headline, fact, hypothesis and next_step."""
    groups: dict[str, list[SentenceRecord]] = {
        k: [] for k in ("headline", "fact", "hypothesis", "next_step")
    }
    for sentence in narrative.sentences if narrative else []:
        groups.setdefault(sentence.kind, []).append(sentence)
    return groups


def narrator_line(narrative: NarrativeRecord) -> str:
    """Who wrote the narrative, with what, at what cost, and whether it was verified."""
    who = "Claude" if narrative.narrator == "claude" else f"the {narrative.narrator} narrator"
    parts = [f"Written by {who}"]
    if narrative.narrator == "claude" and narrative.model:
        parts[0] += f" ({narrative.model})"
    parts.append(
        "every sentence verified against its findings"
        if narrative.verified
        else "NOT verified against its findings"
    )
    tokens = narrative.tokens_in + narrative.tokens_out
    if tokens:
        tried = f"{narrative.model} " if narrative.narrator != "claude" and narrative.model else ""
        parts.append(f"{tried}{tokens:,} tokens (${narrative.cost_usd:.4f})")
    if narrative.rejections:
        parts.append(f"{len(narrative.rejections)} model answer(s) rejected")
    return " · ".join(parts)


FAILED_PREFIX = "The investigation failed: "


def failure_reason(record: InvestigationRecord) -> str | None:
    """Why the investigation failed (from its notes), or None when it did not."""
    if record.status != "failed":
        return None
    reason = next((n[len(FAILED_PREFIX):] for n in record.notes if n.startswith(FAILED_PREFIX)),
                  "it did not finish")
    return reason


def failed_invocations(record: InvestigationRecord):
    return [i for i in record.invocations if i.status in FAILED]


def _plottable(evidence: Evidence) -> bool:
    return any(len(points) >= 2 for points in evidence.series.values())


def _descends(fid: str, ancestor: str, by_id: dict[str, FindingRecord]) -> bool:
    """True when `ancestor` led (directly or not) to `fid`: a cycle we must not draw."""
    seen: set[str] = set()
    stack = [fid]
    while stack:
        current = stack.pop()
        if current == ancestor:
            return True
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        parents = [p for p in by_id[current].led_from if p in by_id]
        stack.extend(parents[:1])
    return False
