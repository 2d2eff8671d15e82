"""The deterministic narrator: offline, and every sentence is made of its findings' own words.

The story is told in the order a person woken by the alert wants it: the most likely cause, what
supports it, how the investigation got there, what it explains, what else was seen, what to do.
"""

from __future__ import annotations

from casebook.executor.record import (
    CauseRecord,
    FindingRecord,
    InvestigationRecord,
    NarrativeRecord,
    SentenceRecord,
)

# Causes scoring at least this share of the top cause are told as standing together with it.
CONTRIBUTING_SHARE = 0.6
MAX_SYMPTOMS = 3
MAX_OTHERS = 3
MAX_NEXT_STEPS = 3


def narrate_deterministic(record: InvestigationRecord) -> NarrativeRecord:
    """Tell the findings behind each cause in the order a person would read them."""
    from casebook.executor.narration.narrative import assemble
    from casebook.executor.narration.verifier import verify

    sentences = _story(record) if record.findings else _nothing_found(record)
    return assemble(sentences, narrator="deterministic", verified=not verify(sentences, record))


def _story(record: InvestigationRecord) -> list[SentenceRecord]:
    by_id = {f.id: f for f in record.findings}
    causes = [c for c in record.causes if c.finding_ids and c.finding_ids[0] in by_id]
    top = causes[0].score if causes else 0.0
    contributing = [c for c in causes if c.score >= top * CONTRIBUTING_SHARE] or causes[:1]
    lesser = [c for c in causes if c not in contributing]
    leads = [by_id[c.finding_ids[0]] for c in contributing]

    sentences = [_headline(record, leads)]
    told: set[str] = set()

    def tell(finding: FindingRecord, text: str, also: list[str] | None = None) -> None:
        told.add(finding.id)
        sentences.append(SentenceRecord(text=text, finding_ids=[finding.id, *(also or [])]))

    for cause, lead in zip(contributing, leads, strict=True):
        tell(lead, _as_sentence(lead.summary))
        for fid in cause.finding_ids[1:]:
            if fid in by_id and fid not in told:
                tell(by_id[fid], "Supporting evidence: " + _as_sentence(by_id[fid].summary))

    chain = _chain(leads[0].id, by_id) if leads else []
    if len(chain) > 1:
        sentences.append(
            SentenceRecord(
                text="Found by following " + " → ".join(_mid(f.title) for f in chain) + ".",
                finding_ids=[f.id for f in chain],
            )
        )

    cause_ids = {fid for c in contributing for fid in c.finding_ids}
    explained = {fid for fid in cause_ids if fid in by_id for fid in by_id[fid].explains}
    explainer = {e: fid for fid in cause_ids if fid in by_id for e in by_id[fid].explains}
    symptoms = [f for lead in leads for f in _chain(lead.id, by_id) if f.id not in told]
    symptoms += [by_id[e] for e in sorted(explained) if e in by_id and e not in told]
    for finding in _unique(symptoms)[:MAX_SYMPTOMS]:
        if finding.id in explainer:
            tell(
                finding,
                "Explained by the cause: " + _as_sentence(finding.summary),
                [explainer[finding.id]],
            )
        else:
            tell(finding, _as_sentence(finding.summary))

    for cause in lesser:
        lead = by_id[cause.finding_ids[0]]
        told.add(lead.id)
        sentences.append(
            SentenceRecord(
                text=f"{_title(lead)} may also contribute "
                f"({cause.category} on {cause.entity.name}).",
                finding_ids=[lead.id],
                kind="hypothesis",
            )
        )

    others = [f for f in record.findings if f.id not in told and f.id not in cause_ids]
    if others:
        shown = others[:MAX_OTHERS]
        sentences.append(
            SentenceRecord(
                text="Also seen, not ranked as a cause: "
                + "; ".join(_mid(f.title) for f in shown)
                + ".",
                finding_ids=[f.id for f in shown],
            )
        )

    sentences.extend(_next_steps(record, causes, by_id))
    return sentences


def _headline(record: InvestigationRecord, leads: list[FindingRecord]) -> SentenceRecord:
    alert = record.alert
    where = f" on {alert.service}" if alert.service else ""
    if not leads:
        return SentenceRecord(
            text=f"No cause was ranked for {alert.name}{where}; the findings are listed below.",
            finding_ids=[f.id for f in record.findings[:3]],
            kind="headline",
        )
    if len(leads) == 1:
        text = f"{_title(leads[0])} — the most likely cause of {alert.name}{where}."
    else:
        names = [_title(leads[0]), *(_mid(f.title) for f in leads[1:])]
        joined = ", ".join(names[:-1]) + " and " + names[-1]
        text = f"{joined} together are the most likely cause of {alert.name}{where}."
    return SentenceRecord(text=text, finding_ids=[f.id for f in leads], kind="headline")


def _next_steps(
    record: InvestigationRecord, causes: list[CauseRecord], by_id: dict[str, FindingRecord]
) -> list[SentenceRecord]:
    ordered = [by_id[fid] for c in causes for fid in c.finding_ids if fid in by_id]
    # What a cause explains is a symptom: its remedies (scale out the surge) are not next steps.
    explained = {fid for f in record.findings for fid in f.explains}
    steps: list[SentenceRecord] = []
    seen: set[str] = set()
    for finding in _unique([*ordered, *record.findings]):
        if finding.id in explained:
            continue
        for mitigation in finding.mitigations:
            text = _as_sentence(mitigation.action)
            if text.lower() in seen or len(steps) >= MAX_NEXT_STEPS:
                continue
            seen.add(text.lower())
            steps.append(SentenceRecord(text=text, finding_ids=[finding.id], kind="next_step"))
    return steps


def _nothing_found(record: InvestigationRecord) -> list[SentenceRecord]:
    alert = record.alert
    where = f" on {alert.service}" if alert.service else ""
    counts = record.status_counts()
    ran = len(record.invocations)
    sentences = [
        SentenceRecord(
            text=f"No analyzer found anything notable for {alert.name}{where}.", kind="headline"
        )
    ]
    if ran:
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        plural = "s" if ran != 1 else ""
        sentences.append(SentenceRecord(text=f"{ran} invocation{plural} ran ({detail})."))
    failed = sum(counts.get(s, 0) for s in ("error", "timeout", "crashed", "oom"))
    if failed:
        sentences.append(
            SentenceRecord(
                text=f"{failed} did not finish; the cause may be in what they would have checked.",
                kind="hypothesis",
            )
        )
    if not ran:
        sentences.append(
            SentenceRecord(
                text="No analyzer applies to this alert yet; `casebook new-analyzer` starts one.",
                kind="next_step",
            )
        )
    return sentences


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


def _unique(findings: list[FindingRecord]) -> list[FindingRecord]:
    seen: set[str] = set()
    return [f for f in findings if not (f.id in seen or seen.add(f.id))]


def _as_sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    return text if text[-1] in ".!?" else text + "."


def _title(finding: FindingRecord) -> str:
    return finding.title.rstrip(".")


def _mid(title: str) -> str:
    """A title as it reads inside a sentence: 'Traffic to api' -> 'traffic to api'."""
    title = title.rstrip(".")
    first = title.split(" ", 1)[0]
    rest = first[1:].replace("-", "")
    if first[:1].isupper() and rest.isalpha() and rest.islower():
        return title[0].lower() + title[1:]
    return title
