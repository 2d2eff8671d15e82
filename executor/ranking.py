"""Ranking findings into a short list of probable causes.

A cause is an (entity, category) pair with the findings that support it. Its score combines the
findings' severity and confidence (noisy-or, so corroboration helps). Findings that another
finding explains (a request surge explained by the cache collapse that preceded it) and findings
marked as symptoms keep their place in the chain of evidence but rank below what explains them.
What a finding explains also counts for its cause, whatever the category or entity of the
explained finding: a deploy that explains a new exception on its service (code) and the latency
of its callers (symptom) is one cause with all three findings as evidence. A change that
explains something is always listed, however small its share of the top cause.
"""

from __future__ import annotations

from datetime import timedelta

from casebook.executor.attribution import is_change
from casebook.executor.record import CauseRecord, FindingRecord
from casebook.sdk.models import Entity

SEVERITY_WEIGHT = {"info": 0.35, "warning": 0.7, "critical": 1.0}
EXPLAINED_FACTOR = 0.25
SYMPTOM_FACTOR = 0.4
MIN_SHARE_OF_TOP = 0.25
ABSORBED_FACTOR = 0.8
LOCATION_ONLY = {"other", "symptom"}  # what an explained finding adds to the cause that explains it
MAX_CAUSES = 5
# How much earlier than its explainer an explained finding may be dated: onsets are read from
# per-minute series and alerts, a few minutes coarse.
EARLIER_SLACK = timedelta(minutes=3)


def finding_weight(finding: FindingRecord, explained: set[str]) -> float:
    weight = SEVERITY_WEIGHT.get(finding.severity, 0.5) * finding.confidence
    if finding.id in explained:
        weight *= EXPLAINED_FACTOR
    if finding.category == "symptom":
        weight *= SYMPTOM_FACTOR
    return weight


def rank_causes(findings: list[FindingRecord], limit: int = MAX_CAUSES) -> list[CauseRecord]:
    """The probable causes, best first; contributing causes close to the top stand together."""
    by_id = {f.id: f for f in findings}
    findings = [_without_earlier(f, by_id) for f in findings]
    explained = {fid for f in findings for fid in f.explains}
    by_id = {f.id: f for f in findings}
    groups: dict[tuple[str, str, str], list[tuple[float, FindingRecord]]] = {}
    for finding in findings:
        groups.setdefault(_key(finding), []).append((finding_weight(finding, explained), finding))
    # The causes (not findings) that claim each finding: two findings of one cause agree, and
    # a claimer that is itself explained (a retry storm an expired certificate explains) does
    # not compete with what explains it.
    explainers: dict[str, set[tuple[str, str, str]]] = {}
    for finding in findings:
        for fid in finding.explains:
            claims = explainers.setdefault(fid, set())
            if finding.id not in explained:
                claims.add(_key(finding))
    for finding in findings:
        strengths = finding.facts.get("explained_strength") or {}
        members = groups[_key(finding)]
        for fid in finding.explains:
            other = by_id.get(fid)
            if other is None or any(m[1].id == fid for m in members):
                continue
            # Several findings that each claim it: it supports the one on its own entity.
            if fid not in strengths and len(explainers[fid] | {_key(finding)}) > 1 and \
                    _key(other)[:2] != _key(finding)[:2]:
                continue
            share = float(strengths.get(fid, ABSORBED_FACTOR))
            if finding.id in explained:  # what an explained finding explains is explained too
                share *= EXPLAINED_FACTOR
            members.append((finding_weight(other, set()) * share, other))

    _merge_locations(groups)

    scored: list[tuple[float, str, tuple[str, str, str], list[FindingRecord]]] = []
    for key, members in groups.items():
        miss = 1.0
        for weight, _ in members:
            miss *= 1.0 - min(weight, 0.99)
        score = 1.0 - miss
        members.sort(key=lambda m: (_key(m[1]) != key, -m[0]))
        onset = min((m[1].onset.isoformat() for m in members if m[1].onset), default="~")
        scored.append((score, onset, key, [m[1] for m in members]))

    # Higher score first; on a near tie the earlier onset (the cause precedes the symptom).
    scored.sort(key=lambda s: (-round(s[0], 2), s[1], -s[0]))
    if not scored:
        return []
    top = scored[0][0]
    causes = []
    for score, _, (kind, name, category), members in scored:
        attributed = any(is_change(m) and m.explains for m in members)
        cut = len(causes) >= limit or (causes and score < top * MIN_SHARE_OF_TOP)
        if cut and not attributed:
            continue
        causes.append(CauseRecord(
            rank=len(causes) + 1, entity=Entity(kind=kind, name=name), category=category,
            score=round(score, 4), finding_ids=[m.id for m in members], title=members[0].title,
        ))
    return causes


def _merge_locations(groups: dict[tuple[str, str, str], list[tuple[float, FindingRecord]]]
                     ) -> None:
    """Findings that say only where (category `other`) join the strongest cause that says what
    on the same entity: a latency change that starts in a service supports the traffic surge,
    leak or deploy found there, rather than standing beside it."""
    # Indexed by entity: scanning every group for every location group is quadratic, and an
    # investigation of thousands of services has thousands of each.
    said: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for k in groups:
        if k[2] not in LOCATION_ONLY:
            said.setdefault(k[:2], []).append(k)
    for key in [k for k in groups if k[2] == "other"]:
        specific = [k for k in said.get(key[:2], ())
                    if not all(is_change(f) and not f.explains for _, f in groups[k])]
        if not specific:
            continue
        best = max(specific, key=lambda k: max(w for w, _ in groups[k]))
        present = {f.id for _, f in groups[best]}
        groups[best].extend(m for m in groups.pop(key) if m[1].id not in present)


def _without_earlier(finding: FindingRecord, by_id: dict[str, FindingRecord]) -> FindingRecord:
    """The finding without its claims on findings that began well before it: what came first
    was not caused by it (a route surge that began after the errors it would explain)."""
    if finding.onset is None:
        return finding
    kept = [fid for fid in finding.explains if (other := by_id.get(fid)) is None
            or other.onset is None or other.onset >= finding.onset - EARLIER_SLACK]
    if len(kept) == len(finding.explains):
        return finding
    return finding.model_copy(update={"explains": kept})


def _key(finding: FindingRecord) -> tuple[str, str, str]:
    entity = finding.entities[0] if finding.entities else Entity(kind="finding",
                                                                  name=finding.analyzer)
    return (entity.kind, entity.name, finding.category)
